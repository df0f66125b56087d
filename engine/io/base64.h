/* io/base64: standard base64 (RFC 4648, with padding), the one codec for PNGs
 * in notebook messages, HTML data: URIs and figures read back from notebooks.
 *
 * Ownership: b64_encode and b64_decode return malloc'd buffers the caller
 * frees; NULL (and err set, if err is not NULL) on failure. */
#ifndef CNNLENS_IO_BASE64_H
#define CNNLENS_IO_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

/* n bytes to base64 text, NUL-terminated. */
char *b64_encode(const void *data, size_t n, cl_err *err);

/* The bytes of the first `len` characters of base64 text (len = (size_t)-1:
 * up to the NUL).  Whitespace (notebooks may wrap lines) and padding are
 * skipped; any other character outside the alphabet is an error. *n gets the
 * byte count. */
uint8_t *b64_decode(const char *s, size_t len, size_t *n, cl_err *err);

#endif
