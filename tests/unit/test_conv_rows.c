/* net_forward_rows (the incremental forward behind occlusion) against a plain
 * net_forward of the same batch: convs with padding and stride (Winograd and
 * im2col), max and average pooling with padding, a residual add whose
 * branches change different rows, a global pool and a dense head; bands at
 * the top, in the middle and at the bottom edge; a head that reads rows that
 * never changed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/net.h"

static uint64_t rng_state = 99;

static float frand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

/* A small ResNet-like net on c x h x w images; `dense_head` flattens the
 * last maps into a linear layer instead of pooling them globally. */
static net *small_resnet(int c, int h, int w, int dense_head)
{
    cl_err err = {0};
    net *m = net_new("rows", c, h, w, 5, &err);
    cr_assert(m);
    int x = net_add_conv(m, "conv1", NET_INPUT, c, 32, 5, 2, 2, 0);
    x = net_add_maxpool(m, "pool", x, 3, 2, 1); /* on negative values: padding is -inf */
    x = net_add_relu(m, "relu", x);
    /* A block whose 3x3 convs (16x16 maps, 32 channels) take the Winograd path. */
    int a = net_add_conv(m, "b1.conv1", x, 32, 32, 3, 1, 1, 0);
    a = net_add_relu(m, "b1.relu1", a);
    a = net_add_conv(m, "b1.conv2", a, 32, 32, 3, 1, 1, 1);
    x = net_add_add(m, "b1.add", a, x);
    x = net_add_relu(m, "b1.relu2", x);
    /* A downsampling block: the shortcut (1x1, stride 2) sees fewer rows. */
    a = net_add_conv(m, "b2.conv1", x, 32, 32, 3, 2, 1, 1);
    a = net_add_relu(m, "b2.relu1", a);
    a = net_add_conv(m, "b2.conv2", a, 32, 32, 3, 1, 1, 0);
    int s = net_add_conv(m, "b2.down", x, 32, 32, 1, 2, 0, 1);
    x = net_add_add(m, "b2.add", a, s);
    x = net_add_relu(m, "b2.relu2", x);
    x = net_add_avgpool(m, "avg", x, 3, 1, 1);
    if (dense_head) {
        x = net_add_flatten(m, "flat", x);
        net_add_linear(m, "fc", x, 32 * ((h + 7) / 8) * ((w + 7) / 8), 5, 1);
    } else {
        x = net_add_adaptive_avgpool(m, "gap", x, 1, 1);
        x = net_add_flatten(m, "flat", x);
        net_add_linear(m, "fc", x, 32, 5, 1);
    }
    cr_assert(!net_finish(m, 3, &err), "%s", err.msg);
    return m;
}

static tn_tensor *rand_image(int c, int h, int w)
{
    tn_tensor *t = tn_new4(1, c, h, w, NULL);
    for (int64_t i = 0; i < tn_numel(t); i++) t->data[i] = frand();
    return t;
}

/* n copies of base, copy i with new values in rows [r0, r1), columns i*3.. */
static tn_tensor *copies(const tn_tensor *base, int n, int64_t r0, int64_t r1)
{
    int64_t c = base->shape[1], h = base->shape[2], w = base->shape[3];
    tn_tensor *t = tn_new4(n, c, h, w, NULL);
    for (int i = 0; i < n; i++) {
        memcpy(t->data + i * c * h * w, base->data, (size_t)(c * h * w) * sizeof(float));
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t y = r0; y < r1; y++)
                for (int64_t x = (i * 3) % w; x < w && x < (i * 3) % w + 7; x++)
                    t->data[((i * c + ch) * h + y) * w + x] = frand() * 2.0f;
    }
    return t;
}

static void check_rows(net *m, const tn_tensor *base, int n, int64_t r0, int64_t r1)
{
    cl_err err = {0};
    tn_tensor *batch = copies(base, n, r0, r1);
    cr_assert(!net_forward(m, base, &err));
    cr_assert(!net_keep_base(m, &err), "%s", err.msg);
    cr_assert(!net_forward_rows(m, batch, r0, r1, &err), "%s", err.msg);
    tn_tensor *got = tn_clone(net_output(m), NULL);
    cr_assert(!net_forward(m, batch, &err));
    const tn_tensor *want = net_output(m);
    cr_assert(tn_same_shape(got, want));
    for (int64_t i = 0; i < tn_numel(want); i++)
        cr_assert(fabsf(got->data[i] - want->data[i]) <= 1e-5f * (1.0f + fabsf(want->data[i])),
                  "rows [%lld, %lld): logit %lld is %g, not %g", (long long)r0, (long long)r1,
                  (long long)i, got->data[i], want->data[i]);
    net_drop_base(m);
    tn_free(got), tn_free(batch);
}

Test(conv_rows, bands_match_full_forward)
{
    net *m = small_resnet(3, 63, 64, 0);
    tn_tensor *base = rand_image(3, 63, 64);
    check_rows(m, base, 3, 0, 9);   /* top edge */
    check_rows(m, base, 2, 25, 33); /* middle */
    check_rows(m, base, 4, 50, 63); /* bottom edge */
    check_rows(m, base, 1, 30, 31); /* a single row */
    check_rows(m, base, 2, 0, 63);  /* everything */
    tn_free(base);
    net_free(m);
}

Test(conv_rows, dense_head_reads_unchanged_rows)
{
    /* 96 rows: a band in the middle never reaches the top and bottom rows of
     * the last maps, which the dense layer still reads. */
    net *m = small_resnet(2, 96, 40, 1);
    tn_tensor *base = rand_image(2, 96, 40);
    check_rows(m, base, 3, 44, 50);
    check_rows(m, base, 2, 90, 96);
    tn_free(base);
    net_free(m);
}

Test(conv_rows, no_backward_after_a_rows_pass)
{
    cl_err err = {0};
    net *m = small_resnet(3, 32, 32, 0);
    tn_tensor *base = rand_image(3, 32, 32), *batch = copies(base, 2, 4, 12);
    cr_assert(!net_forward(m, base, &err));
    cr_assert(!net_keep_base(m, &err));
    cr_assert(!net_forward_rows(m, batch, 4, 12, &err));
    tn_tensor *g = tn_new(2, (int64_t[]){2, 5}, NULL);
    cr_assert(net_backward(m, net_node_count(m) - 1, g, -1, NET_RELU_PLAIN, &err) < 0);
    /* Without a base it is a plain forward. */
    net_drop_base(m);
    cr_assert(!net_forward_rows(m, batch, 4, 12, &err));
    cr_assert(!net_backward(m, net_node_count(m) - 1, g, -1, NET_RELU_PLAIN, &err), "%s", err.msg);
    tn_free(g), tn_free(batch), tn_free(base);
    net_free(m);
}

Test(conv_rows, keep_base_needs_one_image)
{
    cl_err err = {0};
    net *m = small_resnet(3, 32, 32, 0);
    cr_assert(net_keep_base(m, &err) < 0); /* no forward yet */
    tn_tensor *base = rand_image(3, 32, 32), *batch = copies(base, 2, 0, 3);
    cr_assert(!net_forward(m, batch, &err));
    cr_assert(net_keep_base(m, &err) < 0);
    tn_free(batch), tn_free(base);
    net_free(m);
}
