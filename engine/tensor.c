#include "engine/tensor.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_size_t alloc_calls;

size_t tn_alloc_count(void)
{
    return atomic_load(&alloc_calls);
}

void *tn_alloc(size_t bytes)
{
    atomic_fetch_add(&alloc_calls, 1);
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded == 0) rounded = 64;
    if (posix_memalign(&p, 64, rounded) != 0) return NULL;
    return p;
}

void tn_dealloc(void *p)
{
    free(p);
}

static int check_shape(int ndim, const int64_t *shape, int64_t *numel, cl_err *err);

int tn_check_shape(int ndim, const int64_t *shape, cl_err *err)
{
    int64_t n;
    return check_shape(ndim, shape, &n, err);
}

static int check_shape(int ndim, const int64_t *shape, int64_t *numel, cl_err *err)
{
    if (ndim < 0 || ndim > TN_MAXDIM)
        return cl_err_set(err, CL_EINVAL, "a tensor has 0 to %d dimensions, not %d", TN_MAXDIM,
                          ndim);
    /* In double: a hostile shape must not overflow on its way to the check. */
    double n = 1, strides = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return cl_err_set(err, CL_EINVAL, "negative tensor dimension");
        n *= (double)shape[i];
        strides *= shape[i] > 1 ? (double)shape[i] : 1.0;
    }
    if (n * sizeof(float) > (double)lim_get(LIM_TENSOR_BYTES)) {
        char shp[128], what[192];
        snprintf(what, sizeof what,
                 n < 1e15 ? "a tensor of shape %s (%.0f numbers)"
                          : "a tensor of shape %s (%.3g numbers)",
                 tn_shape_str_raw(ndim, shape, shp, sizeof shp), n);
        return lim_check(LIM_TENSOR_BYTES, n * sizeof(float), what, err);
    }
    /* An empty tensor holds nothing, but its strides (the products of the
     * other dimensions) must still fit in 64 bits. */
    if (strides > 9.0e18) {
        char shp[128];
        return cl_err_set(err, CL_EINVAL,
                          "a tensor of shape %s has dimensions too large to address",
                          tn_shape_str_raw(ndim, shape, shp, sizeof shp));
    }
    *numel = (int64_t)n;
    return 0;
}

static void set_contiguous(tn_tensor *t, int ndim, const int64_t *shape)
{
    t->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = s;
        s *= shape[i];
    }
    for (int i = ndim; i < TN_MAXDIM; i++) t->shape[i] = 1, t->stride[i] = 1;
}

tn_tensor *tn_new(int ndim, const int64_t *shape, cl_err *err)
{
    int64_t n;
    if (check_shape(ndim, shape, &n, err)) return NULL;
    tn_tensor *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    t->data = tn_alloc((size_t)n * sizeof(float));
    if (!t->data) goto oom;
    memset(t->data, 0, (size_t)n * sizeof(float));
    t->cap = n > 0 ? n : 1;
    set_contiguous(t, ndim, shape);
    return t;
oom:
    free(t);
    cl_err_set(err, CL_ENOMEM, "out of memory allocating a tensor of %lld floats", (long long)n);
    return NULL;
}

tn_tensor *tn_new4(int64_t n, int64_t c, int64_t h, int64_t w, cl_err *err)
{
    int64_t s[4] = {n, c, h, w};
    return tn_new(4, s, err);
}

tn_tensor *tn_new2(int64_t h, int64_t w, cl_err *err)
{
    int64_t s[2] = {h, w};
    return tn_new(2, s, err);
}

tn_tensor *tn_new1(int64_t n, cl_err *err)
{
    return tn_new(1, &n, err);
}

int tn_is_contiguous(const tn_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

static void gather(float *dst, const tn_tensor *t, int dim, const float *src, int64_t *k)
{
    if (dim == t->ndim) {
        dst[(*k)++] = *src;
        return;
    }
    for (int64_t i = 0; i < t->shape[dim]; i++)
        gather(dst, t, dim + 1, src + i * t->stride[dim], k);
}

tn_tensor *tn_clone(const tn_tensor *t, cl_err *err)
{
    tn_tensor *c = tn_new(t->ndim, t->shape, err);
    if (!c) return NULL;
    if (tn_is_contiguous(t)) {
        memcpy(c->data, t->data, (size_t)tn_numel(t) * sizeof(float));
    } else {
        int64_t k = 0;
        gather(c->data, t, 0, t->data, &k);
    }
    return c;
}

tn_tensor *tn_view(const tn_tensor *t, cl_err *err)
{
    tn_tensor *v = malloc(sizeof *v);
    if (!v) {
        cl_err_set(err, CL_ENOMEM, "out of memory");
        return NULL;
    }
    *v = *t;
    v->cap = 0;
    return v;
}

void tn_free(tn_tensor *t)
{
    if (!t) return;
    if (t->cap) tn_dealloc(t->data);
    free(t);
}

int tn_resize(tn_tensor *t, int ndim, const int64_t *shape, cl_err *err)
{
    int64_t n;
    if (check_shape(ndim, shape, &n, err)) return -1;
    if (t->cap == 0 && t->data) return cl_err_set(err, CL_EINVAL, "cannot resize a tensor view");
    if (n > t->cap) {
        float *d = tn_alloc((size_t)n * sizeof(float));
        if (!d)
            return cl_err_set(err, CL_ENOMEM, "out of memory allocating %lld floats", (long long)n);
        tn_dealloc(t->data);
        t->data = d;
        t->cap = n;
    }
    set_contiguous(t, ndim, shape);
    return 0;
}

int tn_reshape(tn_tensor *t, int ndim, const int64_t *shape, cl_err *err)
{
    int64_t n;
    if (check_shape(ndim, shape, &n, err)) return -1;
    if (n != tn_numel(t)) {
        char a[128], b[128];
        return cl_err_set(err, CL_EINVAL, "cannot reshape %s into %s", tn_shape_str(t, a, sizeof a),
                          tn_shape_str_raw(ndim, shape, b, sizeof b));
    }
    if (!tn_is_contiguous(t)) return cl_err_set(err, CL_EINVAL, "cannot reshape a strided view");
    set_contiguous(t, ndim, shape);
    return 0;
}

int64_t tn_numel(const tn_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

void tn_zero(tn_tensor *t)
{
    memset(t->data, 0, (size_t)tn_numel(t) * sizeof(float));
}

void tn_fill(tn_tensor *t, float v)
{
    int64_t n = tn_numel(t);
    for (int64_t i = 0; i < n; i++) t->data[i] = v;
}

int tn_same_shape(const tn_tensor *a, const tn_tensor *b)
{
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

int tn_copy(tn_tensor *dst, const tn_tensor *src, cl_err *err)
{
    if (tn_numel(dst) != tn_numel(src)) return cl_err_set(err, CL_EINVAL, "tn_copy: sizes differ");
    memcpy(dst->data, src->data, (size_t)tn_numel(src) * sizeof(float));
    return 0;
}

char *tn_shape_str_raw(int ndim, const int64_t *shape, char *buf, size_t n)
{
    size_t k = 0;
    if (n == 0) return buf;
    k += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

char *tn_shape_str(const tn_tensor *t, char *buf, size_t n)
{
    return tn_shape_str_raw(t->ndim, t->shape, buf, n);
}
