/* The Winograd F(2x2,3x3) conv against the im2col conv: forward and backward
 * to the input on odd sizes, every padding it takes, channel counts that are
 * not multiples of anything, batches that span several chunks, accumulation,
 * and results that do not depend on the thread count. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops/ops.h"
#include "engine/threads.h"

static uint64_t rng_state = 7;

static float *rand_buf(int64_t n)
{
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) {
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((rng_state >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
    }
    return p;
}

static float max_abs(const float *a, int64_t n)
{
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(a[i]) > m ? fabsf(a[i]) : m;
    return m;
}

static void assert_close(const char *what, const float *ref, const float *got, int64_t n)
{
    float scale = max_abs(ref, n) + 1e-6f;
    for (int64_t i = 0; i < n; i++)
        cr_assert(fabsf(ref[i] - got[i]) <= 1e-5f * scale, "%s differs at %lld: %g vs %g", what,
                  (long long)i, ref[i], got[i]);
}

typedef struct wcase {
    op_conv c;
    int64_t n, h, w, ho, wo, nx, ny;
    float *x, *wt, *b, *u, *ws, *ws2;
} wcase;

static void setup(wcase *k, int cin, int cout, int pad, int64_t n, int64_t h, int64_t w)
{
    k->c = (op_conv){cin, cout, 3, 1, pad};
    k->n = n, k->h = h, k->w = w;
    k->ho = op_conv_out(h, 3, 1, pad), k->wo = op_conv_out(w, 3, 1, pad);
    k->nx = n * cin * h * w, k->ny = n * cout * k->ho * k->wo;
    k->x = rand_buf(k->nx), k->wt = rand_buf((int64_t)cout * cin * 9), k->b = rand_buf(cout);
    k->u = malloc(op_wino_weights_floats(&k->c) * sizeof(float));
    op_wino_weights(&k->c, k->wt, k->u);
    size_t a = op_conv2d_workspace(&k->c, h, w), b = op_wino_workspace(&k->c, h, w);
    k->ws = malloc((a + 1) * sizeof(float)), k->ws2 = malloc((b + 1) * sizeof(float));
}

static void teardown(wcase *k)
{
    free(k->x), free(k->wt), free(k->b), free(k->u), free(k->ws), free(k->ws2);
}

static void check_case(int cin, int cout, int pad, int64_t n, int64_t h, int64_t w)
{
    wcase k;
    setup(&k, cin, cout, pad, n, h, w);
    cr_assert(op_wino_applies(&k.c));
    float *ref = malloc((size_t)k.ny * sizeof *ref), *got = malloc((size_t)k.ny * sizeof *got);
    op_conv2d_forward(&k.c, n, h, w, k.x, k.wt, k.b, ref, k.ws);
    op_wino_forward(&k.c, n, h, w, k.x, k.u, k.b, got, k.ws2);
    assert_close("forward", ref, got, k.ny);

    float *dy = rand_buf(k.ny);
    float *dref = malloc((size_t)k.nx * sizeof *dref), *dgot = malloc((size_t)k.nx * sizeof *dgot);
    op_conv2d_backward(&k.c, n, h, w, k.x, k.wt, dy, dref, 0, NULL, NULL, k.ws);
    for (int64_t i = 0; i < k.nx; i++) dgot[i] = 12345.0f; /* overwritten, not added to */
    op_wino_backward_input(&k.c, n, h, w, k.u, dy, dgot, 0, k.ws2);
    assert_close("backward", dref, dgot, k.nx);

    /* acc adds the gradient to what dx holds. */
    for (int64_t i = 0; i < k.nx; i++) dgot[i] = k.x[i];
    op_wino_backward_input(&k.c, n, h, w, k.u, dy, dgot, 1, k.ws2);
    for (int64_t i = 0; i < k.nx; i++) dref[i] += k.x[i];
    assert_close("backward acc", dref, dgot, k.nx);
    free(ref), free(got), free(dy), free(dref), free(dgot);
    teardown(&k);
}

Test(conv_winograd, pad1_odd_sizes)
{
    check_case(3, 5, 1, 1, 7, 9);
    check_case(5, 3, 1, 2, 1, 1);
    check_case(1, 1, 1, 1, 2, 13);
}

Test(conv_winograd, pad0_and_pad2)
{
    check_case(4, 7, 0, 2, 9, 6);
    check_case(6, 2, 2, 1, 5, 8);
    check_case(2, 3, 0, 1, 3, 3); /* one output pixel */
}

Test(conv_winograd, channels_not_multiple_resnet_like)
{
    check_case(67, 33, 1, 1, 14, 14);
    check_case(17, 129, 1, 3, 7, 7);
}

Test(conv_winograd, batch_spans_chunks)
{
    /* Chunks hold at most 8 images' tiles: 19 images need three. */
    check_case(3, 4, 1, 19, 5, 6);
}

Test(conv_winograd, budget_spans_chunks)
{
    /* 16 * (cin + cout) floats per tile: 2978 tiles fit the budget, one
     * 120 x 110 image has 3300, so a chunk ends in the middle of a tile row.
     * Few channels keep the test fast enough for valgrind. */
    check_case(24, 20, 1, 1, 120, 110);
}

Test(conv_winograd, no_output)
{
    wcase k;
    setup(&k, 2, 2, 0, 1, 2, 5); /* 0 x 3 output */
    float dx[20];
    for (int i = 0; i < 20; i++) dx[i] = 1.0f;
    op_wino_backward_input(&k.c, 1, 2, 5, k.u, NULL, dx, 0, k.ws2);
    for (int i = 0; i < 20; i++) cr_assert_eq(dx[i], 0.0f);
    teardown(&k);
}

Test(conv_winograd, same_bits_for_any_thread_count)
{
    wcase k;
    setup(&k, 40, 24, 1, 2, 15, 17);
    float *a = malloc((size_t)k.ny * sizeof *a), *b = malloc((size_t)k.ny * sizeof *b);
    int keep = th_count();
    th_set_count(1);
    op_wino_forward(&k.c, 2, 15, 17, k.x, k.u, k.b, a, k.ws2);
    th_set_count(2);
    op_wino_forward(&k.c, 2, 15, 17, k.x, k.u, k.b, b, k.ws2);
    th_set_count(keep);
    cr_assert(!memcmp(a, b, (size_t)k.ny * sizeof *a));
    free(a), free(b);
    teardown(&k);
}
