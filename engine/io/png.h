/* png — PNG encoding and decoding with libpng.
 *
 * Pixels are 8-bit, row-major, interleaved: 1 (grey), 3 (RGB) or 4 (RGBA)
 * channels.  Functions returning a buffer give it to the caller, who frees it
 * with free().
 */
#ifndef CNNLENS_IO_PNG_H
#define CNNLENS_IO_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

/* Encodes to a malloc'd buffer (*out, *out_len).  Compression tuned for
 * notebooks: small files, fast enough for live displays. */
int png_encode(const uint8_t *pix, int w, int h, int channels, uint8_t **out, size_t *out_len,
               cl_err *err);

/* Encodes and writes `path` atomically (temporary file in the same folder, then rename). */
int png_write_file(const char *path, const uint8_t *pix, int w, int h, int channels, cl_err *err);

#endif
