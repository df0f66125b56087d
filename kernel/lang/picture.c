#include "kernel/lang/picture.h"
#include "engine/io/base64.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/png.h"
#include "engine/render.h"

/* 5x7 glyphs, one byte per row, bit 4 = leftmost column. */
static const uint8_t glyph_digits[10][7] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
};
static const uint8_t glyph_minus[7] = {0, 0, 0, 0x1F, 0, 0, 0};
static const uint8_t glyph_plus[7] = {0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0};
static const uint8_t glyph_dot[7] = {0, 0, 0, 0, 0, 0x0C, 0x0C};
static const uint8_t glyph_e[7] = {0, 0, 0x0E, 0x11, 0x1F, 0x10, 0x0E};
static const uint8_t glyph_blank[7] = {0};

static const uint8_t *glyph(char c)
{
    if (c >= '0' && c <= '9') return glyph_digits[c - '0'];
    switch (c) {
    case '-':
        return glyph_minus;
    case '+':
        return glyph_plus;
    case '.':
        return glyph_dot;
    case 'e':
        return glyph_e;
    }
    return glyph_blank;
}

pic *pic_new(int w, int h, const uint8_t bg[3], cl_err *err)
{
    if (w <= 0 || h <= 0 || (int64_t)w * h > (int64_t)1 << 26) {
        cl_err_set(err, CL_ENOMEM, "picture of %dx%d pixels is too big to show", w, h);
        return NULL;
    }
    pic *p = malloc(sizeof *p);
    uint8_t *px = malloc((size_t)w * h * 3);
    if (!p || !px) {
        free(p);
        free(px);
        cl_err_set(err, CL_ENOMEM, "out of memory");
        return NULL;
    }
    p->w = w;
    p->h = h;
    p->px = px;
    for (size_t i = 0; i < (size_t)w * h; i++) memcpy(px + 3 * i, bg, 3);
    return p;
}

void pic_free(pic *p)
{
    if (!p) return;
    free(p->px);
    free(p);
}

void pic_rect(pic *p, int x, int y, int w, int h, const uint8_t c[3])
{
    int x0 = x < 0 ? 0 : x, y0 = y < 0 ? 0 : y;
    int x1 = x + w > p->w ? p->w : x + w, y1 = y + h > p->h ? p->h : y + h;
    for (int j = y0; j < y1; j++)
        for (int i = x0; i < x1; i++) memcpy(p->px + 3 * ((size_t)j * p->w + i), c, 3);
}

void pic_frame(pic *p, int x, int y, int w, int h, int t, const uint8_t c[3])
{
    pic_rect(p, x, y, w, t, c);
    pic_rect(p, x, y + h - t, w, t, c);
    pic_rect(p, x, y, t, h, c);
    pic_rect(p, x + w - t, y, t, h, c);
}

int pic_text_width(const char *s, int scale)
{
    int n = (int)strlen(s);
    return n ? (n * 6 - 1) * scale : 0;
}

void pic_text(pic *p, int cx, int cy, const char *s, int scale, const uint8_t c[3])
{
    int x = cx - pic_text_width(s, scale) / 2, y = cy - 7 * scale / 2;
    for (; *s; s++, x += 6 * scale) {
        const uint8_t *g = glyph(*s);
        for (int r = 0; r < 7; r++)
            for (int b = 0; b < 5; b++)
                if (g[r] & (0x10 >> b)) pic_rect(p, x + b * scale, y + r * scale, scale, scale, c);
    }
}

static double clamp01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

void pic_jet(double t, uint8_t out[3])
{
    /* OpenCV's table, indexed as cv2.applyColorMap(uint8(255 * t)) does. */
    int k = (int)(255 * clamp01(t));
    memcpy(out, rd_jet_rgb[k], 3);
}

char *pic_png_base64(const pic *p, cl_err *err)
{
    uint8_t *png = NULL;
    size_t len = 0;
    if (png_encode(p->px, p->w, p->h, 3, &png, &len, err) < 0) return NULL;
    char *b = b64_encode(png, len, err);
    free(png);
    return b;
}

static void cell_label(float v, char *buf, size_t n)
{
    if (v == (float)(int)v && fabsf(v) < 1e6f)
        snprintf(buf, n, "%d", (int)v);
    else
        snprintf(buf, n, "%.2g", (double)v);
}

pic *pic_matrix(const float *a, int h, int w, int cell, int jet, int numbers, cl_err *err)
{
    static const uint8_t bg[3] = {255, 255, 255}, grid[3] = {200, 200, 200};
    float lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < h * w; i++) {
        if (a[i] < lo) lo = a[i];
        if (a[i] > hi) hi = a[i];
    }
    int border = cell >= 8; /* grid lines only where cells are big enough to read */
    pic *p = pic_new(w * cell + border, h * cell + border, bg, err);
    if (!p) return NULL;
    int scale = cell >= 36 ? 2 : 1;
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            float v = a[r * w + c];
            double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
            uint8_t col[3];
            if (jet) {
                pic_jet(t, col);
            } else {
                uint8_t g = (uint8_t)(235 - 190 * t);
                col[0] = col[1] = col[2] = g;
            }
            pic_rect(p, c * cell + border, r * cell + border, cell - border, cell - border, col);
            if (numbers && cell >= 14) {
                char buf[16];
                cell_label(v, buf, sizeof buf);
                if (pic_text_width(buf, scale) > cell - 4) continue;
                int dark = jet ? (t < 0.2 || t > 0.85) : t > 0.5;
                uint8_t ink[3] = {0, 0, 0};
                if (dark) ink[0] = ink[1] = ink[2] = 255;
                pic_text(p, c * cell + cell / 2 + 1, r * cell + cell / 2 + 1, buf, scale, ink);
            }
        }
    if (!border) return p;
    for (int r = 0; r <= h; r++) pic_rect(p, 0, r * cell, w * cell + 1, 1, grid);
    for (int c = 0; c <= w; c++) pic_rect(p, c * cell, 0, 1, h * cell + 1, grid);
    return p;
}

pic *pic_image(const tn_tensor *t, int min_side, cl_err *err)
{
    static const uint8_t bg[3] = {0, 0, 0};
    int C = (int)t->shape[t->ndim - 3], H = (int)t->shape[t->ndim - 2],
        W = (int)t->shape[t->ndim - 1];
    int longer = H > W ? H : W, f = 1;
    while (longer * f < min_side && f < 32) f++;
    pic *p = pic_new(W * f, H * f, bg, err);
    if (!p) return NULL;
    size_t plane = (size_t)H * W;
    for (int y = 0; y < H * f; y++)
        for (int x = 0; x < W * f; x++) {
            size_t s = (size_t)(y / f) * W + (size_t)(x / f);
            uint8_t *o = p->px + 3 * ((size_t)y * p->w + x);
            for (int c = 0; c < 3; c++) {
                float v = t->data[(C == 3 ? (size_t)c : 0) * plane + s];
                o[c] = (uint8_t)(255 * clamp01(v) + 0.5);
            }
        }
    return p;
}
