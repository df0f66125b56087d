/* cmd_probe — `cnnlens probe`, a hidden debugging subcommand: runs a zoo model
 * on a .npy input and writes outputs and gradients as .npy files, so tests and
 * benchmarks can compare the engine with PyTorch without a notebook.
 *
 *   cnnlens probe summary ARCH      (tab-separated: name, type, shape, params)
 *   cnnlens probe table ARCH        (the same as an aligned table, engine/summary)
 *   cnnlens probe find ARCH NAME
 *   cnnlens probe run ARCH --input X.npy --out DIR [--weights FILE] [--seed N]
 *        [--save NODE]... [--save-arg POOL]... [--grad CLASS [--grad-from NODE] [--grad-to
 * NODE|input]
 *        [--grad-node NODE]... [--rule plain|guided|deconv] [--train]]
 *   cnnlens probe bench ARCH --input X.npy [--weights FILE] [--iters N] [--grad-to NODE]
 *                       [--per-node]   (also each node's forward and backward time, to stderr)
 *   cnnlens probe sgemm N       (GFLOP/s of an N x N x N cblas_sgemm, best of 5)
 *
 * `run` writes DIR/logits.npy, DIR/node.NAME.npy for each --save,
 * DIR/arg.NAME.npy (a max pool's winners, as float) for each --save-arg,
 * DIR/grad.NAME.npy for each --grad-node, DIR/grad_input.npy when the gradient
 * reaches the input, and with --train DIR/wgrad.PARAM.npy for every parameter.
 * The gradient is seeded with one-hot(CLASS) at --grad-from (default: the
 * logits) for every image of the batch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/io/npy.h"
#include "engine/io/weights.h"
#include "engine/net.h"
#include "engine/ops/ops.h"
#include "engine/summary/summary.h"
#include "engine/zoo/zoo.h"
#include "kernel/app/commands.h"

#define PROBE_MAX_NAMES 64

typedef struct probe_opts {
    const char *arch, *input, *out, *weights, *grad_from, *grad_to, *rule;
    const char *save[PROBE_MAX_NAMES], *grad_nodes[PROBE_MAX_NAMES], *args[PROBE_MAX_NAMES];
    int nsave, ngrad, nargs, grad_class, train, iters, per_node;
    unsigned long seed;
} probe_opts;

static int fail(const cl_err *e)
{
    fprintf(stderr, "cnnlens probe: %s\n", e->msg);
    return 1;
}

static int parse(int argc, char **argv, probe_opts *o)
{
    memset(o, 0, sizeof *o);
    o->grad_class = -1, o->iters = 10;
    if (argc < 1) return -1;
    o->arch = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--train")) {
            o->train = 1;
            continue;
        }
        if (!strcmp(a, "--per-node")) {
            o->per_node = 1;
            continue;
        }
        if (!v) return -1;
        i++;
        if (!strcmp(a, "--input"))
            o->input = v;
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--weights"))
            o->weights = v;
        else if (!strcmp(a, "--seed"))
            o->seed = strtoul(v, NULL, 10);
        else if (!strcmp(a, "--grad"))
            o->grad_class = atoi(v);
        else if (!strcmp(a, "--grad-from"))
            o->grad_from = v;
        else if (!strcmp(a, "--grad-to"))
            o->grad_to = v;
        else if (!strcmp(a, "--rule"))
            o->rule = v;
        else if (!strcmp(a, "--iters"))
            o->iters = atoi(v);
        else if (!strcmp(a, "--save") && o->nsave < PROBE_MAX_NAMES)
            o->save[o->nsave++] = v;
        else if (!strcmp(a, "--save-arg") && o->nargs < PROBE_MAX_NAMES)
            o->args[o->nargs++] = v;
        else if (!strcmp(a, "--grad-node") && o->ngrad < PROBE_MAX_NAMES)
            o->grad_nodes[o->ngrad++] = v;
        else
            return -1;
    }
    return 0;
}

static net *load_model(const probe_opts *o, cl_err *err)
{
    net *m = zoo_build_seeded(o->arch, o->seed, err);
    if (!m || !o->weights) return m;
    if (net_load_weights_file(m, o->weights, err)) {
        net_free(m);
        return NULL;
    }
    return m;
}

static int save_npy(const char *dir, const char *prefix, const char *name, const tn_tensor *t,
                    cl_err *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s%s.npy", dir, prefix, name);
    if (!t) return cl_err_set(err, CL_EINVAL, "nothing computed for '%s'", name);
    return npy_write(path, t, err);
}

static net_relu_rule parse_rule(const char *r)
{
    if (r && !strcmp(r, "guided")) return NET_RELU_GUIDED;
    if (r && !strcmp(r, "deconv")) return NET_RELU_DECONV;
    return NET_RELU_PLAIN;
}

/* One-hot(cls) on every image, shaped like node `from`'s output. */
static tn_tensor *one_hot(const net *m, int from, int cls, cl_err *err)
{
    const tn_tensor *y = net_node_output(m, from);
    tn_tensor *g = tn_new(y->ndim, y->shape, err);
    if (!g) return NULL;
    int64_t per = tn_numel(y) / y->shape[0];
    if (cls < 0 || cls >= per) {
        tn_free(g);
        cl_err_set(err, CL_EINVAL, "class %d is out of range [0, %lld)", cls, (long long)per);
        return NULL;
    }
    for (int64_t i = 0; i < y->shape[0]; i++) g->data[i * per + cls] = 1.0f;
    return g;
}

static int resolve(const net *m, const char *name, int dflt, cl_err *err)
{
    if (!name) return dflt;
    if (!strcmp(name, "input")) return NET_INPUT;
    int i = net_find(m, name, err);
    return i < 0 ? -2 : i;
}

static int run_backward(net *m, const probe_opts *o, cl_err *err)
{
    int from = resolve(m, o->grad_from, net_node_count(m) - 1, err);
    int to = resolve(m, o->grad_to, NET_INPUT, err);
    if (from < -1 || to < -1) return -1;
    tn_tensor *g = one_hot(m, from, o->grad_class, err);
    if (!g) return -1;
    if (o->train) net_set_training(m, 1);
    int rc = net_backward(m, from, g, to, parse_rule(o->rule), err);
    tn_free(g);
    if (rc) return -1;
    if (to == NET_INPUT && save_npy(o->out, "", "grad_input", net_input_grad(m), err)) return -1;
    for (int i = 0; i < o->ngrad; i++) {
        int k = net_find(m, o->grad_nodes[i], err);
        if (k < 0 || save_npy(o->out, "grad.", o->grad_nodes[i], net_node_grad(m, k), err))
            return -1;
    }
    for (int i = 0; o->train && i < net_param_tensors(m); i++) {
        net_param p;
        net_param_get(m, i, &p);
        if (save_npy(o->out, "wgrad.", p.name, p.grad, err)) return -1;
    }
    return 0;
}

static int save_argmax(net *m, const char *dir, const char *name, cl_err *err)
{
    int k = net_find(m, name, err);
    if (k < 0) return -1;
    const int32_t *arg = net_node_argmax(m, k);
    if (!arg) return cl_err_set(err, CL_EINVAL, "'%s' is not a max pool", name);
    const tn_tensor *y = net_node_output(m, k);
    tn_tensor *t = tn_new(y->ndim, y->shape, err);
    if (!t) return -1;
    for (int64_t i = 0; i < tn_numel(t); i++) t->data[i] = (float)arg[i];
    int rc = save_npy(dir, "arg.", name, t, err);
    tn_free(t);
    return rc;
}

static int probe_run(const probe_opts *o, cl_err *err)
{
    if (!o->input || !o->out)
        return cl_err_set(err, CL_EINVAL, "probe run needs --input X.npy and --out DIR");
    net *m = load_model(o, err);
    if (!m) return -1;
    tn_tensor *x = npy_read(o->input, err);
    int rc = !x || net_forward(m, x, err) || save_npy(o->out, "", "logits", net_output(m), err);
    for (int i = 0; !rc && i < o->nsave; i++) {
        int k = net_find(m, o->save[i], err);
        rc = k < 0 || save_npy(o->out, "node.", o->save[i], net_node_output(m, k), err);
    }
    for (int i = 0; !rc && i < o->nargs; i++) rc = save_argmax(m, o->out, o->args[i], err);
    if (!rc && o->grad_class >= 0) rc = run_backward(m, o, err);
    tn_free(x);
    net_free(m);
    return rc ? -1 : 0;
}

static int probe_summary(const probe_opts *o, cl_err *err)
{
    net *m = zoo_build(o->arch, err);
    if (!m) return -1;
    char buf[96];
    for (int i = 0; i < net_node_count(m); i++) {
        net_node_info info;
        net_node_info_get(m, i, &info);
        printf("%s\t%s\t%s\t%lld\n", info.name, info.type,
               tn_shape_str_raw(info.ndim, info.shape, buf, sizeof buf), (long long)info.params);
    }
    printf("total\t\t\t%lld\n", (long long)net_param_count(m));
    net_free(m);
    return 0;
}

static int probe_table(const probe_opts *o, cl_err *err)
{
    net *m = zoo_build(o->arch, err);
    if (!m) return -1;
    char *t = sm_table(m, err);
    if (t) fputs(t, stdout);
    free(t);
    net_free(m);
    return t ? 0 : -1;
}

static int probe_find(int argc, char **argv, cl_err *err)
{
    if (argc < 2) return cl_err_set(err, CL_EINVAL, "usage: cnnlens probe find ARCH NAME");
    net *m = zoo_build(argv[0], err);
    if (!m) return -1;
    int i = net_find(m, argv[1], err);
    if (i >= 0) {
        net_node_info info;
        net_node_info_get(m, i, &info);
        printf("%d\t%s\n", i, info.name);
    }
    net_free(m);
    return i < 0 ? -1 : 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* VmHWM of this process: unlike getrusage's ru_maxrss, it starts afresh at
 * exec, so a parent's memory (a Python with torch loaded) does not count. */
static double peak_rss_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kib = atof(line + 6);
    if (f) fclose(f);
    return kib / 1024.0;
}

/* The mean forward and backward time of each node over `runs` passes, in node
 * order, to stderr (stdout stays one JSON line), with their share of the total. */
static void print_per_node(const net *m, const double *ms, int runs)
{
    int count = net_node_count(m);
    double total = 0;
    for (int i = 0; i < 2 * count; i++) total += ms[i];
    fprintf(stderr, "%3s %-24s %-20s %11s %11s %6s\n", "#", "node", "type", "forward", "backward",
            "share");
    for (int i = 0; i < count; i++) {
        net_node_info in;
        if (net_node_info_get(m, i, &in)) continue;
        double f = ms[i] / runs, b = ms[count + i] / runs;
        fprintf(stderr, "%3d %-24s %-20s %8.3f ms %8.3f ms %5.1f%%\n", i, in.name, in.type, f, b,
                total > 0 ? 100.0 * (ms[i] + ms[count + i]) / total : 0.0);
    }
    double f = 0;
    for (int i = 0; i < count; i++) f += ms[i];
    fprintf(stderr, "    all nodes %36s %8.3f ms %8.3f ms\n", "", f / runs, (total - f) / runs);
}

/* Prints the median forward and forward+backward times (ms) and the peak RSS. */
static int probe_bench(const probe_opts *o, cl_err *err)
{
    net *m = load_model(o, err);
    if (!m) return -1;
    tn_tensor *x = o->input ? npy_read(o->input, err) : NULL;
    int to = -2, n = o->iters > 0 && o->iters <= 1000 ? o->iters : 10, rc = -1;
    double *fw = calloc((size_t)n, sizeof *fw), *bw = calloc((size_t)n, sizeof *bw);
    double *node_ms = o->per_node ? calloc(2 * (size_t)net_node_count(m), sizeof *node_ms) : NULL;
    tn_tensor *g = NULL;
    if (!x || !fw || !bw) goto done;
    if (o->grad_to && (to = resolve(m, o->grad_to, NET_INPUT, err)) < -1) goto done;
    if (net_forward(m, x, err)) goto done; /* warm-up: buffers and BLAS threads */
    if (to >= -1 && !(g = one_hot(m, net_node_count(m) - 1, 0, err))) goto done;
    if (g && net_backward(m, net_node_count(m) - 1, g, to, NET_RELU_PLAIN, err)) goto done;
    net_set_profile(m, node_ms);
    for (int i = 0; i < n; i++) {
        double t0 = now_ms();
        if (net_forward(m, x, err)) goto done;
        double t1 = now_ms();
        if (g && net_backward(m, net_node_count(m) - 1, g, to, NET_RELU_PLAIN, err)) goto done;
        fw[i] = t1 - t0, bw[i] = now_ms() - t0;
    }
    if (node_ms) print_per_node(m, node_ms, n);
    qsort(fw, (size_t)n, sizeof *fw, cmp_double);
    qsort(bw, (size_t)n, sizeof *bw, cmp_double);
    printf("{\"forward_ms\": %.3f, \"forward_backward_ms\": %.3f, \"forward_min_ms\": %.3f, "
           "\"peak_rss_mib\": %.1f}\n",
           fw[n / 2], g ? bw[n / 2] : 0.0, fw[0], peak_rss_mib());
    rc = 0;
done:
    free(fw), free(bw), free(node_ms), tn_free(g), tn_free(x);
    net_free(m);
    return rc;
}

static int probe_sgemm(int argc, char **argv)
{
    int n = argc > 0 ? atoi(argv[0]) : 2048;
    if (n < 16 || n > 8192) n = 2048;
    float *a = tn_alloc((size_t)n * n * sizeof *a), *b = tn_alloc((size_t)n * n * sizeof *b);
    float *c = tn_alloc((size_t)n * n * sizeof *c);
    if (!a || !b || !c) {
        tn_dealloc(a), tn_dealloc(b), tn_dealloc(c);
        fprintf(stderr, "cnnlens probe: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = (float)(i % 7) * 0.1f, b[i] = 0.5f;
    double best = 1e30;
    for (int r = 0; r < 6; r++) {
        double t0 = now_ms();
        op_blas_sgemm(n, a, b, c);
        double t = now_ms() - t0;
        if (r > 0 && t < best) best = t; /* the first run warms up the threads */
    }
    printf("{\"n\": %d, \"gflops\": %.2f}\n", n, 2.0 * n * n * (double)n / (best * 1e6));
    tn_dealloc(a), tn_dealloc(b), tn_dealloc(c);
    return 0;
}

int app_probe(int argc, char **argv)
{
    cl_err err = {0};
    probe_opts o;
    if (argc < 1) {
        fprintf(stderr, "usage: cnnlens probe summary|table|find|run|bench ARCH ... | sgemm N\n");
        return 2;
    }
    const char *cmd = argv[0];
    if (!strcmp(cmd, "find")) return probe_find(argc - 1, argv + 1, &err) ? fail(&err) : 0;
    if (!strcmp(cmd, "sgemm")) return probe_sgemm(argc - 1, argv + 1);
    if (parse(argc - 1, argv + 1, &o)) {
        fprintf(stderr, "cnnlens probe: bad arguments (see kernel/app/cmd_probe.c)\n");
        return 2;
    }
    int rc;
    if (!strcmp(cmd, "summary"))
        rc = probe_summary(&o, &err);
    else if (!strcmp(cmd, "table"))
        rc = probe_table(&o, &err);
    else if (!strcmp(cmd, "run"))
        rc = probe_run(&o, &err);
    else if (!strcmp(cmd, "bench"))
        rc = probe_bench(&o, &err);
    else {
        fprintf(stderr, "cnnlens probe: unknown action '%s'\n", cmd);
        return 2;
    }
    return rc ? fail(&err) : 0;
}
