/* cmd_grade — `cnnlens grade SUBMISSIONS_DIR`: a gradebook from student notebooks.
 *
 * Each notebook runs in its own child process (`cnnlens run NB -o OUT`) under
 * a time limit and a memory limit, so one that crashes, hangs or eats memory
 * costs only its own row.  The grader then reads the executed notebook and
 * scores every `expect` line in order: passed, failed (its cell stopped on it
 * with ExpectationFailed), or not run (its cell stopped earlier).
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernel/app/commands.h"
#include "kernel/app/grade_report.h"

typedef struct grade_opts {
    const char *dir;
    char out[PATH_MAX];
    double timeout_s;
    long memory_mb;
} grade_opts;

static void grade_usage(FILE *f)
{
    fprintf(f,
            "usage: cnnlens grade SUBMISSIONS_DIR [--timeout S] [--memory MB] [--out DIR]\n"
            "  Runs every *.ipynb in SUBMISSIONS_DIR, each in its own process with a time\n"
            "  limit (default 120 s) and a memory limit (default 4096 MB), and writes\n"
            "  OUT/gradebook.csv (one row per notebook) and OUT/NAME.html (one report per\n"
            "  student).  OUT defaults to SUBMISSIONS_DIR/grades.\n");
}

static int parse_opts(int argc, char **argv, grade_opts *o)
{
    memset(o, 0, sizeof *o);
    o->timeout_s = 120;
    o->memory_mb = 4096;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--timeout") && i + 1 < argc) {
            o->timeout_s = atof(argv[++i]);
        } else if (!strcmp(a, "--memory") && i + 1 < argc) {
            o->memory_mb = atol(argv[++i]);
        } else if (!strcmp(a, "--out") && i + 1 < argc) {
            snprintf(o->out, sizeof o->out, "%s", argv[++i]);
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            grade_usage(stdout);
            return 1;
        } else if (a[0] != '-' && !o->dir) {
            o->dir = a;
        } else {
            fprintf(stderr, "cnnlens grade: unknown argument '%s'\n", a);
            grade_usage(stderr);
            return 2;
        }
    }
    if (!o->dir) {
        grade_usage(stderr);
        return 2;
    }
    if (o->timeout_s <= 0 || o->memory_mb < 64) {
        fprintf(stderr, "cnnlens grade: --timeout must be > 0 and --memory at least 64 MB\n");
        return 2;
    }
    if (!o->out[0]) snprintf(o->out, sizeof o->out, "%s/grades", o->dir);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.ipynb names in dir, sorted; the caller frees each and the array. */
static char **list_notebooks(const char *dir, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 7 || strcmp(e->d_name + len - 6, ".ipynb") || e->d_name[0] == '.') continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, (size_t)cap * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (names) qsort(names, (size_t)*n, sizeof *names, cmp_str);
    return names;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void child_exec(const grade_opts *o, const char *in, const char *out, const char *log)
{
    setpgid(0, 0);
#ifndef __SANITIZE_ADDRESS__
    /* (an ASan build reserves terabytes of shadow address space at start: no limit there) */
    struct rlimit mem = {(rlim_t)o->memory_mb << 20, (rlim_t)o->memory_mb << 20};
    setrlimit(RLIMIT_AS, &mem);
#endif
    rlim_t cpu = (rlim_t)o->timeout_s + 5;
    struct rlimit cpul = {cpu, cpu};
    setrlimit(RLIMIT_CPU, &cpul);
    FILE *f = freopen(log, "w", stdout);
    if (f) dup2(fileno(stdout), STDERR_FILENO);
    /* --allow-errors: a failed check must not keep the later tasks from running */
    execl(app_self_path(), app_self_path(), "run", in, "-o", out, "--allow-errors", (char *)NULL);
    _exit(127);
}

/* Runs one notebook; fills the run outcome of r. */
static void run_one(const grade_opts *o, const char *in, const char *out, const char *log,
                    gr_row *r)
{
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        r->outcome = GR_CRASHED;
        snprintf(r->note, sizeof r->note, "cannot start a process: %s", strerror(errno));
        return;
    }
    if (pid == 0) child_exec(o, in, out, log);
    int status = 0, done = 0;
    while (!done) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) break;
        if (now_s() - t0 > o->timeout_s) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            r->outcome = GR_TIMEOUT;
            snprintf(r->note, sizeof r->note, "stopped after %.0f s (time limit)", o->timeout_s);
            done = 1;
        }
        if (!done) usleep(20000);
    }
    r->seconds = now_s() - t0;
    if (done) return;
    if (WIFSIGNALED(status)) {
        r->outcome = GR_CRASHED;
        snprintf(r->note, sizeof r->note, "the run crashed (signal %d%s)", WTERMSIG(status),
                 WTERMSIG(status) == SIGXCPU ? ": CPU time limit" : "");
    } else {
        r->outcome = WEXITSTATUS(status) == 0 ? GR_OK : GR_FAILED;
    }
}

static int ensure_dir(const char *path)
{
    if (mkdir(path, 0755) && errno != EEXIST) {
        fprintf(stderr, "cnnlens grade: cannot create '%s': %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void grade_one(const grade_opts *o, const char *name, gr_row *r)
{
    char in[PATH_MAX], out[PATH_MAX + 32], log[PATH_MAX + 32];
    snprintf(in, sizeof in, "%s/%s", o->dir, name);
    snprintf(out, sizeof out, "%s/%s", o->out, name);
    snprintf(log, sizeof log, "%s/%.*s.log", o->out, (int)(strlen(name) - 6), name);
    snprintf(r->notebook, sizeof r->notebook, "%s", name);

    json_error_t jerr;
    json_t *src = json_load_file(in, 0, &jerr);
    if (!src || !json_is_array(json_object_get(src, "cells"))) {
        r->outcome = GR_INVALID;
        snprintf(r->note, sizeof r->note, "not a valid notebook: %s (line %d)",
                 src ? "no cells" : jerr.text, jerr.line);
        json_decref(src);
        return;
    }
    gr_collect_expects(src, r);
    json_decref(src);
    unlink(out);
    run_one(o, in, out, log, r);
    if (r->outcome == GR_TIMEOUT || r->outcome == GR_CRASHED) return;
    json_t *done = json_load_file(out, 0, &jerr);
    if (!done) {
        r->outcome = GR_CRASHED;
        snprintf(r->note, sizeof r->note, "no executed notebook was written (see %.400s)", log);
        return;
    }
    gr_score(done, r);
    json_decref(done);
}

int app_grade(int argc, char **argv)
{
    grade_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    int n = 0;
    char **names = list_notebooks(o.dir, &n);
    if (!names && n == 0) {
        struct stat st;
        if (stat(o.dir, &st) || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "cnnlens grade: '%s' is not a folder\n", o.dir);
            return 1;
        }
    }
    if (n == 0) {
        fprintf(stderr, "cnnlens grade: no .ipynb files in '%s'\n", o.dir);
        free(names);
        return 1;
    }
    if (ensure_dir(o.out)) return 1;
    gr_row *rows = calloc((size_t)n, sizeof *rows);
    if (!rows) return 1;
    for (int i = 0; i < n; i++) {
        fprintf(stderr, "[%d/%d] %s ... ", i + 1, n, names[i]);
        grade_one(&o, names[i], &rows[i]);
        fprintf(stderr, "%s, %d/%d checks passed, %.1f s\n", gr_outcome_name(rows[i].outcome),
                gr_passed(&rows[i]), rows[i].n_expects, rows[i].seconds);
    }
    cl_err err = {0};
    rc = gr_write_csv(&o.out[0], rows, n, &err) || gr_write_html(o.out, rows, n, &err);
    if (rc) fprintf(stderr, "cnnlens grade: %s\n", err.msg);
    else printf("Gradebook: %s/gradebook.csv (and one .html report per notebook)\n", o.out);
    for (int i = 0; i < n; i++) {
        gr_row_free(&rows[i]);
        free(names[i]);
    }
    free(rows);
    free(names);
    return rc ? 1 : 0;
}
