/* jpeg — JPEG decoding with libjpeg-turbo.
 *
 * Grey images stay 1 channel; colour (YCbCr, RGB) becomes RGB; Adobe CMYK is
 * converted to RGB as OpenCV does.  A file cut short is an error (libjpeg
 * would otherwise fill the rest with grey).
 *
 * Ownership: jpg_decode_file gives the caller a malloc'd buffer (*pix).
 */
#ifndef CNNLENS_IO_JPEG_H
#define CNNLENS_IO_JPEG_H

#include <stdint.h>

#include "engine/err.h"

/* 8-bit interleaved pixels, h rows of w * channels bytes (channels 1 or 3);
 * more than max_pixels pixels is refused before decoding. */
int jpg_decode_file(const char *path, int64_t max_pixels, uint8_t **pix, int *w, int *h,
                    int *channels, cl_err *err);

#endif
