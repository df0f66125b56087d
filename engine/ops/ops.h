/* ops — the layers of a CNN as plain functions on float32 NCHW arrays.
 *
 * Each op has a forward and a backward in its own file (conv2d.c, pool.c,
 * linear.c, relu.c, add.c, softmax.c, batchnorm.c).  Arrays are contiguous and
 * borrowed: ops allocate nothing, so a pass through a net reuses its buffers.
 *
 * Backward functions take `acc`: non-zero adds the gradient into dx (a node
 * whose output feeds two consumers, as in a ResNet shortcut), zero overwrites
 * it.  Weight gradients (dw, db) are always added, so a training step sums
 * them over a batch; pass NULL to skip them (input-side gradients only).
 */
#ifndef CNNLENS_OPS_H
#define CNNLENS_OPS_H

#include <cblas.h>
#include <stddef.h>
#include <stdint.h>

/* ---- sgemm / sgemv (row-major), split over the engine's threads ---- */

void op_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* count independent products C_i = op(A_i) B_i (B_i, C_i not transposed, at
 * b + i*b_stride and c + i*c_stride), each on one thread. */
void op_sgemm_batch(int count, CBLAS_TRANSPOSE ta, int m, int n, int k, const float *const *a,
                    int lda, const float *b, int64_t b_stride, int ldb, float *c, int64_t c_stride,
                    int ldc);
/* y = op(A) x + beta y for A [m, n]. */
void op_sgemv(CBLAS_TRANSPOSE ta, int m, int n, const float *a, const float *x, float beta,
              float *y);
/* C = A B for n x n matrices, one plain OpenBLAS call with OpenBLAS's own
 * threading (`cnnlens probe sgemm`: the machine's sgemm peak). */
void op_blas_sgemm(int n, const float *a, const float *b, float *c);

/* ---- conv2d: groups 1, dilation 1, any kernel, stride and padding ---- */

typedef struct op_conv {
    int cin, cout, k, stride, pad;
} op_conv;

/* Output size along one axis: (in + 2 pad - k) / stride + 1 (may be <= 0). */
int64_t op_conv_out(int64_t in, int k, int stride, int pad);
/* Floats of scratch the conv needs for an h x w input (0 for 1x1 stride 1). */
size_t op_conv2d_workspace(const op_conv *c, int64_t h, int64_t w);
/* x [n,cin,h,w], wt [cout,cin,k,k], b [cout] or NULL -> y [n,cout,ho,wo]. */
void op_conv2d_forward(const op_conv *c, int64_t n, int64_t h, int64_t w, const float *x,
                       const float *wt, const float *b, float *y, float *ws);
/* dx (may be NULL), dw and db (may be NULL) from dy. */
void op_conv2d_backward(const op_conv *c, int64_t n, int64_t h, int64_t w, const float *x,
                        const float *wt, const float *dy, float *dx, int acc, float *dw, float *db,
                        float *ws);

/* ---- conv2d by Winograd F(2x2,3x3), for 3x3 stride-1 convs (winograd.c) ----
 * The weights are transformed once (op_wino_weights into 16*cout*cin floats,
 * which the caller owns and keeps while the weights stay unchanged); the same
 * transform serves the forward and the backward to the input.  Results match
 * op_conv2d_* to float rounding. */

/* k 3, stride 1, padding 0..2. */
int op_wino_applies(const op_conv *c);
size_t op_wino_weights_floats(const op_conv *c);
/* wt [cout,cin,3,3] -> u [16,cout,cin]. */
void op_wino_weights(const op_conv *c, const float *wt, float *u);
/* Floats of scratch for either pass on an h x w input (whatever the batch). */
size_t op_wino_workspace(const op_conv *c, int64_t h, int64_t w);
/* As op_conv2d_forward, with u from op_wino_weights. */
void op_wino_forward(const op_conv *c, int64_t n, int64_t h, int64_t w, const float *x,
                     const float *u, const float *b, float *y, float *ws);
/* dx [n,cin,h,w] from dy (added into dx if acc). */
void op_wino_backward_input(const op_conv *c, int64_t n, int64_t h, int64_t w, const float *u,
                            const float *dy, float *dx, int acc, float *ws);

/* ---- pooling ---- */

typedef struct op_pool {
    int k, stride, pad;
} op_pool;

/* Max pooling, padding counts as -inf, the first maximum in a window wins (as
 * PyTorch); arg [n,c,ho,wo] keeps the winner's index in its h x w plane, or
 * is NULL for the values alone (faster: a pass with no backward needs none). */
void op_maxpool_forward(const op_pool *p, int64_t nc, int64_t h, int64_t w, const float *x,
                        float *y, int32_t *arg);
void op_maxpool_backward(const op_pool *p, int64_t nc, int64_t h, int64_t w, const float *dy,
                         const int32_t *arg, float *dx, int acc);
/* Average pooling with PyTorch's defaults (count_include_pad, floor mode). */
void op_avgpool_forward(const op_pool *p, int64_t nc, int64_t h, int64_t w, const float *x,
                        float *y);
void op_avgpool_backward(const op_pool *p, int64_t nc, int64_t h, int64_t w, const float *dy,
                         float *dx, int acc);
/* Adaptive average pooling to oh x ow: window i spans [floor(i*h/oh), ceil((i+1)*h/oh)). */
void op_adaptive_avgpool_forward(int64_t nc, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                 const float *x, float *y);
void op_adaptive_avgpool_backward(int64_t nc, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                  const float *dy, float *dx, int acc);

/* ---- linear: y [n,out] = x [n,in] W^T + b, W [out,in] ---- */

void op_linear_forward(int64_t n, int64_t in, int64_t out, const float *x, const float *wt,
                       const float *b, float *y);
void op_linear_backward(int64_t n, int64_t in, int64_t out, const float *x, const float *wt,
                        const float *dy, float *dx, int acc, float *dw, float *db);

/* ---- relu, with the backward rules of saliency methods ---- */

typedef enum {
    OP_RELU_PLAIN = 0, /* dy * (x > 0) */
    OP_RELU_GUIDED,    /* dy * (x > 0) * (dy > 0) */
    OP_RELU_DECONV,    /* dy * (dy > 0) */
} op_relu_rule;

void op_relu_forward(int64_t n, const float *x, float *y);
void op_relu_backward(int64_t n, const float *x, const float *dy, float *dx, int acc,
                      op_relu_rule rule);

/* ---- element-wise: residual add, copies (dropout at inference, flatten) ---- */

void op_add_forward(int64_t n, const float *a, const float *b, float *y);
/* The gradient of a sum passes to each summand unchanged. */
void op_pass_backward(int64_t n, const float *dy, float *dx, int acc);
void op_copy_forward(int64_t n, const float *x, float *y);

/* ---- softmax and log-softmax over the last axis of [n,k] ---- */

void op_softmax_forward(int64_t n, int64_t k, const float *x, float *y);
/* Uses the forward's output y. */
void op_softmax_backward(int64_t n, int64_t k, const float *y, const float *dy, float *dx, int acc);
void op_log_softmax_forward(int64_t n, int64_t k, const float *x, float *y);
void op_log_softmax_backward(int64_t n, int64_t k, const float *y, const float *dy, float *dx,
                             int acc);

/* ---- batch norm, inference only: folded into the preceding conv ---- */

/* w [cout, per_out] and b [cout] become w*g/sqrt(v+eps) and (b-m)*g/sqrt(v+eps)+beta;
 * b must exist (zero for a conv without bias). */
void op_bn_fold(int64_t cout, int64_t per_out, float *w, float *b, const float *gamma,
                const float *beta, const float *mean, const float *var, float eps);
/* The unfused inference batch norm, for tests: y = (x-m)/sqrt(v+eps)*g + beta. */
void op_bn_forward(int64_t n, int64_t c, int64_t hw, const float *x, const float *gamma,
                   const float *beta, const float *mean, const float *var, float eps, float *y);

#endif
