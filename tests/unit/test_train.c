/* Training: the loss, a short real training run on Fashion-MNIST, interrupts
 * from another thread, user-defined CNNs and saving/loading them. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/io/weights.h"
#include "engine/train.h"
#include "engine/zoo/zoo.h"

static void fini(void)
{
    ds_cache_clear();
}

TestSuite(train, .fini = fini);

Test(train, cross_entropy_matches_the_formula)
{
    cl_err err = {0};
    tn_tensor *z = tn_new2(2, 3, &err), *dz = tn_new1(0, &err);
    float v[6] = {1.0f, 2.0f, 3.0f, -1.0f, 0.5f, 0.0f};
    memcpy(z->data, v, sizeof v);
    int labels[2] = {2, 0}, correct;
    double loss;
    cr_assert_eq(trn_cross_entropy(z, labels, dz, &loss, &correct, &err), 0);
    double l0 = log(exp(1) + exp(2) + exp(3)) - 3, l1 = log(exp(-1) + exp(0.5) + 1) + 1;
    cr_assert_float_eq(loss, (l0 + l1) / 2, 1e-6);
    cr_assert_eq(correct, 1);
    double p02 = exp(3) / (exp(1) + exp(2) + exp(3));
    cr_assert_float_eq(dz->data[2], (p02 - 1) / 2, 1e-6);
    double s = 0;
    for (int i = 0; i < 6; i++) s += dz->data[i];
    cr_assert_float_eq(s, 0.0, 1e-6);
    labels[1] = 3;
    cr_assert_eq(trn_cross_entropy(z, labels, dz, &loss, NULL, &err), -1);
    cr_assert_not_null(strstr(err.msg, "label 3"), "%s", err.msg);
    tn_free(z), tn_free(dz);
}

Test(train, schedules)
{
    trn_options o;
    trn_options_default(&o);
    o.lr = 0.1f;
    cr_assert_float_eq(trn_lr_at(&o, 0, 100, 0), 0.1f, 1e-7);
    cr_assert_float_eq(trn_lr_at(&o, 50, 100, 0), 0.05f, 1e-7);
    cr_assert_float_eq(trn_lr_at(&o, 100, 100, 0), 0.0f, 1e-7);
    o.schedule = TRN_LR_STEP, o.step_epochs = 2, o.gamma = 0.5f;
    cr_assert_float_eq(trn_lr_at(&o, 9, 100, 1), 0.1f, 1e-7);
    cr_assert_float_eq(trn_lr_at(&o, 9, 100, 2), 0.05f, 1e-7);
    cr_assert_float_eq(trn_lr_at(&o, 9, 100, 5), 0.025f, 1e-7);
}

/* One epoch on the first 2,000 training images (batch 32, Adam, seed 1)
 * with lr 3e-3 reaches at least 70% on the first 1,000 test images (measured:
 * 73.0%). */
Test(train, one_epoch_on_2000_images_reaches_70_percent)
{
    cl_err err = {0};
    ds_dataset *train = ds_open("fashion", "train", &err);
    cr_assert_not_null(train, "%s", err.msg);
    ds_dataset *test = ds_open("fashion", "test", &err);
    net *m = zoo_build_seeded("fashion", 1, &err);
    trn_options o;
    trn_options_default(&o);
    o.limit = 2000, o.batch = 32, o.seed = 1, o.lr = 3e-3f;
    trn_stats st;
    cr_assert_eq(trn_fit(m, train, &o, NULL, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(st.epochs_done, 1);
    cr_assert_eq(st.batches_done, 63);
    cr_assert_eq(st.images, 2000);
    trn_eval ev;
    cr_assert_eq(trn_evaluate(m, test, 250, 1000, NULL, &ev, &err), 0, "%s", err.msg);
    cr_assert_eq(ev.count, 1000);
    cr_assert_geq(ev.accuracy, 0.70, "accuracy %.3f", ev.accuracy);
    int64_t sum = 0, diag = 0;
    for (int t = 0; t < 10; t++)
        for (int p = 0; p < 10; p++) {
            sum += ev.confusion[t * ev.classes + p];
            if (t == p) diag += ev.confusion[t * ev.classes + p];
        }
    cr_assert_eq(sum, 1000);
    cr_assert_eq(diag, ev.correct);
    net_free(m);
    ds_close(train), ds_close(test);
}

typedef struct watch {
    atomic_int cancel;
    atomic_long batches;
} watch;

static void count_batches(void *ctx, long done, long total, const char *what)
{
    watch *w = ctx;
    (void)total, (void)what;
    atomic_store(&w->batches, done);
}

/* The "control thread": sets the cancel flag once 20 batches are done. */
static void *interrupter(void *arg)
{
    watch *w = arg;
    while (atomic_load(&w->batches) < 20) usleep(1000);
    atomic_store(&w->cancel, 1);
    return NULL;
}

Test(train, an_interrupted_run_keeps_a_usable_model)
{
    cl_err err = {0};
    ds_dataset *train = ds_open("fashion", "train", &err);
    cr_assert_not_null(train, "%s", err.msg);
    ds_dataset *test = ds_open("fashion", "test", &err);
    net *m = zoo_build_seeded("fashion", 2, &err);
    watch w;
    atomic_init(&w.cancel, 0);
    atomic_init(&w.batches, 0);
    cl_progress p = {.fn = count_batches, .ctx = &w, .cancel = &w.cancel};
    trn_options o;
    trn_options_default(&o);
    o.epochs = 5;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, interrupter, &w), 0);
    trn_stats st;
    cr_assert_eq(trn_fit(m, train, &o, &p, &st, &err), -1);
    pthread_join(th, NULL);
    cr_assert_eq(err.code, CL_EINTERRUPT);
    cr_assert_geq(st.batches_done, 20);
    cr_assert_lt(st.batches_done, 200, "stopped only after %ld batches", st.batches_done);
    cr_assert_eq(st.epochs_done, 0);
    for (int i = 0; i < net_param_tensors(m); i++) {
        net_param q;
        net_param_get(m, i, &q);
        for (int64_t j = 0; j < tn_numel(q.value); j++) cr_assert(isfinite(q.value->data[j]));
    }
    /* A few dozen Adam steps already classify far better than chance. */
    trn_eval ev;
    cr_assert_eq(trn_evaluate(m, test, 500, 1000, NULL, &ev, &err), 0, "%s", err.msg);
    cr_assert_geq(ev.accuracy, 0.45, "accuracy %.3f", ev.accuracy);
    net_free(m);
    ds_close(train), ds_close(test);
}

static const trn_layer lecture[] = {
    {TRN_CONV, 25, 3, 0},   {TRN_MAXPOOL, 0, 2, 0}, {TRN_CONV, 50, 3, 0}, {TRN_MAXPOOL, 0, 2, 0},
    {TRN_FLATTEN, 0, 0, 0}, {TRN_DENSE, 100, 0, 0}, {TRN_RELU, 0, 0, 0},  {TRN_DENSE, 10, 0, 0},
};

Test(train, sequential_builds_the_lecture_cnn)
{
    cl_err err = {0};
    net *m = trn_build_sequential("mycnn", lecture, 8, 1, 28, 28, 0, &err);
    cr_assert_not_null(m, "%s", err.msg);
    cr_assert_eq(net_param_count(m), 137660);
    cr_assert_eq(net_num_classes(m), 10);
    int c2 = net_find(m, "conv2", &err);
    net_node_info info;
    net_node_info_get(m, c2, &info);
    cr_assert_eq(info.shape[1], 50);
    cr_assert_eq(info.shape[2], 11);
    cr_assert_eq(info.shape[3], 11);
    cr_assert_geq(net_find(m, "dense2", &err), 0);
    net_free(m);
}

Test(train, sequential_errors_name_the_layer)
{
    cl_err err = {0};
    trn_layer deep[] = {{TRN_CONV, 8, 5, 0},    {TRN_MAXPOOL, 0, 2, 0}, {TRN_CONV, 8, 5, 0},
                        {TRN_MAXPOOL, 0, 2, 0}, {TRN_CONV, 8, 5, 0},    {TRN_DENSE, 10, 0, 0}};
    cr_assert_null(trn_build_sequential("deep", deep, 6, 1, 28, 28, 0, &err));
    cr_assert_not_null(strstr(err.msg, "conv3 needs at least 5x5 pixels but gets 4x4"), "%s",
                       err.msg);
    trn_layer no_dense[] = {{TRN_CONV, 8, 3, 0}, {TRN_RELU, 0, 0, 0}};
    cr_assert_null(trn_build_sequential("x", no_dense, 2, 1, 28, 28, 0, &err));
    cr_assert_not_null(strstr(err.msg, "must end with `dense N`"), "%s", err.msg);
    trn_layer late_conv[] = {{TRN_DENSE, 30, 0, 0}, {TRN_CONV, 8, 3, 0}, {TRN_DENSE, 10, 0, 0}};
    cr_assert_null(trn_build_sequential("x", late_conv, 3, 1, 28, 28, 0, &err));
    cr_assert_not_null(strstr(err.msg, "conv1 comes after a dense"), "%s", err.msg);
    trn_layer bad_drop[] = {
        {TRN_DENSE, 30, 0, 0}, {TRN_DROPOUT, 0, 0, 1.5f}, {TRN_DENSE, 10, 0, 0}};
    cr_assert_null(trn_build_sequential("x", bad_drop, 3, 1, 28, 28, 0, &err));
    cr_assert_not_null(strstr(err.msg, "dropout1"), "%s", err.msg);
}

Test(train, a_trained_user_model_saves_and_loads_back)
{
    cl_err err = {0};
    trn_layer spec[] = {{TRN_CONV, 8, 3, 0},   {TRN_RELU, 0, 0, 0},       {TRN_MAXPOOL, 0, 2, 0},
                        {TRN_DENSE, 32, 0, 0}, {TRN_DROPOUT, 0, 0, 0.2f}, {TRN_RELU, 0, 0, 0},
                        {TRN_DENSE, 10, 0, 0}};
    net *m = trn_build_sequential("small", spec, 7, 1, 28, 28, 5, &err);
    cr_assert_not_null(m, "%s", err.msg);
    ds_dataset *train = ds_open("fashion", "train", &err);
    cr_assert_not_null(train, "%s", err.msg);
    trn_options o;
    trn_options_default(&o);
    o.limit = 256;
    cr_assert_eq(trn_fit(m, train, &o, NULL, NULL, &err), 0, "%s", err.msg);
    char path[] = "/tmp/cnnlens-train-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(trn_save(m, path, &err), 0, "%s", err.msg);
    net *back = trn_build_sequential("small", spec, 7, 1, 28, 28, 99, &err);
    wt_dict *w = wt_load(path, &err);
    cr_assert_not_null(w, "%s", err.msg);
    cr_assert_eq(w->count, 6);
    cr_assert_eq(net_load_weights(back, w, &err), 0, "%s", err.msg);
    int64_t idx[4] = {0, 1, 2, 3};
    tn_tensor *x = tn_new1(0, &err);
    cr_assert_eq(ds_batch(train, idx, 4, x, NULL, &err), 0);
    cr_assert_eq(net_forward(m, x, &err), 0);
    cr_assert_eq(net_forward(back, x, &err), 0);
    cr_assert_eq(memcmp(net_output(m)->data, net_output(back)->data, 40 * sizeof(float)), 0);
    unlink(path);
    tn_free(x), wt_free(w), net_free(m), net_free(back);
    ds_close(train);
}

static void params_of(net *m, float *out)
{
    for (int i = 0; i < net_param_tensors(m); i++) {
        net_param p;
        net_param_get(m, i, &p);
        memcpy(out, p.value->data, (size_t)tn_numel(p.value) * sizeof(float));
        out += tn_numel(p.value);
    }
}

/* What makes `cnnlens train-builtin` reproducible: the same seed gives the
 * same initial weights (PyTorch's bounds) and, after training, the same bits. */
Test(train, the_same_seed_trains_the_same_bits)
{
    cl_err err = {0};
    ds_dataset *train = ds_open("fashion", "train", &err);
    cr_assert_not_null(train, "%s", err.msg);
    float *w[2];
    for (int r = 0; r < 2; r++) {
        net *m = zoo_build("fashion", &err);
        cr_assert_not_null(m, "%s", err.msg);
        trn_init_params(m, 7);
        net_param p;
        net_param_get(m, 0, &p); /* conv1.weight: fan_in 9 */
        float mx = 0;
        for (int64_t j = 0; j < tn_numel(p.value); j++)
            if (fabsf(p.value->data[j]) > mx) mx = fabsf(p.value->data[j]);
        cr_assert(mx <= 1.0f / 3.0f && mx > 0.3f, "conv1 init max %f", mx);
        net_param_get(m, 5, &p); /* dense1.bias: fan_in 1250 */
        for (int64_t j = 0; j < tn_numel(p.value); j++)
            cr_assert_leq(fabsf(p.value->data[j]), 1.0f / sqrtf(1250.0f));
        trn_options o;
        trn_options_default(&o);
        o.limit = 640, o.seed = 7;
        cr_assert_eq(trn_fit(m, train, &o, NULL, NULL, &err), 0, "%s", err.msg);
        w[r] = malloc((size_t)net_param_count(m) * sizeof(float));
        params_of(m, w[r]);
        net_free(m);
    }
    cr_assert_eq(memcmp(w[0], w[1], 137660 * sizeof(float)), 0);
    free(w[0]), free(w[1]);
    ds_close(train);
}

Test(train, dropout_is_active_only_while_training)
{
    cl_err err = {0};
    trn_layer layers[] = {
        {TRN_DENSE, 400, 0, 0}, {TRN_DROPOUT, 0, 0, 0.25f}, {TRN_DENSE, 10, 0, 0}};
    net *m = trn_build_sequential("drop", layers, 3, 1, 28, 28, 7, &err);
    cr_assert_not_null(m, "%s", err.msg);
    int d = net_find(m, "dropout1", &err), h = net_find(m, "dense1", &err);
    cr_assert(d >= 0 && h >= 0, "%s", err.msg);
    tn_tensor *x = tn_new4(1, 1, 28, 28, &err);
    for (int i = 0; i < 784; i++) x->data[i] = (float)(i % 13) / 13.0f;

    cr_assert_eq(net_forward(m, x, &err), 0, "%s", err.msg);
    const tn_tensor *a = net_node_output(m, h), *y = net_node_output(m, d);
    for (int i = 0; i < 400; i++) cr_assert_eq(y->data[i], a->data[i], "identity at inference");

    net_set_training(m, 1);
    cr_assert_eq(net_forward(m, x, &err), 0, "%s", err.msg);
    a = net_node_output(m, h), y = net_node_output(m, d);
    int zeros = 0;
    for (int i = 0; i < 400; i++) {
        if (y->data[i] == 0.0f && a->data[i] != 0.0f)
            zeros++;
        else
            cr_assert_float_eq(y->data[i], a->data[i] / 0.75f, 1e-5, "kept units are scaled");
    }
    cr_assert(zeros > 60 && zeros < 140, "about a quarter dropped, got %d of 400", zeros);

    /* backward: the gradient flows through the kept units only, scaled */
    tn_tensor *g = tn_new2(1, 400, &err);
    tn_fill(g, 1.0f);
    cr_assert_eq(net_backward(m, d, g, h, NET_RELU_PLAIN, &err), 0, "%s", err.msg);
    const tn_tensor *gh = net_node_grad(m, h);
    for (int i = 0; i < 400; i++)
        cr_assert_float_eq(gh->data[i],
                           y->data[i] == 0.0f && a->data[i] != 0.0f ? 0.0f : 1.0f / 0.75f, 1e-6);
    net_set_training(m, 0);
    tn_free(g);
    tn_free(x);
    net_free(m);
}
