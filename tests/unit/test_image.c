/* Images: PNG/JPEG decoding (round trips with the PNG writer, the JPEG
 * fixture), hostile files (huge headers, truncations, bit flips), and the
 * resize / crop / normalise arithmetic on hand-computed cases.  The
 * comparisons with OpenCV and torchvision are in tests/py/test_image_io.py. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/image.h"
#include "engine/io/png.h"
#include "engine/progress.h"
#include "tests/unit/tmpdir.h"

static void make_dir(void)
{
    tmp_make("img");
}

static void drop_dir(void)
{
    tmp_drop();
    lim_reset();
}

TestSuite(image, .init = make_dir, .fini = drop_dir);

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc(*n);
    cr_assert_eq(fread(d, 1, *n, f), *n);
    fclose(f);
    return d;
}

static void pattern(uint8_t *pix, int w, int h, int c)
{
    for (int i = 0; i < w * h * c; i++) pix[i] = (uint8_t)(i * 37 + i / 7);
}

Test(image, png_round_trip_grey_rgb_rgba)
{
    const int w = 13, h = 7;
    for (int c = 1; c <= 4; c++) {
        if (c == 2) continue;
        uint8_t pix[13 * 7 * 4];
        pattern(pix, w, h, c);
        cl_err err = {0};
        cr_assert_eq(png_write_file(tmp_path("a.png"), pix, w, h, c, &err), 0, "%s", err.msg);
        tn_tensor *t = img_load(tmp_path("a.png"), &err);
        cr_assert_not_null(t, "%s", err.msg);
        int oc = c == 4 ? 3 : c; /* alpha dropped */
        cr_assert_eq(t->ndim, 3);
        cr_assert_eq(t->shape[0], oc);
        cr_assert_eq(t->shape[1], h);
        cr_assert_eq(t->shape[2], w);
        for (int k = 0; k < oc; k++)
            for (int i = 0; i < w * h; i++)
                cr_assert_eq(t->data[k * w * h + i], pix[i * c + k] / 255.0f);
        tn_free(t);
    }
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A PNG whose IHDR claims w x h, with no image data. */
static void write_png_header(const char *name, uint32_t w, uint32_t h)
{
    uint8_t b[64];
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    put_be32(b + 8, 13);
    memcpy(b + 12, "IHDR", 4);
    put_be32(b + 16, w);
    put_be32(b + 20, h);
    memcpy(b + 24, "\x08\x02\x00\x00\x00", 5);
    put_be32(b + 29, (uint32_t)crc32(0, b + 12, 17));
    /* An empty IDAT, so libpng reaches the image data, then IEND. */
    put_be32(b + 33, 0);
    memcpy(b + 37, "IDAT", 4);
    put_be32(b + 41, (uint32_t)crc32(0, b + 37, 4));
    put_be32(b + 45, 0);
    memcpy(b + 49, "IEND", 4);
    put_be32(b + 53, (uint32_t)crc32(0, b + 49, 4));
    tmp_write(name, b, 57);
}

static void expect_fail(const char *name, const char *needle)
{
    cl_err err = {0};
    tn_tensor *t = img_load(tmp_path(name), &err);
    cr_assert_null(t, "%s should be rejected", name);
    cr_assert(strstr(err.msg, needle) != NULL, "%s: '%s' lacks '%s'", name, err.msg, needle);
}

Test(image, oversized_images_are_refused_before_decoding)
{
    write_png_header("huge.png", 100000, 100000);
    expect_fail("huge.png", "the PNG is 100000x100000 = 10 Gpixels; the limit is 64 Mpixels");
    write_png_header("nodata.png", 10, 10);
    expect_fail("nodata.png", "PNG");
    uint8_t pix[64 * 64 * 3];
    pattern(pix, 64, 64, 3);
    cl_err err = {0};
    cr_assert_eq(png_write_file(tmp_path("b.png"), pix, 64, 64, 3, &err), 0);
    cr_assert_eq(lim_set(LIM_IMAGE_PIXELS, 4000, NULL), 0);
    expect_fail("b.png", "the limit is 4 kpixels");
    lim_reset();
    /* The JPEG fixture is 40x30. */
    size_t n;
    char src[512];
    snprintf(src, sizeof src, "%s/tests/data/photo.jpg", CNNLENS_SOURCE_DIR);
    uint8_t *d = read_all(src, &n);
    tmp_write("p.jpg", d, n);
    free(d);
    cr_assert_eq(lim_set(LIM_IMAGE_PIXELS, 1000, NULL), 0);
    expect_fail("p.jpg", "the JPEG is 40x30 = 1.2 kpixels; the limit is 1 kpixels");
}

Test(image, jpeg_fixture_decodes)
{
    char src[512];
    snprintf(src, sizeof src, "%s/tests/data/photo.jpg", CNNLENS_SOURCE_DIR);
    cl_err err = {0};
    tn_tensor *t = img_load(src, &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_eq(t->shape[0], 3);
    cr_assert_eq(t->shape[1], 30);
    cr_assert_eq(t->shape[2], 40);
    /* The fixture's blue channel is a ramp along x (cv2 wrote it as BGR). */
    const float *blue = t->data + 2 * 30 * 40;
    cr_assert_gt(blue[39 + 40 * 15], blue[0 + 40 * 15] + 0.5f);
    tn_free(t);
}

/* Every cut of a PNG and the JPEG fixture is refused; every byte flip is
 * survived (accepted or refused) without a crash or a leak under ASan. */
static void cut_and_flip(const char *name, const uint8_t *d0, size_t n)
{
    uint8_t *d = malloc(n);
    memcpy(d, d0, n);
    for (size_t cut = 0; cut < n; cut++) {
        tmp_write(name, d, cut);
        cl_err err = {0};
        tn_tensor *t = img_load(tmp_path(name), &err);
        cr_assert_null(t, "%s cut to %zu of %zu bytes was accepted", name, cut, n);
        cr_assert_neq(err.msg[0], '\0');
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t keep = d[i];
        d[i] ^= (uint8_t)(0xa5 + i);
        tmp_write(name, d, n);
        cl_err err = {0};
        tn_free(img_load(tmp_path(name), &err));
        d[i] = keep;
    }
    free(d);
}

Test(image, truncated_and_corrupted_files)
{
    uint8_t pix[23 * 17 * 3];
    pattern(pix, 23, 17, 3);
    uint8_t *png;
    size_t n;
    cl_err err = {0};
    cr_assert_eq(png_encode(pix, 23, 17, 3, &png, &n, &err), 0);
    cut_and_flip("cut.png", png, n);
    free(png);
    char src[512];
    snprintf(src, sizeof src, "%s/tests/data/photo.jpg", CNNLENS_SOURCE_DIR);
    uint8_t *jpg = read_all(src, &n);
    cut_and_flip("cut.jpg", jpg, n);
    free(jpg);
    tmp_write("text.png", (const uint8_t *)"GIF89a not supported", 20);
    expect_fail("text.png", "not a PNG or JPEG");
    expect_fail("missing.png", "cannot open");
}

static tn_tensor *from(const float *v, int c, int h, int w)
{
    cl_err err = {0};
    tn_tensor *t = tn_new(3, (int64_t[]){c, h, w}, &err);
    memcpy(t->data, v, sizeof(float) * (size_t)(c * h * w));
    return t;
}

Test(image, resize_upscale_matches_hand_computed_inter_linear)
{
    float v[4] = {0, 1, 2, 3};
    tn_tensor *x = from(v, 1, 2, 2);
    cl_err err = {0};
    tn_tensor *y = img_resize(x, 4, 4, &err);
    cr_assert_not_null(y, "%s", err.msg);
    /* x taps: -0.25 -> 0 (clamped), 0.25, 0.75, 1.25 -> 1 (clamped). */
    float row[4] = {0, 0.25f, 0.75f, 1};
    float add[4] = {0, 0.5f, 1.5f, 2};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            cr_assert_float_eq(y->data[i * 4 + j], row[j] + add[i], 1e-7, "(%d,%d)", i, j);
    tn_free(y);
    y = img_resize(x, 2, 2, &err); /* same size: a copy */
    cr_assert_eq(memcmp(y->data, v, sizeof v), 0);
    tn_free(y);
    cr_assert_null(img_resize(x, 0, 3, &err));
    tn_free(x);
}

Test(image, resize_2d_and_strided_input)
{
    cl_err err = {0};
    tn_tensor *x = tn_new2(3, 5, &err);
    for (int i = 0; i < 15; i++) x->data[i] = (float)i;
    tn_tensor *y = img_resize(x, 3, 5, &err);
    cr_assert_eq(y->ndim, 2);
    cr_assert_eq(memcmp(y->data, x->data, 15 * sizeof(float)), 0);
    tn_free(y);
    /* A transposed view resizes like its contiguous copy. */
    tn_tensor *v = tn_view(x, &err);
    v->shape[0] = 5, v->shape[1] = 3, v->stride[0] = 1, v->stride[1] = 5;
    tn_tensor *c = tn_clone(v, &err);
    tn_tensor *a = img_resize(v, 7, 4, &err), *b = img_resize(c, 7, 4, &err);
    cr_assert_eq(memcmp(a->data, b->data, 28 * sizeof(float)), 0);
    tn_free(a), tn_free(b), tn_free(c), tn_free(v), tn_free(x);
}

Test(image, resize_short_sizes_like_torchvision)
{
    cl_err err = {0};
    tn_tensor *x = tn_new(3, (int64_t[]){3, 301, 457}, &err);
    tn_tensor *y = img_resize_short(x, 256, &err);
    cr_assert_eq(y->shape[1], 256);
    cr_assert_eq(y->shape[2], 388); /* int(256 * 457 / 301) = int(388.67) */
    tn_free(y);
    tn_free(x);
    x = tn_new(3, (int64_t[]){1, 500, 375}, &err);
    y = img_resize_short(x, 224, &err);
    cr_assert_eq(y->shape[1], 298); /* int(224 * 500 / 375) = int(298.67) */
    cr_assert_eq(y->shape[2], 224);
    tn_free(y);
    tn_free(x);
}

Test(image, center_crop_rounds_half_to_even_and_pads)
{
    float v[36];
    for (int i = 0; i < 36; i++) v[i] = (float)i;
    tn_tensor *x = from(v, 1, 6, 6);
    cl_err err = {0};
    /* (6 - 3) / 2 = 1.5 -> 2; (6 - 1) / 2 = 2.5 -> 2 (Python's round). */
    tn_tensor *y = img_center_crop(x, 3, 1, &err);
    cr_assert_eq(y->shape[1], 3);
    cr_assert_eq(y->shape[2], 1);
    cr_assert_eq(y->data[0], 2 * 6 + 2);
    cr_assert_eq(y->data[2], 4 * 6 + 2);
    tn_free(y);
    /* Bigger than the image: zero padding, (8 - 6) // 2 = 1 before. */
    y = img_center_crop(x, 8, 9, &err);
    cr_assert_eq(y->data[0], 0);
    cr_assert_eq(y->data[1 * 9 + 1], 0.0f);         /* (9 - 6) // 2 = 1 column of padding */
    cr_assert_eq(y->data[1 * 9 + 2], 1.0f);         /* image (0, 1) */
    cr_assert_eq(y->data[6 * 9 + 6], 5 * 6 + 5.0f); /* image (5, 5) */
    cr_assert_eq(y->data[7 * 9 + 6], 0.0f);
    tn_free(y);
    tn_free(x);
}

Test(image, normalize_and_presets)
{
    float v[3] = {0.485f, 0.456f + 0.224f, 0.406f - 0.225f};
    tn_tensor *x = from(v, 3, 1, 1);
    cl_err err = {0};
    cr_assert_eq(img_normalize(x, IMG_NORM_IMAGENET, &err), 0);
    cr_assert_float_eq(x->data[0], 0.0f, 1e-6);
    cr_assert_float_eq(x->data[1], 1.0f, 1e-6);
    cr_assert_float_eq(x->data[2], -1.0f, 1e-6);
    tn_free(x);
    float g[4] = {0, 0.25f, 0.5f, 1};
    x = from(g, 1, 2, 2);
    cr_assert_eq(img_normalize(x, IMG_NORM_IMAGENET, &err), -1);
    cr_assert(strstr(err.msg, "3 channels") != NULL);
    cr_assert_eq(img_normalize(x, IMG_NORM_HALF, &err), 0);
    cr_assert_eq(x->data[0], -1.0f);
    cr_assert_eq(x->data[3], 1.0f);
    tn_free(x);
    tn_tensor *grey = tn_new(3, (int64_t[]){1, 300, 400}, &err);
    tn_fill(grey, 0.485f);
    tn_tensor *p = img_preprocess(grey, "imagenet", &err);
    cr_assert_not_null(p, "%s", err.msg);
    cr_assert_eq(p->shape[0], 3);
    cr_assert_eq(p->shape[1], 224);
    cr_assert_eq(p->shape[2], 224);
    cr_assert_float_eq(p->data[0], 0.0f, 1e-6);
    tn_free(p);
    cr_assert_null(img_preprocess(grey, "vgg", &err));
    cr_assert(strstr(err.msg, "unknown preprocessing") != NULL);
    tn_free(grey);
}

/* A big picture's encoding stops at the next row once the thread's bound
 * cancel flag is set (an interrupt during a cell's display), and a big one
 * is still a valid PNG when nobody interrupts it. */
Test(image, png_encoding_stops_when_the_bound_cancel_flag_is_set)
{
    enum { W = 2100, H = 2100 }; /* past the fast-compression size */
    uint8_t *pix = malloc((size_t)W * H);
    cr_assert(pix);
    for (size_t i = 0; i < (size_t)W * H; i++) pix[i] = (uint8_t)(i * 2654435761u >> 24);
    atomic_int cancel = 0;
    cl_cancel_bind(&cancel);
    uint8_t *png = NULL;
    size_t n = 0;
    cl_err err = {0};
    cr_assert_eq(png_encode(pix, W, H, 1, &png, &n, &err), 0, "%s", err.msg);
    cr_assert(n > 8 && !memcmp(png, "\x89PNG", 4));
    free(png);
    atomic_store(&cancel, 1);
    png = NULL;
    cr_assert_eq(png_encode(pix, W, H, 1, &png, &n, &err), -1);
    cr_assert_eq(err.code, CL_EINTERRUPT);
    cr_assert_null(png);
    cl_cancel_bind(NULL);
    cr_assert_eq(png_encode(pix, 4, 4, 1, &png, &n, &err), 0, "unbound: the flag no longer counts");
    free(png);
    free(pix);
}
