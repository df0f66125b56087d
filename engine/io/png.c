#include "engine/io/png.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/io/atomic_file.h"

typedef struct membuf {
    uint8_t *data;
    size_t len, cap;
    int oom;
} membuf;

static void mem_write(png_structp png, png_bytep bytes, png_size_t n)
{
    membuf *m = png_get_io_ptr(png);
    if (m->oom) return;
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 4096;
        while (cap < m->len + n) cap *= 2;
        uint8_t *d = realloc(m->data, cap);
        if (!d) {
            m->oom = 1;
            return;
        }
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->len, bytes, n);
    m->len += n;
}

static void mem_flush(png_structp png)
{
    (void)png;
}

static int color_type(int channels)
{
    switch (channels) {
    case 1: return PNG_COLOR_TYPE_GRAY;
    case 2: return PNG_COLOR_TYPE_GRAY_ALPHA;
    case 3: return PNG_COLOR_TYPE_RGB;
    case 4: return PNG_COLOR_TYPE_RGBA;
    }
    return -1;
}

int png_encode(const uint8_t *pix, int w, int h, int channels, uint8_t **out, size_t *out_len,
               cl_err *err)
{
    *out = NULL;
    *out_len = 0;
    int ct = color_type(channels);
    if (ct < 0 || w <= 0 || h <= 0)
        return cl_err_set(err, CL_EINVAL, "png: bad image %dx%d with %d channels", w, h, channels);
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = calloc((size_t)h, sizeof *rows);
    if (!png || !info || !rows) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        return cl_err_set(err, CL_ENOMEM, "png: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        free(m.data);
        return cl_err_set(err, CL_EIO, "png: encoding failed");
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    /* Level 6 with adaptive filters: heat maps and grids compress well, and a
     * 420x420 overlay encodes in a few milliseconds. */
    png_set_compression_level(png, 6);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, ct, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(pix + (size_t)y * (size_t)w * (size_t)channels);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (m.oom) {
        free(m.data);
        return cl_err_set(err, CL_ENOMEM, "png: out of memory");
    }
    *out = m.data;
    *out_len = m.len;
    return 0;
}

int png_write_file(const char *path, const uint8_t *pix, int w, int h, int channels, cl_err *err)
{
    uint8_t *buf;
    size_t len;
    if (png_encode(pix, w, h, channels, &buf, &len, err)) return -1;
    int rc = atomic_write_file(path, buf, len, err);
    free(buf);
    return rc;
}
