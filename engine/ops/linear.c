/* linear — a fully connected layer as one sgemm (y = x W^T + b). */
#include "engine/ops/ops.h"

#include <cblas.h>

void op_linear_forward(int64_t n, int64_t in, int64_t out, const float *x, const float *wt,
                       const float *b, float *y)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < out; o++) y[i * out + o] = b ? b[o] : 0.0f;
    if (n == 1)
        op_sgemv(CblasNoTrans, (int)out, (int)in, wt, x, 1.0f, y);
    else
        op_sgemm(CblasNoTrans, CblasTrans, (int)n, (int)out, (int)in, 1.0f, x, (int)in, wt, (int)in,
                 1.0f, y, (int)out);
}

void op_linear_backward(int64_t n, int64_t in, int64_t out, const float *x, const float *wt,
                        const float *dy, float *dx, int acc, float *dw, float *db)
{
    if (dx && n == 1)
        op_sgemv(CblasTrans, (int)out, (int)in, wt, dy, acc ? 1.0f : 0.0f, dx);
    else if (dx)
        op_sgemm(CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)out, 1.0f, dy, (int)out, wt,
                 (int)in, acc ? 1.0f : 0.0f, dx, (int)in);
    if (dw)
        op_sgemm(CblasTrans, CblasNoTrans, (int)out, (int)in, (int)n, 1.0f, dy, (int)out, x,
                 (int)in, 1.0f, dw, (int)in);
    if (db)
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < out; o++) db[o] += dy[i * out + o];
}
