#include "kernel/lang/npy_lite.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/atomic_file.h"

int nl_write(const char *path, const tn_tensor *t, int ndim, const int64_t *shape, cl_err *err)
{
    char dims[160] = "";
    size_t len = 0;
    for (int i = 0; i < ndim; i++)
        len += (size_t)snprintf(dims + len, sizeof dims - len, "%lld%s", (long long)shape[i],
                                ndim == 1      ? ","
                                : i + 1 < ndim ? ", "
                                               : "");
    char head[256];
    int n = snprintf(head + 10, sizeof head - 10,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    /* Pad with spaces so that the data starts at a multiple of 64 bytes. */
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    memset(head + 10 + n, ' ', (size_t)pad);
    head[10 + n + pad] = '\n';
    int hlen = n + pad + 1;
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (char)(hlen & 0xff);
    head[9] = (char)(hlen >> 8);
    const void *chunks[2] = {head, t->data};
    size_t lens[2] = {(size_t)(10 + hlen), (size_t)tn_numel(t) * sizeof(float)};
    return atomic_write_chunks(path, chunks, lens, 2, err);
}

static int parse_header(const char *h, char *descr, int *fortran, int *ndim, int64_t *shape,
                        cl_err *err)
{
    const char *d = strstr(h, "'descr'");
    const char *f = strstr(h, "'fortran_order'");
    const char *s = strstr(h, "'shape'");
    if (!d || !f || !s) return cl_err_set(err, CL_EFORMAT, "not a .npy header");
    if (sscanf(strchr(d + 7, '\'') ? strchr(d + 7, '\'') + 1 : "", "%7[^']", descr) != 1)
        return cl_err_set(err, CL_EFORMAT, "bad dtype in .npy header");
    *fortran = strstr(f, "True") && strstr(f, "True") < strchr(f, ',') ? 1 : 0;
    const char *p = strchr(s, '(');
    if (!p) return cl_err_set(err, CL_EFORMAT, "bad shape in .npy header");
    p++;
    *ndim = 0;
    while (*p && *p != ')') {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p) {
            p++;
            continue;
        }
        if (*ndim >= TN_MAXDIM || v < 0)
            return cl_err_set(err, CL_EFORMAT, "bad shape in .npy header");
        shape[(*ndim)++] = v;
        p = end;
    }
    return 0;
}

tn_tensor *nl_read(const char *path, cl_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cl_err_set(err, CL_EIO, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    unsigned char pre[12];
    tn_tensor *t = NULL;
    char *h = NULL;
    void *raw = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) {
        cl_err_set(err, CL_EFORMAT, "'%s' is not a .npy file", path);
        goto done;
    }
    size_t hlen = pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) {
        if (fread(pre + 10, 1, 2, f) != 2) goto short_file;
        hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    if (hlen > 1 << 20 || !(h = calloc(1, hlen + 1))) {
        cl_err_set(err, CL_EFORMAT, "'%s': .npy header too long", path);
        goto done;
    }
    if (fread(h, 1, hlen, f) != hlen) goto short_file;
    char descr[8];
    int fortran = 0, ndim = 0;
    int64_t shape[TN_MAXDIM];
    if (parse_header(h, descr, &fortran, &ndim, shape, err) < 0) {
        cl_err_prefix(err, "%s", path);
        goto done;
    }
    if (fortran) {
        cl_err_set(err, CL_EFORMAT, "'%s' is in Fortran order; save it with np.ascontiguousarray",
                   path);
        goto done;
    }
    size_t esize = !strcmp(descr, "<f4") || !strcmp(descr, "<i4")   ? 4
                   : !strcmp(descr, "<f8") || !strcmp(descr, "<i8") ? 8
                   : !strcmp(descr, "|u1") || !strcmp(descr, "|b1") ? 1
                                                                    : 0;
    if (!esize) {
        cl_err_set(err, CL_EFORMAT,
                   "'%s' holds %s values; load reads float32, float64, int32, int64 or uint8", path,
                   descr);
        goto done;
    }
    if (ndim == 0) shape[ndim++] = 1;
    if (!(t = tn_new(ndim, shape, err))) goto done;
    size_t n = (size_t)tn_numel(t);
    if (!(raw = malloc(n * esize + 1))) {
        cl_err_set(err, CL_ENOMEM, "out of memory");
        goto fail;
    }
    if (fread(raw, esize, n, f) != n) goto short_file;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(descr, "<f4"))
            memcpy(&t->data[i], (char *)raw + 4 * i, 4);
        else if (!strcmp(descr, "<f8")) {
            double v;
            memcpy(&v, (char *)raw + 8 * i, 8);
            t->data[i] = (float)v;
        } else if (!strcmp(descr, "<i4")) {
            int32_t v;
            memcpy(&v, (char *)raw + 4 * i, 4);
            t->data[i] = (float)v;
        } else if (!strcmp(descr, "<i8")) {
            int64_t v;
            memcpy(&v, (char *)raw + 8 * i, 8);
            t->data[i] = (float)v;
        } else {
            t->data[i] = ((unsigned char *)raw)[i];
        }
    }
    goto done;
short_file:
    cl_err_set(err, CL_EFORMAT, "'%s' is cut short (the file ends before its data)", path);
fail:
    tn_free(t);
    t = NULL;
done:
    free(h);
    free(raw);
    fclose(f);
    return t;
}
