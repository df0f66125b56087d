/* png — PNG encoding and decoding with libpng.
 *
 * Pixels are 8-bit, row-major, interleaved: 1 (grey), 3 (RGB) or 4 (RGBA)
 * channels; decoded 16-bit images keep 16 bits (native-endian uint16).
 * Functions returning a buffer give it to the caller, who frees it with
 * free().
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

/* Decoded pixels: `depth` 8 (uint8) or 16 (uint16), `channels` 1 (grey) or 3
 * (RGB): alpha is dropped (not composited, as cv2.imread and PIL's
 * convert("RGB") do), palettes and 1/2/4-bit grey are expanded. */
typedef struct png_pixels {
    int w, h, channels, depth;
    void *data; /* h rows of w * channels samples, malloc'd */
} png_pixels;

/* Decodes `path`; an image of more than max_pixels pixels is refused before
 * anything is allocated.  On success the caller frees out->data. */
int png_decode_file(const char *path, int64_t max_pixels, png_pixels *out, cl_err *err);

#endif
