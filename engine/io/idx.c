/* idx — IDX reading: the whole file is inflated with zlib's gz* functions
 * (which pass plain files through unchanged), then the header is checked
 * against the bytes present. */
#include "engine/io/idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void idx_free(idx_array *a)
{
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

static uint32_t rd_u32be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks the header and returns the payload offset, or -1. */
static int parse_header(const uint8_t *buf, size_t len, idx_array *out, size_t *off, cl_err *err)
{
    if (len < 4)
        return cl_err_set(err, CL_EFORMAT, "not an IDX file: only %zu bytes (truncated?)", len);
    if (buf[0] || buf[1])
        return cl_err_set(err, CL_EFORMAT,
                          "not an IDX file: it should start with two zero bytes (is it an "
                          "MNIST-style images or labels file?)");
    if (buf[2] != 0x08)
        return cl_err_set(err, CL_EFORMAT,
                          "IDX data type 0x%02x is not supported: only unsigned bytes (0x08), as "
                          "in MNIST, can be read",
                          buf[2]);
    int ndim = buf[3];
    if (ndim < 1 || ndim > IDX_MAXDIM)
        return cl_err_set(err, CL_EFORMAT, "IDX file has %d dimensions; 1 to %d are supported",
                          ndim, IDX_MAXDIM);
    if (len < 4 + 4 * (size_t)ndim) return cl_err_set(err, CL_EFORMAT, "IDX header is truncated");
    uint64_t total = 1;
    out->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        uint32_t n = rd_u32be(buf + 4 + 4 * d);
        out->dims[d] = n;
        total *= n;
        if (total > IDX_MAX_BYTES)
            return cl_err_set(err, CL_EFORMAT, "IDX header claims more than %zu bytes: corrupt?",
                              IDX_MAX_BYTES);
    }
    *off = 4 + 4 * (size_t)ndim;
    if (total != len - *off)
        return cl_err_set(err, CL_EFORMAT,
                          "IDX header promises %llu bytes of data but the file has %zu "
                          "(truncated or corrupt)",
                          (unsigned long long)total, len - *off);
    out->size = (size_t)total;
    return 0;
}

int idx_parse(const uint8_t *buf, size_t len, idx_array *out, cl_err *err)
{
    memset(out, 0, sizeof *out);
    size_t off;
    if (parse_header(buf, len, out, &off, err)) return -1;
    if (!(out->data = malloc(out->size ? out->size : 1))) {
        memset(out, 0, sizeof *out);
        return cl_err_set(err, CL_ENOMEM, "out of memory reading an IDX file");
    }
    memcpy(out->data, buf + off, out->size);
    return 0;
}

/* Inflates (or copies) the whole file into a growing buffer. */
static int read_all(gzFile f, uint8_t **out, size_t *len, cl_err *err)
{
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) return cl_err_set(err, CL_ENOMEM, "out of memory reading an IDX file");
    for (;;) {
        if (n == cap) {
            if (cap >= IDX_MAX_BYTES) {
                free(buf);
                return cl_err_set(err, CL_EFORMAT,
                                  "file is larger than %zu bytes: not an IDX "
                                  "dataset file?",
                                  IDX_MAX_BYTES);
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return cl_err_set(err, CL_ENOMEM, "out of memory reading an IDX file");
            }
            buf = nb, cap *= 2;
        }
        size_t want = cap - n > (1u << 30) ? (1u << 30) : cap - n;
        int got = gzread(f, buf + n, (unsigned)want);
        if (got < 0) {
            int code;
            const char *msg = gzerror(f, &code);
            cl_err_set(err, CL_EFORMAT, "corrupt gzip data (%s)",
                       code == Z_ERRNO ? strerror(errno) : msg);
            free(buf);
            return -1;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    *out = buf, *len = n;
    return 0;
}

int idx_load(const char *path, idx_array *out, cl_err *err)
{
    memset(out, 0, sizeof *out);
    gzFile f = gzopen(path, "rb");
    if (!f) return cl_err_set(err, CL_EIO, "cannot open '%s': %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = read_all(f, &buf, &len, err);
    /* A gzip stream cut short reads as EOF; gzclose_r reports it. */
    int closed = gzclose_r(f);
    if (!rc && closed != Z_OK) {
        free(buf);
        rc = cl_err_set(err, CL_EFORMAT, "truncated or corrupt gzip data");
    }
    if (rc) return cl_err_prefix(err, "%s", path);
    size_t off;
    rc = parse_header(buf, len, out, &off, err);
    if (rc) {
        free(buf);
        memset(out, 0, sizeof *out);
        return cl_err_prefix(err, "%s", path);
    }
    memmove(buf, buf + off, out->size);
    out->data = buf;
    return 0;
}
