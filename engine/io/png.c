#include "engine/io/png.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/io/atomic_file.h"
#include "engine/limits.h"
#include "engine/progress.h"

/* Pictures bigger than this compress fast rather than small. */
#define PNG_FAST_PIXELS (2048 * 2048)

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
    case 1:
        return PNG_COLOR_TYPE_GRAY;
    case 2:
        return PNG_COLOR_TYPE_GRAY_ALPHA;
    case 3:
        return PNG_COLOR_TYPE_RGB;
    case 4:
        return PNG_COLOR_TYPE_RGBA;
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
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        return cl_err_set(err, CL_ENOMEM, "png: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(m.data);
        return cl_err_set(err, CL_EIO, "png: encoding failed");
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    /* Level 6 with adaptive filters: heat maps and grids compress well, and a
     * 420x420 overlay encodes in a few milliseconds.  Past PNG_FAST_PIXELS
     * level 1: on a 4000x4000 grey matrix it is 5x faster (1.5 s, not 7 s)
     * for a file 3% bigger. */
    png_set_compression_level(png, (int64_t)w * h > PNG_FAST_PIXELS ? 1 : 6);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, ct, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    /* Row by row, so that an interrupt stops a big picture between rows. */
    for (int y = 0; y < h; y++) {
        if (cl_cancel_requested()) {
            png_destroy_write_struct(&png, &info);
            free(m.data);
            return cl_err_set(err, CL_EINTERRUPT, "interrupted by the user");
        }
        png_write_row(png, (png_const_bytep)(pix + (size_t)y * (size_t)w * (size_t)channels));
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
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

/* ---- decoding ---- */

typedef struct png_errctx {
    char msg[256];
} png_errctx;

static void on_error(png_structp png, png_const_charp msg)
{
    png_errctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg;
}

/* Asks libpng for 8/16-bit grey or RGB samples, whatever the file holds. */
static void set_transforms(png_structp png, png_infop info, int *channels)
{
    int ct = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (ct & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (depth == 16) png_set_swap(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);
    *channels = (ct & PNG_COLOR_MASK_COLOR) ? 3 : 1;
}

typedef struct png_read_state {
    png_structp png;
    png_infop info;
    png_bytep *rows;
    uint8_t *pix;
} png_read_state;

static int decode(FILE *f, int64_t max_pixels, png_pixels *out, png_read_state *s, png_errctx *ctx,
                  cl_err *err)
{
    if (setjmp(png_jmpbuf(s->png)))
        return cl_err_set(err, CL_EFORMAT, "corrupt or truncated PNG (%s)", ctx->msg);
    png_init_io(s->png, f);
    png_set_sig_bytes(s->png, 8);
    /* Text and ICC-profile chunks are skipped unread: libpng would allocate
     * whatever length such a chunk claims (a 1 GiB iTXt in a 70-byte file). */
    static const png_byte unused[] = "iCCP\0iTXt\0tEXt\0zTXt\0sPLT\0eXIf";
    png_set_keep_unknown_chunks(s->png, PNG_HANDLE_CHUNK_NEVER, unused, 6);
    png_set_chunk_malloc_max(s->png, (png_alloc_size_t)8 << 20);
    png_read_info(s->png, s->info);
    png_uint_32 w = png_get_image_width(s->png, s->info), h = png_get_image_height(s->png, s->info);
    if ((int64_t)w * (int64_t)h > max_pixels)
        return lim_refuse_pixels(w, h, max_pixels, "the PNG", err);
    int channels;
    set_transforms(s->png, s->info, &channels);
    int depth = png_get_bit_depth(s->png, s->info);
    size_t rowbytes = png_get_rowbytes(s->png, s->info);
    if (rowbytes != (size_t)w * (size_t)channels * (size_t)(depth / 8))
        return cl_err_set(err, CL_EFORMAT, "unexpected PNG layout");
    s->pix = malloc(rowbytes * h);
    s->rows = malloc(h * sizeof *s->rows);
    if (!s->pix || !s->rows) return cl_err_set(err, CL_ENOMEM, "out of memory decoding a PNG");
    for (png_uint_32 y = 0; y < h; y++) s->rows[y] = s->pix + (size_t)y * rowbytes;
    png_read_image(s->png, s->rows);
    png_read_end(s->png, NULL);
    *out = (png_pixels){(int)w, (int)h, channels, depth, s->pix};
    s->pix = NULL;
    return 0;
}

int png_decode_file(const char *path, int64_t max_pixels, png_pixels *out, cl_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return cl_err_set(err, CL_EIO, "cannot open '%s': %s", path, strerror(errno));
    uint8_t sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
        fclose(f);
        return cl_err_set(err, CL_EFORMAT, "'%s' is not a PNG file", path);
    }
    png_errctx ctx = {{0}};
    png_read_state s = {0};
    s.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, on_error, on_warning);
    s.info = s.png ? png_create_info_struct(s.png) : NULL;
    int rc = s.info ? decode(f, max_pixels, out, &s, &ctx, err)
                    : cl_err_set(err, CL_ENOMEM, "out of memory");
    png_destroy_read_struct(&s.png, &s.info, NULL);
    free(s.rows);
    free(s.pix);
    fclose(f);
    return rc ? cl_err_prefix(err, "'%s'", path) : 0;
}
