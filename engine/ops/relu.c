/* relu — forward, and the three backward rules that saliency methods use.
 * Loops run in blocks of 8 so that the compiler vectorises them at -O2, and
 * large tensors are split over the engine's threads. */
#include "engine/ops/ops.h"

#include "engine/threads.h"

#define RELU_GRAIN (1 << 20) /* memory-bound: splitting pays only for big tensors */

typedef struct relu_job {
    const float *x, *dy;
    float *y;
    int acc;
    op_relu_rule rule;
} relu_job;

/* restrict on the parameters (not on locals) lets GCC vectorise at -O2. */
static void relu_span(int64_t n, const float *restrict x, float *restrict y)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) y[i + k] = x[i + k] > 0 ? x[i + k] : 0.0f;
    for (; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
}

static void forward_part(void *ctx, int64_t lo, int64_t hi)
{
    const relu_job *j = ctx;
    relu_span(hi - lo, j->x + lo, j->y + lo);
}

void op_relu_forward(int64_t n, const float *x, float *y)
{
    relu_job j = {x, NULL, y, 0, OP_RELU_PLAIN};
    th_parallel(n, RELU_GRAIN, forward_part, &j);
}

static float relu_grad(float x, float g, op_relu_rule rule)
{
    switch (rule) {
    case OP_RELU_GUIDED:
        return x > 0 && g > 0 ? g : 0.0f;
    case OP_RELU_DECONV:
        return g > 0 ? g : 0.0f;
    default:
        return x > 0 ? g : 0.0f;
    }
}

static void plain_backward(int64_t n, const float *restrict x, const float *restrict dy,
                           float *restrict dx, int acc)
{
    int64_t i = 0;
    if (acc) {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) dx[i + k] += x[i + k] > 0 ? dy[i + k] : 0.0f;
    } else {
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) dx[i + k] = x[i + k] > 0 ? dy[i + k] : 0.0f;
    }
    for (; i < n; i++) {
        float g = x[i] > 0 ? dy[i] : 0.0f;
        dx[i] = acc ? dx[i] + g : g;
    }
}

static void backward_part(void *ctx, int64_t lo, int64_t hi)
{
    const relu_job *j = ctx;
    const float *x = j->x + lo, *dy = j->dy + lo;
    float *dx = j->y + lo;
    int64_t n = hi - lo;
    if (j->rule == OP_RELU_PLAIN) {
        plain_backward(n, x, dy, dx, j->acc);
        return;
    }
    if (j->acc)
        for (int64_t i = 0; i < n; i++) dx[i] += relu_grad(x[i], dy[i], j->rule);
    else
        for (int64_t i = 0; i < n; i++) dx[i] = relu_grad(x[i], dy[i], j->rule);
}

void op_relu_backward(int64_t n, const float *x, const float *dy, float *dx, int acc,
                      op_relu_rule rule)
{
    relu_job j = {x, dy, dx, acc, rule};
    th_parallel(n, RELU_GRAIN, backward_part, &j);
}
