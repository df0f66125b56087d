#include "kernel/lang/lens_interp.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cnnlens_version.h"
#include "engine/progress.h"
#include "kernel/lang/commands.h"
#include "kernel/lang/eval.h"
#include "kernel/lang/parse.h"
#include "kernel/lang/session.h"

typedef struct lens_interp {
    kn_interp base;
    ss_session *s;
    double last_seconds;
} lens_interp;

static lens_interp *self_of(kn_interp *it)
{
    return (lens_interp *)it;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

json_t *lens_traceback(const char *src, int line, int col, const char *ename, const char *evalue)
{
    json_t *tb = json_array();
    if (line > 0 && src) {
        char text[1024], head[64];
        lx_source_line(src, line, text, sizeof text);
        for (char *p = text; *p; p++)
            if (*p == '\t') *p = ' ';
        snprintf(head, sizeof head, "  line %d, column %d:", line, col);
        json_array_append_new(tb, json_string(head));
        char *quoted = malloc(strlen(text) + 5);
        if (quoted) {
            sprintf(quoted, "    %s", text);
            json_array_append_new(tb, json_string_nocheck(quoted));
            free(quoted);
        }
        int pad = 4 + (col > 0 ? col - 1 : 0);
        if (pad > 1000) pad = 1000;
        char caret[1024];
        memset(caret, ' ', (size_t)pad);
        caret[pad] = '^';
        caret[pad + 1] = '\0';
        json_array_append_new(tb, json_string(caret));
    }
    size_t n = strlen(ename) + strlen(evalue) + 3;
    char *last = malloc(n);
    if (last) {
        snprintf(last, n, "%s: %s", ename, evalue);
        json_array_append_new(tb, json_string_nocheck(last));
        free(last);
    }
    return tb;
}

static void set_error(kn_exec_result *res, const char *src, const cl_err *err, lx_pos where)
{
    const char *ename = cl_err_name(err->code);
    res->ok = 0;
    res->ename = strdup(ename);
    res->evalue = strdup(err->msg);
    res->traceback = lens_traceback(src, where.line, where.col, ename, err->msg);
}

static void execute(kn_interp *it, const kn_exec_request *req, kn_output *out, kn_exec_result *res)
{
    lens_interp *L = self_of(it);
    ss_session *s = L->s;
    double t0 = now();
    memset(res, 0, sizeof *res);
    res->ok = 1;
    atomic_store(&s->cancel, 0);
    cl_cancel_bind(&s->cancel);
    s->out = out;
    s->src = req->code;
    s->allow_stdin = req->allow_stdin;
    json_decref(s->payload);
    s->payload = NULL;
    cl_err err = {0};
    lx_pos where = {0, 0};
    ps_program prog;
    if (ps_parse(req->code, &prog, &err, &where) < 0) {
        set_error(res, req->code, &err, where);
    } else {
        ev_ctx E = {.s = s, .err = &err};
        lv_value *last = NULL;
        if (ev_run(&E, &prog, &last) < 0) {
            set_error(res, req->code, &err, E.where);
        } else if (last) {
            json_t *b = lv_bundle(last, &err);
            if (!b) {
                lx_pos nowhere = {0, 0};
                set_error(res, req->code, &err, nowhere);
            } else if (!req->silent) {
                res->result = b;
                res->result_meta = lv_bundle_meta(b);
            } else {
                json_decref(b);
            }
        }
        lv_unref(last);
    }
    ps_free(&prog);
    if (s->payload && json_array_size(s->payload)) res->payload = json_incref(s->payload);
    json_decref(s->payload);
    s->payload = NULL;
    s->out = NULL;
    s->src = NULL;
    cl_cancel_bind(NULL);
    L->last_seconds = now() - t0;
}

/* ---- completion --------------------------------------------------------- */

typedef struct matches {
    json_t *list;  /* strings */
    json_t *types; /* _jupyter_types_experimental */
    int start_cp, end_cp;
} matches;

static void add_match(matches *m, const char *text, const char *type)
{
    size_t n = json_array_size(m->list);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(json_string_value(json_array_get(m->list, i)), text)) return;
    json_array_append_new(m->list, json_string(text));
    json_array_append_new(m->types, json_pack("{s:s, s:s, s:i, s:i}", "text", text, "type", type,
                                              "start", m->start_cp, "end", m->end_cp));
}

static int starts_with(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

static void complete_paths(matches *m, const char *typed)
{
    const char *slash = strrchr(typed, '/');
    char dir[1024];
    const char *base = typed;
    if (slash) {
        size_t k = (size_t)(slash - typed) + 1;
        if (k >= sizeof dir) return;
        memcpy(dir, typed, k);
        dir[k] = '\0';
        base = slash + 1;
    } else {
        strcpy(dir, "");
    }
    DIR *d = opendir(*dir ? dir : ".");
    if (!d) return;
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (e->d_name[0] == '.' && base[0] != '.') continue;
        if (!starts_with(e->d_name, base)) continue;
        char full[2048];
        snprintf(full, sizeof full, "%s%s", dir, e->d_name);
        struct stat st;
        int isdir = stat(*dir ? full : e->d_name, &st) == 0 && S_ISDIR(st.st_mode);
        size_t len = strlen(full);
        if (isdir && len + 1 < sizeof full) strcat(full, "/");
        names[n++] = strdup(full);
    }
    closedir(d);
    /* Sorted, so that the list reads like `ls`. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && names[j] && names[j - 1] && strcmp(names[j], names[j - 1]) < 0;
             j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        if (names[i]) add_match(m, names[i], "path");
        free(names[i]);
    }
}

static int is_word_byte(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '.' || c >= 0x80;
}

static void complete_variables(matches *m, ss_session *s, const char *prefix)
{
    for (int i = 0; i < ss_var_count(s); i++)
        if (starts_with(ss_var_name(s, i), prefix)) add_match(m, ss_var_name(s, i), "variable");
}

static void complete_verbs(matches *m, const char *prefix)
{
    for (int i = 0; i < lc_count(); i++)
        if (starts_with(lc_at(i)->name, prefix)) add_match(m, lc_at(i)->name, "command");
}

static void complete_layers(matches *m, ss_session *s, const char *prefix)
{
    if (!s->model) return;
    for (int i = 0; i < s->model->nnames; i++)
        if (starts_with(s->model->names[i], prefix)) add_match(m, s->model->names[i], "layer");
}

static void complete_labels(matches *m, ss_session *s, const char *prefix)
{
    for (int i = 0; i < s->nlabels; i++) {
        /* The first synonym, spaces as '_' so that it is one word. */
        char name[256];
        size_t k = 0;
        for (const char *p = s->labels[i]; *p && *p != ',' && k + 1 < sizeof name; p++)
            name[k++] = *p == ' ' ? '_' : *p;
        name[k] = '\0';
        if (k && !strncasecmp(name, prefix, strlen(prefix))) add_match(m, name, "class");
    }
}

/* Completion in the middle of a command: what fits after `prev`. */
static void complete_args(matches *m, ss_session *s, const lc_verb *v, const lx_token *seg,
                          int nseg, const char *prefix)
{
    const lx_token *prev = nseg > 1 ? &seg[nseg - 1] : NULL;
    const lc_arg *opt = NULL;
    if (prev && prev->kind == LT_IDENT)
        for (int i = 0; i < v->nopt; i++)
            if (!strcmp(v->opt[i].name, prev->str) && !(v->opt[i].types & LA_FLAG))
                opt = &v->opt[i];
    if (opt) {
        if (opt->types & LA_LAYER) complete_layers(m, s, prefix);
        if (opt->types & LA_CLASS) complete_labels(m, s, prefix);
        if (opt->types & (LA_ANY & ~LA_STR)) complete_variables(m, s, prefix);
        return;
    }
    if (v->npos && (v->pos[0].types & LA_VERB) && nseg == 1) {
        complete_verbs(m, prefix);
        return;
    }
    for (int i = 0; i < v->nopt; i++) {
        int used = 0;
        for (int j = 1; j < nseg; j++)
            used |= seg[j].kind == LT_IDENT && !strcmp(seg[j].str, v->opt[i].name);
        if (!used && starts_with(v->opt[i].name, prefix)) add_match(m, v->opt[i].name, "option");
    }
    for (int i = 0; i < v->npos; i++)
        if (v->pos[i].types & LA_LAYER) complete_layers(m, s, prefix);
    complete_variables(m, s, prefix);
    if (v->npos && (v->pos[0].types & LA_NESTED) && nseg == 1) complete_verbs(m, prefix);
}

static json_t *complete(kn_interp *it, const char *code, int cursor_pos)
{
    ss_session *s = self_of(it)->s;
    size_t cur = lx_utf8_offset(code, cursor_pos > 0 ? (size_t)cursor_pos : 0);
    char *before = strndup(code, cur);
    matches m = {json_array(), json_array(), cursor_pos, cursor_pos};
    lx_tokens toks;
    cl_err err;
    lx_pos where;
    if (!before) goto out;
    if (lx_lex_partial(before, &toks, &err, &where) == 0) {
        if (toks.open_string) {
            const lx_token *t = &toks.v[toks.n - 2]; /* the string, before EOF */
            m.start_cp = (int)lx_utf8_count(before, t->off + 1);
            complete_paths(&m, t->str);
        } else {
            size_t w = cur;
            while (w > 0 && is_word_byte((unsigned char)before[w - 1])) w--;
            const char *prefix = before + w;
            m.start_cp = (int)lx_utf8_count(before, w);
            /* Tokens of the current statement (or innermost open parenthesis). */
            size_t ntok = toks.n - 1; /* without EOF */
            if (ntok && toks.v[ntok - 1].kind == LT_IDENT &&
                toks.v[ntok - 1].off + toks.v[ntok - 1].len == cur && w < cur)
                ntok--; /* the word being typed */
            size_t start = 0, stack[64];
            int depth = 0;
            for (size_t i = 0; i < ntok; i++) {
                lx_kind k = toks.v[i].kind;
                if ((k == LT_NEWLINE || k == LT_SEMI) && depth == 0)
                    start = i + 1;
                else if (k == LT_LPAREN && depth < 64)
                    stack[depth++] = start, start = i + 1;
                else if (k == LT_RPAREN && depth > 0)
                    start = stack[--depth];
            }
            const lx_token *seg = toks.v + start;
            int nseg = (int)(ntok - start);
            if (nseg >= 2 && seg[0].kind == LT_IDENT && seg[1].kind == LT_ASSIGN) {
                seg += 2;
                nseg -= 2;
            }
            const lc_verb *v = nseg > 0 && seg[0].kind == LT_IDENT ? lc_find(seg[0].str) : NULL;
            if (nseg == 0) {
                complete_verbs(&m, prefix);
                complete_variables(&m, s, prefix);
            } else if (v) {
                /* `show gradcam x la`: the options of the nested verb, then show's. */
                const lc_verb *inner = nseg >= 2 && v->npos && (v->pos[0].types & LA_NESTED) &&
                                               seg[1].kind == LT_IDENT && !ss_get(s, seg[1].str)
                                           ? lc_find(seg[1].str)
                                           : NULL;
                if (inner) complete_args(&m, s, inner, seg + 1, nseg - 1, prefix);
                complete_args(&m, s, v, seg, nseg, prefix);
            } else {
                complete_variables(&m, s, prefix);
            }
        }
    }
    lx_free(&toks);
out:
    free(before);
    json_t *r = json_pack("{s:o, s:i, s:i, s:{s:o}, s:s}", "matches", m.list, "cursor_start",
                          m.start_cp, "cursor_end", cursor_pos, "metadata",
                          "_jupyter_types_experimental", m.types, "status", "ok");
    return r;
}

/* ---- inspect ------------------------------------------------------------ */

static json_t *inspect(kn_interp *it, const char *code, int cursor_pos, int detail_level)
{
    (void)detail_level;
    ss_session *s = self_of(it)->s;
    size_t cur = lx_utf8_offset(code, cursor_pos > 0 ? (size_t)cursor_pos : 0);
    size_t a = cur, b = cur;
    while (a > 0 && is_word_byte((unsigned char)code[a - 1])) a--;
    while (code[b] && is_word_byte((unsigned char)code[b])) b++;
    /* The line's verb when the cursor is on an argument. */
    size_t ls = cur;
    while (ls > 0 && code[ls - 1] != '\n') ls--;
    char word[128] = "", verb[128] = "";
    if (b > a && b - a < sizeof word) memcpy(word, code + a, b - a), word[b - a] = '\0';
    const char *p = code + ls;
    while (*p == ' ' || *p == '\t') p++;
    const char *q = p;
    while (is_word_byte((unsigned char)*q)) q++;
    const char *r = q;
    while (*r == ' ') r++;
    if (*r == '=' && r[1] != '=') { /* name = verb ... */
        r++;
        while (*r == ' ') r++;
        p = r;
        q = p;
        while (is_word_byte((unsigned char)*q)) q++;
    }
    if (q > p && (size_t)(q - p) < sizeof verb)
        memcpy(verb, p, (size_t)(q - p)), verb[q - p] = '\0';
    const lc_verb *v = lc_find(word);
    if (!v && !ss_get(s, word)) v = lc_find(verb);
    char *text = NULL;
    if (v) {
        text = lc_help(v);
    } else if (ss_get(s, word)) {
        char *t = lv_text(ss_get(s, word));
        if (t) {
            size_t n = strlen(word) + strlen(t) + 32;
            if ((text = malloc(n)))
                snprintf(text, n, "%s: %s\n%s", word, lv_type_name(ss_get(s, word)), t);
            free(t);
        }
    }
    json_t *res;
    if (text) {
        res = json_pack("{s:s, s:b, s:{s:s}, s:{}}", "status", "ok", "found", 1, "data",
                        "text/plain", text, "metadata");
        free(text);
    } else {
        res = json_pack("{s:s, s:b, s:{}, s:{}}", "status", "ok", "found", 0, "data", "metadata");
    }
    return res;
}

/* ---- is_complete -------------------------------------------------------- */

static json_t *is_complete(kn_interp *it, const char *code)
{
    (void)it;
    lx_tokens toks;
    cl_err err;
    lx_pos where;
    const char *status;
    if (lx_lex_partial(code, &toks, &err, &where) < 0) {
        status = "invalid";
    } else if (toks.open_string) {
        status = "invalid"; /* a string ends on its line: more lines cannot close it */
    } else if (toks.depth > 0) {
        status = "incomplete";
    } else {
        ps_program prog;
        status = ps_parse(code, &prog, &err, &where) < 0 ? "invalid" : "complete";
        ps_free(&prog);
    }
    lx_free(&toks);
    if (!strcmp(status, "incomplete"))
        return json_pack("{s:s, s:s}", "status", status, "indent", "  ");
    return json_pack("{s:s}", "status", status);
}

/* ---- the rest of the table ---------------------------------------------- */

static json_t *user_expression(kn_interp *it, const char *expr)
{
    ss_session *s = self_of(it)->s;
    cl_err err = {0};
    lx_pos where = {0, 0};
    ps_program prog;
    json_t *r = NULL;
    kn_output *saved = s->out;
    s->out = NULL; /* user expressions must not print */
    if (ps_parse(expr, &prog, &err, &where) == 0) {
        if (prog.n != 1 || prog.stmt[0].name) {
            cl_err_set(&err, CL_ESYNTAX, "a user expression is one expression");
        } else {
            ev_ctx E = {.s = s, .err = &err};
            lv_value *v = ev_eval(&E, prog.stmt[0].e);
            json_t *b = v ? lv_bundle(v, &err) : NULL;
            lv_unref(v);
            if (b) r = json_pack("{s:s, s:o, s:{}}", "status", "ok", "data", b, "metadata");
            where = E.where;
        }
    }
    ps_free(&prog);
    s->out = saved;
    if (r) return r;
    const char *ename = cl_err_name(err.code);
    return json_pack("{s:s, s:s, s:s, s:o}", "status", "error", "ename", ename, "evalue", err.msg,
                     "traceback", lens_traceback(expr, where.line, where.col, ename, err.msg));
}

static void interrupt(kn_interp *it)
{
    atomic_store(&self_of(it)->s->cancel, 1);
}

static void shutdown_(kn_interp *it, int restart)
{
    ss_session *s = self_of(it)->s;
    ss_clear(s);
    (void)restart;
}

static void destroy(kn_interp *it)
{
    lens_interp *L = self_of(it);
    ss_free(L->s);
    free(L);
}

static json_t *language_info(kn_interp *it)
{
    (void)it;
    /* codemirror "shell": the same comments (#), strings and numbers as lens. */
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "name", "lens", "version", CNNLENS_VERSION,
                     "mimetype", "text/x-lens", "file_extension", ".lens", "pygments_lexer", "text",
                     "codemirror_mode", "shell");
}

static const char *banner(kn_interp *it)
{
    (void)it;
    return "cnnlens " CNNLENS_VERSION " \xe2\x80\x94 the lens language: what does a CNN learn?\n"
           "Type `help` for the commands.";
}

static const kn_interp_vtbl vtbl = {
    .execute = execute,
    .complete = complete,
    .inspect = inspect,
    .is_complete = is_complete,
    .user_expression = user_expression,
    .interrupt = interrupt,
    .shutdown = shutdown_,
    .destroy = destroy,
    .language_info = language_info,
    .banner = banner,
};

kn_interp *lens_interp_new(void)
{
    lens_interp *L = calloc(1, sizeof *L);
    if (!L) return NULL;
    if (!(L->s = ss_new(NULL))) {
        free(L);
        return NULL;
    }
    L->base.vt = &vtbl;
    const char *r = getenv("CNNLENS_REHEARSE");
    if (r && *r) lens_interp_set_rehearse(&L->base, atoi(r));
    return &L->base;
}

void lens_interp_set_rehearse(kn_interp *it, int steps)
{
    self_of(it)->s->rehearse = steps > 0 ? steps : 0;
}

int lens_interp_rehearse(const kn_interp *it)
{
    return ((const lens_interp *)it)->s->rehearse;
}

void lens_interp_set_delay(kn_interp *it, double seconds)
{
    self_of(it)->s->delay = seconds;
}

double lens_interp_last_seconds(const kn_interp *it)
{
    return ((const lens_interp *)it)->last_seconds;
}
