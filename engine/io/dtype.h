/* dtype — the element types found in weight and array files, and their
 * conversion to float32 (the engine's only type).
 *
 * Input bytes are little-endian and may be unaligned.  No function here
 * allocates.
 */
#ifndef CNNLENS_IO_DTYPE_H
#define CNNLENS_IO_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    IO_F32,
    IO_F16,
    IO_BF16,
    IO_F64,
    IO_I64,
    IO_I32,
    IO_I16,
    IO_I8,
    IO_U8,
    IO_BOOL,
} io_dtype;

size_t io_dtype_size(io_dtype t);
const char *io_dtype_name(io_dtype t);

/* dst[i] = (float)element i of src, for n elements. */
void io_convert(float *dst, const uint8_t *src, int64_t n, io_dtype t);

/* Copies a strided view out of `base` (elements of type t) into contiguous
 * dst: element (i0..ik) is at base[offset + sum i_j * stride[j]].  The caller
 * has checked every reachable index against the bytes present. */
void io_gather(float *dst, const uint8_t *base, io_dtype t, int ndim, const int64_t *shape,
               const int64_t *stride, int64_t offset);

/* Sets *out to the product of shape[0..ndim), or returns -1 if it overflows
 * int64 or a dimension is negative. */
int io_numel(int ndim, const int64_t *shape, int64_t *out);

#endif
