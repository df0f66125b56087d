/* value — the values of the lens language: numbers, strings, ranges,
 * matrices/tensors, images, heatmaps, models, tables.
 *
 * Values are reference counted, so `y = x` shares an image instead of copying
 * it.  A value is immutable once built: arithmetic always makes a new one.
 *
 * Ownership: lv_new_* and every function returning lv_value * give the caller
 * one reference; release it with lv_unref.  lv_ref returns its argument with
 * one more reference.  A value takes ownership of the tensor, strings and
 * table given to its constructor.
 */
#ifndef CNNLENS_LANG_VALUE_H
#define CNNLENS_LANG_VALUE_H

#include <jansson.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/tensor.h"

typedef enum {
    LV_NONE = 0,
    LV_NUM,
    LV_STR,
    LV_RANGE,
    LV_TENSOR,  /* a matrix (1 or 2 dims) or a tensor (3 or 4 dims) */
    LV_IMAGE,   /* (C,H,W); `norm` says how to map it back to [0,1] */
    LV_HEATMAP, /* (H,W) map, e.g. a class activation map */
    LV_MODEL,
    LV_TABLE,
    LV_PICTURE, /* a finished picture (filter grids, ...), maybe with its numbers */
    LV_NKINDS
} lv_kind;

typedef struct lv_table {
    int ncols, nrows;
    char **head;  /* ncols strings */
    char **cells; /* nrows * ncols strings, row-major */
    double *nums; /* per cell: a number for shading/sorting, or NAN */
} lv_table;

typedef enum {
    LV_SHOW_PLAIN = 0,
    LV_SHOW_GUIDED, /* an input gradient: shown as pytorch-grad-cam's deprocess_image */
} lv_show;

struct pic;

typedef struct lv_value lv_value;
struct lv_value {
    int refs;
    lv_kind kind;
    double num;     /* LV_NUM */
    char *str;      /* LV_STR */
    int64_t lo, hi; /* LV_RANGE, inclusive */
    tn_tensor *t;   /* LV_TENSOR, LV_IMAGE, LV_HEATMAP */
    int norm;       /* LV_IMAGE: an img_norm value (0: already in [0,1]) */
    lv_value *base; /* LV_HEATMAP: the image it explains, or NULL */
    void *obj;      /* LV_MODEL: engine object */
    void (*obj_free)(void *);
    char *desc;    /* LV_MODEL: one-line description; LV_HEATMAP: what it is */
    lv_table *tab; /* LV_TABLE */
    char **names;  /* LV_MODEL: layer names, for completion (owned) */
    int nnames;
    struct pic *pic; /* LV_PICTURE: the pixels (owned) */
    char *html;      /* LV_PICTURE: an HTML form (a grid's tiles as data: URIs), or NULL */
    lv_show show;    /* LV_IMAGE: how to display it */
};

lv_value *lv_none(void);
lv_value *lv_num(double x);
/* Copies s. */
lv_value *lv_str(const char *s);
lv_value *lv_range(int64_t lo, int64_t hi);
/* Takes t. */
lv_value *lv_tensor(tn_tensor *t);
lv_value *lv_image(tn_tensor *t, int norm);
/* Sets a value's description (copied), e.g. "fashion test 17: Ankle boot". */
void lv_set_desc(lv_value *v, const char *desc);
/* Takes t; base may be NULL (it gains a reference). */
lv_value *lv_heatmap(tn_tensor *t, lv_value *base, const char *desc);
lv_value *lv_model(void *obj, void (*obj_free)(void *), const char *desc);
/* Takes tab. */
lv_value *lv_table_value(lv_table *tab);
/* Takes p and t (t may be NULL: a picture without numbers to save as .npy). */
lv_value *lv_picture(struct pic *p, tn_tensor *t, const char *desc);

lv_value *lv_ref(lv_value *v);
void lv_unref(lv_value *v);

/* "number", "matrix", "tensor", "image", ... as messages name them. */
const char *lv_type_name(const lv_value *v);
const char *lv_kind_name(lv_kind k);
/* Tensor-like: a tensor, an image or a heatmap. */
int lv_is_array(const lv_value *v);

/* Tables. */
lv_table *lv_table_new(int ncols, const char *const *head);
/* Appends a row of ncols cells (copied); nums may be NULL. */
int lv_table_add(lv_table *t, const char *const *cells, const double *nums);
void lv_table_free(lv_table *t);

/* Text forms. lv_format_num writes a short decimal ("0.25", "-4", "1e-07"). */
void lv_format_num(double x, char *buf, size_t n);
/* malloc'd text/plain form. */
char *lv_text(const lv_value *v);
/* The MIME bundle: text/plain always; image/png for images, heatmaps and big
 * matrices; text/html for tables and matrices up to 16x16.  New reference. */
/* The display metadata for a MIME bundle: {"image/png": {"width", "height"}}
 * read from the PNG's own header, so front ends lay out the image before
 * decoding it.  Returns a new object (empty when there is no PNG). */
json_t *lv_bundle_meta(const json_t *bundle);
json_t *lv_bundle(const lv_value *v, cl_err *err);

/* An image value's pixels mapped back to [0,1] (undoing its normalisation;
 * guided gradients get the deprocess display).  New tensor. */
tn_tensor *lv_image01(const lv_value *v, cl_err *err);
/* The picture of an image, heatmap, picture or matrix as PNG bytes
 * (malloc'd).  over: an image to lay a heatmap on (NULL: the map alone, in
 * the jet colours); size: the longer side in pixels (0: natural, small pictures enlarged to
 * about 224 pixels for the screen; -1: exactly natural, for files). */
int lv_png(const lv_value *v, const lv_value *over, int size, uint8_t **png, size_t *len,
           cl_err *err);
/* A bundle with text/plain and image/png for `show VALUE over X size S`. */
json_t *lv_bundle_shown(const lv_value *v, const lv_value *over, int size, cl_err *err);

/* A JSON string of s; bytes that are not UTF-8 become '?' (never NULL). */
json_t *lv_json_string(const char *s);

/* A tensor from a value: numbers become 1x1 matrices.  New tensor, or NULL. */
tn_tensor *lv_to_tensor(const lv_value *v, cl_err *err);

#endif
