#include "engine/io/dtype.h"

#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cnnlens reads little-endian files by reinterpreting bytes; port io/dtype.c first"
#endif

size_t io_dtype_size(io_dtype t)
{
    switch (t) {
    case IO_F64:
    case IO_I64:
        return 8;
    case IO_F32:
    case IO_I32:
        return 4;
    case IO_F16:
    case IO_BF16:
    case IO_I16:
        return 2;
    case IO_I8:
    case IO_U8:
    case IO_BOOL:
        return 1;
    }
    return 1;
}

const char *io_dtype_name(io_dtype t)
{
    static const char *names[] = {"float32", "float16", "bfloat16", "float64", "int64",
                                  "int32",   "int16",   "int8",     "uint8",   "bool"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "?";
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000 | (man << 13);
    } else if (exp) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man) {
        /* Subnormal: normalise the mantissa. */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float elem(const uint8_t *p, io_dtype t)
{
    switch (t) {
    case IO_F32: {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    case IO_F16: {
        uint16_t v;
        memcpy(&v, p, 2);
        return half_to_float(v);
    }
    case IO_BF16: {
        uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 24;
        float f;
        memcpy(&f, &v, 4);
        return f;
    }
    case IO_F64: {
        double v;
        memcpy(&v, p, 8);
        return (float)v;
    }
    case IO_I64: {
        int64_t v;
        memcpy(&v, p, 8);
        return (float)v;
    }
    case IO_I32: {
        int32_t v;
        memcpy(&v, p, 4);
        return (float)v;
    }
    case IO_I16: {
        int16_t v;
        memcpy(&v, p, 2);
        return (float)v;
    }
    case IO_I8:
        return (float)(int8_t)p[0];
    case IO_U8:
        return (float)p[0];
    case IO_BOOL:
        return p[0] ? 1.0f : 0.0f;
    }
    return 0.0f;
}

void io_convert(float *dst, const uint8_t *src, int64_t n, io_dtype t)
{
    if (t == IO_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return;
    }
    size_t es = io_dtype_size(t);
    for (int64_t i = 0; i < n; i++) dst[i] = elem(src + (size_t)i * es, t);
}

void io_gather(float *dst, const uint8_t *base, io_dtype t, int ndim, const int64_t *shape,
               const int64_t *stride, int64_t offset)
{
    int64_t n;
    if (io_numel(ndim, shape, &n) || n == 0) return;
    size_t es = io_dtype_size(t);
    int64_t idx[16] = {0};
    int64_t pos = offset;
    /* The innermost dimension in runs: contiguous runs convert in bulk. */
    int64_t inner = ndim ? shape[ndim - 1] : 1, istride = ndim ? stride[ndim - 1] : 1;
    for (int64_t k = 0; k < n; k += inner) {
        if (istride == 1) {
            io_convert(dst + k, base + (size_t)pos * es, inner, t);
        } else {
            for (int64_t i = 0; i < inner; i++)
                dst[k + i] = elem(base + (size_t)(pos + i * istride) * es, t);
        }
        for (int d = ndim - 2; d >= 0; d--) {
            pos += stride[d];
            if (++idx[d] < shape[d]) break;
            pos -= stride[d] * shape[d];
            idx[d] = 0;
        }
    }
}

int io_numel(int ndim, const int64_t *shape, int64_t *out)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] && n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    *out = n;
    return 0;
}
