#include "engine/io/zip.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL   0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD    0x06054b50u
#define SIG_EOCD64  0x06064b50u
#define SIG_LOC64   0x07064b50u

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

typedef struct cdir {
    uint64_t count, size, offset;
} cdir;

/* The end-of-central-directory record is in the last 64 KiB + 22 bytes. */
static int find_eocd(const uint8_t *buf, size_t len, size_t *at)
{
    if (len < 22) return -1;
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lo;) {
        if (le(buf + i, 4) == SIG_EOCD && i + 22 + le(buf + i + 20, 2) == len) {
            *at = i;
            return 0;
        }
    }
    return -1;
}

static int read_cdir(const uint8_t *buf, size_t len, cdir *cd, cl_err *err)
{
    size_t at;
    if (find_eocd(buf, len, &at))
        return cl_err_set(err, CL_EFORMAT, "no zip directory at the end of the file (truncated?)");
    const uint8_t *e = buf + at;
    cd->count = le(e + 10, 2);
    cd->size = le(e + 12, 4);
    cd->offset = le(e + 16, 4);
    if (cd->count == 0xffff || cd->size == 0xffffffffu || cd->offset == 0xffffffffu) {
        /* zip64: a locator just before the record points to the real one. */
        if (at < 20 || le(buf + at - 20, 4) != SIG_LOC64)
            return cl_err_set(err, CL_EFORMAT, "zip64 directory locator missing");
        uint64_t off = le(buf + at - 20 + 8, 8);
        if (off > len || len - off < 56 || le(buf + off, 4) != SIG_EOCD64)
            return cl_err_set(err, CL_EFORMAT, "zip64 directory record outside the file");
        cd->count = le(buf + off + 32, 8);
        cd->size = le(buf + off + 40, 8);
        cd->offset = le(buf + off + 48, 8);
    }
    if (cd->offset > len || cd->size > len - cd->offset)
        return cl_err_set(err, CL_EFORMAT, "the zip directory points outside the file");
    if (cd->count > cd->size / 46)
        return cl_err_set(err, CL_EFORMAT, "the zip directory claims %llu entries in %llu bytes",
                          (unsigned long long)cd->count, (unsigned long long)cd->size);
    return 0;
}

/* Replaces saturated 32-bit fields with the zip64 extra field's values. */
static int zip64_extra(const uint8_t *x, size_t xlen, zip_entry *e)
{
    while (xlen >= 4) {
        size_t id = (size_t)le(x, 2), n = (size_t)le(x + 2, 2);
        if (n > xlen - 4) return -1;
        if (id == 1) {
            const uint8_t *p = x + 4, *end = x + 4 + n;
            uint64_t *fields[3] = {&e->usize, &e->csize, &e->local_off};
            for (int k = 0; k < 3; k++) {
                if (*fields[k] != 0xffffffffu) continue;
                if (end - p < 8) return -1;
                *fields[k] = le(p, 8);
                p += 8;
            }
            return 0;
        }
        x += 4 + n;
        xlen -= 4 + n;
    }
    return 0;
}

static int locate(const uint8_t *buf, size_t len, const zip_entry *e, uint64_t *off, cl_err *err);

static int cmp_entry(const void *a, const void *b)
{
    return strcmp((*(zip_entry *const *)a)->name, (*(zip_entry *const *)b)->name);
}

static int parse_entry(const uint8_t *p, const uint8_t *end, zip_entry *e, size_t *used,
                       cl_err *err)
{
    if (end - p < 46 || le(p, 4) != SIG_CENTRAL)
        return cl_err_set(err, CL_EFORMAT, "corrupt zip directory entry");
    size_t nlen = (size_t)le(p + 28, 2), xlen = (size_t)le(p + 30, 2), clen = (size_t)le(p + 32, 2);
    if ((size_t)(end - p) < 46 + nlen + xlen + clen)
        return cl_err_set(err, CL_EFORMAT, "corrupt zip directory entry");
    e->method = (int)le(p + 10, 2);
    e->csize = le(p + 20, 4);
    e->usize = le(p + 24, 4);
    e->local_off = le(p + 42, 4);
    if (zip64_extra(p + 46 + nlen, xlen, e))
        return cl_err_set(err, CL_EFORMAT, "corrupt zip64 extra field");
    e->name = malloc(nlen + 1);
    if (!e->name) return cl_err_set(err, CL_ENOMEM, "out of memory");
    memcpy(e->name, p + 46, nlen);
    e->name[nlen] = '\0';
    *used = 46 + nlen + xlen + clen;
    return 0;
}

int zip_open(zip_archive *z, const uint8_t *buf, size_t len, cl_err *err)
{
    memset(z, 0, sizeof *z);
    cdir cd = {0};
    if (read_cdir(buf, len, &cd, err)) return -1;
    if (cd.count == 0) return cl_err_set(err, CL_EFORMAT, "the zip archive is empty");
    z->entries = calloc((size_t)cd.count, sizeof *z->entries);
    z->sorted = calloc((size_t)cd.count, sizeof *z->sorted);
    if (!z->entries || !z->sorted) {
        zip_close(z);
        return cl_err_set(err, CL_ENOMEM, "out of memory");
    }
    const uint8_t *p = buf + cd.offset, *end = p + cd.size;
    for (uint64_t i = 0; i < cd.count; i++) {
        size_t used = 0;
        if (parse_entry(p, end, &z->entries[i], &used, err)) {
            zip_close(z);
            return -1;
        }
        z->count++;
        uint64_t off;
        /* Every entry is checked, used or not: a damaged archive is refused. */
        if (locate(buf, len, &z->entries[i], &off, err)) {
            zip_close(z);
            return -1;
        }
        z->sorted[i] = &z->entries[i];
        p += used;
    }
    qsort(z->sorted, z->count, sizeof *z->sorted, cmp_entry);
    for (size_t i = 1; i < z->count; i++)
        if (!strcmp(z->sorted[i - 1]->name, z->sorted[i]->name)) {
            cl_err_set(err, CL_EFORMAT, "the zip archive holds '%s' twice", z->sorted[i]->name);
            zip_close(z);
            return -1;
        }
    return 0;
}

const zip_entry *zip_find(const zip_archive *z, const char *name)
{
    size_t lo = 0, hi = z->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->sorted[mid]->name, name);
        if (!c) return z->sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int inflate_entry(const uint8_t *src, uint64_t csize, uint64_t usize, uint8_t **out,
                         cl_err *err)
{
    uint8_t *dst = malloc(usize ? (size_t)usize : 1);
    if (!dst) return cl_err_set(err, CL_ENOMEM, "out of memory inflating a zip entry");
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -MAX_WBITS) != Z_OK) {
        free(dst);
        return cl_err_set(err, CL_ENOMEM, "zlib: cannot start inflating");
    }
    int rc = Z_OK;
    uint64_t in_left = csize, out_done = 0;
    const uint8_t *in = src;
    /* zlib counts in uInt: feed at most 1 GiB per call. */
    while (rc == Z_OK) {
        uInt in_chunk = (uInt)(in_left > (1u << 30) ? (1u << 30) : in_left);
        uInt out_chunk = (uInt)(usize - out_done > (1u << 30) ? (1u << 30) : usize - out_done);
        s.next_in = (Bytef *)in;
        s.avail_in = in_chunk;
        s.next_out = dst + out_done;
        s.avail_out = out_chunk;
        rc = inflate(&s, Z_NO_FLUSH);
        in += in_chunk - s.avail_in;
        in_left -= in_chunk - s.avail_in;
        out_done += out_chunk - s.avail_out;
        if (rc == Z_OK && in_chunk == s.avail_in && out_chunk == s.avail_out) rc = Z_BUF_ERROR;
    }
    inflateEnd(&s);
    if (rc != Z_STREAM_END || out_done != usize) {
        free(dst);
        return cl_err_set(err, CL_EFORMAT, "corrupt compressed zip entry");
    }
    *out = dst;
    return 0;
}

/* The offset of the entry's data, checked against the file. */
static int locate(const uint8_t *buf, size_t len, const zip_entry *e, uint64_t *off, cl_err *err)
{
    uint64_t lo = e->local_off;
    if (lo > len || len - lo < 30 || le(buf + lo, 4) != SIG_LOCAL)
        return cl_err_set(err, CL_EFORMAT, "zip entry '%s' points outside the file or is corrupt",
                          e->name);
    *off = lo + 30 + le(buf + lo + 26, 2) + le(buf + lo + 28, 2);
    if (*off > len || e->csize > len - *off)
        return cl_err_set(err, CL_EFORMAT,
                          "zip entry '%s' runs past the end of the file (truncated?)", e->name);
    if (e->method == 0 && e->csize != e->usize)
        return cl_err_set(err, CL_EFORMAT, "zip entry '%s' has inconsistent sizes", e->name);
    if (e->method != 0 && e->method != 8)
        return cl_err_set(err, CL_EFORMAT, "zip entry '%s' uses compression method %d", e->name,
                          e->method);
    return 0;
}

int zip_data(const uint8_t *buf, size_t len, const zip_entry *e, uint64_t max_size,
             const uint8_t **data, size_t *size, uint8_t **owned, cl_err *err)
{
    *owned = NULL;
    uint64_t off;
    if (locate(buf, len, e, &off, err)) return -1;
    if (e->usize > max_size)
        return cl_err_set(err, CL_ENOMEM, "zip entry '%s' is %llu bytes (limit %llu)", e->name,
                          (unsigned long long)e->usize, (unsigned long long)max_size);
    if (e->method == 0) {
        *data = buf + off;
        *size = (size_t)e->usize;
        return 0;
    }
    /* Deflate expands at most 1032:1; a bigger claim would only make us
     * allocate for nothing. */
    if (e->usize / 1032 > e->csize + 64)
        return cl_err_set(err, CL_EFORMAT, "zip entry '%s' claims an impossible %llu bytes",
                          e->name, (unsigned long long)e->usize);
    if (inflate_entry(buf + off, e->csize, e->usize, owned, err))
        return cl_err_prefix(err, "'%s'", e->name);
    *data = *owned;
    *size = (size_t)e->usize;
    return 0;
}

void zip_close(zip_archive *z)
{
    for (size_t i = 0; i < z->count; i++) free(z->entries[i].name);
    free(z->entries);
    free(z->sorted);
    memset(z, 0, sizeof *z);
}
