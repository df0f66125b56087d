/* idx — the IDX files of MNIST and Fashion-MNIST (LeCun's format), plain or
 * gzip-compressed (recognised by their content, not their name).
 *
 * An IDX file is two zero bytes, a type byte (0x08 = unsigned byte), the
 * number of dimensions, each dimension as a big-endian u32, then the data.
 * Only unsigned-byte files are read (all of MNIST's are).  Every size is
 * checked: the dimensions must multiply to exactly the bytes present.
 *
 * Ownership: idx_load fills an idx_array whose `data` the caller frees with
 * idx_free.
 */
#ifndef CNNLENS_IO_IDX_H
#define CNNLENS_IO_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

#define IDX_MAXDIM 4
/* Largest decompressed file accepted (1 GiB): more than any MNIST-style set. */
#define IDX_MAX_BYTES ((size_t)1 << 30)

typedef struct idx_array {
    int ndim;
    int64_t dims[IDX_MAXDIM];
    uint8_t *data; /* dims[0] x ... x dims[ndim-1] bytes */
    size_t size;
} idx_array;

/* Reads `path` (gzip or not). */
int idx_load(const char *path, idx_array *out, cl_err *err);
/* Parses an IDX image already in memory (not compressed); copies the data. */
int idx_parse(const uint8_t *buf, size_t len, idx_array *out, cl_err *err);
void idx_free(idx_array *a);

#endif
