/* net — named nodes in topological order; forward keeps every output, backward
 * runs from any node to any node.  Buffers live in the nodes and are resized
 * (not reallocated) per pass, so repeated passes allocate nothing. */
#include "engine/net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/weights.h"
#include "engine/ops/ops.h"
#include "engine/progress.h"
#include "engine/rng.h"
#include "engine/threads.h"

typedef enum {
    NK_CONV,
    NK_MAXPOOL,
    NK_AVGPOOL,
    NK_ADAPTIVE,
    NK_LINEAR,
    NK_RELU,
    NK_DROPOUT,
    NK_FLATTEN,
    NK_ADD,
    NK_SOFTMAX,
    NK_LOGSOFTMAX,
} net_kind;

static const char *const kind_names[] = {
    "conv2d",  "maxpool2d", "avgpool2d", "adaptive_avgpool2d", "linear", "relu", "dropout",
    "flatten", "add",       "softmax",   "log_softmax",
};

typedef struct node {
    char *name;
    net_kind kind;
    int in[2];
    int cin, cout, k, stride, pad, oh, ow, bias;
    char *bn;            /* the batch norm folded into this conv, or NULL */
    char *wname, *bname; /* "NAME.weight", "NAME.bias" */
    tn_tensor *w, *b;    /* b exists for every conv and linear (zero without bias) */
    tn_tensor *gw, *gb;  /* weight gradients, when training */
    tn_tensor *out, *grad;
    int32_t *arg; /* max pool winners; dropout's kept units (training) */
    float p;      /* dropout probability */
    int64_t arg_cap;
    float *wino;        /* the conv's weights for Winograd (op_wino_weights), or NULL */
    int wino_ready;     /* wino matches w (cleared whenever w may have changed) */
    tn_tensor *base;    /* net_keep_base: this node's output for the base image */
    int64_t row0, row1; /* net_forward_rows: out holds only these rows of the output */
    int ndim0;          /* output shape for the default input, batch 1 */
    int64_t shape0[4];
    unsigned out_gen, grad_gen;
    unsigned arg_gen; /* max pool: the forward pass whose winners arg holds */
} node;

typedef struct alias {
    char *name;
    int node;
} alias;

struct net {
    char *arch;
    int64_t chw[3];
    int classes;
    node *nodes;
    int count, cap;
    alias *aliases;
    int naliases, acap;
    tn_tensor *input, *in_grad;
    float *ws;
    size_t ws_cap;
    tn_tensor *rows_tmp[2];    /* net_forward_rows: the input rows a node reads */
    int base_ready, rows_pass; /* net_keep_base done; the last pass was net_forward_rows */
    int training;
    int params_ready; /* weights initialised or loaded (drawn lazily: a model
                       * built only to load a file skips 100M random draws) */
    uint64_t seed;
    uint64_t drop_rng; /* dropout masks while training (splitmix64 state) */
    unsigned fwd_gen, bwd_gen, in_grad_gen;
    double *profile_ms; /* net_set_profile: the caller's per-node times, or NULL */
    cl_err build_err;   /* the first failure of a builder call */
};

static void ensure_params(net *m);

/* ---- construction ---- */

static int build_fail(net *m, cl_code code, const char *fmt, const char *name)
{
    if (m->build_err.code == CL_OK) cl_err_set(&m->build_err, code, fmt, name);
    return -1;
}

net *net_new(const char *arch, int c, int h, int w, int num_classes, cl_err *err)
{
    net *m = calloc(1, sizeof *m);
    if (!m || !(m->arch = strdup(arch))) {
        free(m);
        cl_err_set(err, CL_ENOMEM, "out of memory building a model");
        return NULL;
    }
    m->chw[0] = c, m->chw[1] = h, m->chw[2] = w;
    m->classes = num_classes;
    return m;
}

static int valid_input(const net *m, int in)
{
    return in >= NET_INPUT && in < m->count;
}

static node *new_node(net *m, const char *name, net_kind kind, int in0, int in1)
{
    if (m->build_err.code != CL_OK) return NULL;
    if (!valid_input(m, in0) || (kind == NK_ADD && !valid_input(m, in1))) {
        build_fail(m, CL_EINVAL, "node '%s' reads a node that does not exist", name);
        return NULL;
    }
    if (m->count == m->cap) {
        int cap = m->cap ? 2 * m->cap : 64;
        node *nn = realloc(m->nodes, (size_t)cap * sizeof *nn);
        if (!nn) {
            build_fail(m, CL_ENOMEM, "out of memory adding node '%s'", name);
            return NULL;
        }
        m->nodes = nn, m->cap = cap;
    }
    node *n = &m->nodes[m->count];
    memset(n, 0, sizeof *n);
    n->name = strdup(name);
    n->out = tn_new1(0, NULL);
    n->grad = tn_new1(0, NULL);
    if (!n->name || !n->out || !n->grad) {
        free(n->name), tn_free(n->out), tn_free(n->grad);
        build_fail(m, CL_ENOMEM, "out of memory adding node '%s'", name);
        return NULL;
    }
    n->kind = kind, n->in[0] = in0, n->in[1] = in1;
    m->count++;
    return n;
}

static int add_params(net *m, node *n, const int64_t *wshape, int wdim, int64_t bn)
{
    size_t len = strlen(n->name) + 8;
    double w = 1;
    for (int d = 0; d < wdim; d++) w *= (double)wshape[d];
    char what[160];
    snprintf(what, sizeof what, "the size of the model's parameters up to '%s'", n->name);
    double bytes = ((double)net_param_count(m) + w + (double)bn) * sizeof(float);
    if (m->build_err.code == CL_OK && lim_check(LIM_MODEL_BYTES, bytes, what, &m->build_err))
        return -1;
    n->w = tn_new(wdim, wshape, NULL);
    n->b = tn_new1(bn, NULL);
    n->wname = malloc(len), n->bname = malloc(len);
    if (!n->w || !n->b || !n->wname || !n->bname)
        return build_fail(m, CL_ENOMEM, "out of memory for the weights of '%s'", n->name);
    snprintf(n->wname, len, "%s.weight", n->name);
    snprintf(n->bname, len, "%s.bias", n->name);
    return 0;
}

int net_add_conv(net *m, const char *name, int in, int cin, int cout, int k, int stride, int pad,
                 int bias)
{
    node *n = new_node(m, name, NK_CONV, in, -1);
    if (!n) return -1;
    n->cin = cin, n->cout = cout, n->k = k, n->stride = stride, n->pad = pad, n->bias = bias;
    if (cin <= 0 || cout <= 0 || k <= 0 || stride <= 0 || pad < 0)
        return build_fail(m, CL_EINVAL, "conv '%s' has a bad shape", name);
    int64_t ws[4] = {cout, cin, k, k};
    if (add_params(m, n, ws, 4, cout)) return -1;
    return m->count - 1;
}

int net_add_bn(net *m, const char *name, int conv)
{
    if (m->build_err.code != CL_OK) return -1;
    if (conv < 0 || conv >= m->count || m->nodes[conv].kind != NK_CONV || m->nodes[conv].bn)
        return build_fail(m, CL_EINVAL, "batch norm '%s' must follow a conv", name);
    if (!(m->nodes[conv].bn = strdup(name)))
        return build_fail(m, CL_ENOMEM, "out of memory adding '%s'", name);
    return net_alias(m, name, conv) < 0 ? -1 : conv;
}

static int add_simple(net *m, const char *name, net_kind kind, int in)
{
    return new_node(m, name, kind, in, -1) ? m->count - 1 : -1;
}

int net_add_relu(net *m, const char *name, int in)
{
    return add_simple(m, name, NK_RELU, in);
}

int net_add_dropout(net *m, const char *name, int in)
{
    return net_add_dropout_p(m, name, in, 0.5f);
}

int net_add_dropout_p(net *m, const char *name, int in, float p)
{
    int i = add_simple(m, name, NK_DROPOUT, in);
    if (i >= 0) m->nodes[i].p = p;
    return i;
}

int net_add_flatten(net *m, const char *name, int in)
{
    return add_simple(m, name, NK_FLATTEN, in);
}

int net_add_softmax(net *m, const char *name, int in, int log_softmax)
{
    return add_simple(m, name, log_softmax ? NK_LOGSOFTMAX : NK_SOFTMAX, in);
}

static int add_pool(net *m, const char *name, net_kind kind, int in, int k, int stride, int pad)
{
    node *n = new_node(m, name, kind, in, -1);
    if (!n) return -1;
    if (k <= 0 || stride <= 0 || pad < 0 || 2 * pad > k)
        return build_fail(m, CL_EINVAL, "pool '%s' has a bad window", name);
    n->k = k, n->stride = stride, n->pad = pad;
    return m->count - 1;
}

int net_add_maxpool(net *m, const char *name, int in, int k, int stride, int pad)
{
    return add_pool(m, name, NK_MAXPOOL, in, k, stride, pad);
}

int net_add_avgpool(net *m, const char *name, int in, int k, int stride, int pad)
{
    return add_pool(m, name, NK_AVGPOOL, in, k, stride, pad);
}

int net_add_adaptive_avgpool(net *m, const char *name, int in, int oh, int ow)
{
    node *n = new_node(m, name, NK_ADAPTIVE, in, -1);
    if (!n) return -1;
    if (oh <= 0 || ow <= 0) return build_fail(m, CL_EINVAL, "pool '%s' has a bad size", name);
    n->oh = oh, n->ow = ow;
    return m->count - 1;
}

int net_add_linear(net *m, const char *name, int in, int nin, int nout, int bias)
{
    node *n = new_node(m, name, NK_LINEAR, in, -1);
    if (!n) return -1;
    n->cin = nin, n->cout = nout, n->bias = bias;
    if (nin <= 0 || nout <= 0) return build_fail(m, CL_EINVAL, "linear '%s' has a bad shape", name);
    int64_t ws[2] = {nout, nin};
    if (add_params(m, n, ws, 2, nout)) return -1;
    return m->count - 1;
}

int net_add_add(net *m, const char *name, int a, int b)
{
    return new_node(m, name, NK_ADD, a, b) ? m->count - 1 : -1;
}

int net_alias(net *m, const char *name, int node_index)
{
    if (m->build_err.code != CL_OK) return -1;
    if (node_index < 0 || node_index >= m->count)
        return build_fail(m, CL_EINVAL, "alias '%s' names no node", name);
    if (m->naliases == m->acap) {
        int cap = m->acap ? 2 * m->acap : 32;
        alias *na = realloc(m->aliases, (size_t)cap * sizeof *na);
        if (!na) return build_fail(m, CL_ENOMEM, "out of memory adding alias '%s'", name);
        m->aliases = na, m->acap = cap;
    }
    char *copy = strdup(name);
    if (!copy) return build_fail(m, CL_ENOMEM, "out of memory adding alias '%s'", name);
    m->aliases[m->naliases].name = copy;
    m->aliases[m->naliases].node = node_index;
    m->naliases++;
    return node_index;
}

/* ---- shapes ---- */

static const tn_tensor *input_of(const net *m, int j)
{
    return j < 0 ? m->input : m->nodes[j].out;
}

/* The output shape of node i given its input shape(s); an error a student can
 * act on when the input does not fit. */
static int out_shape(const net *m, int i, int ndim, const int64_t *s, const int64_t *s2, int *ondim,
                     int64_t *o, cl_err *err)
{
    const node *n = &m->nodes[i];
    char buf[96];
    int spatial = n->kind == NK_CONV || n->kind == NK_MAXPOOL || n->kind == NK_AVGPOOL ||
                  n->kind == NK_ADAPTIVE;
    if (spatial && ndim != 4)
        return cl_err_set(err, CL_EINVAL, "layer '%s' needs a 4-d input, got %s", n->name,
                          tn_shape_str_raw(ndim, s, buf, sizeof buf));
    *ondim = ndim;
    for (int d = 0; d < ndim; d++) o[d] = s[d];
    switch (n->kind) {
    case NK_CONV:
        if (s[1] != n->cin)
            return cl_err_set(err, CL_EINVAL, "layer '%s' takes %d channels, got %s", n->name,
                              n->cin, tn_shape_str_raw(ndim, s, buf, sizeof buf));
        o[1] = n->cout;
        /* fall through */
    case NK_MAXPOOL:
    case NK_AVGPOOL:
        o[2] = op_conv_out(s[2], n->k, n->stride, n->pad);
        o[3] = op_conv_out(s[3], n->k, n->stride, n->pad);
        if (o[2] <= 0 || o[3] <= 0)
            return cl_err_set(err, CL_EINVAL,
                              "the input is too small for %s: layer '%s' gets %lldx%lld pixels "
                              "and needs at least %dx%d",
                              m->arch, n->name, (long long)s[2], (long long)s[3], n->k, n->k);
        return 0;
    case NK_ADAPTIVE:
        o[2] = n->oh, o[3] = n->ow;
        return 0;
    case NK_FLATTEN:
        *ondim = 2;
        for (int d = 2; d < ndim; d++) o[1] *= s[d];
        return 0;
    case NK_LINEAR:
        if (ndim != 2 || s[1] != n->cin)
            return cl_err_set(err, CL_EINVAL,
                              "layer '%s' takes %d features, got %s (is the input image the "
                              "size %s was built for, %lldx%lld?)",
                              n->name, n->cin, tn_shape_str_raw(ndim, s, buf, sizeof buf), m->arch,
                              (long long)m->chw[1], (long long)m->chw[2]);
        o[1] = n->cout;
        return 0;
    case NK_SOFTMAX:
    case NK_LOGSOFTMAX:
        if (ndim != 2) return cl_err_set(err, CL_EINVAL, "layer '%s' needs [N, K] scores", n->name);
        return 0;
    case NK_ADD:
        for (int d = 0; d < ndim; d++)
            if (s[d] != s2[d])
                return cl_err_set(err, CL_EINVAL, "layer '%s' adds tensors of different shapes",
                                  n->name);
        return 0;
    default:
        return 0;
    }
}

static int node_out_shape(const net *m, int i, int *ondim, int64_t *o, cl_err *err)
{
    const node *n = &m->nodes[i];
    const tn_tensor *a = input_of(m, n->in[0]);
    const tn_tensor *b = n->kind == NK_ADD ? input_of(m, n->in[1]) : a;
    if (n->kind == NK_ADD && a->ndim != b->ndim)
        return cl_err_set(err, CL_EINVAL, "layer '%s' adds tensors of different shapes", n->name);
    return out_shape(m, i, a->ndim, a->shape, b->shape, ondim, o, err);
}

/* ---- Winograd cache ---- */

/* 3x3 stride-1 convs whose output (over the batch) is at least this many
 * pixels run by Winograd: below it (ResNet's 7x7 layer4 for one image) the
 * transformed weights, 16/9 the size, cost more memory traffic than the
 * multiplies they save; a batch (occlusion's) reuses them enough. */
#define NET_WINO_MIN_PIXELS 196
/* ... and whose input has at least this many channels: with few (the lecture
 * CNN's 1 and 25, VGG's RGB input) each of the 16 products is a thin GEMM that
 * gains nothing over im2col, and im2col's rounding stays closer to PyTorch's,
 * which gradient ascent with Adam amplifies (it steps a full lr on a gradient
 * of 1e-9 as on one of 1). */
#define NET_WINO_MIN_CHANNELS 32

/* For the conv node n on input x [N, C, h, w]. */
static int wino_used(const node *n, const tn_tensor *x)
{
    op_conv c = {n->cin, n->cout, n->k, n->stride, n->pad};
    if (n->kind != NK_CONV || !op_wino_applies(&c) || n->cin < NET_WINO_MIN_CHANNELS) return 0;
    int64_t px = op_conv_out(x->shape[2], 3, 1, n->pad) * op_conv_out(x->shape[3], 3, 1, n->pad);
    return px * x->shape[0] >= NET_WINO_MIN_PIXELS;
}

static void wino_invalidate(net *m)
{
    for (int i = 0; i < m->count; i++) m->nodes[i].wino_ready = 0;
}

/* Transforms the weights of the convs that use Winograd for this input, once
 * per change of weights (every pass while training: the optimiser writes the
 * weights in place).  Without memory for it a conv falls back to im2col. */
static void wino_prepare_node(const net *m, node *n, const tn_tensor *x)
{
    if (!wino_used(n, x)) return;
    op_conv c = {n->cin, n->cout, n->k, n->stride, n->pad};
    if (!n->wino && !(n->wino = tn_alloc(op_wino_weights_floats(&c) * sizeof(float)))) return;
    if (n->wino_ready && !m->training) return;
    op_wino_weights(&c, n->w->data, n->wino);
    n->wino_ready = 1;
}

static void wino_prepare(net *m)
{
    for (int i = 0; i < m->count; i++)
        wino_prepare_node(m, &m->nodes[i], input_of(m, m->nodes[i].in[0]));
}

static int wino_active(const node *n, const tn_tensor *x)
{
    return n->wino && n->wino_ready && wino_used(n, x);
}

/* Makes every node's output the right size for the current input, and the
 * scratch buffers big enough. */
static int prepare_buffers(net *m, cl_err *err)
{
    size_t ws = 0;
    for (int i = 0; i < m->count; i++) {
        node *n = &m->nodes[i];
        int ndim;
        int64_t o[4];
        if (node_out_shape(m, i, &ndim, o, err)) return -1;
        if (tn_resize(n->out, ndim, o, err)) return -1;
        if (n->kind == NK_CONV) {
            op_conv c = {n->cin, n->cout, n->k, n->stride, n->pad};
            const tn_tensor *x = input_of(m, n->in[0]);
            size_t need = op_conv2d_workspace(&c, x->shape[2], x->shape[3]);
            if (need > ws) ws = need;
            need = wino_used(n, x) ? op_wino_workspace(&c, x->shape[2], x->shape[3]) : 0;
            if (need > ws) ws = need;
        }
        if ((n->kind == NK_MAXPOOL || n->kind == NK_DROPOUT) && tn_numel(n->out) > n->arg_cap) {
            tn_dealloc(n->arg);
            n->arg_cap = tn_numel(n->out);
            if (!(n->arg = tn_alloc((size_t)n->arg_cap * sizeof *n->arg))) {
                n->arg_cap = 0;
                return cl_err_set(err, CL_ENOMEM, "out of memory for layer '%s'", n->name);
            }
        }
    }
    if (ws > m->ws_cap) {
        tn_dealloc(m->ws);
        m->ws_cap = 0;
        if (!(m->ws = tn_alloc(ws * sizeof *m->ws)))
            return cl_err_set(err, CL_ENOMEM, "out of memory for the conv scratch buffer");
        m->ws_cap = ws;
    }
    return 0;
}

/* ---- forward ---- */

/* Training-time dropout, as PyTorch: zero each unit with probability p and
 * scale the kept ones by 1/(1-p); the mask is kept for backward. */
static void dropout_forward(net *m, node *n, int64_t cnt, const float *x, float *y)
{
    float scale = 1.0f / (1.0f - n->p);
    uint64_t cut = (uint64_t)((double)n->p * 18446744073709551616.0);
    for (int64_t i = 0; i < cnt; i++) {
        n->arg[i] = rng_splitmix64(&m->drop_rng) >= cut;
        y[i] = n->arg[i] ? x[i] * scale : 0.0f;
    }
}

static void node_forward(net *m, node *n)
{
    const tn_tensor *x = input_of(m, n->in[0]);
    float *y = n->out->data;
    int64_t cnt = tn_numel(x);
    switch (n->kind) {
    case NK_CONV: {
        op_conv c = {n->cin, n->cout, n->k, n->stride, n->pad};
        if (wino_active(n, x))
            op_wino_forward(&c, x->shape[0], x->shape[2], x->shape[3], x->data, n->wino, n->b->data,
                            y, m->ws);
        else
            op_conv2d_forward(&c, x->shape[0], x->shape[2], x->shape[3], x->data, n->w->data,
                              n->b->data, y, m->ws);
        break;
    }
    case NK_MAXPOOL: {
        /* The winners only for a backward pass: training always has one;
         * otherwise maxpool_switches finds them if a backward comes (Grad-CAM
         * at a later layer, or a plain forward, never asks). */
        op_pool p = {n->k, n->stride, n->pad};
        int32_t *arg = m->training ? n->arg : NULL;
        op_maxpool_forward(&p, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], x->data, y,
                           arg);
        n->arg_gen = arg ? m->fwd_gen : 0;
        break;
    }
    case NK_AVGPOOL: {
        op_pool p = {n->k, n->stride, n->pad};
        op_avgpool_forward(&p, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], x->data, y);
        break;
    }
    case NK_ADAPTIVE:
        op_adaptive_avgpool_forward(x->shape[0] * x->shape[1], x->shape[2], x->shape[3], n->oh,
                                    n->ow, x->data, y);
        break;
    case NK_LINEAR:
        op_linear_forward(x->shape[0], n->cin, n->cout, x->data, n->w->data, n->b->data, y);
        break;
    case NK_RELU:
        op_relu_forward(cnt, x->data, y);
        break;
    case NK_ADD:
        op_add_forward(cnt, x->data, input_of(m, n->in[1])->data, y);
        break;
    case NK_SOFTMAX:
        op_softmax_forward(x->shape[0], x->shape[1], x->data, y);
        break;
    case NK_LOGSOFTMAX:
        op_log_softmax_forward(x->shape[0], x->shape[1], x->data, y);
        break;
    case NK_DROPOUT:
        if (m->training && n->p > 0.0f)
            dropout_forward(m, n, cnt, x->data, y);
        else
            op_copy_forward(cnt, x->data, y);
        break;
    default:
        op_copy_forward(cnt, x->data, y);
        break;
    }
}

int net_forward(net *m, const tn_tensor *x, cl_err *err)
{
    return net_forward_upto(m, x, m->count - 1, err);
}

int net_forward_upto(net *m, const tn_tensor *x, int last, cl_err *err)
{
    char buf[96];
    if (last < 0 || last >= m->count)
        return cl_err_set(err, CL_EINVAL, "no node %d in %s (it has %d)", last, m->arch, m->count);
    if (x->ndim != 4 || x->shape[1] != m->chw[0] || x->shape[0] < 1)
        return cl_err_set(err, CL_EINVAL, "%s takes [N, %lld, H, W] images, got a %s tensor",
                          m->arch, (long long)m->chw[0], tn_shape_str(x, buf, sizeof buf));
    if (!tn_is_contiguous(x)) return cl_err_set(err, CL_EINVAL, "the input must be contiguous");
    if (!m->input && !(m->input = tn_new1(0, err))) return -1;
    if (tn_resize(m->input, 4, x->shape, err) || tn_copy(m->input, x, err)) return -1;
    m->fwd_gen++, m->bwd_gen++; /* old gradients belong to the old input */
    m->rows_pass = 0;
    if (prepare_buffers(m, err)) return -1;
    ensure_params(m);
    wino_prepare(m);
    /* Nodes are in topological order, so 0..last holds all that `last` needs. */
    for (int i = 0; i <= last; i++) {
        double t0 = m->profile_ms ? 1e3 * cl_progress_now() : 0.0;
        node_forward(m, &m->nodes[i]);
        m->nodes[i].out_gen = m->fwd_gen;
        if (m->profile_ms) m->profile_ms[i] += 1e3 * cl_progress_now() - t0;
    }
    return 0;
}

void net_set_profile(net *m, double *ms)
{
    m->profile_ms = ms;
}

/* ---- backward ---- */

/* The winners of max-pool node n for the current forward pass, found now if
 * that pass kept only the values: the pass again over the same input gives
 * the same values (rewritten in place) and, this time, their positions. */
static void maxpool_switches(net *m, node *n)
{
    if (n->arg_gen == m->fwd_gen) return;
    const tn_tensor *x = input_of(m, n->in[0]);
    op_pool p = {n->k, n->stride, n->pad};
    op_maxpool_forward(&p, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], x->data,
                       n->out->data, n->arg);
    n->arg_gen = m->fwd_gen;
}

static op_relu_rule relu_rule(net_relu_rule r)
{
    return r == NET_RELU_GUIDED   ? OP_RELU_GUIDED
           : r == NET_RELU_DECONV ? OP_RELU_DECONV
                                  : OP_RELU_PLAIN;
}

/* Points *dx at the gradient buffer of input j if backward should reach it
 * (j >= to), sized like j's output, else at NULL; *acc says whether the buffer
 * already holds a partial sum from another consumer. */
static int grad_target(net *m, int j, int to, float **dx, int *acc, cl_err *err)
{
    *dx = NULL;
    if (j < to) return 0;
    tn_tensor *g;
    unsigned *gen;
    if (j < 0) {
        if (!m->in_grad && !(m->in_grad = tn_new1(0, err))) return -1;
        g = m->in_grad, gen = &m->in_grad_gen;
        if (tn_resize(g, m->input->ndim, m->input->shape, err)) return -1;
    } else {
        g = m->nodes[j].grad, gen = &m->nodes[j].grad_gen;
        if (tn_resize(g, m->nodes[j].out->ndim, m->nodes[j].out->shape, err)) return -1;
    }
    *acc = *gen == m->bwd_gen;
    *gen = m->bwd_gen;
    *dx = g->data;
    return 0;
}

static int node_backward(net *m, node *n, int to, op_relu_rule rule, cl_err *err)
{
    const tn_tensor *x = input_of(m, n->in[0]);
    const float *dy = n->grad->data;
    int64_t cnt = tn_numel(x);
    int acc = 0;
    float *dx, *dx2;
    if (grad_target(m, n->in[0], to, &dx, &acc, err)) return -1;
    int train = m->training && n->gw;
    switch (n->kind) {
    case NK_CONV: {
        op_conv c = {n->cin, n->cout, n->k, n->stride, n->pad};
        if (dx && wino_active(n, x)) {
            /* The weight gradient (training) still takes the im2col path. */
            op_wino_backward_input(&c, x->shape[0], x->shape[2], x->shape[3], n->wino, dy, dx, acc,
                                   m->ws);
            if (train)
                op_conv2d_backward(&c, x->shape[0], x->shape[2], x->shape[3], x->data, n->w->data,
                                   dy, NULL, 0, n->gw->data, n->gb->data, m->ws);
        } else if (dx || train) {
            op_conv2d_backward(&c, x->shape[0], x->shape[2], x->shape[3], x->data, n->w->data, dy,
                               dx, acc, train ? n->gw->data : NULL, train ? n->gb->data : NULL,
                               m->ws);
        }
        break;
    }
    case NK_LINEAR:
        if (dx || train)
            op_linear_backward(x->shape[0], n->cin, n->cout, x->data, n->w->data, dy, dx, acc,
                               train ? n->gw->data : NULL, train ? n->gb->data : NULL);
        break;
    case NK_MAXPOOL: {
        op_pool p = {n->k, n->stride, n->pad};
        if (dx) {
            maxpool_switches(m, n);
            op_maxpool_backward(&p, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], dy, n->arg,
                                dx, acc);
        }
        break;
    }
    case NK_AVGPOOL: {
        op_pool p = {n->k, n->stride, n->pad};
        if (dx)
            op_avgpool_backward(&p, x->shape[0] * x->shape[1], x->shape[2], x->shape[3], dy, dx,
                                acc);
        break;
    }
    case NK_ADAPTIVE:
        if (dx)
            op_adaptive_avgpool_backward(x->shape[0] * x->shape[1], x->shape[2], x->shape[3], n->oh,
                                         n->ow, dy, dx, acc);
        break;
    case NK_RELU:
        if (dx) op_relu_backward(cnt, x->data, dy, dx, acc, rule);
        break;
    case NK_SOFTMAX:
        if (dx) op_softmax_backward(x->shape[0], x->shape[1], n->out->data, dy, dx, acc);
        break;
    case NK_LOGSOFTMAX:
        if (dx) op_log_softmax_backward(x->shape[0], x->shape[1], n->out->data, dy, dx, acc);
        break;
    case NK_DROPOUT:
        if (dx && m->training && n->p > 0.0f) {
            float scale = 1.0f / (1.0f - n->p);
            for (int64_t i = 0; i < cnt; i++)
                dx[i] = (acc ? dx[i] : 0.0f) + (n->arg[i] ? dy[i] * scale : 0.0f);
        } else if (dx) {
            op_pass_backward(cnt, dy, dx, acc);
        }
        break;
    case NK_ADD: {
        if (dx) op_pass_backward(cnt, dy, dx, acc);
        if (grad_target(m, n->in[1], to, &dx2, &acc, err)) return -1;
        if (dx2) op_pass_backward(cnt, dy, dx2, acc);
        break;
    }
    default:
        if (dx) op_pass_backward(cnt, dy, dx, acc);
        break;
    }
    return 0;
}

static int backward_check(const net *m, int from, int to, cl_err *err)
{
    if (from < 0 || from >= m->count || m->nodes[from].out_gen != m->fwd_gen || !m->fwd_gen ||
        m->rows_pass)
        return cl_err_set(err, CL_EINVAL, "run the model forward before asking for gradients");
    if (to < NET_INPUT || to > from)
        return cl_err_set(err, CL_EINVAL,
                          "the gradient can only flow from layer '%s' back to an earlier layer",
                          m->nodes[from].name);
    return 0;
}

/* A new backward pass whose seed is in node `from`'s grad buffer (resized,
 * not reallocated, so repeated passes allocate nothing). */
static tn_tensor *backward_seed(net *m, int from, cl_err *err)
{
    node *top = &m->nodes[from];
    m->bwd_gen++;
    if (tn_resize(top->grad, top->out->ndim, top->out->shape, err)) return NULL;
    top->grad_gen = m->bwd_gen;
    return top->grad;
}

static int backward_run(net *m, int from, int to, net_relu_rule rule, cl_err *err)
{
    op_relu_rule r = relu_rule(rule);
    for (int i = from; i > to && i >= 0; i--) {
        node *n = &m->nodes[i];
        if (n->grad_gen != m->bwd_gen) continue; /* not on a path from `from` */
        double t0 = m->profile_ms ? 1e3 * cl_progress_now() : 0.0;
        if (node_backward(m, n, to, r, err)) return -1;
        if (m->profile_ms) m->profile_ms[m->count + i] += 1e3 * cl_progress_now() - t0;
    }
    return 0;
}

int net_backward(net *m, int from, const tn_tensor *grad, int to, net_relu_rule rule, cl_err *err)
{
    char a[96], b[96];
    if (backward_check(m, from, to, err)) return -1;
    node *top = &m->nodes[from];
    if (tn_numel(grad) != tn_numel(top->out))
        return cl_err_set(err, CL_EINVAL, "the gradient for '%s' must have shape %s, not %s",
                          top->name, tn_shape_str(top->out, a, sizeof a),
                          tn_shape_str(grad, b, sizeof b));
    tn_tensor *seed = backward_seed(m, from, err);
    if (!seed) return -1;
    memcpy(seed->data, grad->data, (size_t)tn_numel(grad) * sizeof(float));
    return backward_run(m, from, to, rule, err);
}

int net_backward_onehot(net *m, int from, const int *classes, int to, net_relu_rule rule,
                        cl_err *err)
{
    if (backward_check(m, from, to, err)) return -1;
    const tn_tensor *out = m->nodes[from].out;
    int64_t n = out->shape[0], k = n > 0 ? tn_numel(out) / n : 0;
    for (int64_t i = 0; i < n; i++)
        if (classes[i] < 0 || classes[i] >= k)
            return cl_err_set(err, CL_EINVAL, "class %d does not exist: '%s' has outputs 0..%lld",
                              classes[i], m->nodes[from].name, (long long)k - 1);
    tn_tensor *seed = backward_seed(m, from, err);
    if (!seed) return -1;
    tn_zero(seed);
    for (int64_t i = 0; i < n; i++) seed->data[i * k + classes[i]] = 1.0f;
    return backward_run(m, from, to, rule, err);
}

/* ---- accessors ---- */

int net_node_count(const net *m)
{
    return m->count;
}

static int64_t node_params(const node *n)
{
    if (!n->w) return 0;
    int64_t p = tn_numel(n->w) + (n->bias ? n->cout : 0);
    return p + (n->bn ? 2 * (int64_t)n->cout : 0); /* gamma and beta */
}

int net_node_info_get(const net *m, int i, net_node_info *out)
{
    if (i < 0 || i >= m->count) return -1;
    const node *n = &m->nodes[i];
    out->name = n->name;
    out->type = n->bn ? "conv2d+bn" : kind_names[n->kind];
    out->ndim = n->ndim0;
    for (int d = 0; d < 4; d++) out->shape[d] = n->shape0[d];
    out->params = node_params(n);
    return 0;
}

const char *net_arch(const net *m)
{
    return m->arch;
}

void net_input_shape(const net *m, int64_t chw[3])
{
    for (int i = 0; i < 3; i++) chw[i] = m->chw[i];
}

int net_num_classes(const net *m)
{
    return m->classes;
}

int64_t net_param_count(const net *m)
{
    int64_t s = 0;
    for (int i = 0; i < m->count; i++) s += node_params(&m->nodes[i]);
    return s;
}

const tn_tensor *net_output(const net *m)
{
    return m->count ? net_node_output(m, m->count - 1) : NULL;
}

const tn_tensor *net_node_output(const net *m, int i)
{
    if (i < 0 || i >= m->count || !m->fwd_gen || m->nodes[i].out_gen != m->fwd_gen) return NULL;
    return m->nodes[i].out;
}

const int32_t *net_node_argmax(net *m, int i)
{
    if (!net_node_output(m, i) || m->nodes[i].kind != NK_MAXPOOL) return NULL;
    maxpool_switches(m, &m->nodes[i]);
    return m->nodes[i].arg;
}

const tn_tensor *net_node_grad(const net *m, int i)
{
    if (i < 0 || i >= m->count || m->nodes[i].grad_gen != m->bwd_gen || !m->bwd_gen) return NULL;
    return m->nodes[i].grad;
}

const tn_tensor *net_input_grad(const net *m)
{
    return m->in_grad && m->in_grad_gen == m->bwd_gen && m->bwd_gen ? m->in_grad : NULL;
}

/* ---- names ---- */

/* Compares names with '_' and '.' taken as equal, so "features_11" finds
 * "features.11". */
static int same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a == '_' ? '.' : *a, y = *b == '_' ? '.' : *b;
        if (x != y) return 0;
    }
    return *a == *b;
}

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int sub = diag +
                      !(a[i - 1] == b[j - 1] || (strchr("._", a[i - 1]) && strchr("._", b[j - 1])));
            int best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

/* Among names equally far away, the one whose first differing character is
 * nearest ("layer5" suggests "layer4", not "layer1"). */
static int tie_break(const char *a, const char *b)
{
    while (*a && *a == *b) a++, b++;
    int d = (unsigned char)*a - (unsigned char)*b;
    return d < 0 ? -d : d;
}

int net_find(const net *m, const char *name, cl_err *err)
{
    for (int i = 0; i < m->count; i++)
        if (same_name(m->nodes[i].name, name)) return i;
    for (int i = 0; i < m->naliases; i++)
        if (same_name(m->aliases[i].name, name)) return m->aliases[i].node;
    const char *best = NULL;
    int bd = 1 << 30, btie = 0;
    for (int i = 0; i < m->count + m->naliases; i++) {
        const char *c = i < m->count ? m->nodes[i].name : m->aliases[i - m->count].name;
        int d = edit_distance(name, c), tie = tie_break(name, c);
        if (d < bd || (d == bd && tie < btie)) bd = d, btie = tie, best = c;
    }
    if (best && bd <= 3 + (int)strlen(name) / 3)
        cl_err_set(err, CL_ENAME, "unknown layer '%s' — did you mean '%s'?", name, best);
    else
        cl_err_set(err, CL_ENAME, "unknown layer '%s' (type `layers` to list the layers of %s)",
                   name, m->arch);
    return -1;
}

/* ---- parameters ---- */

void net_set_training(net *m, int training)
{
    m->training = training;
    if (!training) return;
    for (int i = 0; i < m->count; i++) {
        node *n = &m->nodes[i];
        if (!n->w || n->gw) continue;
        n->gw = tn_new(n->w->ndim, n->w->shape, NULL);
        n->gb = tn_new1(n->cout, NULL);
        if (!n->gw || !n->gb) {
            /* Without memory for gradients the net stays in inference mode. */
            tn_free(n->gw), tn_free(n->gb);
            n->gw = n->gb = NULL;
            m->training = 0;
            return;
        }
    }
}

int net_param_tensors(const net *m)
{
    int c = 0;
    for (int i = 0; i < m->count; i++)
        if (m->nodes[i].w) c += 1 + (m->nodes[i].bias || m->nodes[i].bn);
    return c;
}

int net_param_get(net *m, int idx, net_param *out)
{
    ensure_params(m);
    for (int i = 0; i < m->count; i++) {
        node *n = &m->nodes[i];
        if (!n->w) continue;
        int k = 1 + (n->bias || n->bn);
        if (idx >= k) {
            idx -= k;
            continue;
        }
        n->wino_ready = 0; /* the caller may write the weights */
        out->name = idx == 0 ? n->wname : n->bname;
        out->value = idx == 0 ? n->w : n->b;
        out->grad = idx == 0 ? n->gw : n->gb;
        return 0;
    }
    return -1;
}

void net_zero_grad(net *m)
{
    for (int i = 0; i < m->count; i++) {
        if (m->nodes[i].gw) tn_zero(m->nodes[i].gw);
        if (m->nodes[i].gb) tn_zero(m->nodes[i].gb);
    }
}

/* Uniform in [-bound, bound), two draws per call of the generator. */
static void fill_uniform(uint64_t *s, float *p, int64_t n, float bound)
{
    const float scale = 2.0f * bound / 4294967296.0f;
    for (int64_t j = 0; j < n; j += 2) {
        uint64_t r = rng_splitmix64(s);
        p[j] = (float)(uint32_t)r * scale - bound;
        if (j + 1 < n) p[j + 1] = (float)(uint32_t)(r >> 32) * scale - bound;
    }
}

static void ensure_params(net *m)
{
    if (!m->params_ready) net_init_params(m, m->seed);
}

void net_init_params(net *m, uint64_t seed)
{
    uint64_t s = seed;
    m->params_ready = 1;
    wino_invalidate(m);
    m->base_ready = 0;
    for (int i = 0; i < m->count; i++) {
        node *n = &m->nodes[i];
        if (!n->w) continue;
        int64_t nw = tn_numel(n->w);
        float bound = 1.0f / sqrtf((float)(nw / n->cout));
        fill_uniform(&s, n->w->data, nw, bound);
        if (n->bias)
            fill_uniform(&s, n->b->data, n->cout, bound);
        else
            tn_zero(n->b);
    }
}

int net_finish(net *m, uint64_t seed, cl_err *err)
{
    if (m->build_err.code != CL_OK) {
        if (err) *err = m->build_err;
        return -1;
    }
    if (!m->count) return cl_err_set(err, CL_EINVAL, "a model needs at least one layer");
    m->drop_rng = seed ^ 0x64726f706f7574ull; /* "dropout": masks differ from the weights' draws */
    int64_t s[4] = {1, m->chw[0], m->chw[1], m->chw[2]};
    if (!(m->input = tn_new(4, s, err))) return -1;
    for (int i = 0; i < m->count; i++) {
        node *n = &m->nodes[i];
        if (node_out_shape(m, i, &n->ndim0, n->shape0, err)) return -1;
        /* A zero-sized stand-in carrying the shape, for the next node's check. */
        n->out->ndim = n->ndim0;
        for (int d = 0; d < n->ndim0; d++) n->out->shape[d] = n->shape0[d];
    }
    for (int i = 0; i < m->count; i++) {
        int64_t z = 0;
        if (tn_resize(m->nodes[i].out, 1, &z, err)) return -1;
    }
    m->seed = seed;
    return 0;
}

/* ---- weights ---- */

static const tn_tensor *dict_get(const wt_dict *w, const char *name)
{
    for (size_t i = 0; i < w->count; i++)
        if (!strcmp(w->items[i].name, name)) return w->items[i].t;
    return NULL;
}

/* Calls fn for every key the architecture expects, in state_dict order,
 * until fn returns non-zero (then returns 1). */
static int for_each_key(const net *m,
                        int (*fn)(void *, const char *, const char *, int, const int64_t *),
                        void *ctx)
{
    static const char *const bn_keys[] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < m->count; i++) {
        const node *n = &m->nodes[i];
        if (!n->w) continue;
        int64_t c = n->cout;
        if (fn(ctx, n->name, "weight", n->w->ndim, n->w->shape)) return 1;
        if (n->bias && fn(ctx, n->name, "bias", 1, &c)) return 1;
        for (int k = 0; n->bn && k < 4; k++)
            if (fn(ctx, n->bn, bn_keys[k], 1, &c)) return 1;
    }
    return 0;
}

typedef struct check_ctx {
    const wt_dict *w;
    cl_err *err;
    const char *arch;
} check_ctx;

static int check_key(void *vc, const char *prefix, const char *leaf, int ndim, const int64_t *shape)
{
    check_ctx *c = vc;
    char key[256], a[96], b[96];
    snprintf(key, sizeof key, "%s.%s", prefix, leaf);
    const tn_tensor *t = dict_get(c->w, key);
    if (!t)
        return cl_err_set(c->err, CL_EFORMAT,
                          "the weights file has no '%s', which %s needs (is it a state_dict of "
                          "another model?)",
                          key, c->arch);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same)
        return cl_err_set(c->err, CL_EFORMAT, "%s: file has %s, model needs %s", key,
                          tn_shape_str(t, a, sizeof a), tn_shape_str_raw(ndim, shape, b, sizeof b));
    return 0;
}

static int is_known_extra(const net *m, const char *key)
{
    /* BatchNorm's step counter is in every torchvision state_dict and means
     * nothing at inference. */
    const char *dot = strrchr(key, '.');
    if (!dot || strcmp(dot, ".num_batches_tracked")) return 0;
    for (int i = 0; i < m->count; i++)
        if (m->nodes[i].bn && !strncmp(key, m->nodes[i].bn, (size_t)(dot - key)) &&
            m->nodes[i].bn[dot - key] == 0)
            return 1;
    return 0;
}

/* Stops the walk (returns 1) at the expected key equal to ctx. */
static int same_key(void *ctx, const char *prefix, const char *leaf, int ndim, const int64_t *shape)
{
    const char *key = ctx;
    size_t lp = strlen(prefix);
    (void)ndim, (void)shape;
    return !strncmp(key, prefix, lp) && key[lp] == '.' && !strcmp(key + lp + 1, leaf);
}

static void load_node(node *n, const wt_dict *w)
{
    char key[256];
    snprintf(key, sizeof key, "%s.weight", n->name);
    memcpy(n->w->data, dict_get(w, key)->data, (size_t)tn_numel(n->w) * sizeof(float));
    if (n->bias) {
        snprintf(key, sizeof key, "%s.bias", n->name);
        memcpy(n->b->data, dict_get(w, key)->data, (size_t)n->cout * sizeof(float));
    } else {
        tn_zero(n->b);
    }
    if (!n->bn) return;
    const float *bn[4];
    static const char *const leaves[] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++) {
        snprintf(key, sizeof key, "%s.%s", n->bn, leaves[k]);
        bn[k] = dict_get(w, key)->data;
    }
    op_bn_fold(n->cout, tn_numel(n->w) / n->cout, n->w->data, n->b->data, bn[0], bn[1], bn[2],
               bn[3], 1e-5f);
}

int net_load_weights_file(net *m, const char *path, cl_err *err)
{
    wt_dict *w = wt_load(path, err);
    int rc = w ? net_load_weights(m, w, err) : -1;
    wt_free(w);
    return rc;
}

int net_load_weights(net *m, const wt_dict *w, cl_err *err)
{
    for (size_t i = 0; i < w->count; i++)
        if (!tn_is_contiguous(w->items[i].t))
            return cl_err_set(err, CL_EFORMAT, "weight '%s' is not contiguous", w->items[i].name);
    check_ctx c = {w, err, m->arch};
    if (for_each_key(m, check_key, &c)) return -1;
    for (size_t i = 0; i < w->count; i++) {
        const char *key = w->items[i].name;
        if (!is_known_extra(m, key) && !for_each_key(m, same_key, (void *)key))
            return cl_err_set(err, CL_EFORMAT, "the weights file has '%s', which is not part of %s",
                              key, m->arch);
    }
    for (int i = 0; i < m->count; i++)
        if (m->nodes[i].w) load_node(&m->nodes[i], w);
    m->params_ready = 1;
    wino_invalidate(m);
    m->base_ready = 0;
    return 0;
}

/* ---- incremental forward, for occlusion ----
 * A copy of the base image changed only in input rows [r0, r1) changes each
 * node's output only in the rows whose receptive field meets them.  Every
 * node whose op works on rows (conv, pooling, relu, add) computes just those
 * rows, reading its input's changed rows from the batch and the others from
 * the base; the rest (linear, global pooling) runs whole, once every row has
 * changed.  Padding is written out explicitly, so an op on a band of rows
 * sees the zeros (or -inf) of the image edge only where the image has one. */

int net_keep_base(net *m, cl_err *err)
{
    if (!m->fwd_gen || m->rows_pass || !m->input || m->input->shape[0] != 1)
        return cl_err_set(err, CL_EINVAL, "net_keep_base needs a forward of one image first");
    for (int i = 0; i < m->count; i++) {
        node *n = &m->nodes[i];
        if (!n->base && !(n->base = tn_new1(0, err))) return -1;
        if (tn_resize(n->base, n->out->ndim, n->out->shape, err) || tn_copy(n->base, n->out, err))
            return -1;
    }
    m->base_ready = 1;
    return 0;
}

void net_drop_base(net *m)
{
    for (int i = 0; i < m->count; i++) tn_free(m->nodes[i].base), m->nodes[i].base = NULL;
    tn_free(m->rows_tmp[0]), tn_free(m->rows_tmp[1]);
    m->rows_tmp[0] = m->rows_tmp[1] = NULL;
    m->base_ready = 0;
}

static int rows_kind(net_kind k, int training)
{
    return k == NK_CONV || k == NK_MAXPOOL || k == NK_AVGPOOL || k == NK_RELU || k == NK_ADD ||
           (k == NK_DROPOUT && !training);
}

/* Full height of node j's output (NET_INPUT: the image); 0 for 2-d outputs. */
static int64_t rows_height(const net *m, int j)
{
    const tn_tensor *b = j < 0 ? m->input : m->nodes[j].base;
    return b->ndim == 4 ? b->shape[2] : 0;
}

/* The changed rows [*lo, *hi) of node j (the image: [r0, r1)); all for 2-d. */
static void rows_of(const net *m, int j, int64_t r0, int64_t r1, int64_t *lo, int64_t *hi)
{
    if (j < 0) {
        *lo = r0, *hi = r1;
        return;
    }
    *lo = m->nodes[j].row0, *hi = m->nodes[j].row1;
}

/* Output rows of a k/stride/pad window op that read input rows [a, b). */
static void window_rows(const node *n, int64_t a, int64_t b, int64_t ho, int64_t *lo, int64_t *hi)
{
    int64_t first = a + n->pad - n->k + 1, last = b - 1 + n->pad;
    *lo = first <= 0 ? 0 : (first + n->stride - 1) / n->stride;
    *hi = last / n->stride + 1;
    if (*hi > ho) *hi = ho;
    if (*lo > *hi) *lo = *hi;
}

/* Plans which rows each node recomputes (at least those that change). */
static void rows_plan(net *m, int64_t r0, int64_t r1)
{
    for (int i = 0; i < m->count; i++) {
        node *n = &m->nodes[i];
        int64_t a, b, h = rows_height(m, n->in[0]), ho = rows_height(m, i);
        rows_of(m, n->in[0], r0, r1, &a, &b);
        if (!rows_kind(n->kind, m->training) || !ho) {
            /* A whole-input op makes its input compute every row. */
            if (h && n->in[0] >= 0 && (a != 0 || b != h))
                m->nodes[n->in[0]].row0 = 0, m->nodes[n->in[0]].row1 = h;
            n->row0 = 0, n->row1 = ho;
            continue;
        }
        if (n->kind == NK_ADD) {
            int64_t a2, b2;
            rows_of(m, n->in[1], r0, r1, &a2, &b2);
            n->row0 = a < a2 ? a : a2, n->row1 = b > b2 ? b : b2;
        } else if (n->kind == NK_RELU || n->kind == NK_DROPOUT) {
            n->row0 = a, n->row1 = b;
        } else {
            window_rows(n, a, b, ho, &n->row0, &n->row1);
        }
        if (n->row0 == n->row1) { /* unchanged: recompute one row rather than none */
            if (n->row0 == ho) n->row0--;
            n->row1 = n->row0 + 1;
        }
    }
}

typedef struct rows_gather {
    const net *m;
    int j;
    int64_t lo, hi, pad, N, C, H, W, s0, s1;
    float padval;
    const float *src, *base;
    float *dst;
} rows_gather;

/* Planes [p0, p1) (image * C + channel) of a gather. */
static void gather_part(void *ctx, int64_t p0, int64_t p1)
{
    const rows_gather *g = ctx;
    int64_t rows = g->hi - g->lo, wd = g->W + 2 * g->pad, srows = g->s1 - g->s0;
    for (int64_t p = p0; p < p1; p++) {
        int64_t c = p % g->C;
        float *d = g->dst + p * rows * wd;
        for (int64_t r = g->lo; r < g->hi; r++, d += wd) {
            const float *src = NULL;
            if (r >= g->s0 && r < g->s1)
                src = g->src + (p * srows + r - g->s0) * g->W;
            else if (r >= 0 && r < g->H)
                src = g->base + (c * g->H + r) * g->W;
            if (!src) {
                for (int64_t x = 0; x < wd; x++) d[x] = g->padval;
                continue;
            }
            for (int64_t x = 0; x < g->pad; x++) d[x] = d[g->pad + g->W + x] = g->padval;
            memcpy(d + g->pad, src, (size_t)g->W * sizeof *d);
        }
    }
}

/* Rows [lo, hi) of node j's output for the batch, `pad` columns of `padval`
 * on either side and padval for rows outside the image, into rows_tmp[slot]. */
static const float *rows_gather_input(net *m, int j, int64_t r0, int64_t r1, int64_t lo, int64_t hi,
                                      int64_t pad, float padval, int slot, cl_err *err)
{
    const tn_tensor *src = j < 0 ? m->input : m->nodes[j].out;
    const tn_tensor *base = j < 0 ? m->input : m->nodes[j].base;
    rows_gather g = {m,
                     j,
                     lo,
                     hi,
                     pad,
                     src->shape[0],
                     base->shape[1],
                     base->shape[2],
                     base->shape[3],
                     0,
                     0,
                     padval,
                     src->data,
                     base->data,
                     NULL};
    rows_of(m, j, r0, r1, &g.s0, &g.s1);
    if (j < 0) g.s0 = 0, g.s1 = g.H;                        /* the batch holds whole images */
    if (!pad && lo == g.s0 && hi == g.s1) return src->data; /* already in place */
    tn_tensor **t = &m->rows_tmp[slot];
    if (!*t && !(*t = tn_new1(0, err))) return NULL;
    if (tn_resize(*t, 4, (int64_t[]){g.N, g.C, hi - lo, g.W + 2 * pad}, err)) return NULL;
    g.dst = (*t)->data;
    th_parallel(g.N * g.C, 8, gather_part, &g);
    return g.dst;
}

static int rows_ws(net *m, size_t need, cl_err *err)
{
    if (need <= m->ws_cap) return 0;
    tn_dealloc(m->ws);
    m->ws_cap = 0;
    if (!(m->ws = tn_alloc(need * sizeof *m->ws)))
        return cl_err_set(err, CL_ENOMEM, "out of memory for the conv scratch buffer");
    m->ws_cap = need;
    return 0;
}

/* A conv or pooling node on its planned rows: the input band with explicit
 * padding, then the op without padding. */
static int rows_window(net *m, node *n, int64_t r0, int64_t r1, cl_err *err)
{
    const tn_tensor *base_in = n->in[0] < 0 ? m->input : m->nodes[n->in[0]].base;
    int64_t N = n->out->shape[0], C = base_in->shape[1], W = base_in->shape[3] + 2 * n->pad;
    int64_t lo = n->row0 * n->stride - n->pad, hi = (n->row1 - 1) * n->stride - n->pad + n->k;
    float padval = n->kind == NK_MAXPOOL ? -INFINITY : 0.0f;
    const float *x = rows_gather_input(m, n->in[0], r0, r1, lo, hi, n->pad, padval, 0, err);
    if (!x) return -1;
    float *y = n->out->data;
    if (n->kind == NK_CONV) {
        op_conv c = {n->cin, n->cout, n->k, n->stride, 0};
        int wino = n->wino && n->wino_ready && op_wino_applies(&c);
        size_t need =
            wino ? op_wino_workspace(&c, hi - lo, W) : op_conv2d_workspace(&c, hi - lo, W);
        if (rows_ws(m, need, err)) return -1;
        if (wino)
            op_wino_forward(&c, N, hi - lo, W, x, n->wino, n->b->data, y, m->ws);
        else
            op_conv2d_forward(&c, N, hi - lo, W, x, n->w->data, n->b->data, y, m->ws);
        return 0;
    }
    op_pool p = {n->k, n->stride, 0};
    if (n->kind == NK_AVGPOOL) {
        op_avgpool_forward(&p, N * C, hi - lo, W, x, y);
        return 0;
    }
    op_maxpool_forward(&p, N * C, hi - lo, W, x, y, NULL); /* no backward after a rows pass */
    return 0;
}

static int rows_node(net *m, node *n, int64_t r0, int64_t r1, cl_err *err)
{
    int64_t N = m->input->shape[0];
    const tn_tensor *b = n->base;
    if (b->ndim != 4 || !rows_kind(n->kind, m->training)) {
        int ndim;
        int64_t o[4];
        int i = (int)(n - m->nodes);
        if (node_out_shape(m, i, &ndim, o, err) || tn_resize(n->out, ndim, o, err)) return -1;
        node_forward(m, n);
        return 0;
    }
    int64_t shape[4] = {N, b->shape[1], n->row1 - n->row0, b->shape[3]};
    if (tn_resize(n->out, 4, shape, err)) return -1;
    if (n->kind == NK_CONV || n->kind == NK_MAXPOOL || n->kind == NK_AVGPOOL)
        return rows_window(m, n, r0, r1, err);
    int64_t cnt = tn_numel(n->out);
    const float *x = rows_gather_input(m, n->in[0], r0, r1, n->row0, n->row1, 0, 0, 0, err);
    if (!x) return -1;
    if (n->kind == NK_RELU) {
        op_relu_forward(cnt, x, n->out->data);
    } else if (n->kind == NK_ADD) {
        const float *x2 = rows_gather_input(m, n->in[1], r0, r1, n->row0, n->row1, 0, 0, 1, err);
        if (!x2) return -1;
        op_add_forward(cnt, x, x2, n->out->data);
    } else {
        op_copy_forward(cnt, x, n->out->data);
    }
    return 0;
}

int net_forward_rows(net *m, const tn_tensor *x, int64_t r0, int64_t r1, cl_err *err)
{
    if (!m->base_ready || x->ndim != 4 || !m->input || x->shape[1] != m->input->shape[1] ||
        x->shape[2] != m->input->shape[2] || x->shape[3] != m->input->shape[3] || r0 < 0 ||
        r1 > x->shape[2] || r0 >= r1 || !tn_is_contiguous(x))
        return net_forward(m, x, err);
    if (tn_resize(m->input, 4, x->shape, err) || tn_copy(m->input, x, err)) return -1;
    rows_plan(m, r0, r1);
    for (int i = 0; i < m->count;
         i++) { /* the batch may make Winograd pay where one image did not */
        node *n = &m->nodes[i];
        tn_tensor in = *(n->in[0] < 0 ? m->input : m->nodes[n->in[0]].base);
        in.shape[0] = x->shape[0];
        wino_prepare_node(m, n, &in);
    }
    m->fwd_gen++, m->bwd_gen++;
    m->rows_pass = 1; /* node outputs hold bands: no backward from them */
    for (int i = 0; i < m->count; i++) {
        if (rows_node(m, &m->nodes[i], r0, r1, err)) return -1;
        m->nodes[i].out_gen = i == m->count - 1 ? m->fwd_gen : 0;
    }
    return 0;
}

/* ---- teardown ---- */

void net_free(net *m)
{
    if (!m) return;
    for (int i = 0; i < m->count; i++) {
        node *n = &m->nodes[i];
        free(n->name), free(n->bn), free(n->wname), free(n->bname);
        tn_free(n->w), tn_free(n->b), tn_free(n->gw), tn_free(n->gb);
        tn_free(n->out), tn_free(n->grad);
        tn_dealloc(n->arg);
        tn_dealloc(n->wino);
        tn_free(n->base);
    }
    tn_free(m->rows_tmp[0]), tn_free(m->rows_tmp[1]);
    for (int i = 0; i < m->naliases; i++) free(m->aliases[i].name);
    free(m->nodes), free(m->aliases), free(m->arch);
    tn_free(m->input), tn_free(m->in_grad);
    tn_dealloc(m->ws);
    free(m);
}
