/* relu — forward, and the three backward rules that saliency methods use.
 * Loops run in blocks of 8 so that the compiler vectorises them at -O2. */
#include "engine/ops/ops.h"

void op_relu_forward(int64_t n, const float *restrict x, float *restrict y)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) y[i + j] = x[i + j] > 0 ? x[i + j] : 0.0f;
    for (; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
}

static float relu_grad(float x, float g, op_relu_rule rule)
{
    switch (rule) {
    case OP_RELU_GUIDED: return x > 0 && g > 0 ? g : 0.0f;
    case OP_RELU_DECONV: return g > 0 ? g : 0.0f;
    default: return x > 0 ? g : 0.0f;
    }
}

static void plain_backward(int64_t n, const float *restrict x, const float *restrict dy,
                           float *restrict dx, int acc)
{
    int64_t i = 0;
    if (acc) {
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++) dx[i + j] += x[i + j] > 0 ? dy[i + j] : 0.0f;
    } else {
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++) dx[i + j] = x[i + j] > 0 ? dy[i + j] : 0.0f;
    }
    for (; i < n; i++) {
        float g = x[i] > 0 ? dy[i] : 0.0f;
        dx[i] = acc ? dx[i] + g : g;
    }
}

void op_relu_backward(int64_t n, const float *x, const float *dy, float *dx, int acc,
                      op_relu_rule rule)
{
    if (rule == OP_RELU_PLAIN) {
        plain_backward(n, x, dy, dx, acc);
        return;
    }
    if (acc)
        for (int64_t i = 0; i < n; i++) dx[i] += relu_grad(x[i], dy[i], rule);
    else
        for (int64_t i = 0; i < n; i++) dx[i] = relu_grad(x[i], dy[i], rule);
}
