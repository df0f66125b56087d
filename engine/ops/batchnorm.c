/* batchnorm — inference-mode batch norm is an affine map per channel, so it is
 * folded into the conv before it once, at load time, and costs nothing after. */
#include "engine/ops/ops.h"

#include <math.h>

void op_bn_fold(int64_t cout, int64_t per_out, float *w, float *b, const float *gamma,
                const float *beta, const float *mean, const float *var, float eps)
{
    for (int64_t o = 0; o < cout; o++) {
        /* In double, so the folded weights round once, as close to PyTorch's
         * unfolded result as float allows. */
        double scale = (double)gamma[o] / sqrt((double)var[o] + eps);
        for (int64_t j = 0; j < per_out; j++)
            w[o * per_out + j] = (float)(w[o * per_out + j] * scale);
        b[o] = (float)(((double)b[o] - mean[o]) * scale + beta[o]);
    }
}

void op_bn_forward(int64_t n, int64_t c, int64_t hw, const float *x, const float *gamma,
                   const float *beta, const float *mean, const float *var, float eps, float *y)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++) {
            float inv = 1.0f / sqrtf(var[ch] + eps);
            const float *xc = x + (i * c + ch) * hw;
            float *yc = y + (i * c + ch) * hw;
            for (int64_t j = 0; j < hw; j++)
                yc[j] = (xc[j] - mean[ch]) * inv * gamma[ch] + beta[ch];
        }
}
