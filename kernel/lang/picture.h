/* picture — small RGB canvases for the language's own displays: matrices as
 * shaded cells with their numbers, heatmaps in the jet colour map, images, and
 * the frames of `conv ... step`.  Encoded as PNG (engine/io/png.h) and base64
 * for a MIME bundle.
 *
 * Ownership: pic_new returns a canvas the caller frees with pic_free;
 * pic_png_base64 returns a malloc'd string.
 */
#ifndef CNNLENS_LANG_PICTURE_H
#define CNNLENS_LANG_PICTURE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/tensor.h"

typedef struct pic {
    int w, h;
    uint8_t *px; /* RGB, row-major */
} pic;

pic *pic_new(int w, int h, const uint8_t bg[3], cl_err *err);
void pic_free(pic *p);
void pic_rect(pic *p, int x, int y, int w, int h, const uint8_t c[3]);
/* A rectangle outline `t` pixels thick. */
void pic_frame(pic *p, int x, int y, int w, int h, int t, const uint8_t c[3]);
/* Draws digits, '-', '.', 'e', '+' and spaces (other characters as blanks) with a
 * 5x7 font scaled by `scale`, centred on (cx, cy). */
void pic_text(pic *p, int cx, int cy, const char *s, int scale, const uint8_t c[3]);
int pic_text_width(const char *s, int scale);

/* OpenCV's COLORMAP_JET for t in [0,1] (engine/render.h's table). */
void pic_jet(double t, uint8_t out[3]);

/* PNG bytes of the canvas, base64-encoded (malloc'd, NUL-terminated). */
char *pic_png_base64(const pic *p, cl_err *err);

/* Renders a 2-D array (H,W) as cells `cell` pixels wide, shaded grey from its
 * min (white) to its max (black) or in jet colours (jet = 1); with numbers
 * when `numbers` and the cells are big enough. */
pic *pic_matrix(const float *a, int h, int w, int cell, int jet, int numbers, cl_err *err);
/* An image tensor (C,H,W) with C in {1,3}, values in [0,1] (clamped), scaled
 * up by an integer factor so that its longer side is at least `min_side`. */
pic *pic_image(const tn_tensor *t, int min_side, cl_err *err);

#endif
