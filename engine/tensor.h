/* tensor — float32 arrays in NCHW order with shapes and strides.
 *
 * A tensor owns its storage (64-byte aligned, for SIMD and sgemm) unless it is
 * a view (tn_view), which borrows another tensor's data.  Strides are in
 * elements.  Functions that return a new tn_tensor * give the caller ownership:
 * release it with tn_free().  tn_resize() reuses the storage when it is big
 * enough, so per-pass buffers allocate nothing after the first pass.
 */
#ifndef CNNLENS_TENSOR_H
#define CNNLENS_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/limits.h"

#define TN_MAXDIM 6

typedef struct tn_tensor {
    int ndim;
    int64_t shape[TN_MAXDIM];
    int64_t stride[TN_MAXDIM]; /* in elements */
    float *data;
    int64_t cap; /* elements allocated; 0 for a view */
} tn_tensor;

/* Largest number of elements one tensor may hold: the tensor_bytes limit of
 * engine/limits.h (default 2 GiB) over 4 bytes a float.  An expression, so
 * readers that bound a file's arrays by it follow the limit as it changes. */
#define tn_max_elems (lim_get(LIM_TENSOR_BYTES) / (int64_t)sizeof(float))

/* 0 when tn_new would accept the shape (dimensions, the tensor_bytes limit);
 * otherwise -1 with the error tn_new would give.  For readers, before they
 * trust a file's sizes. */
int tn_check_shape(int ndim, const int64_t *shape, cl_err *err);
/* A zero-filled tensor; NULL (and err set) on a bad shape, a limit or no memory. */
tn_tensor *tn_new(int ndim, const int64_t *shape, cl_err *err);
tn_tensor *tn_new4(int64_t n, int64_t c, int64_t h, int64_t w, cl_err *err);
tn_tensor *tn_new2(int64_t h, int64_t w, cl_err *err);
tn_tensor *tn_new1(int64_t n, cl_err *err);
/* A deep, contiguous copy. */
tn_tensor *tn_clone(const tn_tensor *t, cl_err *err);
/* A view of `t` sharing its data (the caller keeps `t` alive longer). */
tn_tensor *tn_view(const tn_tensor *t, cl_err *err);
void tn_free(tn_tensor *t);

/* Gives t a new contiguous shape, reallocating only when the capacity is too
 * small; contents are unspecified afterwards (use tn_zero).  Not for views. */
int tn_resize(tn_tensor *t, int ndim, const int64_t *shape, cl_err *err);
/* Changes the shape of a contiguous tensor, keeping numel. */
int tn_reshape(tn_tensor *t, int ndim, const int64_t *shape, cl_err *err);

int64_t tn_numel(const tn_tensor *t);
int tn_is_contiguous(const tn_tensor *t);
void tn_zero(tn_tensor *t);
void tn_fill(tn_tensor *t, float v);
int tn_same_shape(const tn_tensor *a, const tn_tensor *b);
/* Copies src into dst of the same numel (both contiguous). */
int tn_copy(tn_tensor *dst, const tn_tensor *src, cl_err *err);

/* Writes "[1, 512, 7, 7]" into buf; returns buf. */
char *tn_shape_str(const tn_tensor *t, char *buf, size_t n);
char *tn_shape_str_raw(int ndim, const int64_t *shape, char *buf, size_t n);

/* 64-byte aligned allocation helpers for engine-internal buffers. */
void *tn_alloc(size_t bytes);
void tn_dealloc(void *p);
/* How many times tn_alloc has been called in this process (every tensor's data
 * and every net workspace comes from it): lets tests check that repeated
 * passes allocate nothing. */
size_t tn_alloc_count(void);

#endif
