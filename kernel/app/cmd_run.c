/* cnnlens run — lens code without Jupyter: a .lens script (text to stdout,
 * each picture to FILE-1.png, FILE-2.png, ...) or a notebook whose code cells
 * are executed in-process and whose outputs are stored the way nbclient stores
 * them (nbformat 4.5). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/io/atomic_file.h"
#include "engine/io/base64.h"
#include "kernel/app/commands.h"
#include "kernel/lang/lens_interp.h"

typedef struct figure {
    char *display_id; /* or NULL */
    char *path;
} figure;

typedef struct run_ctx {
    kn_interp *it;
    int notebook;
    const char *fig_dir;  /* where pictures go (NULL: none for notebooks) */
    const char *fig_stem; /* "FILE" for FILE-1.png, or "cellN" */
    int fig_count;
    figure *figs;
    int nfigs, capfigs;
    int cell;        /* 1-based code cell number (notebooks) */
    json_t *outputs; /* the running cell's outputs (notebooks) */
    json_t *id_map;  /* display_id -> array of output objects (notebooks) */
    int failed;
    char *pending; /* script mode: the latest text of a live (updated) text display */
} run_ctx;

/* Script mode prints a live text display once, with its last text, before
 * whatever comes next. */
static void flush_pending(run_ctx *R)
{
    if (!R->pending) return;
    printf("%s\n", R->pending);
    free(R->pending);
    R->pending = NULL;
}

static kn_interp *volatile running;

static void on_sigint(int sig)
{
    (void)sig;
    if (running) running->vt->interrupt(running);
}

/* `p` made absolute against the current folder (the file need not exist). */
static int abs_path(const char *p, char *buf, size_t n)
{
    if (p[0] == '/') return snprintf(buf, n, "%s", p) >= (int)n ? -1 : 0;
    char cwd[2048];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    return snprintf(buf, n, "%s/%s", cwd, p) >= (int)n ? -1 : 0;
}

/* mkdir -p: the figures folder and any missing parents. */
static int make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return errno = ENAMETOOLONG, -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) < 0 && errno != EEXIST ? -1 : 0;
}

/* The file a display's picture goes to: the same file for every update.  A
 * display that gets its first picture in an update (a progress line that ends
 * as the figure) gets a new file then; *is_new tells the caller. */
static const char *figure_path(run_ctx *R, const char *display_id, int *is_new)
{
    *is_new = 0;
    if (display_id)
        for (int i = 0; i < R->nfigs; i++)
            if (R->figs[i].display_id && !strcmp(R->figs[i].display_id, display_id))
                return R->figs[i].path;
    *is_new = 1;
    if (R->nfigs == R->capfigs) {
        int cap = R->capfigs ? R->capfigs * 2 : 16;
        figure *f = realloc(R->figs, (size_t)cap * sizeof *f);
        if (!f) return NULL;
        R->figs = f;
        R->capfigs = cap;
    }
    char path[4096];
    R->fig_count++;
    if (R->fig_dir)
        snprintf(path, sizeof path, "%s/%s-%d.png", R->fig_dir, R->fig_stem, R->fig_count);
    else
        snprintf(path, sizeof path, "%s-%d.png", R->fig_stem, R->fig_count);
    figure *f = &R->figs[R->nfigs++];
    f->display_id = display_id ? strdup(display_id) : NULL;
    f->path = strdup(path);
    return f->path;
}

static void write_figure(run_ctx *R, json_t *data, const char *display_id, int update)
{
    if (!R->notebook && !update) flush_pending(R);
    const char *b64 = json_string_value(json_object_get(data, "image/png"));
    if (!b64 || (R->notebook && !R->fig_dir)) return;
    int is_new;
    const char *path = figure_path(R, display_id, &is_new);
    if (!path) return;
    size_t n;
    cl_err err = {0};
    unsigned char *png = b64_decode(b64, (size_t)-1, &n, &err);
    if (!png || atomic_write_file(path, png, n, &err) < 0)
        fprintf(stderr, "cnnlens run: cannot write %s: %s\n", path, err.msg);
    else if (!R->notebook && is_new)
        printf("[picture: %s]\n", path);
    free(png);
}

/* Multi-line strings stored as lists of lines, as Jupyter writes them. */
static json_t *lines_of(const char *text)
{
    json_t *a = json_array();
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
        json_array_append_new(a, json_stringn(p, len));
        p += len;
    }
    return a;
}

static json_t *stored_bundle(json_t *data)
{
    json_t *b = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(data, key, v)
    {
        if (!strcmp(key, "image/png") || !json_is_string(v))
            json_object_set(b, key, v);
        else
            json_object_set_new(b, key, lines_of(json_string_value(v)));
    }
    return b;
}

static void on_stream(void *ctx, const char *name, const char *text)
{
    run_ctx *R = ctx;
    if (!R->notebook) {
        flush_pending(R);
        fputs(text, strcmp(name, "stderr") ? stdout : stderr);
        fflush(stdout);
        return;
    }
    /* Consecutive writes to one stream are one output, as Jupyter front ends
     * (and the kernel server, which buffers them) store them. */
    size_t n = json_array_size(R->outputs);
    json_t *last = n ? json_array_get(R->outputs, n - 1) : NULL;
    if (last && !strcmp(json_string_value(json_object_get(last, "output_type")), "stream") &&
        !strcmp(json_string_value(json_object_get(last, "name")), name)) {
        json_t *more = lines_of(text), *lines = json_object_get(last, "text");
        size_t k = json_array_size(lines);
        const char *tail = k ? json_string_value(json_array_get(lines, k - 1)) : "\n";
        size_t tl = strlen(tail);
        if (tl && tail[tl - 1] != '\n' && json_array_size(more)) {
            /* The last line was unfinished: it continues with the new text. */
            char *joined = malloc(tl + strlen(json_string_value(json_array_get(more, 0))) + 1);
            if (joined) {
                strcpy(joined, tail);
                strcat(joined, json_string_value(json_array_get(more, 0)));
                json_array_set_new(lines, k - 1, json_string(joined));
                free(joined);
                json_array_remove(more, 0);
            }
        }
        json_array_extend(lines, more);
        json_decref(more);
        return;
    }
    json_array_append_new(R->outputs, json_pack("{s:s, s:s, s:o}", "output_type", "stream", "name",
                                                name, "text", lines_of(text)));
}

/* nbclient: a display (or update) with an id replaces data and metadata of
 * every earlier output with that id; a plain display is appended. */
static void on_display(void *ctx, json_t *data, json_t *metadata, const char *display_id,
                       int update)
{
    run_ctx *R = ctx;
    write_figure(R, data, display_id, update);
    if (!R->notebook) {
        const char *text = json_string_value(json_object_get(data, "text/plain"));
        int picture = json_object_get(data, "image/png") != NULL;
        if (!update) flush_pending(R);
        if (text && !picture && display_id) {
            free(R->pending);
            R->pending = strdup(text);
        } else if (!update && text && !picture) {
            printf("%s\n", text);
        }
        return;
    }
    if (display_id) {
        json_t *list = json_object_get(R->id_map, display_id);
        size_t i;
        json_t *o;
        json_array_foreach(list, i, o)
        {
            json_object_set_new(o, "data", stored_bundle(data));
            json_object_set(o, "metadata", metadata);
        }
    }
    if (update) return;
    json_t *o = json_pack("{s:s, s:o, s:O}", "output_type", "display_data", "data",
                          stored_bundle(data), "metadata", metadata);
    json_array_append_new(R->outputs, o);
    if (display_id) {
        json_t *list = json_object_get(R->id_map, display_id);
        if (!list) json_object_set_new(R->id_map, display_id, list = json_array());
        json_array_append(list, o);
    }
}

static void on_clear(void *ctx, int wait)
{
    run_ctx *R = ctx;
    (void)wait;
    if (R->notebook) json_array_clear(R->outputs);
}

static char *no_input(void *ctx, const char *prompt, int password)
{
    (void)ctx, (void)prompt, (void)password;
    return NULL;
}

static int run_cell(run_ctx *R, const char *code, int count, json_t *cell, int time_it)
{
    kn_output out = {R, on_stream, on_display, on_clear, no_input};
    kn_exec_request req = {code, 0, 1, 0, count};
    kn_exec_result res;
    running = R->it;
    R->it->vt->execute(R->it, &req, &out, &res);
    running = NULL;
    flush_pending(R);
    if (time_it)
        fprintf(stderr, "cell %d: %.3f ms\n", R->cell, 1e3 * lens_interp_last_seconds(R->it));
    if (res.result) {
        write_figure(R, res.result, NULL, 0);
        if (R->notebook) {
            json_array_append_new(R->outputs,
                                  json_pack("{s:s, s:o, s:O, s:i}", "output_type", "execute_result",
                                            "data", stored_bundle(res.result), "metadata",
                                            res.result_meta ? res.result_meta : json_object(),
                                            "execution_count", count));
        } else {
            const char *text = json_string_value(json_object_get(res.result, "text/plain"));
            if (text) printf("%s\n", text);
        }
    }
    if (!R->notebook && res.payload) { /* help pages: on stdout in a script */
        size_t i;
        json_t *p;
        json_array_foreach(res.payload, i, p)
        {
            const char *text =
                json_string_value(json_object_get(json_object_get(p, "data"), "text/plain"));
            if (text) fputs(text, stdout);
        }
    }
    int ok = res.ok;
    fflush(stdout); /* the text before the error comes first */
    if (!ok) {
        if (R->notebook) {
            json_array_append_new(R->outputs, json_pack("{s:s, s:s, s:s, s:O}", "output_type",
                                                        "error", "ename", res.ename, "evalue",
                                                        res.evalue, "traceback", res.traceback));
            fprintf(stderr, "cnnlens run: cell %d failed: %s: %s\n", R->cell, res.ename,
                    res.evalue);
        }
        size_t i;
        json_t *line;
        json_array_foreach(res.traceback, i, line) fprintf(stderr, "%s\n", json_string_value(line));
    }
    (void)cell;
    kn_exec_result_free(&res);
    fflush(stdout);
    return ok ? 0 : -1;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n - 1 == 0) {
            char *d = realloc(buf, cap *= 2);
            if (!d) {
                free(buf);
                buf = NULL;
            }
            buf = d;
        }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

static int run_script(run_ctx *R, const char *path, int time_it)
{
    char *code = read_file(path);
    if (!code) {
        fprintf(stderr, "cnnlens run: cannot read %s: %s\n", path, strerror(errno));
        return 2;
    }
    char stem[4096];
    snprintf(stem, sizeof stem, "%s", path);
    char *dot = strrchr(stem, '.'), *slash = strrchr(stem, '/');
    if (dot && (!slash || dot > slash)) *dot = '\0';
    if (R->fig_dir) {
        const char *base = slash ? strrchr(path, '/') + 1 : path;
        snprintf(stem, sizeof stem, "%s", base);
        if ((dot = strrchr(stem, '.'))) *dot = '\0';
    }
    R->fig_stem = stem;
    R->cell = 1;
    int r = run_cell(R, code, 1, NULL, time_it);
    free(code);
    return r < 0 ? 1 : 0;
}

static char *cell_source(json_t *cell)
{
    json_t *src = json_object_get(cell, "source");
    if (json_is_string(src)) return strdup(json_string_value(src));
    size_t total = 1, i;
    json_t *line;
    json_array_foreach(src, i, line) total += json_string_length(line);
    char *s = malloc(total);
    if (!s) return NULL;
    s[0] = '\0';
    json_array_foreach(src, i, line) strcat(s, json_string_value(line));
    return s;
}

static void ensure_ids(json_t *nb)
{
    json_t *cells = json_object_get(nb, "cells");
    size_t i;
    json_t *cell;
    json_array_foreach(cells, i, cell)
    {
        if (json_is_string(json_object_get(cell, "id"))) continue;
        char id[32];
        snprintf(id, sizeof id, "cell-%zu", i + 1);
        json_object_set_new(cell, "id", json_string(id));
    }
    if (json_integer_value(json_object_get(nb, "nbformat_minor")) < 5)
        json_object_set_new(nb, "nbformat_minor", json_integer(5));
}

static int run_notebook(run_ctx *R, const char *path, const char *out_path, int allow_errors,
                        int time_it)
{
    json_error_t jerr;
    json_t *nb = json_load_file(path, 0, &jerr);
    if (!nb) {
        fprintf(stderr, "cnnlens run: %s is not a notebook: %s (line %d)\n", path, jerr.text,
                jerr.line);
        return 2;
    }
    if (json_integer_value(json_object_get(nb, "nbformat")) != 4 ||
        !json_is_array(json_object_get(nb, "cells"))) {
        fprintf(stderr, "cnnlens run: %s is not an nbformat 4 notebook\n", path);
        json_decref(nb);
        return 2;
    }
    ensure_ids(nb);
    json_t *meta = json_object_get(nb, "metadata");
    if (!json_is_object(meta)) json_object_set_new(nb, "metadata", meta = json_object());
    if (!json_object_get(meta, "kernelspec"))
        json_object_set_new(meta, "kernelspec",
                            json_pack("{s:s, s:s, s:s}", "display_name", "CNN Lens", "language",
                                      "lens", "name", "cnnlens"));
    json_object_set_new(meta, "language_info", R->it->vt->language_info(R->it));
    R->notebook = 1;
    R->id_map = json_object();
    int count = 0, status = 0;
    size_t i;
    json_t *cell;
    json_array_foreach(json_object_get(nb, "cells"), i, cell)
    {
        if (strcmp(json_string_value(json_object_get(cell, "cell_type"))
                       ? json_string_value(json_object_get(cell, "cell_type"))
                       : "",
                   "code"))
            continue;
        char *code = cell_source(cell);
        if (!code) continue;
        R->cell = (int)i + 1;
        char stem[64];
        snprintf(stem, sizeof stem, "cell%d", R->cell);
        R->fig_stem = stem;
        R->fig_count = 0;
        R->outputs = json_array();
        json_object_set(cell, "outputs", R->outputs);
        int blank = strspn(code, " \t\r\n") == strlen(code);
        if (blank) { /* nbclient skips empty cells: no count, no outputs */
            json_object_set_new(cell, "execution_count", json_null());
        } else {
            count++;
            json_object_set_new(cell, "execution_count", json_integer(count));
            if (run_cell(R, code, count, cell, time_it) < 0) status = 1;
        }
        json_decref(R->outputs);
        R->outputs = NULL;
        free(code);
        for (int f = 0; f < R->nfigs; f++) { /* figure names restart per cell */
            free(R->figs[f].display_id);
            free(R->figs[f].path);
        }
        R->nfigs = 0;
        if (status && !allow_errors) break;
    }
    char *text = json_dumps(nb, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(nb);
    json_decref(R->id_map);
    cl_err err = {0};
    cl_err_set(&err, CL_ENOMEM, "out of memory");
    int w = -1;
    if (text) {
        size_t n = strlen(text);
        text[n] = '\n'; /* the file ends with a newline, as Jupyter writes it */
        w = atomic_write_file(out_path, text, n + 1, &err);
    }
    free(text);
    if (w < 0) {
        fprintf(stderr, "cnnlens run: cannot write %s: %s\n", out_path, err.msg);
        return 2;
    }
    return status;
}

/* Steps of each iterative command in a rehearsal (--rehearse). */
#define REHEARSE_STEPS 3

static int usage(FILE *f)
{
    fprintf(
        f,
        "usage: cnnlens run FILE.lens [--figures DIR] [--rehearse]\n"
        "       cnnlens run NOTEBOOK.ipynb [-o OUT.ipynb] [--figures DIR] [--allow-errors]\n"
        "                                  [--rehearse]\n\n"
        "A .lens script prints its text output; each picture goes to FILE-1.png, FILE-2.png, ...\n"
        "A notebook's code cells run in order; their outputs are stored in the notebook\n"
        "(in place, or in OUT.ipynb).  The exit status is 1 when a cell fails.\n\n"
        "--rehearse  checks that a lecture runs, in seconds: every steps, epochs and\n"
        "            samples is cut to %d (CNNLENS_REHEARSE=N sets another number, also\n"
        "            for the kernel); the pictures are not the lecture's.\n",
        REHEARSE_STEPS);
    return f == stdout ? 0 : 2;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

int app_run(int argc, char **argv)
{
    const char *file = NULL, *out = NULL, *figs = NULL;
    int allow_errors = 0, time_it = 0, rehearse = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout);
        if (!strcmp(argv[i], "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--figures") && i + 1 < argc)
            figs = argv[++i];
        else if (!strcmp(argv[i], "--allow-errors"))
            allow_errors = 1;
        else if (!strcmp(argv[i], "--rehearse"))
            rehearse = 1;
        else if (!strcmp(argv[i], "--time"))
            time_it = 1; /* hidden: bench/lang.py */
        else if (argv[i][0] == '-' || file)
            return usage(stderr);
        else
            file = argv[i];
    }
    if (!file) return usage(stderr);
    if (figs && make_dirs(figs) < 0) {
        fprintf(stderr, "cnnlens run: cannot create %s: %s\n", figs, strerror(errno));
        return 2;
    }
    /* Cells read files relative to their notebook, as under Jupyter: run in
     * the notebook's folder, with the paths given here made absolute first. */
    char afile[4096], aout[4096], afigs[4096], dir[4096];
    if (abs_path(file, afile, sizeof afile) || (out && abs_path(out, aout, sizeof aout)) ||
        (figs && abs_path(figs, afigs, sizeof afigs))) {
        fprintf(stderr, "cnnlens run: path too long\n");
        return 2;
    }
    file = afile;
    if (out) out = aout;
    if (figs) figs = afigs;
    snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(afile, '/') - afile), afile);
    if (dir[0] && chdir(dir) < 0) {
        fprintf(stderr, "cnnlens run: cannot enter %s: %s\n", dir, strerror(errno));
        return 2;
    }
    run_ctx R = {0};
    R.fig_dir = figs;
    if (!(R.it = lens_interp_new())) {
        fprintf(stderr, "cnnlens run: out of memory\n");
        return 2;
    }
    lens_interp_set_delay(R.it, 0);
    if (rehearse && !lens_interp_rehearse(R.it)) lens_interp_set_rehearse(R.it, REHEARSE_STEPS);
    if (lens_interp_rehearse(R.it))
        fprintf(stderr,
                "cnnlens run: rehearsal: every steps, epochs and samples cut to %d; "
                "the pictures are not the lecture's\n",
                lens_interp_rehearse(R.it));
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    int r = ends_with(file, ".ipynb")
                ? run_notebook(&R, file, out ? out : file, allow_errors, time_it)
                : run_script(&R, file, time_it);
    R.it->vt->destroy(R.it);
    for (int f = 0; f < R.nfigs; f++) {
        free(R.figs[f].display_id);
        free(R.figs[f].path);
    }
    free(R.figs);
    return r;
}
