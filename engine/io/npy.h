/* npy — NumPy's .npy arrays.
 *
 * npy_read accepts C-order arrays of float32, float64, float16, uint8, int8,
 * int32, int64 and bool (little- or big-endian), up to 6 dimensions, and
 * converts them to float32; Fortran order is refused with a clear error.
 * npy_write writes float32, little-endian, C order (format 1.0), atomically.
 *
 * Ownership: npy_read returns a tensor the caller frees with tn_free.
 */
#ifndef CNNLENS_IO_NPY_H
#define CNNLENS_IO_NPY_H

#include "engine/err.h"
#include "engine/tensor.h"

tn_tensor *npy_read(const char *path, cl_err *err);
int npy_write(const char *path, const tn_tensor *t, cl_err *err);

#endif
