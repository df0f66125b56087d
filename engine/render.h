/* render — turning maps, images and filters into pixels: pytorch-grad-cam's
 * normalisation and overlay, OpenCV's JET colour map, grey and diverging maps,
 * grids of captioned tiles (PNG, with a built-in 5x7 bitmap font, or HTML with
 * the tiles as data: URIs), the guided-backprop display, filter and feature-map
 * grids.
 *
 * Conventions (see CONVENTIONS.md): float maps are tensors (H,W) or (1,H,W),
 * images (C,H,W) with C = 1 or 3 and values in [0,1]; every float -> uint8
 * conversion truncates, as NumPy's np.uint8(255 * x) does.
 *
 * Ownership: functions returning rd_image *, rd_tiles *, tn_tensor * or char *
 * give it to the caller (rd_image_free, rd_tiles_free, tn_free, free).  Input
 * tensors are only read.  The tile set borrows nothing.
 */
#ifndef CNNLENS_RENDER_H
#define CNNLENS_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/tensor.h"

/* 8-bit pixels, row-major, interleaved; c is 1 (grey) or 3 (RGB). */
typedef struct rd_image {
    int w, h, c;
    uint8_t *pix;
} rd_image;

rd_image *rd_image_new(int w, int h, int c, cl_err *err); /* zero-filled */
void rd_image_free(rd_image *im);

/* OpenCV's COLORMAP_JET, RGB (engine/render_jet.c, made by install/gen-jet-table.py). */
extern const uint8_t rd_jet_rgb[256][3];

/* ---- maps ------------------------------------------------------------- */

/* pytorch-grad-cam's scale_cam_image on one map, in place: x -= min(x);
 * x /= (1e-7 + max(x)). */
void rd_minmax(float *x, int64_t n);

/* The map as pytorch-grad-cam returns it at (out_h, out_w): min-max, cv2
 * INTER_LINEAR resize (img_resize), min-max again.  `cam` is (H,W) or (1,H,W);
 * the result is (out_h, out_w) in [0,1]. */
tn_tensor *rd_cam_resize(const tn_tensor *cam, int out_h, int out_w, cl_err *err);

typedef enum {
    RD_CMAP_GREY = 0,  /* v in [0,1] -> grey; one channel */
    RD_CMAP_JET,       /* v in [0,1] -> OpenCV JET; RGB */
    RD_CMAP_DIVERGING, /* v in [-limit, limit] -> blue, white at 0, red; RGB */
} rd_cmap;

/* Colours a map (H,W) or (1,H,W).  Values are clipped to the map's range;
 * for RD_CMAP_DIVERGING, limit <= 0 means max |v|. */
rd_image *rd_colorize(const tn_tensor *map, rd_cmap cmap, float limit, cl_err *err);

/* pytorch-grad-cam's show_cam_on_image(image, cam, use_rgb=True): heat =
 * JET(uint8(255 cam)) / 255; out = (1 - w) heat + w image; out /= max(out);
 * uint8(255 out).  cam (H,W) in [0,1]; image (C,H,W) in [0,1], C = 1 (used as
 * grey) or 3, the same H,W; image_weight w in [0,1] (0.5 in the lecture). */
rd_image *rd_overlay(const tn_tensor *cam01, const tn_tensor *image01, float image_weight,
                     cl_err *err);

/* `show cam over x size S`: rd_cam_resize(cam, h, w), the image resized to
 * (h, w) with img_resize and clipped to [0,1], then rd_overlay with weight 0.5. */
rd_image *rd_cam_over(const tn_tensor *cam, const tn_tensor *image01, int out_h, int out_w,
                      cl_err *err);

/* pytorch-grad-cam's deprocess_image, as floats: x -= mean; x /= (std + 1e-5);
 * x *= 0.1; x += 0.5; clip to [0,1].  Any shape; returns the same shape. */
tn_tensor *rd_guided_display(const tn_tensor *x, cl_err *err);

/* An image from a tensor (H,W), (C,H,W) or (1,C,H,W), C = 1 or 3:
 * uint8(255 * clip(v, 0, 1)).  With normalise set, the tensor is first
 * min-max scaled to [0,1] over all its values. */
rd_image *rd_from_tensor(const tn_tensor *x, int normalise, cl_err *err);

/* Nearest-neighbour enlargement by an integer factor (>= 1). */
rd_image *rd_scale_nearest(const rd_image *im, int factor, cl_err *err);

/* ---- text --------------------------------------------------------------- */

#define RD_FONT_W 5
#define RD_FONT_H 7
/* Width in pixels of `s` drawn at `scale` (a glyph is 5x7, plus 1 column of space). */
int rd_text_width(const char *s, int scale);
/* Draws ASCII text (others as '?') with its top-left at (x, y), clipped to the image. */
void rd_draw_text(rd_image *im, int x, int y, const char *s, const uint8_t rgb[3], int scale);

/* ---- tiles and grids -------------------------------------------------- */

/* A set of captioned tiles, for grids: the set owns its images and captions. */
typedef struct rd_tiles {
    int n, cap;
    rd_image **im;
    char **caption; /* never NULL entries; "" for none */
} rd_tiles;

rd_tiles *rd_tiles_new(cl_err *err);
/* Adds `im` (the set takes ownership, also on failure) with a copy of `caption` (may be NULL). */
int rd_tiles_add(rd_tiles *t, rd_image *im, const char *caption, cl_err *err);
void rd_tiles_free(rd_tiles *t);

typedef struct rd_grid_opts {
    int cols; /* tiles per row; 0 = about square */
    int tile; /* small tiles are enlarged (nearest, integer factor) to at least this side; 0 = 64 */
    int pad;  /* pixels between tiles; < 0 = 4 */
} rd_grid_opts;

/* Grids of more than 4 tiles shrink tiles longer than this (img_resize), which
 * keeps 14 ImageNet-sized tiles under 1 MB of PNG. */
#define RD_GRID_MAX_TILE 160

/* One RGB image: tiles on a white background, each with its caption
 * underneath.  o may be NULL (defaults). */
rd_image *rd_grid(const rd_tiles *t, const rd_grid_opts *o, cl_err *err);

/* ---- encoders --------------------------------------------------------- */

/* PNG bytes (malloc'd) of an image. */
int rd_png(const rd_image *im, uint8_t **out, size_t *out_len, cl_err *err);
int rd_save_png(const rd_image *im, const char *path, cl_err *err);


/* A text/html grid: tiles as PNG data: URIs (drawn `px` pixels wide, pixelated,
 * 0 = the tile's own width at least 64) with HTML-escaped captions, `cols`
 * per row (0 = about square).  Returns a malloc'd string. */
char *rd_tiles_html(const rd_tiles *t, int cols, int px, cl_err *err);
/* The same from ready PNGs: pngs[i] of png_lens[i] bytes, captions may be NULL. */
char *rd_html_grid(const uint8_t *const *pngs, const size_t *png_lens, const char *const *captions,
                   int n, int cols, int px, cl_err *err);

/* ---- filters and feature maps ----------------------------------------- */

/* A layer's weights as tiles.  w is (O,I,kh,kw) (conv) or (O,I) (dense, with
 * I a perfect square or 3 times one, shown as a square image).  Filters
 * f0..f1 (inclusive, clamped to O).  With I = 3 each filter is one colour tile
 * (RGB = input channels 0,1,2), with I = 1 one grey tile; otherwise one grey
 * tile per (filter, input channel c0..c1).  Each tile is min-max normalised on
 * its own.  Captions: "f3" or "f3 c1". */
rd_tiles *rd_weight_tiles(const tn_tensor *w, int f0, int f1, int c0, int c1, cl_err *err);

/* A layer's feature maps for one input: act is (C,H,W) or (1,C,H,W) (or
 * (1,C) / (C) for a dense layer: one 1x1 tile each).  channels[0..n) pick the
 * maps (NULL = all).  shared_scale: one min-max over all chosen maps (to compare
 * them) instead of one per map.  Grey tiles captioned "ch k". */
rd_tiles *rd_activation_tiles(const tn_tensor *act, const int *channels, int n, int shared_scale,
                              cl_err *err);

#endif
