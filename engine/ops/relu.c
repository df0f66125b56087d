/* relu — forward, and the three backward rules that saliency methods use.
 * Loops run in blocks of 8 so that the compiler vectorises them at -O2, and
 * large tensors are split over the engine's threads. */
#include "engine/ops/ops.h"

#include <stdint.h>
#include <string.h>

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

/* g where keep is 1, +0 where it is 0, by masking the bits: exact for every
 * float (no 0 * inf), and branch-free so the loops vectorise. */
static inline float masked(float g, int keep)
{
    uint32_t u;
    memcpy(&u, &g, sizeof u);
    u &= -(uint32_t)keep;
    memcpy(&g, &u, sizeof g);
    return g;
}

/* One loop per rule and mode, the rule's test inlined: x > 0 (plain),
 * x > 0 and g > 0 (guided), g > 0 (deconvnet). */
#define RELU_BACKWARD_LOOP(KEEP)                                                                   \
    do {                                                                                           \
        if (acc)                                                                                   \
            for (int64_t i = 0; i < n; i++) dx[i] += masked(dy[i], KEEP);                          \
        else                                                                                       \
            for (int64_t i = 0; i < n; i++) dx[i] = masked(dy[i], KEEP);                           \
    } while (0)

static void relu_backward_span(int64_t n, const float *restrict x, const float *restrict dy,
                               float *restrict dx, int acc, op_relu_rule rule)
{
    switch (rule) {
    case OP_RELU_GUIDED:
        RELU_BACKWARD_LOOP((x[i] > 0) & (dy[i] > 0));
        break;
    case OP_RELU_DECONV:
        RELU_BACKWARD_LOOP(dy[i] > 0);
        break;
    default:
        RELU_BACKWARD_LOOP(x[i] > 0);
        break;
    }
}

static void backward_part(void *ctx, int64_t lo, int64_t hi)
{
    const relu_job *j = ctx;
    relu_backward_span(hi - lo, j->x + lo, j->dy + lo, j->y + lo, j->acc, j->rule);
}

void op_relu_backward(int64_t n, const float *x, const float *dy, float *dx, int acc,
                      op_relu_rule rule)
{
    relu_job j = {x, dy, dx, acc, rule};
    th_parallel(n, RELU_GRAIN, backward_part, &j);
}
