/* softmax — softmax and log-softmax over rows, shifted by the row maximum so
 * that large logits do not overflow. */
#include "engine/ops/ops.h"

#include <math.h>

static double row_logsumexp(int64_t k, const float *x)
{
    float m = x[0];
    for (int64_t j = 1; j < k; j++)
        if (x[j] > m) m = x[j];
    double s = 0;
    for (int64_t j = 0; j < k; j++) s += exp((double)x[j] - m);
    return m + log(s);
}

void op_softmax_forward(int64_t n, int64_t k, const float *x, float *y)
{
    for (int64_t i = 0; i < n; i++) {
        double lse = row_logsumexp(k, x + i * k);
        for (int64_t j = 0; j < k; j++) y[i * k + j] = (float)exp(x[i * k + j] - lse);
    }
}

void op_softmax_backward(int64_t n, int64_t k, const float *y, const float *dy, float *dx, int acc)
{
    for (int64_t i = 0; i < n; i++) {
        const float *yi = y + i * k, *gi = dy + i * k;
        double dot = 0;
        for (int64_t j = 0; j < k; j++) dot += (double)yi[j] * gi[j];
        for (int64_t j = 0; j < k; j++) {
            float g = (float)(yi[j] * (gi[j] - dot));
            dx[i * k + j] = acc ? dx[i * k + j] + g : g;
        }
    }
}

void op_log_softmax_forward(int64_t n, int64_t k, const float *x, float *y)
{
    for (int64_t i = 0; i < n; i++) {
        double lse = row_logsumexp(k, x + i * k);
        for (int64_t j = 0; j < k; j++) y[i * k + j] = (float)(x[i * k + j] - lse);
    }
}

void op_log_softmax_backward(int64_t n, int64_t k, const float *y, const float *dy, float *dx,
                             int acc)
{
    for (int64_t i = 0; i < n; i++) {
        const float *yi = y + i * k, *gi = dy + i * k;
        double sum = 0;
        for (int64_t j = 0; j < k; j++) sum += gi[j];
        for (int64_t j = 0; j < k; j++) {
            float g = (float)(gi[j] - exp((double)yi[j]) * sum);
            dx[i * k + j] = acc ? dx[i * k + j] + g : g;
        }
    }
}
