/* train — loss, optimisers, the loop and evaluation, written to match PyTorch
 * step for step (see train.h). */
#include "engine/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/io/weights.h"
#include "engine/rng.h"

void trn_options_default(trn_options *o)
{
    memset(o, 0, sizeof *o);
    o->optimizer = TRN_ADAM;
    o->lr = 1e-3f;
    o->momentum = 0.9f;
    o->beta1 = 0.9f, o->beta2 = 0.999f, o->eps = 1e-8f;
    o->epochs = 1;
    o->batch = 64;
    o->shuffle = 1;
    o->schedule = TRN_LR_COSINE;
    o->step_epochs = 1;
    o->gamma = 0.1f;
}

float trn_lr_at(const trn_options *o, long t, long total, int epoch)
{
    switch (o->schedule) {
    case TRN_LR_STEP:
        return o->lr * powf(o->gamma, (float)(epoch / (o->step_epochs > 0 ? o->step_epochs : 1)));
    case TRN_LR_COSINE:
        if (total <= 0) return o->lr;
        return (float)(o->lr * 0.5 * (1.0 + cos(M_PI * (double)t / (double)total)));
    default:
        return o->lr;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- loss ---- */

int trn_cross_entropy(const tn_tensor *logits, const int *labels, tn_tensor *dlogits, double *loss,
                      int *correct, cl_err *err)
{
    if (logits->ndim != 2)
        return cl_err_set(err, CL_EINVAL, "cross-entropy needs [N, classes] scores");
    int64_t n = logits->shape[0], k = logits->shape[1];
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return cl_err_set(err, CL_EINVAL,
                              "label %d does not fit a model with %lld classes (0..%lld)",
                              labels[i], (long long)k, (long long)k - 1);
    if (dlogits && tn_resize(dlogits, 2, logits->shape, err)) return -1;
    double total = 0;
    int hits = 0;
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits->data + i * k;
        int best = 0;
        for (int64_t j = 1; j < k; j++)
            if (z[j] > z[best]) best = (int)j;
        hits += best == labels[i];
        double s = 0;
        for (int64_t j = 0; j < k; j++) s += exp((double)z[j] - z[best]);
        double lse = z[best] + log(s);
        total += lse - z[labels[i]];
        if (!dlogits) continue;
        float *d = dlogits->data + i * k;
        for (int64_t j = 0; j < k; j++)
            d[j] = (float)((exp((double)z[j] - lse) - (j == labels[i])) / (double)n);
    }
    if (loss) *loss = total / (double)n;
    if (correct) *correct = hits;
    return 0;
}

int trn_compute_grads(net *m, const tn_tensor *x, const int *labels, double *loss, int *correct,
                      cl_err *err)
{
    net_set_training(m, 1);
    if (net_param_tensors(m) > 0) {
        net_param p;
        if (net_param_get(m, 0, &p) || !p.grad)
            return cl_err_set(err, CL_ENOMEM, "out of memory for the gradients");
    }
    net_zero_grad(m);
    if (net_forward(m, x, err)) return -1;
    const tn_tensor *z = net_output(m);
    tn_tensor *dz = tn_new1(0, err);
    if (!dz) return -1;
    int rc = trn_cross_entropy(z, labels, dz, loss, correct, err);
    if (!rc) rc = net_backward(m, net_node_count(m) - 1, dz, NET_INPUT, NET_RELU_PLAIN, err);
    tn_free(dz);
    return rc;
}

/* ---- optimisers ---- */

struct trn_optim {
    net *m;
    trn_options o;
    int count;
    tn_tensor **s1, **s2; /* momentum buffer or Adam's m; Adam's v */
    long t;
};

void trn_optim_free(trn_optim *opt)
{
    if (!opt) return;
    for (int i = 0; i < opt->count; i++) {
        if (opt->s1) tn_free(opt->s1[i]);
        if (opt->s2) tn_free(opt->s2[i]);
    }
    free(opt->s1), free(opt->s2), free(opt);
}

trn_optim *trn_optim_new(net *m, const trn_options *o, cl_err *err)
{
    trn_optim *opt = calloc(1, sizeof *opt);
    if (!opt) goto oom;
    opt->m = m, opt->o = *o;
    opt->count = net_param_tensors(m);
    opt->s1 = calloc((size_t)opt->count + 1, sizeof *opt->s1);
    opt->s2 = calloc((size_t)opt->count + 1, sizeof *opt->s2);
    if (!opt->s1 || !opt->s2) goto oom;
    for (int i = 0; i < opt->count; i++) {
        net_param p;
        if (net_param_get(m, i, &p)) goto oom;
        opt->s1[i] = tn_new(p.value->ndim, p.value->shape, err);
        if (!opt->s1[i]) goto fail;
        if (o->optimizer == TRN_ADAM && !(opt->s2[i] = tn_new(p.value->ndim, p.value->shape, err)))
            goto fail;
    }
    return opt;
oom:
    cl_err_set(err, CL_ENOMEM, "out of memory for the optimiser");
fail:
    trn_optim_free(opt);
    return NULL;
}

static void sgd_update(const trn_options *o, long t, int64_t n, float *w, const float *g,
                       float *buf, float lr)
{
    for (int64_t j = 0; j < n; j++) {
        float d = g[j] + o->weight_decay * w[j];
        if (o->momentum != 0.0f) {
            buf[j] = t == 1 ? d : o->momentum * buf[j] + d;
            d = buf[j];
        }
        w[j] -= lr * d;
    }
}

static void adam_update(const trn_options *o, long t, int64_t n, float *w, const float *g,
                        float *mm, float *vv, float lr)
{
    const float b1 = o->beta1, b2 = o->beta2;
    const float bc1 = 1.0f - powf(b1, (float)t);
    const float bc2s = sqrtf(1.0f - powf(b2, (float)t));
    const float step = lr / bc1;
    for (int64_t j = 0; j < n; j++) {
        float d = g[j] + o->weight_decay * w[j];
        mm[j] = b1 * mm[j] + (1.0f - b1) * d;
        vv[j] = b2 * vv[j] + (1.0f - b2) * d * d;
        w[j] -= step * mm[j] / (sqrtf(vv[j]) / bc2s + o->eps);
    }
}

void trn_optim_step(trn_optim *opt, float lr)
{
    opt->t++;
    for (int i = 0; i < opt->count; i++) {
        net_param p;
        if (net_param_get(opt->m, i, &p) || !p.grad) continue;
        int64_t n = tn_numel(p.value);
        if (opt->o.optimizer == TRN_ADAM)
            adam_update(&opt->o, opt->t, n, p.value->data, p.grad->data, opt->s1[i]->data,
                        opt->s2[i]->data, lr);
        else
            sgd_update(&opt->o, opt->t, n, p.value->data, p.grad->data, opt->s1[i]->data, lr);
    }
}

/* ---- the loop ---- */

typedef struct fit_state {
    net *m;
    const ds_dataset *d;
    const trn_options *o;
    const cl_progress *p;
    trn_optim *opt;
    tn_tensor *x;
    int *labels;
    int64_t *perm, n;
    long total_batches, per_epoch;
    trn_stats *st;
    double t0, epoch_loss;
    int64_t epoch_images, epoch_correct;
} fit_state;

static void report(fit_state *s, int epoch, long b, const char *what, cl_err *err, int *rc)
{
    char text[160];
    double dt = now_s() - s->t0;
    double ips = dt > 0 ? (double)s->st->images / dt : 0;
    int n = snprintf(text, sizeof text, "epoch %d/%d  batch %ld/%ld", epoch + 1, s->o->epochs, b,
                     s->per_epoch);
    /* Loss and accuracy only once this epoch has seen images. */
    if (s->epoch_images && n > 0 && (size_t)n < sizeof text)
        snprintf(text + n, sizeof text - (size_t)n, "  loss %.4f  acc %.1f%%  %.0f img/s%s",
                 s->epoch_loss / (double)s->epoch_images,
                 100.0 * (double)s->epoch_correct / (double)s->epoch_images, ips, what);
    *rc = cl_progress_step(s->p, s->st->batches_done, s->total_batches, text, err);
}

static int run_batch(fit_state *s, int epoch, long b, cl_err *err)
{
    int64_t lo = (int64_t)b * s->o->batch;
    int64_t cnt = s->n - lo < s->o->batch ? s->n - lo : s->o->batch;
    if (ds_batch(s->d, s->perm + lo, cnt, s->x, s->labels, err)) return -1;
    double loss;
    int correct;
    if (trn_compute_grads(s->m, s->x, s->labels, &loss, &correct, err)) return -1;
    trn_optim_step(s->opt, trn_lr_at(s->o, s->st->batches_done, s->total_batches, epoch));
    s->st->batches_done++;
    s->st->images += cnt;
    s->epoch_loss += loss * (double)cnt;
    s->epoch_images += cnt, s->epoch_correct += correct;
    return 0;
}

static int run_epochs(fit_state *s, cl_err *err)
{
    for (int e = 0; e < s->o->epochs; e++) {
        if (s->o->shuffle)
            ds_permutation(s->perm, s->n, s->o->seed + (uint64_t)e);
        else
            for (int64_t i = 0; i < s->n; i++) s->perm[i] = i;
        s->epoch_loss = 0, s->epoch_images = s->epoch_correct = 0;
        for (long b = 0; b < s->per_epoch; b++) {
            int rc;
            /* Checked before each batch: an interrupt never leaves a half-updated net. */
            report(s, e, b, "", err, &rc);
            if (rc) return -1;
            if (run_batch(s, e, b, err)) return -1;
            s->st->loss = s->epoch_loss / (double)s->epoch_images;
            s->st->accuracy = (double)s->epoch_correct / (double)s->epoch_images;
        }
        s->st->epochs_done = e + 1;
    }
    int rc;
    report(s, s->o->epochs - 1, s->per_epoch, "  done", err, &rc);
    return 0;
}

static int check_fit(const net *m, const ds_dataset *d, const trn_options *o, cl_err *err)
{
    int64_t chw[3], dchw[3];
    net_input_shape(m, chw);
    ds_image_shape(d, dchw);
    if (chw[0] != dchw[0] || chw[1] != dchw[1] || chw[2] != dchw[2])
        return cl_err_set(err, CL_EINVAL,
                          "%s takes %lldx%lldx%lld images but %s has %lldx%lldx%lld", net_arch(m),
                          (long long)chw[0], (long long)chw[1], (long long)chw[2], ds_name(d),
                          (long long)dchw[0], (long long)dchw[1], (long long)dchw[2]);
    if (net_num_classes(m) < ds_num_classes(d))
        return cl_err_set(err, CL_EINVAL, "%s has %d classes but %s has %d", net_arch(m),
                          net_num_classes(m), ds_name(d), ds_num_classes(d));
    if (o->epochs < 1 || o->batch < 1 || o->batch > 65536 || !(o->lr > 0) || o->limit < 0)
        return cl_err_set(err, CL_EINVAL,
                          "training needs epochs >= 1, a batch of 1..65536 and lr > 0");
    if (net_param_tensors(m) == 0)
        return cl_err_set(err, CL_EINVAL, "%s has no weights to train", net_arch(m));
    return 0;
}

int trn_fit(net *m, const ds_dataset *d, const trn_options *o, const cl_progress *p,
            trn_stats *stats, cl_err *err)
{
    trn_stats local;
    fit_state s = {.m = m, .d = d, .o = o, .p = p, .st = stats ? stats : &local};
    memset(s.st, 0, sizeof *s.st);
    if (check_fit(m, d, o, err)) return -1;
    s.n = o->limit && o->limit < ds_count(d) ? o->limit : ds_count(d);
    s.per_epoch = (long)((s.n + o->batch - 1) / o->batch);
    s.total_batches = s.per_epoch * o->epochs;
    s.perm = malloc((size_t)s.n * sizeof *s.perm);
    s.labels = malloc((size_t)o->batch * sizeof *s.labels);
    s.x = tn_new1(0, err);
    int rc = -1;
    if (!s.perm || !s.labels)
        cl_err_set(err, CL_ENOMEM, "out of memory for training");
    else if (s.x && (s.opt = trn_optim_new(m, o, err))) {
        s.t0 = now_s();
        rc = run_epochs(&s, err);
    }
    s.st->seconds = now_s() - s.t0;
    s.st->images_per_s = s.st->seconds > 0 ? (double)s.st->images / s.st->seconds : 0;
    net_set_training(m, 0);
    trn_optim_free(s.opt);
    tn_free(s.x);
    free(s.perm), free(s.labels);
    return rc;
}

/* ---- evaluation ---- */

static void tally(trn_eval *out, const tn_tensor *z, const int *labels, int64_t n)
{
    int64_t k = z->shape[1];
    for (int64_t i = 0; i < n; i++) {
        const float *r = z->data + i * k;
        int best = 0;
        for (int64_t j = 1; j < k; j++)
            if (r[j] > r[best]) best = (int)j;
        out->correct += best == labels[i];
        if (labels[i] < out->classes && best < out->classes)
            out->confusion[labels[i] * out->classes + best]++;
    }
    out->count += n;
}

int trn_evaluate(net *m, const ds_dataset *d, int batch, int64_t limit, const cl_progress *p,
                 trn_eval *out, cl_err *err)
{
    memset(out, 0, sizeof *out);
    trn_options o;
    trn_options_default(&o);
    if (check_fit(m, d, &o, err)) return -1;
    if (batch <= 0) batch = 256;
    int64_t n = limit > 0 && limit < ds_count(d) ? limit : ds_count(d);
    int classes = net_num_classes(m);
    out->classes = classes < TRN_MAX_CLASSES ? classes : TRN_MAX_CLASSES;
    int64_t *idx = malloc((size_t)batch * sizeof *idx);
    int *labels = malloc((size_t)batch * sizeof *labels);
    tn_tensor *x = tn_new1(0, err);
    int rc = !idx || !labels ? cl_err_set(err, CL_ENOMEM, "out of memory for evaluation") : 0;
    if (!x) rc = -1;
    net_set_training(m, 0);
    double loss_sum = 0;
    long steps = (long)((n + batch - 1) / batch);
    for (long b = 0; !rc && b < steps; b++) {
        int64_t lo = (int64_t)b * batch, cnt = n - lo < batch ? n - lo : batch;
        char text[96];
        snprintf(text, sizeof text, "evaluating %lld/%lld images", (long long)lo, (long long)n);
        if ((rc = cl_progress_step(p, b, steps, text, err))) break;
        for (int64_t i = 0; i < cnt; i++) idx[i] = lo + i;
        double loss;
        rc = ds_batch(d, idx, cnt, x, labels, err);
        if (!rc) rc = net_forward(m, x, err);
        if (!rc) rc = trn_cross_entropy(net_output(m), labels, NULL, &loss, NULL, err);
        if (rc) break;
        tally(out, net_output(m), labels, cnt);
        loss_sum += loss * (double)cnt;
    }
    if (out->count) {
        out->accuracy = (double)out->correct / (double)out->count;
        out->loss = loss_sum / (double)out->count;
    }
    free(idx), free(labels), tn_free(x);
    return rc;
}

/* ---- user-defined CNNs ---- */

typedef struct seq_state {
    net *m;
    int x;         /* the last node */
    int ndim;      /* 4 (maps) or 2 (features) */
    int64_t s[3];  /* C, H, W, or features in s[0] */
    int counts[6]; /* per kind, for the names */
    int flattened;
} seq_state;

static const char *const seq_prefix[] = {"conv", "pool", "flatten", "dense", "relu", "dropout"};

static void seq_name(seq_state *st, trn_layer_kind k, char *buf, size_t n)
{
    int c = ++st->counts[k];
    if (k == TRN_FLATTEN && c == 1)
        snprintf(buf, n, "flatten");
    else
        snprintf(buf, n, "%s%d", seq_prefix[k], c);
}

static int seq_flatten(seq_state *st)
{
    char name[32];
    seq_name(st, TRN_FLATTEN, name, sizeof name);
    st->x = net_add_flatten(st->m, name, st->x);
    st->s[0] = st->s[0] * st->s[1] * st->s[2];
    st->ndim = 2;
    return 0;
}

static int seq_spatial(seq_state *st, const trn_layer *l, const char *name, cl_err *err)
{
    if (st->ndim != 4)
        return cl_err_set(err, CL_EINVAL,
                          "%s comes after a dense or flatten layer: conv and "
                          "maxpool need image-shaped input",
                          name);
    if (l->k < 1 || l->k > st->s[1] || l->k > st->s[2])
        return cl_err_set(err, CL_EINVAL,
                          "%s needs at least %dx%d pixels but gets %lldx%lld (too many "
                          "pooling layers, or a window too big?)",
                          name, l->k, l->k, (long long)st->s[1], (long long)st->s[2]);
    if (l->kind == TRN_CONV) {
        if (l->n < 1 || l->n > 4096)
            return cl_err_set(err, CL_EINVAL, "%s: the number of filters must be 1..4096", name);
        st->x = net_add_conv(st->m, name, st->x, (int)st->s[0], l->n, l->k, 1, 0, 1);
        st->s[0] = l->n, st->s[1] -= l->k - 1, st->s[2] -= l->k - 1;
    } else {
        st->x = net_add_maxpool(st->m, name, st->x, l->k, l->k, 0);
        st->s[1] /= l->k, st->s[2] /= l->k;
    }
    return 0;
}

static int seq_layer(seq_state *st, const trn_layer *l, cl_err *err)
{
    char name[32];
    if (l->kind == TRN_DENSE && st->ndim == 4) seq_flatten(st);
    if (l->kind == TRN_FLATTEN && st->ndim == 2) return 0; /* already flat */
    if (l->kind == TRN_FLATTEN) return seq_flatten(st);
    seq_name(st, l->kind, name, sizeof name);
    switch (l->kind) {
    case TRN_CONV:
    case TRN_MAXPOOL:
        return seq_spatial(st, l, name, err);
    case TRN_DENSE:
        if (l->n < 1 || l->n > 65536)
            return cl_err_set(err, CL_EINVAL, "%s: the number of outputs must be 1..65536", name);
        if (st->s[0] > ((int64_t)1 << 28) / l->n)
            return cl_err_set(err, CL_EINVAL, "%s would have %lld x %d weights: too many", name,
                              (long long)st->s[0], l->n);
        st->x = net_add_linear(st->m, name, st->x, (int)st->s[0], l->n, 1);
        st->s[0] = l->n;
        return 0;
    case TRN_RELU:
        st->x = net_add_relu(st->m, name, st->x);
        return 0;
    case TRN_DROPOUT:
        if (!(l->p >= 0.0f && l->p < 1.0f))
            return cl_err_set(err, CL_EINVAL, "%s: the probability must be in [0, 1)", name);
        st->x = net_add_dropout_p(st->m, name, st->x, l->p);
        return 0;
    default:
        return cl_err_set(err, CL_EINVAL, "unknown layer kind %d", (int)l->kind);
    }
}

net *trn_build_sequential(const char *arch, const trn_layer *layers, int count, int c, int h, int w,
                          uint64_t seed, cl_err *err)
{
    int last = count - 1;
    while (last >= 0 && layers[last].kind == TRN_DROPOUT) last--;
    if (count < 1 || last < 0 || layers[last].kind != TRN_DENSE) {
        cl_err_set(err, CL_EINVAL,
                   "a sequential model must end with `dense N`, N being the number of classes");
        return NULL;
    }
    if (c < 1 || h < 1 || w < 1) {
        cl_err_set(err, CL_EINVAL, "the input shape must be positive");
        return NULL;
    }
    net *m = net_new(arch, c, h, w, layers[last].n, err);
    if (!m) return NULL;
    seq_state st = {.m = m, .x = NET_INPUT, .ndim = 4, .s = {c, h, w}};
    for (int i = 0; i < count; i++)
        if (seq_layer(&st, &layers[i], err)) {
            net_free(m);
            return NULL;
        }
    if (net_finish(m, seed, err)) {
        net_free(m);
        return NULL;
    }
    return m;
}


void trn_init_params(net *m, uint64_t seed)
{
    uint64_t s = seed;
    double bound = 0;
    for (int i = 0; i < net_param_tensors(m); i++) {
        net_param p;
        if (net_param_get(m, i, &p)) continue;
        /* A weight sets the bound for itself and the bias after it. */
        if (p.value->ndim > 1) bound = 1.0 / sqrt((double)(tn_numel(p.value) / p.value->shape[0]));
        for (int64_t j = 0; j < tn_numel(p.value); j++) {
            double u = (double)(rng_splitmix64(&s) >> 11) / 9007199254740992.0;
            p.value->data[j] = (float)((2.0 * u - 1.0) * bound);
        }
    }
}

int trn_save(net *m, const char *path, cl_err *err)
{
    wt_dict *d = wt_new(err);
    if (!d) return -1;
    for (int i = 0; i < net_param_tensors(m); i++) {
        net_param p;
        tn_tensor *t;
        if (net_param_get(m, i, &p) || !(t = tn_clone(p.value, err)) || wt_add(d, p.name, t, err)) {
            wt_free(d);
            return -1;
        }
    }
    int rc = wt_save_safetensors(d, path, err);
    wt_free(d);
    return rc;
}
