#include "kernel/app/mini_interp.h"
#include "engine/io/base64.h"

#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnnlens_version.h"
#include "engine/err.h"
#include "engine/io/png.h"
#include "engine/progress.h"
#include "kernel/app/kernelspec.h"
#include "kernel/protocol/protocol.h"

typedef struct mi_value {
    int is_str;
    double num;
    char *str; /* owned when is_str */
} mi_value;

typedef struct mi_var {
    char *name;
    mi_value v;
} mi_var;

typedef struct mi {
    kn_interp base;
    atomic_int cancel;
    mi_var *vars;
    size_t n_vars;
    int displays; /* numbers display ids */
} mi;

typedef struct mi_cmd {
    const char *name, *help;
} mi_cmd;

static const mi_cmd commands[] = {
    {"print", "print EXPR\n    Writes the value of EXPR to the cell's output (stdout)."},
    {"eprint", "eprint EXPR\n    Writes the value of EXPR to stderr."},
    {"input",
     "input \"prompt\"\n    Asks the front end for a line of text; its value is that text."},
    {"logo", "logo\n    Shows the cnnlens logo (a PNG image)."},
    {"progress", "progress N\n    Shows one line of output and updates it in place N times."},
    {"sleep", "sleep SECONDS\n    Waits; the kernel's interrupt stops it at once."},
    {"loop", "loop N\n    Counts to N, checking for an interrupt at every step."},
    {"clear", "clear\n    Clears the cell's output."},
    {"help", "help [WORD]\n    Shows what a command does."},
};
#define N_COMMANDS (sizeof commands / sizeof *commands)

static void value_free(mi_value *v)
{
    if (v->is_str) free(v->str);
    memset(v, 0, sizeof *v);
}

static char *value_text(const mi_value *v)
{
    if (v->is_str) return strdup(v->str);
    char buf[64];
    if (v->num == floor(v->num) && fabs(v->num) < 1e15)
        snprintf(buf, sizeof buf, "%.0f", v->num);
    else
        snprintf(buf, sizeof buf, "%.15g", v->num);
    return strdup(buf);
}

static mi_var *find_var(mi *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->n_vars; i++)
        if (strlen(m->vars[i].name) == len && !strncmp(m->vars[i].name, name, len))
            return &m->vars[i];
    return NULL;
}

static int set_var(mi *m, const char *name, size_t len, mi_value *v, cl_err *err)
{
    mi_var *var = find_var(m, name, len);
    if (!var) {
        mi_var *vars = realloc(m->vars, (m->n_vars + 1) * sizeof *vars);
        if (!vars) return cl_err_set(err, CL_ENOMEM, "out of memory");
        m->vars = vars;
        var = &vars[m->n_vars];
        if (!(var->name = strndup(name, len))) return cl_err_set(err, CL_ENOMEM, "out of memory");
        memset(&var->v, 0, sizeof var->v);
        m->n_vars++;
    }
    value_free(&var->v);
    var->v = *v;
    memset(v, 0, sizeof *v);
    return 0;
}

static void clear_vars(mi *m)
{
    for (size_t i = 0; i < m->n_vars; i++) {
        free(m->vars[i].name);
        value_free(&m->vars[i].v);
    }
    free(m->vars);
    m->vars = NULL, m->n_vars = 0;
}

/* ---- expressions --------------------------------------------------------- */

typedef struct parser {
    mi *m;
    const char *p;
    kn_output *out; /* NULL: no input allowed (user expressions) */
} parser;

static void skip_ws(parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r') ps->p++;
}

/* Names may use any letters: bytes of multi-byte UTF-8 count as letters. */
static int is_word_start(int c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static size_t word_len(const char *p)
{
    size_t n = 0;
    if (!is_word_start((unsigned char)p[0])) return 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '_' || (unsigned char)p[n] >= 0x80) n++;
    return n;
}

static int parse_expr(parser *ps, mi_value *v, cl_err *err);

static int parse_string(parser *ps, mi_value *v, cl_err *err)
{
    const char *start = ++ps->p, *end = strchr(start, '"');
    if (!end) return cl_err_set(err, CL_ESYNTAX, "the string has no closing quote");
    v->is_str = 1;
    if (!(v->str = strndup(start, (size_t)(end - start))))
        return cl_err_set(err, CL_ENOMEM, "out of memory");
    ps->p = end + 1;
    return 0;
}

static int parse_input(parser *ps, mi_value *v, cl_err *err)
{
    mi_value prompt = {0};
    skip_ws(ps);
    if (*ps->p && *ps->p != ')' && parse_expr(ps, &prompt, err)) return -1;
    char *text = prompt.is_str ? strdup(prompt.str) : strdup("");
    value_free(&prompt);
    char *line = ps->out && ps->out->input ? ps->out->input(ps->out->ctx, text, 0) : NULL;
    free(text);
    if (!line) {
        if (atomic_load(&ps->m->cancel))
            return cl_err_set(err, CL_EINTERRUPT, "interrupted by the user");
        return cl_err_set(err, CL_EIO, "this front end does not accept input (allow_stdin is off)");
    }
    v->is_str = 1;
    v->str = line;
    return 0;
}

static int parse_primary(parser *ps, mi_value *v, cl_err *err)
{
    skip_ws(ps);
    memset(v, 0, sizeof *v);
    const char *p = ps->p;
    if (*p == '"') return parse_string(ps, v, err);
    if (*p == '(') {
        ps->p++;
        if (parse_expr(ps, v, err)) return -1;
        skip_ws(ps);
        if (*ps->p != ')') {
            value_free(v);
            return cl_err_set(err, CL_ESYNTAX, "missing ')'");
        }
        ps->p++;
        return 0;
    }
    if (*p == '-') {
        ps->p++;
        if (parse_primary(ps, v, err)) return -1;
        if (v->is_str) return value_free(v), cl_err_set(err, CL_ETYPE, "cannot negate a string");
        v->num = -v->num;
        return 0;
    }
    if (isdigit((unsigned char)*p) || *p == '.') {
        char *end;
        v->num = strtod(p, &end);
        if (end == p) return cl_err_set(err, CL_ESYNTAX, "expected a number at '%s'", p);
        ps->p = end;
        return 0;
    }
    size_t n = word_len(p);
    if (!n)
        return cl_err_set(err, CL_ESYNTAX, "expected a value, found '%s'", *p ? p : "end of line");
    ps->p += n;
    if (n == 5 && !strncmp(p, "input", 5)) return parse_input(ps, v, err);
    mi_var *var = find_var(ps->m, p, n);
    if (!var) return cl_err_set(err, CL_ENAME, "unknown command or variable '%.*s'", (int)n, p);
    *v = var->v;
    if (v->is_str && !(v->str = strdup(v->str))) return cl_err_set(err, CL_ENOMEM, "out of memory");
    return 0;
}

static int arith(char op, mi_value *a, mi_value *b, cl_err *err)
{
    if (a->is_str || b->is_str) {
        value_free(a), value_free(b);
        return cl_err_set(err, CL_ETYPE, "'%c' needs two numbers", op);
    }
    if (op == '/' && b->num == 0) return cl_err_set(err, CL_EINVAL, "division by zero");
    a->num = op == '+'   ? a->num + b->num
             : op == '-' ? a->num - b->num
             : op == '*' ? a->num * b->num
                         : a->num / b->num;
    return 0;
}

static int parse_term(parser *ps, mi_value *v, cl_err *err)
{
    if (parse_primary(ps, v, err)) return -1;
    for (skip_ws(ps); *ps->p == '*' || *ps->p == '/'; skip_ws(ps)) {
        char op = *ps->p++;
        mi_value b;
        if (parse_primary(ps, &b, err)) return value_free(v), -1;
        if (arith(op, v, &b, err)) return -1;
    }
    return 0;
}

static int parse_expr(parser *ps, mi_value *v, cl_err *err)
{
    if (parse_term(ps, v, err)) return -1;
    for (skip_ws(ps); *ps->p == '+' || *ps->p == '-'; skip_ws(ps)) {
        char op = *ps->p++;
        mi_value b;
        if (parse_term(ps, &b, err)) return value_free(v), -1;
        if (arith(op, v, &b, err)) return -1;
    }
    return 0;
}

/* A whole line (or user expression) that must be one expression. */
static int eval_line(mi *m, const char *text, kn_output *out, mi_value *v, cl_err *err)
{
    parser ps = {m, text, out};
    if (parse_expr(&ps, v, err)) return -1;
    skip_ws(&ps);
    if (*ps.p && *ps.p != '#') {
        value_free(v);
        return cl_err_set(err, CL_ESYNTAX, "unexpected '%s' after the value", ps.p);
    }
    return 0;
}

/* ---- commands -------------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmd_sleep(mi *m, double seconds, cl_err *err)
{
    cl_progress p = {.cancel = &m->cancel};
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (cl_progress_step(&p, 0, 0, "sleep", err)) return -1;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) * 1e-9 >= seconds) return 0;
        sleep_ms(2);
    }
}

static int cmd_loop(mi *m, double n, cl_err *err)
{
    cl_progress p = {.cancel = &m->cancel};
    volatile double acc = 0;
    for (long i = 0; i < (long)n; i++) {
        if (cl_progress_step(&p, i, (long)n, "loop", err)) return -1;
        acc += sqrt((double)i);
    }
    (void)acc;
    return 0;
}

static json_t *text_bundle(const char *text)
{
    return json_pack("{s:s}", "text/plain", text);
}

static int cmd_progress(mi *m, double n, kn_output *out, cl_err *err)
{
    char id[48], text[96];
    snprintf(id, sizeof id, "mini-progress-%d", ++m->displays);
    for (long i = 0; i <= (long)n; i++) {
        if (i && cmd_sleep(m, 0.01, err)) return -1;
        snprintf(text, sizeof text, "step %ld of %ld", i, (long)n);
        json_t *data = text_bundle(text);
        out->display(out->ctx, data, NULL, id, i > 0);
        json_decref(data);
    }
    return 0;
}

static int cmd_logo(kn_output *out, cl_err *err)
{
    const int size = 64;
    uint8_t *pix = ks_draw_logo(size), *png = NULL;
    size_t len = 0;
    if (!pix) return cl_err_set(err, CL_ENOMEM, "out of memory drawing the logo");
    int rc = png_encode(pix, size, size, 4, &png, &len, err);
    free(pix);
    if (rc) return -1;
    char *b64 = b64_encode(png, len, NULL);
    free(png);
    if (!b64) return cl_err_set(err, CL_ENOMEM, "out of memory");
    json_t *data = json_pack("{s:s,s:s}", "image/png", b64, "text/plain", "<cnnlens logo, 64x64>");
    json_t *meta = json_pack("{s:{s:i,s:i}}", "image/png", "width", size, "height", size);
    free(b64);
    out->display(out->ctx, data, meta, NULL, 0);
    json_decref(data);
    json_decref(meta);
    return 0;
}

static const mi_cmd *find_cmd(const char *name, size_t len)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strlen(commands[i].name) == len && !strncmp(commands[i].name, name, len))
            return &commands[i];
    return NULL;
}

static json_t *page_payload(const char *word, size_t len)
{
    const mi_cmd *c = len ? find_cmd(word, len) : NULL;
    char text[4096];
    size_t used = 0;
    if (c) {
        snprintf(text, sizeof text, "%s\n", c->help);
    } else {
        used = (size_t)snprintf(text, sizeof text, "%s%s commands:\n",
                                len ? "no such command; " : "", "the minimal lens interpreter's");
        for (size_t i = 0; i < N_COMMANDS && used < sizeof text; i++)
            used += (size_t)snprintf(text + used, sizeof text - used, "  %s\n", commands[i].help);
    }
    return json_pack("[{s:s,s:{s:s},s:i}]", "source", "page", "data", "text/plain", text, "start",
                     0);
}

/* Runs one statement; *result receives the value of a bare expression. */
static int run_stmt(mi *m, const char *line, kn_output *out, kn_exec_result *res, mi_value *result,
                    int *has_result, cl_err *err)
{
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    size_t n = word_len(p);
    const char *rest = p + n;
    while (*rest == ' ' || *rest == '\t') rest++;
    mi_value v = {0};
    if (n && *rest == '=' && rest[1] != '=') {
        if (eval_line(m, rest + 1, out, &v, err)) return -1;
        return set_var(m, p, n, &v, err);
    }
    const mi_cmd *c = n ? find_cmd(p, n) : NULL;
    if (!c || !strcmp(c->name, "input")) {
        if (eval_line(m, p, out, result, err)) return -1;
        *has_result = 1;
        return 0;
    }
    if (!strcmp(c->name, "logo")) return cmd_logo(out, err);
    if (!strcmp(c->name, "clear")) return out->clear(out->ctx, 0), 0;
    if (!strcmp(c->name, "help")) {
        json_decref(res->payload);
        res->payload = page_payload(rest, word_len(rest));
        return 0;
    }
    if (eval_line(m, rest, out, &v, err)) return -1;
    int rc = 0;
    if (!strcmp(c->name, "print") || !strcmp(c->name, "eprint")) {
        char *text = value_text(&v);
        size_t len = text ? strlen(text) : 0;
        char *nl = text ? realloc(text, len + 2) : NULL;
        if (!nl) {
            free(text);
            rc = cl_err_set(err, CL_ENOMEM, "out of memory");
        } else {
            memcpy(nl + len, "\n", 2);
            out->stream(out->ctx, c->name[0] == 'e' ? "stderr" : "stdout", nl);
            free(nl);
        }
    } else if (v.is_str) {
        rc = cl_err_set(err, CL_ETYPE, "%s needs a number", c->name);
    } else if (!strcmp(c->name, "sleep")) {
        rc = cmd_sleep(m, v.num, err);
    } else if (!strcmp(c->name, "loop")) {
        rc = cmd_loop(m, v.num, err);
    } else {
        rc = cmd_progress(m, v.num, out, err);
    }
    value_free(&v);
    return rc;
}

static void set_error(kn_exec_result *res, const cl_err *err, int line_no, const char *line,
                      size_t len)
{
    char where[1200];
    snprintf(where, sizeof where, "  line %d: %.*s", line_no, (int)(len > 1000 ? 1000 : len), line);
    char head[CL_ERR_MSG + 64];
    snprintf(head, sizeof head, "%s: %s", cl_err_name(err->code), err->msg);
    res->ok = 0;
    res->ename = strdup(cl_err_name(err->code));
    res->evalue = strdup(err->msg);
    res->traceback = json_pack("[s,s]", where, head);
}

/* A statement ends at a newline outside brackets and strings, so an open
 * bracket continues it on the next line (as is_complete promises). */
static const char *stmt_end(const char *p)
{
    int depth = 0, in_str = 0;
    for (; *p; p++) {
        if (in_str) {
            if (*p == '"' || *p == '\n') in_str = 0;
            if (*p == '\n') return p;
        } else if (*p == '"') {
            in_str = 1;
        } else if (*p == '#') {
            while (p[1] && p[1] != '\n') p++;
        } else if (*p == '(' || *p == '[') {
            depth++;
        } else if (*p == ')' || *p == ']') {
            depth--;
        } else if (*p == '\n' && depth <= 0) {
            return p;
        }
    }
    return NULL;
}

static void mi_execute(kn_interp *self, const kn_exec_request *req, kn_output *out,
                       kn_exec_result *res)
{
    mi *m = (mi *)self;
    atomic_store(&m->cancel, 0);
    res->ok = 1;
    mi_value last = {0};
    int line_no = 0, has_result = 0;
    for (const char *p = req->code; *p;) {
        const char *end = stmt_end(p);
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *line = strndup(p, len);
        line_no++;
        cl_err err = {0};
        const char *q = line;
        while (q && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
        if (q && *q && *q != '#') {
            value_free(&last);
            has_result = 0;
        }
        int rc = !line                ? cl_err_set(&err, CL_ENOMEM, "out of memory")
                 : (!*q || *q == '#') ? 0
                                      : run_stmt(m, q, out, res, &last, &has_result, &err);
        free(line);
        if (rc) {
            set_error(res, &err, line_no, p, len);
            break;
        }
        for (const char *q2 = p; q2 < p + len; q2++) line_no += *q2 == '\n';
        p = end ? end + 1 : p + len;
    }
    if (res->ok && has_result && !req->silent) {
        char *text = value_text(&last);
        res->result = text ? text_bundle(text) : NULL;
        free(text);
    }
    value_free(&last);
}

/* Code points to a byte offset (cursor_pos counts code points). */
static size_t cp_to_byte(const char *s, int cp)
{
    size_t i = 0;
    if (cp < 0) return strlen(s);
    for (int k = 0; s[i] && k < cp; k++) {
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80) i++;
    }
    return i;
}

static int byte_to_cp(const char *s, size_t b)
{
    int n = 0;
    for (size_t i = 0; i < b && s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
    return n;
}

static int is_word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}

static json_t *mi_complete(kn_interp *self, const char *code, int cursor_pos)
{
    mi *m = (mi *)self;
    size_t end = cp_to_byte(code, cursor_pos), start = end;
    while (start > 0 && is_word_char(code[start - 1])) start--;
    const char *prefix = code + start;
    size_t plen = end - start;
    json_t *matches = json_array();
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strncmp(commands[i].name, prefix, plen))
            json_array_append_new(matches, json_string(commands[i].name));
    for (size_t i = 0; i < m->n_vars; i++)
        if (!strncmp(m->vars[i].name, prefix, plen))
            json_array_append_new(matches, json_string(m->vars[i].name));
    return json_pack("{s:o,s:i,s:i,s:{}}", "matches", matches, "cursor_start",
                     byte_to_cp(code, start), "cursor_end", byte_to_cp(code, end), "metadata");
}

static json_t *mi_inspect(kn_interp *self, const char *code, int cursor_pos, int detail_level)
{
    (void)detail_level;
    mi *m = (mi *)self;
    size_t at = cp_to_byte(code, cursor_pos), start = at, end = at;
    while (start > 0 && is_word_char(code[start - 1])) start--;
    while (is_word_char(code[end])) end++;
    const mi_cmd *c = find_cmd(code + start, end - start);
    mi_var *v = c ? NULL : find_var(m, code + start, end - start);
    if (!c && !v) return json_pack("{s:b,s:{},s:{}}", "found", 0, "data", "metadata");
    char *text = c ? strdup(c->help) : value_text(&v->v);
    json_t *r = json_pack("{s:b,s:{s:s},s:{}}", "found", 1, "data", "text/plain", text ? text : "",
                          "metadata");
    free(text);
    return r;
}

/* Per line: strings close on their line; brackets may span lines. */
static json_t *mi_is_complete(kn_interp *self, const char *code)
{
    (void)self;
    int depth = 0, in_str = 0;
    for (const char *p = code; *p; p++) {
        if (in_str) {
            if (*p == '"')
                in_str = 0;
            else if (*p == '\n')
                return json_pack("{s:s}", "status", "invalid");
            continue;
        }
        if (*p == '#') {
            while (p[1] && p[1] != '\n') p++;
        } else if (*p == '"') {
            in_str = 1;
        } else if (*p == '(' || *p == '[') {
            depth++;
        } else if (*p == ')' || *p == ']') {
            if (--depth < 0) return json_pack("{s:s}", "status", "invalid");
        }
    }
    if (in_str) return json_pack("{s:s}", "status", "invalid");
    if (depth > 0) return json_pack("{s:s,s:s}", "status", "incomplete", "indent", "    ");
    return json_pack("{s:s}", "status", "complete");
}

static json_t *mi_user_expression(kn_interp *self, const char *expr)
{
    mi *m = (mi *)self;
    mi_value v = {0};
    cl_err err = {0};
    if (eval_line(m, expr, NULL, &v, &err))
        return json_pack("{s:s,s:s,s:s,s:[s]}", "status", "error", "ename", cl_err_name(err.code),
                         "evalue", err.msg, "traceback", err.msg);
    char *text = value_text(&v);
    value_free(&v);
    json_t *r = json_pack("{s:s,s:{s:s},s:{}}", "status", "ok", "data", "text/plain",
                          text ? text : "", "metadata");
    free(text);
    return r;
}

static void mi_interrupt(kn_interp *self)
{
    atomic_store(&((mi *)self)->cancel, 1);
}

static void mi_shutdown(kn_interp *self, int restart)
{
    (void)restart;
    clear_vars((mi *)self);
}

static void mi_destroy(kn_interp *self)
{
    if (!self) return;
    clear_vars((mi *)self);
    free(self);
}

static json_t *mi_language_info(kn_interp *self)
{
    (void)self;
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "name", "lens", "version", CNNLENS_VERSION,
                     "mimetype", "text/x-lens", "file_extension", ".lens", "pygments_lexer", "text",
                     "codemirror_mode", "shell");
}

static const char *mi_banner(kn_interp *self)
{
    (void)self;
    return "cnnlens " CNNLENS_VERSION " - what does a CNN learn? (minimal lens interpreter: "
           "type help)";
}

static const kn_interp_vtbl mi_vtbl = {
    mi_execute,   mi_complete, mi_inspect, mi_is_complete,   mi_user_expression,
    mi_interrupt, mi_shutdown, mi_destroy, mi_language_info, mi_banner,
};

kn_interp *mi_new(void)
{
    mi *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->base.vt = &mi_vtbl;
    atomic_init(&m->cancel, 0);
    return &m->base;
}
