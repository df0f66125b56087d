/* cmd_train — `cnnlens train-builtin`: trains the lecture CNN on Fashion-MNIST
 * exactly as the shipped models/fashion.safetensors was made, so anyone can
 * reproduce it (models/README.md has the command and the seed).
 *
 *   cnnlens train-builtin --out FILE [--seed N] [--epochs E] [--batch B]
 *        [--lr LR] [--optim adam|sgd] [--momentum M] [--schedule cosine|step|constant]
 *        [--limit N] [--data fashion|mnist|DIR] [--weights FILE] [--no-shuffle]
 *        [--no-eval] [--quiet] [--keep-conv-bias]
 *   cnnlens train-builtin --dump-grads DIR [--weights FILE] [--batch B] [--data ...]
 *   cnnlens train-builtin --evaluate-only [--weights FILE] [--limit N] [--data ...]
 *
 * --dump-grads writes the gradients of the mean cross-entropy on the first B
 * training images (as loss.backward() would leave them) to DIR/PARAM.npy and
 * the loss to DIR/loss.npy, for the PyTorch parity tests.  --evaluate-only
 * prints the test accuracy and confusion matrix of --weights (or of the
 * fresh initialisation), on the first N test images with --limit N.  Ctrl-C stops
 * training after the current batch; the weights are then not written (an
 * interrupted run is not the reproducible model).  After training, the conv
 * biases are folded into dense1.bias (see fold_conv_biases) unless
 * --keep-conv-bias. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/data/dataset.h"
#include "engine/io/npy.h"
#include "engine/io/weights.h"
#include "engine/train.h"
#include "engine/zoo/zoo.h"
#include "kernel/app/commands.h"

typedef struct tb_opts {
    const char *out, *data, *weights, *dump;
    trn_options t;
    int eval, quiet, fold, confusion;
} tb_opts;

static atomic_int tb_cancel;

static void on_sigint(int sig)
{
    (void)sig;
    atomic_store(&tb_cancel, 1);
}

static int usage(void)
{
    fprintf(
        stderr,
        "usage: cnnlens train-builtin --out FILE [--seed N] [--epochs E] [--batch B] [--lr LR]\n"
        "         [--optim adam|sgd] [--momentum M] [--schedule cosine|step|constant]\n"
        "         [--limit N] [--data fashion|mnist|DIR] [--weights FILE] [--no-shuffle]\n"
        "         [--no-eval] [--quiet] [--keep-conv-bias]\n"
        "       cnnlens train-builtin --dump-grads DIR [--weights FILE] [--batch B]\n"
        "       cnnlens train-builtin --evaluate-only [--weights FILE] [--limit N]\n"
        "Trains the lecture CNN (models/README.md gives the command of the shipped model).\n");
    return 2;
}

static int parse_enum(const char *v, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return i;
    return -1;
}

static int parse_value(tb_opts *o, const char *a, const char *v)
{
    static const char *const optims[] = {"adam", "sgd"};
    static const char *const scheds[] = {"constant", "step", "cosine"};
    char *end = NULL;
    if (!strcmp(a, "--out"))
        o->out = v;
    else if (!strcmp(a, "--data"))
        o->data = v;
    else if (!strcmp(a, "--weights"))
        o->weights = v;
    else if (!strcmp(a, "--dump-grads"))
        o->dump = v;
    else if (!strcmp(a, "--seed"))
        o->t.seed = strtoull(v, &end, 10);
    else if (!strcmp(a, "--epochs"))
        o->t.epochs = (int)strtol(v, &end, 10);
    else if (!strcmp(a, "--batch"))
        o->t.batch = (int)strtol(v, &end, 10);
    else if (!strcmp(a, "--limit")) {
        o->t.limit = strtoll(v, &end, 10);
        if (o->t.limit < 0) return -1;
    } else if (!strcmp(a, "--lr"))
        o->t.lr = strtof(v, &end);
    else if (!strcmp(a, "--momentum"))
        o->t.momentum = strtof(v, &end);
    else if (!strcmp(a, "--weight-decay"))
        o->t.weight_decay = strtof(v, &end);
    else if (!strcmp(a, "--optim")) {
        int k = parse_enum(v, optims, 2);
        if (k < 0) return -1;
        o->t.optimizer = k ? TRN_SGD : TRN_ADAM;
    } else if (!strcmp(a, "--schedule")) {
        int k = parse_enum(v, scheds, 3);
        if (k < 0) return -1;
        o->t.schedule = (trn_schedule)k;
    } else
        return -1;
    return end && *end ? -1 : 0;
}

static int parse(int argc, char **argv, tb_opts *o)
{
    memset(o, 0, sizeof *o);
    trn_options_default(&o->t);
    /* The defaults make the shipped model (models/README.md). */
    o->t.seed = 1, o->t.epochs = 4, o->t.lr = 3e-3f;
    o->data = "fashion", o->eval = 1, o->fold = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--no-shuffle"))
            o->t.shuffle = 0;
        else if (!strcmp(a, "--no-eval"))
            o->eval = 0;
        else if (!strcmp(a, "--quiet"))
            o->quiet = 1;
        else if (!strcmp(a, "--keep-conv-bias"))
            o->fold = 0;
        else if (!strcmp(a, "--evaluate-only"))
            o->confusion = 1;
        else if (i + 1 >= argc || parse_value(o, a, argv[i + 1])) {
            fprintf(stderr, "cnnlens train-builtin: bad option or value '%s'\n", a);
            return -1;
        } else
            i++;
    }
    return o->out || o->dump || o->confusion ? 0 : -1;
}

/* Prints the progress to stderr. */
static void show_progress(void *ctx, long done, long total, const char *what)
{
    static double last;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    int end = strstr(what, "done") != NULL;
    /* A terminal gets a live line; a log gets a line every 10 s. */
    if (!end && t - last < (isatty(2) ? 0.5 : 10.0)) return;
    last = t;
    fprintf(stderr, "%s%3.0f%%  %s%s", isatty(2) ? "\r" : "",
            total ? 100.0 * (double)done / (double)total : 0.0, what,
            isatty(2) && !end ? "\033[K" : "\n");
    (void)ctx;
}

static net *start_model(const tb_opts *o, cl_err *err)
{
    net *m = zoo_build("fashion", err);
    if (!m) return NULL;
    trn_init_params(m, o->t.seed);
    if (!o->weights) return m;
    if (net_load_weights_file(m, o->weights, err)) {
        net_free(m);
        return NULL;
    }
    return m;
}

static int dump_grads(net *m, const ds_dataset *d, const tb_opts *o, cl_err *err)
{
    int64_t n = o->t.batch < ds_count(d) ? o->t.batch : ds_count(d);
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    int *labels = malloc((size_t)n * sizeof *labels);
    tn_tensor *x = tn_new1(0, err), *loss_t = tn_new1(1, err);
    int rc = !idx || !labels || !x || !loss_t ? -1 : 0;
    for (int64_t i = 0; !rc && i < n; i++) idx[i] = i;
    double loss = 0;
    if (!rc) rc = ds_batch(d, idx, n, x, labels, err);
    if (!rc) rc = trn_compute_grads(m, x, labels, &loss, NULL, err);
    char path[4096];
    for (int i = 0; !rc && i < net_param_tensors(m); i++) {
        net_param p;
        net_param_get(m, i, &p);
        snprintf(path, sizeof path, "%s/%s.npy", o->dump, p.name);
        rc = npy_write(path, p.grad, err);
    }
    if (!rc) {
        loss_t->data[0] = (float)loss;
        snprintf(path, sizeof path, "%s/loss.npy", o->dump);
        rc = npy_write(path, loss_t, err);
    }
    free(idx), free(labels), tn_free(x), tn_free(loss_t);
    return rc;
}

static int evaluate(net *m, const tb_opts *o, cl_err *err)
{
    ds_dataset *test = ds_open(o->data, "test", err);
    if (!test) return -1;
    trn_eval ev;
    /* --limit bounds the training images; alone with --evaluate-only it
     * bounds the test images (a quick check, and the valgrind test run). */
    int rc = trn_evaluate(m, test, 500, o->confusion ? o->t.limit : 0, NULL, &ev, err);
    if (!rc)
        printf("test accuracy %.2f%% (%lld/%lld), loss %.4f\n", 100.0 * ev.accuracy,
               (long long)ev.correct, (long long)ev.count, ev.loss);
    /* The confusion matrix, one row per true class, for --evaluate-only. */
    for (int t = 0; !rc && o->confusion && t < ev.classes; t++) {
        printf("confusion %d:", t);
        for (int p = 0; p < ev.classes; p++)
            printf(" %lld", (long long)ev.confusion[t * ev.classes + p]);
        printf("\n");
    }
    ds_close(test);
    return rc;
}

static tn_tensor *param(net *m, const char *name)
{
    for (int i = 0; i < net_param_tensors(m); i++) {
        net_param p;
        if (!net_param_get(m, i, &p) && !strcmp(p.name, name)) return p.value;
    }
    return NULL;
}

/* The lecture CNN's convs are linear and max pooling commutes with adding a
 * constant, so the conv biases only add a constant per conv2 channel to
 * dense1's input.  Moving that constant into dense1.bias (in double
 * precision) leaves the function unchanged and makes an empty background
 * give zero activations at conv1 and conv2, which keeps Grad-CAM and the
 * feature maps on the garment instead of on a bias-lit background. */
static void fold_conv_biases(net *m)
{
    tn_tensor *b1 = param(m, "conv1.bias"), *w2 = param(m, "conv2.weight");
    tn_tensor *b2 = param(m, "conv2.bias"), *wd = param(m, "dense1.weight");
    tn_tensor *bd = param(m, "dense1.bias");
    if (!b1 || !w2 || !b2 || !wd || !bd) return;
    int64_t c1 = b1->shape[0], c2 = b2->shape[0], kk = w2->shape[2] * w2->shape[3];
    int64_t nd = wd->shape[0], per = wd->shape[1] / c2;
    double offset[64];
    if (c2 > 64 || w2->shape[1] != c1 || wd->shape[1] != c2 * per) return;
    for (int64_t o = 0; o < c2; o++) {
        double s = b2->data[o];
        for (int64_t c = 0; c < c1; c++)
            for (int64_t k = 0; k < kk; k++)
                s += (double)w2->data[(o * c1 + c) * kk + k] * b1->data[c];
        offset[o] = s;
    }
    for (int64_t j = 0; j < nd; j++) {
        double s = bd->data[j];
        for (int64_t o = 0; o < c2; o++)
            for (int64_t p = 0; p < per; p++)
                s += (double)wd->data[j * c2 * per + o * per + p] * offset[o];
        bd->data[j] = (float)s;
    }
    tn_zero(b1), tn_zero(b2);
}

static int train(net *m, const ds_dataset *d, const tb_opts *o, cl_err *err)
{
    cl_progress p = {.fn = o->quiet ? NULL : show_progress, .cancel = &tb_cancel};
    signal(SIGINT, on_sigint);
    trn_stats st;
    int rc = trn_fit(m, d, &o->t, &p, &st, err);
    signal(SIGINT, SIG_DFL);
    printf("trained %d epoch(s), %ld batches, %lld images in %.2f s (%.0f images/s), "
           "last epoch loss %.4f, accuracy %.2f%%\n",
           st.epochs_done, st.batches_done, (long long)st.images, st.seconds, st.images_per_s,
           st.loss, 100.0 * st.accuracy);
    if (rc) return -1;
    if (o->fold) fold_conv_biases(m);
    if (trn_save(m, o->out, err)) return -1;
    printf("wrote %s\n", o->out);
    return o->eval ? evaluate(m, o, err) : 0;
}

int app_train_builtin(int argc, char **argv)
{
    tb_opts o;
    if (argc > 0 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        usage();
        return 0;
    }
    if (parse(argc, argv, &o)) return usage();
    cl_err err = {0};
    int rc = -1;
    ds_dataset *d = ds_open(o.data, "train", &err);
    net *m = d ? start_model(&o, &err) : NULL;
    if (m)
        rc = o.confusion ? evaluate(m, &o, &err)
             : o.dump    ? dump_grads(m, d, &o, &err)
                         : train(m, d, &o, &err);
    net_free(m);
    ds_close(d);
    ds_cache_clear();
    if (rc) {
        fprintf(stderr, "cnnlens train-builtin: %s\n", err.msg);
        return err.code == CL_EINTERRUPT ? 130 : 1;
    }
    return 0;
}
