#include "engine/io/safetensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/atomic_file.h"
#include "engine/io/dtype.h"
#include "engine/io/wt_private.h"

typedef struct st_entry {
    char *name;
    io_dtype dt;
    int ndim;
    int64_t shape[TN_MAXDIM];
    uint64_t begin, end;
} st_entry;

typedef struct cursor {
    const char *start, *p, *end;
} cursor;

static uint64_t rd_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int st_looks_like(const fm_map *m)
{
    if (m->size < 10) return 0;
    uint64_t n = rd_u64le(m->data);
    return n >= 2 && m->data[8] == '{';
}

/* ---- a strict little JSON reader for the header ---- */

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int expect(cursor *c, char ch, cl_err *err)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch)
        return cl_err_set(err, CL_EFORMAT, "safetensors header: expected '%c' at byte %zu", ch,
                          (size_t)(c->p - c->start) + 8);
    c->p++;
    return 0;
}

static int peek(cursor *c, char ch)
{
    skip_ws(c);
    return c->p < c->end && *c->p == ch;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            v |= (unsigned)(ch - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Reads a JSON string into a malloc'd, NUL-terminated buffer. */
static char *parse_string(cursor *c, cl_err *err)
{
    if (expect(c, '"', err)) return NULL;
    const char *q = c->p;
    while (q < c->end && *q != '"') q += (*q == '\\') ? 2 : 1;
    if (q >= c->end) {
        cl_err_set(err, CL_EFORMAT, "safetensors header: unterminated string");
        return NULL;
    }
    /* Escapes never expand: \uXXXX (6 bytes) is at most 4 UTF-8 bytes. */
    char *out = malloc((size_t)(q - c->p) + 1), *o = out;
    if (!out) {
        cl_err_set(err, CL_ENOMEM, "out of memory");
        return NULL;
    }
    while (c->p < q) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch < 0x20) goto bad;
        if (ch != '\\') {
            *o++ = (char)ch;
            continue;
        }
        char e = *c->p++;
        switch (e) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '/':
            *o++ = '/';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            if (q - c->p < 4 || hex4(c->p, &cp)) goto bad;
            c->p += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {
                if (q - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &lo) ||
                    lo < 0xdc00 || lo > 0xdfff)
                    goto bad;
                c->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                goto bad;
            }
            if (cp == 0) goto bad; /* names are C strings */
            o += put_utf8(o, cp);
            break;
        }
        default:
            goto bad;
        }
    }
    *o = '\0';
    c->p = q + 1;
    return out;
bad:
    free(out);
    cl_err_set(err, CL_EFORMAT, "safetensors header: bad character or escape in a string");
    return NULL;
}

static int parse_uint(cursor *c, uint64_t *out, cl_err *err)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return cl_err_set(err, CL_EFORMAT, "safetensors header: expected a non-negative integer");
    uint64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned dgt = (unsigned)(*c->p++ - '0');
        if (v > (UINT64_MAX / 4 - dgt) / 10)
            return cl_err_set(err, CL_EFORMAT, "safetensors header: integer too large");
        v = v * 10 + dgt;
    }
    *out = v;
    return 0;
}

static int parse_dtype(const char *s, io_dtype *dt, cl_err *err)
{
    static const struct {
        const char *name;
        io_dtype dt;
    } tab[] = {{"F32", IO_F32}, {"F16", IO_F16},  {"BF16", IO_BF16}, {"F64", IO_F64},
               {"I64", IO_I64}, {"I32", IO_I32},  {"I16", IO_I16},   {"I8", IO_I8},
               {"U8", IO_U8},   {"BOOL", IO_BOOL}};
    for (size_t i = 0; i < sizeof tab / sizeof *tab; i++)
        if (!strcmp(s, tab[i].name)) {
            *dt = tab[i].dt;
            return 0;
        }
    return cl_err_set(err, CL_EFORMAT, "safetensors dtype '%.32s' is not supported", s);
}

static int parse_shape(cursor *c, st_entry *e, cl_err *err)
{
    if (expect(c, '[', err)) return -1;
    e->ndim = 0;
    if (peek(c, ']')) return expect(c, ']', err);
    for (;;) {
        uint64_t v;
        if (parse_uint(c, &v, err)) return -1;
        if (e->ndim == TN_MAXDIM)
            return cl_err_set(err, CL_EFORMAT, "tensor '%s' has more than %d dimensions", e->name,
                              TN_MAXDIM);
        e->shape[e->ndim++] = (int64_t)v;
        if (peek(c, ']')) return expect(c, ']', err);
        if (expect(c, ',', err)) return -1;
    }
}

static int parse_offsets(cursor *c, st_entry *e, cl_err *err)
{
    if (expect(c, '[', err) || parse_uint(c, &e->begin, err) || expect(c, ',', err) ||
        parse_uint(c, &e->end, err) || expect(c, ']', err))
        return cl_err_prefix(err, "tensor '%s': data_offsets must be [begin, end]", e->name);
    return 0;
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]} in any order. */
static int parse_entry(cursor *c, st_entry *e, cl_err *err)
{
    int seen = 0;
    if (expect(c, '{', err)) return -1;
    if (peek(c, '}')) goto missing;
    for (;;) {
        char *key = parse_string(c, err);
        if (!key) return -1;
        int rc = expect(c, ':', err);
        if (!rc && !strcmp(key, "dtype") && !(seen & 1)) {
            char *s = parse_string(c, err);
            rc = s ? parse_dtype(s, &e->dt, err) : -1;
            free(s);
            seen |= 1;
        } else if (!rc && !strcmp(key, "shape") && !(seen & 2)) {
            rc = parse_shape(c, e, err);
            seen |= 2;
        } else if (!rc && !strcmp(key, "data_offsets") && !(seen & 4)) {
            rc = parse_offsets(c, e, err);
            seen |= 4;
        } else if (!rc) {
            rc = cl_err_set(err, CL_EFORMAT, "tensor '%s': unexpected or repeated field '%.64s'",
                            e->name, key);
        }
        free(key);
        if (rc) return -1;
        if (peek(c, '}')) break;
        if (expect(c, ',', err)) return -1;
    }
    c->p++;
    if (seen == 7) return 0;
missing:
    return cl_err_set(err, CL_EFORMAT, "tensor '%s' lacks dtype, shape or data_offsets", e->name);
}

/* "__metadata__": {"key": "value", ...} — read and ignored. */
static int skip_metadata(cursor *c, cl_err *err)
{
    if (expect(c, '{', err)) return -1;
    if (peek(c, '}')) return expect(c, '}', err);
    for (;;) {
        char *k = parse_string(c, err);
        if (!k) return -1;
        free(k);
        if (expect(c, ':', err)) return -1;
        char *v = parse_string(c, err);
        if (!v) return cl_err_prefix(err, "__metadata__ values must be strings");
        free(v);
        if (peek(c, '}')) return expect(c, '}', err);
        if (expect(c, ',', err)) return -1;
    }
}

static void free_entries(st_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) free(e[i].name);
    free(e);
}

static int grow(st_entry **e, size_t n, size_t *cap, cl_err *err)
{
    if (n == WT_MAX_ENTRIES)
        return cl_err_set(err, CL_ENOMEM, "more than %d tensors in one file", WT_MAX_ENTRIES);
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 64;
    st_entry *ne = realloc(*e, nc * sizeof *ne);
    if (!ne) return cl_err_set(err, CL_ENOMEM, "out of memory");
    *e = ne;
    *cap = nc;
    return 0;
}

static int parse_header(cursor *c, st_entry **out, size_t *count, cl_err *err)
{
    st_entry *e = NULL;
    size_t n = 0, cap = 0;
    int meta = 0;
    char *name = NULL;
    if (expect(c, '{', err)) return -1;
    if (peek(c, '}')) {
        c->p++;
        goto done;
    }
    for (;;) {
        name = parse_string(c, err);
        if (!name || expect(c, ':', err)) goto fail;
        if (!strcmp(name, "__metadata__") && !meta) {
            meta = 1;
            free(name);
            name = NULL;
            if (skip_metadata(c, err)) goto fail;
        } else {
            if (grow(&e, n, &cap, err)) goto fail;
            memset(&e[n], 0, sizeof e[n]);
            e[n].name = name;
            name = NULL;
            if (parse_entry(c, &e[n++], err)) goto fail;
        }
        if (peek(c, '}')) {
            c->p++;
            break;
        }
        if (expect(c, ',', err)) goto fail;
    }
done:
    skip_ws(c);
    if (c->p != c->end) {
        cl_err_set(err, CL_EFORMAT, "safetensors header: text after the closing '}'");
        goto fail;
    }
    *out = e;
    *count = n;
    return 0;
fail:
    free(name);
    free_entries(e, n);
    return -1;
}

static int cmp_begin(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Sizes match the dtype and shape, and the offsets tile [0, data_len) with no
 * gap or overlap.  Sorts e by offset (the order the data was written). */
static int check_layout(st_entry *e, size_t n, uint64_t data_len, cl_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int64_t numel;
        if (io_numel(e[i].ndim, e[i].shape, &numel) || numel > tn_max_elems)
            return cl_err_set(err, CL_ENOMEM, "tensor '%s' exceeds the limit of %lld elements",
                              e[i].name, (long long)tn_max_elems);
        uint64_t bytes = (uint64_t)numel * io_dtype_size(e[i].dt);
        if (e[i].end < e[i].begin || e[i].end - e[i].begin != bytes)
            return cl_err_set(err, CL_EFORMAT,
                              "tensor '%s': data_offsets [%llu, %llu] do not hold %lld %s "
                              "elements",
                              e[i].name, (unsigned long long)e[i].begin,
                              (unsigned long long)e[i].end, (long long)numel,
                              io_dtype_name(e[i].dt));
        if (e[i].end > data_len)
            return cl_err_set(err, CL_EFORMAT,
                              "tensor '%s' ends at byte %llu but the file holds only %llu bytes "
                              "of data (truncated?)",
                              e[i].name, (unsigned long long)e[i].end,
                              (unsigned long long)data_len);
    }
    if (n > 1) qsort(e, n, sizeof *e, cmp_begin); /* a file of no tensors has e == NULL */
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].begin != pos)
            return cl_err_set(err, CL_EFORMAT,
                              "tensor '%s': data offsets overlap or leave a gap at byte %llu",
                              e[i].name, (unsigned long long)pos);
        pos = e[i].end;
    }
    if (pos != data_len)
        return cl_err_set(err, CL_EFORMAT,
                          "the tensors cover %llu bytes but the file has %llu bytes of data",
                          (unsigned long long)pos, (unsigned long long)data_len);
    return 0;
}

static int check_names(const st_entry *e, size_t n, cl_err *err)
{
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) return cl_err_set(err, CL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) names[i] = e[i].name;
    int rc = wt_check_unique(names, n, err);
    free(names);
    return rc;
}

int st_load(const fm_map *m, wt_dict *d, cl_err *err)
{
    if (m->size < 8) return cl_err_set(err, CL_EFORMAT, "truncated safetensors file");
    uint64_t hlen = rd_u64le(m->data);
    if (hlen > ST_MAX_HEADER)
        return cl_err_set(err, CL_EFORMAT,
                          "safetensors header claims %llu bytes (the limit is %u): corrupt file?",
                          (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > m->size - 8)
        return cl_err_set(err, CL_EFORMAT,
                          "safetensors header claims %llu bytes but the file has only %zu "
                          "(truncated?)",
                          (unsigned long long)hlen, m->size - 8);
    cursor c = {(const char *)m->data + 8, (const char *)m->data + 8,
                (const char *)m->data + 8 + hlen};
    st_entry *e;
    size_t n;
    if (parse_header(&c, &e, &n, err)) return -1;
    size_t data_off = 8 + (size_t)hlen;
    int rc = check_names(e, n, err);
    if (!rc) rc = check_layout(e, n, m->size - data_off, err);
    size_t i = 0;
    for (; !rc && i < n; i++) {
        tn_tensor *t = tn_new(e[i].ndim, e[i].shape, err);
        if (!t) {
            rc = cl_err_prefix(err, "tensor '%s'", e[i].name);
            break;
        }
        fm_convert(m, data_off + (size_t)e[i].begin, t->data, tn_numel(t), e[i].dt);
        rc = wt_append_owned(d, e[i].name, t, err);
        e[i].name = NULL;
    }
    free_entries(e, n);
    return rc;
}

/* ---- writer ---- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            sb_put(b, esc, 2);
        } else if (ch < 0x20) {
            sb_printf(b, "\\u%04x", ch);
        } else {
            sb_put(b, s, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void build_header(const wt_dict *d, sbuf *b)
{
    uint64_t off = 0;
    sb_put(b, "{", 1);
    for (size_t i = 0; i < d->count; i++) {
        const tn_tensor *t = d->items[i].t;
        uint64_t bytes = (uint64_t)tn_numel(t) * 4;
        if (i) sb_put(b, ",", 1);
        sb_json_string(b, d->items[i].name);
        sb_str(b, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int k = 0; k < t->ndim; k++)
            sb_printf(b, "%s%lld", k ? "," : "", (long long)t->shape[k]);
        sb_printf(b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                  (unsigned long long)(off + bytes));
        off += bytes;
    }
    sb_put(b, "}", 1);
    /* Pad with spaces so the data starts 8-byte aligned, as the reference
     * writer does. */
    while ((8 + b->len) % 8) sb_put(b, " ", 1);
}

int st_save(const wt_dict *d, const char *path, cl_err *err)
{
    sbuf b = {0};
    build_header(d, &b);
    if (b.oom) {
        free(b.s);
        return cl_err_set(err, CL_ENOMEM, "out of memory");
    }
    size_t n = d->count + 2;
    const void **chunks = calloc(n, sizeof *chunks);
    size_t *lens = calloc(n, sizeof *lens);
    tn_tensor **tmp = calloc(n, sizeof *tmp);
    uint8_t lenbuf[8];
    int rc = 0;
    if (!chunks || !lens || !tmp || n > (size_t)INT32_MAX) {
        rc = cl_err_set(err, CL_ENOMEM, "out of memory");
        goto out;
    }
    for (int k = 0; k < 8; k++) lenbuf[k] = (uint8_t)((uint64_t)b.len >> (8 * k));
    chunks[0] = lenbuf, lens[0] = 8;
    chunks[1] = b.s, lens[1] = b.len;
    for (size_t i = 0; i < d->count; i++) {
        const tn_tensor *t = d->items[i].t;
        if (!tn_is_contiguous(t)) {
            tmp[i] = tn_clone(t, err);
            if (!tmp[i]) {
                rc = -1;
                goto out;
            }
            t = tmp[i];
        }
        chunks[i + 2] = t->data;
        lens[i + 2] = (size_t)tn_numel(t) * sizeof(float);
    }
    rc = atomic_write_chunks(path, chunks, lens, (int)n, err);
out:
    if (tmp)
        for (size_t i = 0; i < n; i++) tn_free(tmp[i]);
    free(tmp);
    free(lens);
    free(chunks);
    free(b.s);
    return rc;
}
