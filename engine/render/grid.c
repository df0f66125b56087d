/* render/grid: captioned tile sets, their PNG grid and their HTML grid. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image.h"
#include "engine/io/base64.h"
#include "engine/io/png.h"
#include "engine/render.h"

rd_tiles *rd_tiles_new(cl_err *err)
{
    rd_tiles *t = calloc(1, sizeof *t);
    if (!t) cl_err_set(err, CL_ENOMEM, "render: out of memory");
    return t;
}

int rd_tiles_add(rd_tiles *t, rd_image *im, const char *caption, cl_err *err)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        rd_image **ims = realloc(t->im, sizeof *ims * cap);
        if (ims) t->im = ims;
        char **caps = ims ? realloc(t->caption, sizeof *caps * cap) : NULL;
        if (caps) t->caption = caps;
        if (!ims || !caps) {
            rd_image_free(im);
            return cl_err_set(err, CL_ENOMEM, "render: out of memory for %d tiles", cap);
        }
        t->cap = cap;
    }
    char *c = strdup(caption ? caption : "");
    if (!c) {
        rd_image_free(im);
        return cl_err_set(err, CL_ENOMEM, "render: out of memory");
    }
    t->im[t->n] = im;
    t->caption[t->n] = c;
    t->n++;
    return 0;
}

void rd_tiles_free(rd_tiles *t)
{
    if (!t) return;
    for (int i = 0; i < t->n; i++) {
        rd_image_free(t->im[i]);
        free(t->caption[i]);
    }
    free(t->im);
    free(t->caption);
    free(t);
}

static int default_cols(int n, int cols)
{
    if (cols > 0) return cols < n ? cols : n;
    int c = (int)ceil(sqrt((double)n));
    return c < 1 ? 1 : c;
}

static int tile_factor(const rd_image *im, int tile)
{
    int side = im->w > im->h ? im->w : im->h;
    int f = (tile + side - 1) / side;
    return f < 1 ? 1 : f > 64 ? 64 : f;
}

/* Copies a tile (grey or RGB) into the RGB canvas at (x0,y0), enlarged by f. */
static void blit(rd_image *dst, const rd_image *src, int x0, int y0, int f)
{
    for (int y = 0; y < src->h * f; y++) {
        uint8_t *d = dst->pix + ((size_t)(y0 + y) * dst->w + x0) * 3;
        const uint8_t *s = src->pix + (size_t)(y / f) * src->w * src->c;
        for (int x = 0; x < src->w * f; x++) {
            const uint8_t *p = s + (x / f) * src->c;
            d[3 * x] = p[0];
            d[3 * x + 1] = p[src->c == 3 ? 1 : 0];
            d[3 * x + 2] = p[src->c == 3 ? 2 : 0];
        }
    }
}

/* Draws the caption centred under a cell, cut to the characters that fit. */
static void caption(rd_image *im, const char *text, int x0, int y0, int cell_w, int scale)
{
    static const uint8_t ink[3] = {0, 0, 0};
    char buf[256];
    int fit = (cell_w + scale) / ((RD_FONT_W + 1) * scale);
    snprintf(buf, sizeof buf, "%.*s", fit < 255 ? fit : 255, text);
    int x = x0 + (cell_w - rd_text_width(buf, scale)) / 2;
    rd_draw_text(im, x, y0, buf, ink, scale);
}

/* A copy of `im` whose longer side is `side` (cv2 INTER_LINEAR through img_resize). */
static rd_image *shrink(const rd_image *im, int side, cl_err *err)
{
    int longer = im->w > im->h ? im->w : im->h;
    int w = (int)((int64_t)im->w * side / longer), h = (int)((int64_t)im->h * side / longer);
    tn_tensor *x = tn_new(3, (int64_t[]){im->c, im->h, im->w}, err);
    if (!x) return NULL;
    int64_t n = (int64_t)im->w * im->h;
    for (int64_t i = 0; i < n; i++)
        for (int k = 0; k < im->c; k++) x->data[k * n + i] = im->pix[i * im->c + k];
    tn_tensor *y = img_resize(x, h < 1 ? 1 : h, w < 1 ? 1 : w, err);
    tn_free(x);
    rd_image *o = y ? rd_image_new((int)y->shape[2], (int)y->shape[1], im->c, err) : NULL;
    if (o) {
        int64_t m = (int64_t)o->w * o->h;
        for (int64_t i = 0; i < m; i++)
            for (int k = 0; k < o->c; k++) {
                float v = y->data[k * m + i] + 0.5f;
                o->pix[i * o->c + k] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
            }
    }
    tn_free(y);
    return o;
}

static rd_image *grid_of(const rd_tiles *t, const rd_grid_opts *o, cl_err *err);

/* The longest tile side a grid of n tiles keeps.  Beyond 16 tiles the side
 * shrinks so the grid's pixel count stays that of 16 tiles: a notebook server
 * drops output over ~1 MB/s of IOPub, and 64 noisy ImageNet-sized tiles were
 * 4 MB of PNG. */
static int grid_max_tile(int n)
{
    if (n <= 4) return -1;
    if (n <= 16) return RD_GRID_MAX_TILE;
    int m = (int)(RD_GRID_MAX_TILE * sqrt(16.0 / n));
    return m < 48 ? 48 : m;
}

/* Frees what shrink_tiles made, leaving the borrowed tiles alone. */
static void release_small(const rd_tiles *t, rd_tiles *small)
{
    for (int k = 0; k < small->n; k++)
        if (small->im[k] != t->im[k]) rd_image_free(small->im[k]);
    free(small->im);
    small->im = NULL;
}

/* Fills small->im with t's tiles, those longer than `max` replaced by shrunk
 * copies (owned by small) and the others borrowed (small->im[i] == t->im[i]).
 * Returns 1 if anything was shrunk, 0 if not (small untouched), -1 on error. */
static int shrink_tiles(const rd_tiles *t, int max, rd_tiles *small, cl_err *err)
{
    int big = 0;
    for (int i = 0; max > 0 && i < t->n; i++) big |= t->im[i]->w > max || t->im[i]->h > max;
    if (!big) return 0;
    *small = (rd_tiles){.n = t->n, .cap = t->n, .caption = t->caption};
    if (!(small->im = calloc((size_t)t->n, sizeof *small->im))) {
        cl_err_set(err, CL_ENOMEM, "render: out of memory");
        return -1;
    }
    for (int i = 0; i < t->n; i++) {
        const rd_image *s = t->im[i];
        int over = s->w > max || s->h > max;
        small->im[i] = over ? shrink(s, max, err) : t->im[i];
        if (!small->im[i]) {
            small->n = i;
            release_small(t, small);
            return -1;
        }
    }
    return 1;
}

rd_image *rd_grid(const rd_tiles *t, const rd_grid_opts *o, cl_err *err)
{
    if (!t || t->n == 0) {
        cl_err_set(err, CL_EINVAL, "render: a grid needs at least one tile");
        return NULL;
    }
    rd_tiles small;
    int r = shrink_tiles(t, grid_max_tile(t->n), &small, err);
    if (r <= 0) return r < 0 ? NULL : grid_of(t, o, err);
    rd_image *out = grid_of(&small, o, err);
    release_small(t, &small);
    return out;
}

static rd_image *grid_of(const rd_tiles *t, const rd_grid_opts *o, cl_err *err)
{
    int cols = default_cols(t->n, o ? o->cols : 0);
    int tile = o && o->tile > 0 ? o->tile : 64, pad = o && o->pad >= 0 ? o->pad : 4;
    int cw = 0, ch = 0, any_caption = 0;
    for (int i = 0; i < t->n; i++) {
        int f = tile_factor(t->im[i], tile);
        cw = t->im[i]->w * f > cw ? t->im[i]->w * f : cw;
        ch = t->im[i]->h * f > ch ? t->im[i]->h * f : ch;
        any_caption |= t->caption[i][0] != 0;
    }
    /* Large tiles get large captions, unless a caption would then be cut. */
    int scale = cw >= 160 ? 2 : 1;
    for (int i = 0; i < t->n && scale == 2; i++)
        if (rd_text_width(t->caption[i], 2) > cw) scale = 1;
    int cap_h = any_caption ? RD_FONT_H * scale + 2 * scale + 2 : 0;
    int rows = (t->n + cols - 1) / cols;
    int64_t W = (int64_t)cols * (cw + pad) + pad, H = (int64_t)rows * (ch + cap_h + pad) + pad;
    if (W > 16384 || H > 16384) {
        cl_err_set(err, CL_EINVAL,
                   "render: a grid of %d tiles would be %lldx%lld pixels; show fewer", t->n,
                   (long long)W, (long long)H);
        return NULL;
    }
    rd_image *im = rd_image_new((int)W, (int)H, 3, err);
    if (!im) return NULL;
    memset(im->pix, 255, (size_t)W * H * 3);
    for (int i = 0; i < t->n; i++) {
        const rd_image *s = t->im[i];
        int f = tile_factor(s, tile);
        int x0 = pad + (i % cols) * (cw + pad), y0 = pad + (i / cols) * (ch + cap_h + pad);
        blit(im, s, x0 + (cw - s->w * f) / 2, y0 + (ch - s->h * f) / 2, f);
        if (t->caption[i][0]) caption(im, t->caption[i], x0, y0 + ch + scale + 1, cw, scale);
    }
    return im;
}

int rd_png(const rd_image *im, uint8_t **out, size_t *out_len, cl_err *err)
{
    return png_encode(im->pix, im->w, im->h, im->c, out, out_len, err);
}

int rd_save_png(const rd_image *im, const char *path, cl_err *err)
{
    return png_write_file(path, im->pix, im->w, im->h, im->c, err);
}

/* A growing string; on allocation failure `oom` sticks and appends stop. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_escaped(sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            sb_str(b, "&lt;");
            break;
        case '>':
            sb_str(b, "&gt;");
            break;
        case '&':
            sb_str(b, "&amp;");
            break;
        case '"':
            sb_str(b, "&quot;");
            break;
        case '\'':
            sb_str(b, "&#39;");
            break;
        default:
            sb_add(b, s, 1);
        }
    }
}

static int png_width(const uint8_t *png, size_t len)
{
    /* IHDR width: bytes 16..19 of a PNG file, big-endian. */
    if (len < 24) return 0;
    return (int)((uint32_t)png[16] << 24 | (uint32_t)png[17] << 16 | (uint32_t)png[18] << 8 |
                 png[19]);
}

char *rd_html_grid(const uint8_t *const *pngs, const size_t *png_lens, const char *const *captions,
                   int n, int cols, int px, cl_err *err)
{
    if (n <= 0) {
        cl_err_set(err, CL_EINVAL, "render: a grid needs at least one tile");
        return NULL;
    }
    char tmp[256];
    sbuf b = {0};
    snprintf(tmp, sizeof tmp,
             "<div style=\"display:grid;grid-template-columns:repeat(%d,max-content);"
             "gap:6px;align-items:end\">\n",
             default_cols(n, cols));
    sb_str(&b, tmp);
    for (int i = 0; i < n; i++) {
        int w = px > 0 ? px : png_width(pngs[i], png_lens[i]);
        if (px <= 0 && w < 64) w = 64;
        snprintf(tmp, sizeof tmp,
                 "<figure style=\"margin:0;text-align:center\"><img style=\"width:%dpx;"
                 "image-rendering:pixelated\" src=\"data:image/png;base64,",
                 w);
        sb_str(&b, tmp);
        char *b64 = b64_encode(pngs[i], png_lens[i], err);
        if (!b64) {
            free(b.s);
            return NULL;
        }
        sb_str(&b, b64);
        free(b64);
        sb_str(&b, "\"/>");
        if (captions && captions[i] && captions[i][0]) {
            sb_str(&b, "<figcaption style=\"font:12px monospace\">");
            sb_escaped(&b, captions[i]);
            sb_str(&b, "</figcaption>");
        }
        sb_str(&b, "</figure>\n");
    }
    sb_str(&b, "</div>\n");
    if (b.oom) {
        free(b.s);
        cl_err_set(err, CL_ENOMEM, "render: out of memory for an HTML grid");
        return NULL;
    }
    return b.s;
}

char *rd_tiles_html(const rd_tiles *t, int cols, int px, cl_err *err)
{
    if (!t || t->n == 0) {
        cl_err_set(err, CL_EINVAL, "render: a grid needs at least one tile");
        return NULL;
    }
    uint8_t **pngs = calloc(t->n, sizeof *pngs);
    size_t *lens = calloc(t->n, sizeof *lens);
    char *html = NULL;
    int i = 0;
    if (!pngs || !lens) {
        cl_err_set(err, CL_ENOMEM, "render: out of memory");
        goto done;
    }
    /* The tiles at the size the PNG grid shows them, not the full maps. */
    rd_tiles small;
    int r = shrink_tiles(t, grid_max_tile(t->n), &small, err);
    if (r < 0) goto done;
    const rd_tiles *src = r ? &small : t;
    for (; i < t->n; i++)
        if (rd_png(src->im[i], &pngs[i], &lens[i], err)) break;
    if (r) release_small(t, &small);
    if (i < t->n) goto done;
    html = rd_html_grid((const uint8_t *const *)pngs, lens, (const char *const *)t->caption, t->n,
                        cols, px, err);
done:
    for (int k = 0; k < i && pngs; k++) free(pngs[k]);
    free(pngs);
    free(lens);
    return html;
}
