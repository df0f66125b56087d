/* The net: a small DAG built with the builder API (conv+bn, ReLU, a residual
 * add, pools, linear), checked by finite differences end to end, and the
 * rules of backward (stop at a node, ReLU rules, training), weight loading
 * and name lookup. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/weights.h"
#include "engine/net.h"
#include "engine/ops/ops.h"

/* in [N,2,6,6] -> conv a (+bn) -> relu -> conv b (1x1) -> add(relu, b) -> relu
 * -> maxpool 2 -> adaptive avg 2x2 -> flatten -> fc (8 -> 3). */
static net *tiny(cl_err *err)
{
    net *m = net_new("tiny", 2, 6, 6, 3, err);
    int a = net_add_conv(m, "a", NET_INPUT, 2, 2, 3, 1, 1, 0);
    net_add_bn(m, "a_bn", a);
    int r = net_add_relu(m, "r", a);
    int b = net_add_conv(m, "b", r, 2, 2, 1, 1, 0, 1);
    int s = net_add_add(m, "block.add", r, b);
    int o = net_add_relu(m, "block", s);
    net_alias(m, "stage", o);
    int p = net_add_maxpool(m, "pool", o, 2, 2, 0);
    int q = net_add_adaptive_avgpool(m, "gap", p, 2, 2);
    int f = net_add_flatten(m, "flatten", q);
    net_add_linear(m, "fc", f, 8, 3, 1);
    if (net_finish(m, 7, err)) {
        net_free(m);
        return NULL;
    }
    return m;
}

static tn_tensor *rand_input(int64_t n, uint64_t seed)
{
    tn_tensor *x = tn_new4(n, 2, 6, 6, NULL);
    for (int64_t i = 0; i < tn_numel(x); i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x->data[i] = (float)((seed >> 40) / (double)(1 << 24)) * 2 - 1;
    }
    return x;
}

static double logit(net *m, const tn_tensor *x, int k)
{
    cl_err err = {0};
    cr_assert_eq(net_forward(m, x, &err), 0, "%s", err.msg);
    return net_output(m)->data[k];
}

Test(net, input_gradient_matches_finite_differences)
{
    cl_err err = {0};
    net *m = tiny(&err);
    cr_assert_not_null(m, "%s", err.msg);
    tn_tensor *x = rand_input(1, 3);
    logit(m, x, 1);
    tn_tensor *g = tn_new2(1, 3, &err);
    g->data[1] = 1;
    cr_assert_eq(net_backward(m, net_node_count(m) - 1, g, NET_INPUT, NET_RELU_PLAIN, &err), 0,
                 "%s", err.msg);
    tn_tensor *dx = tn_clone(net_input_grad(m), &err);
    double eps = 1e-3, worst = 0, scale = 1e-6;
    for (int64_t i = 0; i < tn_numel(x); i++) {
        float keep = x->data[i];
        x->data[i] = keep + (float)eps;
        double up = logit(m, x, 1);
        x->data[i] = keep - (float)eps;
        double down = logit(m, x, 1);
        x->data[i] = keep;
        double num = (up - down) / (2 * eps);
        worst = fmax(worst, fabs(num - dx->data[i]));
        scale = fmax(scale, fabs(num));
    }
    cr_assert_lt(worst, 1e-2 * scale, "input gradient off by %g (scale %g)", worst, scale);
    tn_free(dx), tn_free(g), tn_free(x);
    net_free(m);
}

Test(net, backward_stops_at_the_given_node)
{
    cl_err err = {0};
    net *m = tiny(&err);
    tn_tensor *x = rand_input(1, 4), *g = tn_new2(1, 3, &err);
    g->data[0] = 1;
    logit(m, x, 0);
    int stage = net_find(m, "stage", &err), r = net_find(m, "r", &err);
    cr_assert_eq(net_backward(m, net_node_count(m) - 1, g, stage, NET_RELU_PLAIN, &err), 0);
    cr_assert_not_null(net_node_grad(m, stage));
    cr_assert_null(net_node_grad(m, r), "nothing below the stop node is computed");
    cr_assert_null(net_input_grad(m));
    /* The stop node's gradient equals the one of a full backward. */
    tn_tensor *part = tn_clone(net_node_grad(m, stage), &err);
    cr_assert_eq(net_backward(m, net_node_count(m) - 1, g, NET_INPUT, NET_RELU_PLAIN, &err), 0);
    for (int64_t i = 0; i < tn_numel(part); i++)
        cr_assert_eq(part->data[i], net_node_grad(m, stage)->data[i]);
    cr_assert_not_null(net_node_grad(m, r));
    tn_free(part), tn_free(g), tn_free(x);
    net_free(m);
}

Test(net, repeated_passes_reuse_buffers)
{
    cl_err err = {0};
    net *m = tiny(&err);
    tn_tensor *x = rand_input(1, 5), *g = tn_new2(1, 3, &err);
    g->data[2] = 1;
    const float *out[32], *grad[32];
    for (int pass = 0; pass < 3; pass++) {
        logit(m, x, 0);
        cr_assert_eq(net_backward(m, net_node_count(m) - 1, g, NET_INPUT, NET_RELU_GUIDED, &err),
                     0);
        for (int i = 0; i < net_node_count(m); i++) {
            if (pass == 1)
                out[i] = net_node_output(m, i)->data, grad[i] = net_node_grad(m, i)->data;
            if (pass == 2) {
                cr_assert_eq(out[i], net_node_output(m, i)->data);
                cr_assert_eq(grad[i], net_node_grad(m, i)->data);
            }
        }
    }
    tn_free(g), tn_free(x);
    net_free(m);
}

Test(net, onehot_backward_equals_an_explicit_seed)
{
    cl_err err = {0};
    net *m = tiny(&err);
    tn_tensor *x = rand_input(2, 11), *g = tn_new2(2, 3, &err);
    g->data[0 * 3 + 2] = 1, g->data[1 * 3 + 0] = 1;
    int last = net_node_count(m) - 1, classes[2] = {2, 0};
    cr_assert_eq(net_forward(m, x, &err), 0, "%s", err.msg);
    cr_assert_eq(net_backward(m, last, g, NET_INPUT, NET_RELU_PLAIN, &err), 0, "%s", err.msg);
    tn_tensor *want = tn_clone(net_input_grad(m), &err);
    cr_assert_eq(net_backward_onehot(m, last, classes, NET_INPUT, NET_RELU_PLAIN, &err), 0, "%s",
                 err.msg);
    const tn_tensor *got = net_input_grad(m);
    for (int64_t i = 0; i < tn_numel(want); i++) cr_assert_eq(got->data[i], want->data[i]);
    classes[1] = 3;
    cr_assert_eq(net_backward_onehot(m, last, classes, NET_INPUT, NET_RELU_PLAIN, &err), -1);
    cr_assert(strstr(err.msg, "class 3 does not exist") && strstr(err.msg, "0..2"), "%s", err.msg);
    tn_free(want), tn_free(g), tn_free(x);
    net_free(m);
}

Test(net, guided_rule_zeroes_negative_gradients)
{
    cl_err err = {0};
    net *m = tiny(&err);
    tn_tensor *x = rand_input(1, 6), *g = tn_new2(1, 3, &err);
    g->data[0] = 1, g->data[1] = -1;
    logit(m, x, 0);
    int r = net_find(m, "r", &err), a = net_find(m, "a", &err);
    cr_assert_eq(net_backward(m, net_node_count(m) - 1, g, NET_INPUT, NET_RELU_GUIDED, &err), 0);
    const tn_tensor *ga = net_node_grad(m, a), *xr = net_node_output(m, a);
    for (int64_t i = 0; i < tn_numel(ga); i++) {
        cr_assert_geq(ga->data[i], 0.0f);
        if (xr->data[i] <= 0) cr_assert_eq(ga->data[i], 0.0f);
    }
    cr_assert_not_null(net_node_grad(m, r));
    tn_free(g), tn_free(x);
    net_free(m);
}

Test(net, batch_equals_single_images)
{
    cl_err err = {0};
    net *m = tiny(&err);
    tn_tensor *xb = rand_input(3, 9), *x1 = tn_new4(1, 2, 6, 6, &err);
    cr_assert_eq(net_forward(m, xb, &err), 0);
    tn_tensor *yb = tn_clone(net_output(m), &err);
    for (int k = 0; k < 3; k++) {
        memcpy(x1->data, xb->data + k * 72, 72 * sizeof(float));
        cr_assert_eq(net_forward(m, x1, &err), 0);
        for (int j = 0; j < 3; j++)
            cr_assert(fabsf(net_output(m)->data[j] - yb->data[k * 3 + j]) < 1e-5f);
    }
    tn_free(yb), tn_free(xb), tn_free(x1);
    net_free(m);
}

/* A state_dict for tiny() with a non-trivial batch norm. */
static wt_dict *tiny_weights(void)
{
    wt_dict *d = calloc(1, sizeof *d);
    struct {
        const char *name;
        int ndim;
        int64_t shape[4];
    } keys[] = {
        {"a.weight", 4, {2, 2, 3, 3}}, {"a_bn.weight", 1, {2}},
        {"a_bn.bias", 1, {2}},         {"a_bn.running_mean", 1, {2}},
        {"a_bn.running_var", 1, {2}},  {"a_bn.num_batches_tracked", 0, {0}},
        {"b.weight", 4, {2, 2, 1, 1}}, {"b.bias", 1, {2}},
        {"fc.weight", 2, {3, 8}},      {"fc.bias", 1, {3}},
    };
    size_t n = sizeof keys / sizeof *keys;
    d->items = calloc(n + 1, sizeof *d->items);
    d->cap = n + 1;
    for (size_t i = 0; i < n; i++) {
        tn_tensor *t = tn_new(keys[i].ndim, keys[i].shape, NULL);
        for (int64_t j = 0; j < tn_numel(t); j++)
            t->data[j] = 0.1f * (float)((j * 7 + i) % 11) - 0.4f;
        if (strstr(keys[i].name, "running_var"))
            for (int64_t j = 0; j < tn_numel(t); j++) t->data[j] = 0.5f + (float)j;
        d->items[d->count].name = strdup(keys[i].name);
        d->items[d->count++].t = t;
    }
    return d;
}

static void free_dict(wt_dict *d)
{
    for (size_t i = 0; i < d->count; i++) free(d->items[i].name), tn_free(d->items[i].t);
    free(d->items), free(d);
}

Test(net, load_weights_folds_batch_norm)
{
    cl_err err = {0};
    net *m = tiny(&err);
    wt_dict *d = tiny_weights();
    cr_assert_eq(net_load_weights(m, d, &err), 0, "%s", err.msg);
    tn_tensor *x = rand_input(1, 11);
    logit(m, x, 0);
    /* Node 'a' (and its alias 'a_bn') is conv followed by the unfused batch norm. */
    float y[72], z[72], ws[18 * 36];
    op_conv c = {2, 2, 3, 1, 1};
    op_conv2d_forward(&c, 1, 6, 6, x->data, d->items[0].t->data, NULL, y, ws);
    op_bn_forward(1, 2, 36, y, d->items[1].t->data, d->items[2].t->data, d->items[3].t->data,
                  d->items[4].t->data, 1e-5f, z);
    int a = net_find(m, "a_bn", &err);
    cr_assert_eq(a, net_find(m, "a", &err));
    for (int i = 0; i < 72; i++) cr_assert(fabsf(net_node_output(m, a)->data[i] - z[i]) < 1e-5f);
    tn_free(x);
    free_dict(d);
    net_free(m);
}

Test(net, load_weights_names_the_first_mismatch)
{
    cl_err err = {0};
    net *m = tiny(&err);
    wt_dict *d = tiny_weights();
    int64_t s = 3;
    cr_assert_eq(tn_resize(d->items[4].t, 1, &s, &err), 0);
    cr_assert_eq(net_load_weights(m, d, &err), -1);
    cr_assert_str_eq(err.msg, "a_bn.running_var: file has [3], model needs [2]");
    free_dict(d);

    d = tiny_weights();
    free(d->items[7].name);
    d->items[7].name = strdup("b.bias_typo");
    cr_assert_eq(net_load_weights(m, d, &err), -1);
    cr_assert(strstr(err.msg, "no 'b.bias'"), "%s", err.msg);
    free_dict(d);

    d = tiny_weights();
    d->items[d->count].name = strdup("head.weight");
    d->items[d->count++].t = tn_new1(1, NULL);
    cr_assert_eq(net_load_weights(m, d, &err), -1);
    cr_assert(strstr(err.msg, "'head.weight'") && strstr(err.msg, "not part of tiny"), "%s",
              err.msg);
    free_dict(d);
    net_free(m);
}

Test(net, training_accumulates_weight_gradients)
{
    cl_err err = {0};
    net *m = tiny(&err);
    tn_tensor *x = rand_input(1, 12), *g = tn_new2(1, 3, &err);
    g->data[1] = 1;
    net_set_training(m, 1);
    net_param p;
    int fcw = -1;
    for (int i = 0; i < net_param_tensors(m); i++) {
        cr_assert_eq(net_param_get(m, i, &p), 0);
        if (!strcmp(p.name, "fc.weight")) fcw = i;
    }
    cr_assert_geq(fcw, 0);
    net_param_get(m, fcw, &p);
    logit(m, x, 1);
    net_backward(m, net_node_count(m) - 1, g, NET_INPUT, NET_RELU_PLAIN, &err);
    /* d logit_1 / d fc.weight[1, j] = the flattened features; other rows 0. */
    const tn_tensor *feat = net_node_output(m, net_find(m, "flatten", &err));
    for (int j = 0; j < 8; j++) {
        cr_assert_float_eq(p.grad->data[8 + j], feat->data[j], 1e-6f);
        cr_assert_eq(p.grad->data[j], 0.0f);
    }
    net_backward(m, net_node_count(m) - 1, g, NET_INPUT, NET_RELU_PLAIN, &err);
    cr_assert_float_eq(p.grad->data[8], 2 * feat->data[0], 1e-6f);
    net_zero_grad(m);
    cr_assert_eq(p.grad->data[8], 0.0f);
    tn_free(g), tn_free(x);
    net_free(m);
}

Test(net, names_and_suggestions)
{
    cl_err err = {0};
    net *m = tiny(&err);
    cr_assert_eq(net_find(m, "block", &err), net_find(m, "stage", &err));
    cr_assert_eq(net_find(m, "block_add", &err), net_find(m, "block.add", &err));
    cr_assert_eq(net_find(m, "blok", &err), -1);
    cr_assert_eq(err.code, CL_ENAME);
    cr_assert_str_eq(err.msg, "unknown layer 'blok' — did you mean 'block'?");
    cr_assert_eq(net_param_count(m), 2 * 18 + 4 + 4 + 2 + 24 + 3);
    net_node_info info;
    cr_assert_eq(net_node_info_get(m, net_find(m, "gap", &err), &info), 0);
    cr_assert_str_eq(info.type, "adaptive_avgpool2d");
    cr_assert(info.ndim == 4 && info.shape[1] == 2 && info.shape[2] == 2 && info.shape[3] == 2);
    net_free(m);
}

Test(net, clear_errors_for_bad_inputs)
{
    cl_err err = {0};
    net *m = tiny(&err);
    tn_tensor *x = tn_new4(1, 3, 6, 6, &err);
    cr_assert_eq(net_forward(m, x, &err), -1);
    cr_assert(strstr(err.msg, "tiny takes [N, 2, H, W] images"), "%s", err.msg);
    tn_free(x);
    x = tn_new4(1, 2, 1, 1, &err);
    cr_assert_eq(net_forward(m, x, &err), -1);
    cr_assert(strstr(err.msg, "too small"), "%s", err.msg);
    tn_free(x);
    tn_tensor *g = tn_new2(1, 3, &err);
    net *fresh = tiny(&err);
    cr_assert_eq(net_backward(fresh, 0, g, NET_INPUT, NET_RELU_PLAIN, &err), -1);
    cr_assert(strstr(err.msg, "forward"), "%s", err.msg);
    tn_free(g);
    net_free(fresh);
    net_free(m);
}

Test(net, forward_upto_stops_after_the_node)
{
    cl_err err = {0};
    net *m = tiny(&err);
    tn_tensor *x = rand_input(2, 9), *g = NULL;
    int stage = net_find(m, "stage", &err), pool = net_find(m, "pool", &err);
    logit(m, x, 0);
    tn_tensor *full = tn_clone(net_node_output(m, stage), &err);
    cr_assert_eq(net_forward_upto(m, x, stage, &err), 0, "%s", err.msg);
    const tn_tensor *a = net_node_output(m, stage);
    cr_assert_not_null(a);
    for (int64_t i = 0; i < tn_numel(full); i++) cr_assert_eq(a->data[i], full->data[i]);
    cr_assert_null(net_node_output(m, pool), "nodes after `last` have no output of this pass");
    cr_assert_null(net_output(m));
    /* Backward from the last node computed reaches the input. */
    g = tn_clone(a, &err);
    for (int64_t i = 0; i < tn_numel(g); i++) g->data[i] = 1.0f;
    cr_assert_eq(net_backward(m, stage, g, NET_INPUT, NET_RELU_PLAIN, &err), 0, "%s", err.msg);
    cr_assert_not_null(net_input_grad(m));
    cr_assert_eq(net_forward_upto(m, x, net_node_count(m), &err), -1);
    cr_assert(strstr(err.msg, "no node") != NULL, "%s", err.msg);
    tn_free(g), tn_free(full), tn_free(x);
    net_free(m);
}
