/* npy_lite — .npy files for `save` and `load`: float32 little-endian arrays
 * written (version 1.0, C order); float32/float64/int32/int64/uint8 read.
 *
 * Ownership: nl_read returns a tensor the caller frees with tn_free.
 */
#ifndef CNNLENS_LANG_NPY_LITE_H
#define CNNLENS_LANG_NPY_LITE_H

#include "engine/err.h"
#include "engine/tensor.h"

/* Writes t (contiguous) with the given shape (ndim 0..4) atomically. */
int nl_write(const char *path, const tn_tensor *t, int ndim, const int64_t *shape, cl_err *err);
tn_tensor *nl_read(const char *path, cl_err *err);

#endif
