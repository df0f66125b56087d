/* relu — forward, and the three backward rules that saliency methods use. */
#include "engine/ops/ops.h"

void op_relu_forward(int64_t n, const float *x, float *y)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
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

void op_relu_backward(int64_t n, const float *x, const float *dy, float *dx, int acc,
                      op_relu_rule rule)
{
    if (acc)
        for (int64_t i = 0; i < n; i++) dx[i] += relu_grad(x[i], dy[i], rule);
    else
        for (int64_t i = 0; i < n; i++) dx[i] = relu_grad(x[i], dy[i], rule);
}
