/* add — the residual sum, and the copies that dropout (at inference) and
 * flatten reduce to. */
#include "engine/ops/ops.h"

#include <string.h>

void op_add_forward(int64_t n, const float *a, const float *b, float *y)
{
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void op_pass_backward(int64_t n, const float *dy, float *dx, int acc)
{
    if (acc)
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
    else
        memcpy(dx, dy, (size_t)n * sizeof *dx);
}

void op_copy_forward(int64_t n, const float *x, float *y)
{
    memcpy(y, x, (size_t)n * sizeof *y);
}
