#include "engine/io/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/atomic_file.h"
#include "engine/io/dtype.h"
#include "engine/io/filemap.h"

/* Header dicts are small; anything bigger is not an array numpy wrote. */
#define NPY_MAX_HEADER (1u << 20)

typedef struct npy_header {
    io_dtype dt;
    int swap; /* big-endian data */
    int fortran;
    int ndim;
    int64_t shape[TN_MAXDIM];
} npy_header;

typedef struct pcur {
    const char *p, *end;
} pcur;

static void ws(pcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\t' || *c->p == '\r'))
        c->p++;
}

static int lit(pcur *c, char ch)
{
    ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A Python string literal '...' or "..." without escapes, copied into buf. */
static int pystr(pcur *c, char *buf, size_t n)
{
    ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
    char q = *c->p++;
    size_t k = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || k + 1 >= n) return -1;
        buf[k++] = *c->p++;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    buf[k] = '\0';
    return 0;
}

static int parse_descr(const char *s, npy_header *h, cl_err *err)
{
    static const struct {
        const char *code;
        io_dtype dt;
    } tab[] = {{"f4", IO_F32}, {"f8", IO_F64}, {"f2", IO_F16}, {"u1", IO_U8},  {"i1", IO_I8},
               {"i2", IO_I16}, {"i4", IO_I32}, {"i8", IO_I64}, {"b1", IO_BOOL}};
    char order = s[0];
    if (order != '<' && order != '>' && order != '|' && order != '=') goto bad;
    for (size_t i = 0; i < sizeof tab / sizeof *tab; i++)
        if (!strcmp(s + 1, tab[i].code)) {
            h->dt = tab[i].dt;
            h->swap = order == '>' && io_dtype_size(h->dt) > 1;
            return 0;
        }
bad:
    return cl_err_set(err, CL_EFORMAT,
                      "npy dtype '%s' is not supported (use float32, float64, float16, uint8, "
                      "int8/16/32/64 or bool)",
                      s);
}

static int parse_shape(pcur *c, npy_header *h, cl_err *err)
{
    if (!lit(c, '(')) return cl_err_set(err, CL_EFORMAT, "npy header: 'shape' is not a tuple");
    h->ndim = 0;
    while (!lit(c, ')')) {
        ws(c);
        int64_t v = 0;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return cl_err_set(err, CL_EFORMAT, "npy header: bad dimension in 'shape'");
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return cl_err_set(err, CL_EFORMAT, "npy header: dimension too large");
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 longs */
        if (h->ndim == TN_MAXDIM)
            return cl_err_set(err, CL_EINVAL, "npy array has more than %d dimensions", TN_MAXDIM);
        h->shape[h->ndim++] = v;
        if (!lit(c, ',')) {
            if (!lit(c, ')')) return cl_err_set(err, CL_EFORMAT, "npy header: bad 'shape'");
            break;
        }
    }
    return 0;
}

static int parse_dict(pcur *c, npy_header *h, cl_err *err)
{
    int seen = 0;
    if (!lit(c, '{')) return cl_err_set(err, CL_EFORMAT, "npy header is not a dict");
    while (!lit(c, '}')) {
        char key[32], val[32];
        if (pystr(c, key, sizeof key) || !lit(c, ':'))
            return cl_err_set(err, CL_EFORMAT, "npy header: bad key");
        if (!strcmp(key, "descr")) {
            if (pystr(c, val, sizeof val))
                return cl_err_set(err, CL_EFORMAT,
                                  "npy dtype is not a simple type (structured arrays are not "
                                  "supported)");
            if (parse_descr(val, h, err)) return -1;
            seen |= 1;
        } else if (!strcmp(key, "fortran_order")) {
            ws(c);
            if (c->end - c->p >= 4 && !memcmp(c->p, "True", 4))
                h->fortran = 1, c->p += 4;
            else if (c->end - c->p >= 5 && !memcmp(c->p, "False", 5))
                h->fortran = 0, c->p += 5;
            else
                return cl_err_set(err, CL_EFORMAT, "npy header: bad 'fortran_order'");
            seen |= 2;
        } else if (!strcmp(key, "shape")) {
            if (parse_shape(c, h, err)) return -1;
            seen |= 4;
        } else {
            return cl_err_set(err, CL_EFORMAT, "npy header: unknown key '%s'", key);
        }
        if (!lit(c, ',')) {
            if (!lit(c, '}')) return cl_err_set(err, CL_EFORMAT, "npy header: expected ',' or '}'");
            break;
        }
    }
    if (seen != 7)
        return cl_err_set(err, CL_EFORMAT, "npy header lacks descr, fortran_order or shape");
    return 0;
}

static int read_header(const fm_map *m, npy_header *h, size_t *data_off, cl_err *err)
{
    const uint8_t *p = m->data;
    if (m->size < 10 || memcmp(p, "\x93NUMPY", 6))
        return cl_err_set(err, CL_EFORMAT, "not a .npy file (no \\x93NUMPY magic)");
    size_t hlen, start;
    if (p[6] == 1) {
        hlen = (size_t)p[8] | (size_t)p[9] << 8;
        start = 10;
    } else if (p[6] == 2 || p[6] == 3) {
        if (m->size < 12) return cl_err_set(err, CL_EFORMAT, "truncated .npy header");
        hlen = (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
        start = 12;
    } else {
        return cl_err_set(err, CL_EFORMAT, ".npy format version %d.%d is not supported", p[6],
                          p[7]);
    }
    if (hlen > NPY_MAX_HEADER)
        return cl_err_set(err, CL_EFORMAT, ".npy header claims %zu bytes (limit %u)", hlen,
                          NPY_MAX_HEADER);
    if (hlen > m->size - start)
        return cl_err_set(err, CL_EFORMAT, "truncated .npy file: the header runs past the end");
    memset(h, 0, sizeof *h);
    pcur c = {(const char *)p + start, (const char *)p + start + hlen};
    if (parse_dict(&c, h, err)) return -1;
    *data_off = start + hlen;
    return 0;
}

static void convert_swapped(float *dst, const uint8_t *src, int64_t n, io_dtype dt)
{
    size_t es = io_dtype_size(dt);
    uint8_t tmp[8];
    for (int64_t i = 0; i < n; i++) {
        for (size_t k = 0; k < es; k++) tmp[k] = src[(size_t)i * es + es - 1 - k];
        io_convert(dst + i, tmp, 1, dt);
    }
}

static tn_tensor *read_mapped(const fm_map *m, cl_err *err)
{
    npy_header h;
    size_t off = 0;
    if (read_header(m, &h, &off, err)) return NULL;
    if (h.fortran) {
        int nontrivial = 0;
        for (int i = 0; i < h.ndim; i++) nontrivial += h.shape[i] > 1;
        if (nontrivial > 1) {
            cl_err_set(err, CL_EINVAL,
                       "the array is in Fortran order; save it in C order "
                       "(np.save(f, np.ascontiguousarray(a)))");
            return NULL;
        }
    }
    int64_t numel;
    if (io_numel(h.ndim, h.shape, &numel) || numel > tn_max_elems) {
        if (!tn_check_shape(h.ndim, h.shape, err))
            cl_err_set(err, CL_ENOMEM, "the array is too large");
        return NULL;
    }
    size_t bytes = (size_t)numel * io_dtype_size(h.dt);
    if (bytes != m->size - off) {
        cl_err_set(err, CL_EFORMAT,
                   "the header promises %zu bytes of %s data but the file has %zu%s", bytes,
                   io_dtype_name(h.dt), m->size - off,
                   bytes > m->size - off ? " (truncated?)" : "");
        return NULL;
    }
    tn_tensor *t = tn_new(h.ndim, h.shape, err);
    if (!t) return NULL;
    if (h.swap)
        convert_swapped(t->data, m->data + off, numel, h.dt);
    else
        io_convert(t->data, m->data + off, numel, h.dt);
    return t;
}

tn_tensor *npy_read(const char *path, cl_err *err)
{
    fm_map m;
    if (fm_open(&m, path, err)) return NULL;
    tn_tensor *t = read_mapped(&m, err);
    if (t && fm_check(&m, err)) {
        tn_free(t);
        t = NULL;
    }
    fm_close(&m);
    if (!t) cl_err_prefix(err, "'%s'", path);
    return t;
}

int npy_write(const char *path, const tn_tensor *t, cl_err *err)
{
    char hdr[256];
    int k = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < t->ndim; i++)
        k += snprintf(hdr + k, sizeof hdr - (size_t)k, "%lld,%s", (long long)t->shape[i],
                      i + 1 < t->ndim ? " " : "");
    if (t->ndim > 1) k--; /* numpy writes (2, 3) but (5,) */
    k += snprintf(hdr + k, sizeof hdr - (size_t)k, "), }");
    /* Pad with spaces and a newline so the data starts 64-byte aligned. */
    size_t total = 10 + (size_t)k + 1;
    size_t padded = (total + 63) / 64 * 64;
    uint8_t head[320];
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    size_t hlen = padded - 10;
    head[8] = (uint8_t)(hlen & 0xff);
    head[9] = (uint8_t)(hlen >> 8);
    memcpy(head + 10, hdr, (size_t)k);
    memset(head + 10 + k, ' ', padded - 10 - (size_t)k - 1);
    head[padded - 1] = '\n';
    tn_tensor *tmp = NULL;
    if (!tn_is_contiguous(t)) {
        tmp = tn_clone(t, err);
        if (!tmp) return -1;
        t = tmp;
    }
    const void *chunks[2] = {head, t->data};
    size_t lens[2] = {padded, (size_t)tn_numel(t) * sizeof(float)};
    int rc = atomic_write_chunks(path, chunks, lens, 2, err);
    tn_free(tmp);
    return rc;
}
