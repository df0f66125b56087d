/* Verbs about models and data: model, layers, sample, image, predict, top1,
 * train, evaluate. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/dataset.h"
#include "engine/image.h"
#include "engine/io/weights.h"
#include "engine/limits.h"
#include "engine/train.h"
#include "engine/zoo/fashion_weights.h"
#include "engine/zoo/zoo.h"
#include "kernel/lang/eval.h"
#include "kernel/lang/lens_engine.h"

static int oom(cl_err *err)
{
    return cl_err_set(err, CL_ENOMEM, "out of memory");
}

static void free_net(void *m)
{
    net_free(m);
}

static char **copy_labels(const char *const *names, int n)
{
    char **v = calloc((size_t)n, sizeof *v);
    for (int i = 0; v && i < n; i++) v[i] = strdup(names[i]);
    return v;
}

static int do_model(lc_call *c, lv_value **out, cl_err *err)
{
    const char *arch = lc_text(c, "name");
    const char *weights = lc_text(c, "weights");
    int fashion = !strcmp(arch, "fashion") || !strcmp(arch, "fashion-mnist");
    net *m = NULL;
    const char *origin = "random weights";
    if (fashion && !weights && fw_bytes(&(size_t){0})) {
        m = fw_model(err);
        origin = "trained on Fashion-MNIST";
    } else {
        m = zoo_build_seeded(fashion ? "fashion" : arch, ss_rand_u64(c->s), err);
        if (!m) return lc_arg_error(c, "name", err, err->code, "model: %s", err->msg);
    }
    if (!m) return -1;
    if (weights) {
        if (net_load_weights_file(m, weights, err) < 0) {
            net_free(m);
            return lc_arg_error(c, "weights", err, err->code, "model: %s", err->msg);
        }
        origin = weights;
    }
    int64_t chw[3];
    net_input_shape(m, chw);
    char desc[512];
    snprintf(desc, sizeof desc, "model %s: %lld parameters, input %lldx%lldx%lld, %d classes (%s)",
             net_arch(m), (long long)net_param_count(m), (long long)chw[0], (long long)chw[1],
             (long long)chw[2], net_num_classes(m), origin);
    lv_value *v = lv_model(m, free_net, desc);
    if (!v) return oom(err);
    le_set_layer_names(v, m);
    lv_unref(c->s->model);
    c->s->model = lv_ref(v);
    /* Class names come with the model when it has well-known ones; labels
     * read before (`labels "imagenet_zh_tw.txt"`, then the model) stay when
     * their count fits the model. */
    if (fashion)
        ss_set_labels(c->s, copy_labels(ds_fashion_classes(), 10), 10);
    else if (c->s->nlabels != net_num_classes(m))
        ss_set_labels(c->s, NULL, 0);
    *out = v;
    return 0;
}

static void shape_text(const net_node_info *info, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int d = 1; d < info->ndim && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, d > 1 ? "x%lld" : "%lld",
                                (long long)info->shape[d]);
}

static int do_layers(lc_call *c, lv_value **out, cl_err *err)
{
    lv_value *mv = lc_get(c, "m");
    net *m = mv ? mv->obj : le_model(c, err);
    if (!m) return -1;
    static const char *head[] = {"name", "type", "output", "parameters"};
    lv_table *t = lv_table_new(4, head);
    if (!t) return oom(err);
    for (int i = 0; i < net_node_count(m); i++) {
        net_node_info info;
        if (net_node_info_get(m, i, &info) < 0) continue;
        char shape[64], params[32];
        shape_text(&info, shape, sizeof shape);
        snprintf(params, sizeof params, "%lld", (long long)info.params);
        const char *cells[4] = {info.name, info.type, shape, params};
        double nums[4] = {NAN, NAN, NAN, (double)info.params};
        if (lv_table_add(t, cells, nums) < 0) {
            lv_table_free(t);
            return oom(err);
        }
    }
    char total[32];
    snprintf(total, sizeof total, "%lld", (long long)net_param_count(m));
    const char *cells[4] = {"total", "", "", total};
    double nums[4] = {NAN, NAN, NAN, (double)net_param_count(m)};
    if (lv_table_add(t, cells, nums) < 0) {
        lv_table_free(t);
        return oom(err);
    }
    return (*out = lv_table_value(t)) ? 0 : oom(err);
}

static int do_sample(lc_call *c, lv_value **out, cl_err *err)
{
    const char *name = lc_text(c, "dataset"), *split = lc_text(c, "split");
    ds_dataset *d = ds_open(name, split, err);
    if (!d) return lc_arg_error(c, "dataset", err, err->code, "sample: %s", err->msg);
    int64_t i = (int64_t)lc_num(c, "index", 0);
    if (i < 0 || i >= ds_count(d)) {
        int64_t n = ds_count(d);
        ds_close(d);
        return lc_arg_error(c, "index", err, CL_EINVAL, "sample: %s %s has images 0..%lld", name,
                            split, (long long)n - 1);
    }
    int label = -1;
    tn_tensor *t = ds_sample(d, i, &label, err);
    if (!t) {
        ds_close(d);
        return -1;
    }
    int64_t shape[3] = {t->shape[1], t->shape[2], t->shape[3]};
    tn_reshape(t, 3, shape, NULL);
    char desc[160];
    const char *cname = ds_class_name(d, label);
    snprintf(desc, sizeof desc, "%s %s %lld, class %d (%s)", name, split, (long long)i, label,
             cname ? cname : "?");
    ds_close(d);
    lv_value *v = lv_image(t, IMG_NORM_NONE);
    if (!v) return oom(err);
    lv_set_desc(v, desc);
    *out = v;
    return 0;
}

static int do_image(lc_call *c, lv_value **out, cl_err *err)
{
    const char *path = lc_text(c, "path"), *pre = lc_text(c, "preprocess");
    int norm;
    if (!strcmp(pre, "imagenet"))
        norm = IMG_NORM_IMAGENET;
    else if (!strcmp(pre, "half"))
        norm = IMG_NORM_HALF;
    else if (!strcmp(pre, "none"))
        norm = IMG_NORM_NONE;
    else
        return lc_arg_error(c, "preprocess", err, CL_EINVAL,
                            "image: preprocess is imagenet, half or none, not '%s'", pre);
    tn_tensor *raw = img_load(path, err);
    if (!raw) return lc_arg_error(c, "path", err, err->code, "image: %s", err->msg);
    tn_tensor *t = img_preprocess(raw, pre, err);
    tn_free(raw);
    if (!t) return -1;
    lv_value *v = lv_image(t, norm);
    if (!v) return oom(err);
    const char *base = strrchr(path, '/');
    lv_set_desc(v, base ? base + 1 : path);
    *out = v;
    return 0;
}

static void softmax(const float *z, int n, double *p)
{
    double m = -INFINITY, s = 0;
    for (int i = 0; i < n; i++) m = z[i] > m ? z[i] : m;
    for (int i = 0; i < n; i++) s += (p[i] = exp(z[i] - m));
    for (int i = 0; i < n; i++) p[i] /= s;
}

static int do_predict(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    const tn_tensor *z = le_forward(c, m, "x", err);
    if (!z) return -1;
    int n = net_num_classes(m);
    int top = (int)lc_num(c, "top", 5);
    if (top < 1) return lc_arg_error(c, "top", err, CL_EINVAL, "predict: top must be 1 or more");
    if (top > n) top = n;
    double *p = malloc((size_t)n * sizeof *p);
    int *order = malloc((size_t)n * sizeof *order);
    lv_table *t = NULL;
    static const char *head[] = {"class", "label", "probability", "logit"};
    if (!p || !order || !(t = lv_table_new(4, head))) goto nomem;
    softmax(z->data, n, p);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int k = 0; k < top; k++) { /* partial selection: highest first, ties by index */
        int best = k;
        for (int i = k + 1; i < n; i++)
            if (p[order[i]] > p[order[best]]) best = i;
        int tmp = order[k];
        order[k] = order[best];
        order[best] = tmp;
        char cls[16], prob[32], logit[32];
        snprintf(cls, sizeof cls, "%d", order[k]);
        snprintf(prob, sizeof prob, "%.4f", p[order[k]]);
        snprintf(logit, sizeof logit, "%.4f", (double)z->data[order[k]]);
        const char *label = le_label(c->s, order[k]);
        const char *cells[4] = {cls, label ? label : "", prob, logit};
        double nums[4] = {order[k], NAN, p[order[k]], z->data[order[k]]};
        if (lv_table_add(t, cells, nums) < 0) goto nomem;
    }
    free(p);
    free(order);
    return (*out = lv_table_value(t)) ? 0 : oom(err);
nomem:
    free(p);
    free(order);
    lv_table_free(t);
    return oom(err);
}

static int do_top1(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    const tn_tensor *z = le_forward(c, m, "x", err);
    if (!z) return -1;
    int best = 0, n = net_num_classes(m);
    for (int i = 1; i < n; i++)
        if (z->data[i] > z->data[best]) best = i;
    return (*out = lv_num(best)) ? 0 : oom(err);
}

static ds_dataset *open_data(lc_call *c, const char *split, cl_err *err)
{
    const char *name = lc_text(c, "on");
    ds_dataset *d = ds_open(name, split, err);
    if (!d) lc_arg_error(c, "on", err, err->code, "%s: %s", c->verb->name, err->msg);
    return d;
}

static int do_train(lc_call *c, lv_value **out, cl_err *err)
{
    (void)out;
    net *m = lc_get(c, "m")->obj;
    ds_dataset *d = open_data(c, "train", err);
    if (!d) return -1;
    double n = (double)ds_count(d), use = lc_num(c, "limit", 0), batch = lc_num(c, "batch", 64);
    if (batch >= 1 &&
        lim_check(LIM_STEPS, lc_num(c, "epochs", 1) * ceil((use > 0 && use < n ? use : n) / batch),
                  "train: epochs x batches", err))
        return ds_close(d), lc_arg_error(c, "epochs", err, err->code, "%s", err->msg);
    trn_options o;
    trn_options_default(&o);
    o.epochs = (int)lc_num(c, "epochs", 1);
    if (lc_get(c, "lr")) o.lr = (float)lc_num(c, "lr", o.lr);
    o.batch = (int)lc_num(c, "batch", 64);
    o.limit = (int64_t)lc_num(c, "limit", 0);
    o.seed = ss_rand_u64(c->s);
    if (o.epochs < 1 || o.batch < 1)
        return ds_close(d), cl_err_set(err, CL_EINVAL, "train: epochs and batch must be 1 or more");
    le_live live;
    cl_progress p = le_live_start(&live, c);
    trn_stats st = {0};
    int r = trn_fit(m, d, &o, &p, &st, err);
    ds_close(d);
    char text[256];
    snprintf(text, sizeof text,
             "train: %d epoch%s, %lld images, loss %.4f, accuracy %.1f%%, %.1f s%s", st.epochs_done,
             st.epochs_done == 1 ? "" : "s", (long long)st.images, st.loss, 100 * st.accuracy,
             st.seconds, r < 0 ? " (interrupted)" : "");
    le_live_finish(&live, text);
    if (r < 0) return -1;
    if (!live.shown) {
        strcat(text, "\n");
        ss_stream(c->s, "stdout", text);
    }
    return 0;
}

static int do_evaluate(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = lc_get(c, "m")->obj;
    ds_dataset *d = open_data(c, lc_text(c, "split"), err);
    if (!d) return -1;
    le_live live;
    cl_progress p = le_live_start(&live, c);
    trn_eval ev;
    memset(&ev, 0, sizeof ev);
    int r = trn_evaluate(m, d, 0, (int64_t)lc_num(c, "limit", 0), &p, &ev, err);
    if (r < 0) {
        ds_close(d);
        return -1;
    }
    char text[160];
    snprintf(text, sizeof text, "accuracy %.2f%% (%lld of %lld), loss %.4f", 100 * ev.accuracy,
             (long long)ev.correct, (long long)ev.count, ev.loss);
    le_live_finish(&live, text);
    if (!live.shown) {
        strcat(text, "\n");
        ss_stream(c->s, "stdout", text);
    }
    /* The confusion table: rows are true classes, columns predictions. */
    int k = ev.classes < TRN_MAX_CLASSES ? ev.classes : TRN_MAX_CLASSES;
    const char *head[TRN_MAX_CLASSES + 1];
    char names[TRN_MAX_CLASSES][24];
    head[0] = "true \\ predicted";
    for (int j = 0; j < k; j++) {
        snprintf(names[j], sizeof names[j], "%d", j);
        head[j + 1] = names[j];
    }
    lv_table *t = lv_table_new(k + 1, head);
    for (int i = 0; t && i < k; i++) {
        char cells[TRN_MAX_CLASSES + 1][32];
        const char *row[TRN_MAX_CLASSES + 1];
        double nums[TRN_MAX_CLASSES + 1];
        const char *cname = ds_class_name(d, i);
        snprintf(cells[0], sizeof cells[0], "%d %s", i, cname ? cname : "");
        row[0] = cells[0];
        nums[0] = NAN;
        for (int j = 0; j < k; j++) {
            snprintf(cells[j + 1], sizeof cells[j + 1], "%lld",
                     (long long)ev.confusion[i * ev.classes + j]);
            row[j + 1] = cells[j + 1];
            nums[j + 1] = (double)ev.confusion[i * ev.classes + j];
        }
        if (lv_table_add(t, row, nums) < 0) {
            lv_table_free(t);
            t = NULL;
        }
    }
    ds_close(d);
    if (!t) return oom(err);
    return (*out = lv_table_value(t)) ? 0 : oom(err);
}

static int layer_kind(const char *w, trn_layer_kind *k, int *nargs)
{
    static const struct {
        const char *name;
        trn_layer_kind kind;
        int nargs;
    } kinds[] = {{"conv", TRN_CONV, 2},       {"maxpool", TRN_MAXPOOL, 1}, {"pool", TRN_MAXPOOL, 1},
                 {"flatten", TRN_FLATTEN, 0}, {"dense", TRN_DENSE, 1},     {"relu", TRN_RELU, 0},
                 {"dropout", TRN_DROPOUT, 1}};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (!strcmp(kinds[i].name, w)) {
            *k = kinds[i].kind;
            *nargs = kinds[i].nargs;
            return 0;
        }
    return -1;
}

/* `sequential [conv 25 3; maxpool 2; conv 50 3; maxpool 2; dense 100; relu; dense 10]` */
static int do_sequential(lc_call *c, lv_value **out, cl_err *err)
{
    const ps_node *list = c->node->nkid ? c->node->kid[0] : NULL;
    ev_ctx *E = c->ev;
    if (!list || list->kind != PN_MATRIX)
        return cl_err_set(err, CL_EINVAL,
                          "sequential needs a list of layers, e.g. "
                          "sequential [conv 25 3; maxpool 2; dense 10]");
    trn_layer layers[64];
    if (list->rows > 64) return cl_err_set(err, CL_EINVAL, "sequential: at most 64 layers");
    int at = 0;
    for (int r = 0; r < list->rows; r++) {
        int len = list->cols >= 0 ? list->cols : list->rowlen[r];
        const ps_node *w = list->kid[at];
        trn_layer_kind kind;
        int nargs;
        if (w->kind != PN_NAME || layer_kind(w->str, &kind, &nargs) < 0) {
            E->where.line = w->line;
            E->where.col = w->col;
            return cl_err_set(err, CL_ENAME,
                              "sequential: a layer is conv FILTERS SIZE, maxpool SIZE, dense N, "
                              "relu, flatten or dropout P");
        }
        if (len - 1 != nargs) {
            E->where.line = w->line;
            E->where.col = w->col;
            return cl_err_set(err, CL_EINVAL, "sequential: %s takes %d number%s, got %d", w->str,
                              nargs, nargs == 1 ? "" : "s", len - 1);
        }
        double a[2] = {0, 0};
        for (int j = 0; j < nargs; j++) {
            lv_value *v = ev_eval(E, list->kid[at + 1 + j]);
            if (!v) return -1;
            int okn = v->kind == LV_NUM;
            a[j] = okn ? v->num : 0;
            lv_unref(v);
            if (!okn || (kind != TRN_DROPOUT && (a[j] < 1 || a[j] != (int)a[j]))) {
                E->where.line = list->kid[at + 1 + j]->line;
                E->where.col = list->kid[at + 1 + j]->col;
                return cl_err_set(err, CL_ETYPE, "sequential: %s needs whole numbers 1 or more",
                                  w->str);
            }
        }
        layers[r].kind = kind;
        layers[r].n = kind == TRN_CONV || kind == TRN_DENSE ? (int)a[0] : 0;
        layers[r].k = kind == TRN_CONV ? (int)a[1] : kind == TRN_MAXPOOL ? (int)a[0] : 0;
        layers[r].p = kind == TRN_DROPOUT ? (float)a[0] : 0;
        at += len;
    }
    int ch = (int)lc_num(c, "channels", 1), size = (int)lc_num(c, "size", 28);
    net *m = trn_build_sequential("sequential", layers, list->rows, ch, size, size,
                                  ss_rand_u64(c->s), err);
    if (!m) return -1;
    /* `weights`: the same layers trained before and saved with `save n "f.safetensors"` */
    const char *weights = lc_text(c, "weights");
    if (weights) {
        if (net_load_weights_file(m, weights, err) < 0) {
            net_free(m);
            return lc_arg_error(c, "weights", err, err->code, "sequential: %s", err->msg);
        }
    }
    int64_t chw[3];
    net_input_shape(m, chw);
    char desc[600];
    snprintf(desc, sizeof desc,
             "model sequential: %lld parameters, input %lldx%lldx%lld, %d classes (%.500s)",
             (long long)net_param_count(m), (long long)chw[0], (long long)chw[1], (long long)chw[2],
             net_num_classes(m), weights ? weights : "untrained");
    lv_value *v = lv_model(m, free_net, desc);
    if (!v) return oom(err);
    le_set_layer_names(v, m);
    lv_unref(c->s->model);
    c->s->model = lv_ref(v);
    if (c->s->nlabels != net_num_classes(m)) ss_set_labels(c->s, NULL, 0);
    *out = v;
    return 0;
}

#define X_INPUT                                                                                    \
    {                                                                                              \
        "x", LA_IMAGE | LA_TENSOR | LA_NESTED, NULL, "an image (C,H,W) the model takes"            \
    }

/* clang-format off */
const lc_verb lc_model_verbs[] = {
    {"model", "models", "Loads a model: the lecture CNN or a torchvision architecture.", 1, 1,
     {{"name", LA_WORD | LA_STR, NULL, "fashion (the lecture CNN, trained), alexnet, vgg11..vgg19(_bn), resnet18/34/50"}},
     {{"weights", LA_STR | LA_PATH, NULL, "a torchvision checkpoint (.pth or .safetensors)"}},
     "The model becomes the current one: later commands use it. Without weights an ImageNet "
     "architecture has random weights (reproducible after `seed`).",
     "m = model fashion\nm = model resnet18 weights \"resnet18-f37072fd.pth\"", do_model},
    {"sequential", "models", "A CNN of your own, layer by layer (untrained: train it next).", 1, 3,
     {{"layers", LA_EXPR | LA_LAZY, NULL, "a list: conv FILTERS SIZE; maxpool SIZE; dense N; relu; flatten; dropout P"}},
     {{"channels", LA_NUM | LA_INT, "1", "colour channels of the input images"},
      {"size", LA_NUM | LA_INT, "28", "side of the (square) input images"},
      {"weights", LA_STR | LA_PATH, NULL, "load weights saved from the same layers (save n \"n.safetensors\")"}},
     "Layers are named conv1, pool1, dense1, ... as they come; the last dense gives the class scores.",
     "n = sequential [conv 25 3; maxpool 2; conv 50 3; maxpool 2; dense 100; relu; dense 10]\n"
     "train n on fashion epochs 1", do_sequential},
    {"layers", "models", "Lists a model's layers: name, type, output shape, parameters.", 1, 0,
     {{"m", LA_MODEL | LA_OPTIONAL, NULL, "a model (default: the current one)"}}, {{0}}, NULL,
     "layers m", do_layers},
    {"sample", "data", "One image of a dataset (Fashion-MNIST is built in).", 3, 0,
     {{"dataset", LA_WORD | LA_STR, NULL, "fashion, mnist, or a folder of IDX files"},
      {"split", LA_WORD | LA_STR, "test", "train or test"},
      {"index", LA_NUM | LA_INT, "0", "which image, from 0"}},
     {{0}}, NULL, "x = sample fashion test 17", do_sample},
    {"image", "data", "Reads a PNG or JPEG photo, optionally prepared for an ImageNet model.", 1, 1,
     {{"path", LA_STR | LA_PATH, NULL, "a .png or .jpg file"}},
     {{"preprocess", LA_WORD | LA_STR, "none", "imagenet (resize 256, centre-crop 224, ImageNet mean/std), half (resize 224, crop, mean/std 0.5) or none"}},
     NULL, "x = image \"bunny.jpg\" preprocess imagenet", do_image},
    {"predict", "models", "The model's most likely classes for an image.", 1, 1,
     {X_INPUT}, {{"top", LA_NUM | LA_INT, "5", "how many classes to list"}},
     "Probabilities are the softmax of the logits.", "predict x top 5", do_predict},
    {"top1", "models", "The model's predicted class (a number), e.g. for `expect`.", 1, 0,
     {X_INPUT}, {{0}}, NULL, "expect top1 x == 331", do_top1},
    {"train", "models", "Trains a model on a dataset (progress shown live; interruptible).", 1, 5,
     {{"m", LA_MODEL, NULL, "the model to train (changed in place)"}},
     {{"on", LA_WORD | LA_STR, "fashion", "the dataset: fashion, mnist or a folder"},
      {"epochs", LA_NUM | LA_INT, "1", "passes over the training images"},
      {"lr", LA_NUM, NULL, "learning rate (default 0.001, Adam)"},
      {"batch", LA_NUM | LA_INT, "64", "images per step"},
      {"limit", LA_NUM | LA_INT, "0", "train on the first N images only (0: all)"}},
     "An interrupt stops within one batch; the model keeps what it learnt so far.",
     "m = model fashion\ntrain m on fashion epochs 2", do_train},
    {"evaluate", "models", "Accuracy of a model on a dataset, and its confusion table.", 2, 2,
     {{"m", LA_MODEL, NULL, "the model"},
      {"split", LA_WORD | LA_STR | LA_OPTIONAL, "test", "train or test"}},
     {{"on", LA_WORD | LA_STR, "fashion", "the dataset"},
      {"limit", LA_NUM | LA_INT, "0", "the first N images only (0: all)"}},
     NULL, "evaluate m on fashion test", do_evaluate},
};
/* clang-format on */

const int lc_model_count = sizeof lc_model_verbs / sizeof *lc_model_verbs;
