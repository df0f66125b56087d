#include "engine/io/base64.h"

#include <stdlib.h>
#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const void *data, size_t n, cl_err *err)
{
    const uint8_t *d = data;
    if (n > (SIZE_MAX - 1) / 4 * 3 - 2) {
        cl_err_set(err, CL_ENOMEM, "base64: %zu bytes are too many", n);
        return NULL;
    }
    char *s = malloc(4 * ((n + 2) / 3) + 1), *p = s;
    if (!s) {
        cl_err_set(err, CL_ENOMEM, "out of memory for the base64 of %zu bytes", n);
        return NULL;
    }
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *p++ = b64_alphabet[v >> 18];
        *p++ = b64_alphabet[(v >> 12) & 63];
        *p++ = b64_alphabet[(v >> 6) & 63];
        *p++ = b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        *p++ = b64_alphabet[v >> 18];
        *p++ = b64_alphabet[(v >> 12) & 63];
        *p++ = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    *p = '\0';
    return s;
}

static int digit(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

uint8_t *b64_decode(const char *s, size_t len, size_t *n, cl_err *err)
{
    if (len == (size_t)-1) len = strlen(s);
    uint8_t *o = malloc(len / 4 * 3 + 3);
    if (!o) {
        cl_err_set(err, CL_ENOMEM, "out of memory decoding %zu base64 characters", len);
        return NULL;
    }
    size_t k = 0;
    uint32_t v = 0;
    int bits = 0;
    for (size_t i = 0; i < len && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '=' || c == '\n' || c == '\r' || c == ' ' || c == '\t') continue;
        int d = digit(c);
        if (d < 0) {
            free(o);
            cl_err_set(err, CL_EINVAL, "base64: '%c' at character %zu is not base64", c, i + 1);
            return NULL;
        }
        v = (v << 6) | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (uint8_t)(v >> bits);
            v &= (1u << bits) - 1;
        }
    }
    *n = k;
    return o;
}
