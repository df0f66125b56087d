#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/render.h"

static tn_tensor *map_of(int h, int w, const float *v)
{
    cl_err err = {0};
    tn_tensor *t = tn_new2(h, w, &err);
    cr_assert_not_null(t, "%s", err.msg);
    memcpy(t->data, v, sizeof(float) * h * w);
    return t;
}

Test(render, minmax_is_pytorch_grad_cam_scale)
{
    float v[4] = {2, 4, 6, 3};
    rd_minmax(v, 4);
    cr_assert_eq(v[0], 0.0f);
    cr_assert_float_eq(v[1], 2.0f / (4.0f + 1e-7f), 1e-7);
    cr_assert_float_eq(v[2], 4.0f / (4.0f + 1e-7f), 1e-7);
    float z[3] = {5, 5, 5};
    rd_minmax(z, 3);
    for (int i = 0; i < 3; i++) cr_assert_eq(z[i], 0.0f, "a flat map becomes zeros, not NaN");
}

Test(render, jet_table_matches_opencv_ends)
{
    /* cv2.applyColorMap: 0 -> BGR (128,0,0), 255 -> BGR (0,0,128). */
    cr_assert_eq(rd_jet_rgb[0][0], 0);
    cr_assert_eq(rd_jet_rgb[0][2], 128);
    cr_assert_eq(rd_jet_rgb[255][0], 128);
    cr_assert_eq(rd_jet_rgb[255][2], 0);
}

Test(render, colorize_truncates_like_numpy)
{
    cl_err err = {0};
    float v[4] = {0.0f, 0.5f, 1.0f, 0.999f};
    tn_tensor *m = map_of(2, 2, v);
    rd_image *g = rd_colorize(m, RD_CMAP_GREY, 0, &err);
    cr_assert_not_null(g, "%s", err.msg);
    cr_assert_eq(g->c, 1);
    cr_assert_eq(g->pix[1], 127, "uint8(127.5) truncates");
    cr_assert_eq(g->pix[2], 255);
    cr_assert_eq(g->pix[3], 254);
    rd_image *j = rd_colorize(m, RD_CMAP_JET, 0, &err);
    cr_assert_eq(j->c, 3);
    cr_assert_eq(memcmp(j->pix + 3, rd_jet_rgb[127], 3), 0);
    rd_image_free(g);
    rd_image_free(j);
    tn_free(m);
}

Test(render, diverging_is_blue_white_red)
{
    cl_err err = {0};
    float v[3] = {-2.0f, 0.0f, 1.0f};
    tn_tensor *m = map_of(1, 3, v);
    rd_image *d = rd_colorize(m, RD_CMAP_DIVERGING, 0, &err); /* limit = max|v| = 2 */
    cr_assert_not_null(d, "%s", err.msg);
    uint8_t blue[3] = {0, 0, 255}, white[3] = {255, 255, 255}, half_red[3] = {255, 127, 127};
    cr_assert_eq(memcmp(d->pix, blue, 3), 0);
    cr_assert_eq(memcmp(d->pix + 3, white, 3), 0);
    cr_assert_eq(memcmp(d->pix + 6, half_red, 3), 0);
    rd_image_free(d);
    tn_free(m);
}

Test(render, overlay_follows_show_cam_on_image)
{
    cl_err err = {0};
    float c[2] = {0.0f, 1.0f};
    tn_tensor *cam = map_of(1, 2, c);
    tn_tensor *img = tn_new(3, (int64_t[]){3, 1, 2}, &err);
    for (int i = 0; i < 6; i++) img->data[i] = 0.5f;
    rd_image *o = rd_overlay(cam, img, 0.5f, &err);
    cr_assert_not_null(o, "%s", err.msg);
    /* The same float32 steps as NumPy: heat/255, blend, divide by the max. */
    float out[6], top = 0;
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++) {
            float h = (float)rd_jet_rgb[i ? 255 : 0][k] / 255.0f;
            out[3 * i + k] = 0.5f * h + 0.5f * 0.5f;
            top = fmaxf(top, out[3 * i + k]);
        }
    for (int i = 0; i < 6; i++) cr_assert_eq(o->pix[i], (uint8_t)(255.0f * (out[i] / top)));
    rd_image_free(o);
    tn_free(img);
    tn_free(cam);
}

Test(render, overlay_refuses_mismatched_sizes)
{
    cl_err err = {0};
    float c[2] = {0.0f, 1.0f};
    tn_tensor *cam = map_of(1, 2, c);
    tn_tensor *img = tn_new(3, (int64_t[]){3, 2, 2}, &err);
    cr_assert_null(rd_overlay(cam, img, 0.5f, &err));
    cr_assert_eq(err.code, CL_EINVAL);
    cr_assert(strstr(err.msg, "resize") != NULL, "%s", err.msg);
    tn_free(img);
    tn_free(cam);
}

Test(render, cam_resize_spans_zero_to_one)
{
    cl_err err = {0};
    float v[4] = {1, 2, 3, 9};
    tn_tensor *m = map_of(2, 2, v);
    tn_tensor *r = rd_cam_resize(m, 7, 5, &err);
    cr_assert_not_null(r, "%s", err.msg);
    cr_assert_eq(r->shape[0], 7);
    cr_assert_eq(r->shape[1], 5);
    float lo = 1, hi = 0;
    for (int i = 0; i < 35; i++) {
        lo = fminf(lo, r->data[i]);
        hi = fmaxf(hi, r->data[i]);
    }
    cr_assert_eq(lo, 0.0f);
    cr_assert_float_eq(hi, 1.0f, 1e-6);
    tn_free(r);
    tn_free(m);
}

Test(render, guided_display_centres_on_half)
{
    cl_err err = {0};
    float v[4] = {-3, -1, 1, 3};
    tn_tensor *m = map_of(2, 2, v);
    tn_tensor *d = rd_guided_display(m, &err);
    cr_assert_not_null(d, "%s", err.msg);
    float sd = sqrtf(5.0f) + 1e-5f;
    for (int i = 0; i < 4; i++) cr_assert_float_eq(d->data[i], v[i] / sd * 0.1f + 0.5f, 1e-6);
    tn_free(d);
    for (int i = 0; i < 4; i++) m->data[i] = 7.0f;
    d = rd_guided_display(m, &err);
    for (int i = 0; i < 4; i++) cr_assert_eq(d->data[i], 0.5f, "a flat gradient is mid-grey");
    tn_free(d);
    tn_free(m);
}

Test(render, from_tensor_chw_to_interleaved)
{
    cl_err err = {0};
    tn_tensor *x = tn_new(3, (int64_t[]){3, 1, 2}, &err);
    float v[6] = {0, 1, 0.5f, 2, -1, 0.25f};
    memcpy(x->data, v, sizeof v);
    rd_image *im = rd_from_tensor(x, 0, &err);
    cr_assert_not_null(im, "%s", err.msg);
    uint8_t want[6] = {0, 127, 0, 255, 255, 63};
    cr_assert_eq(memcmp(im->pix, want, 6), 0);
    rd_image_free(im);
    im = rd_from_tensor(x, 1, &err); /* min -1, max 2 */
    cr_assert_eq(im->pix[0], (uint8_t)(255.0f * (1.0f / 3.0f)));
    cr_assert_eq(im->pix[4], 255);
    rd_image_free(im);
    tn_free(x);
}

Test(render, text_draws_inside_its_box)
{
    cl_err err = {0};
    rd_image *im = rd_image_new(40, 10, 3, &err);
    const uint8_t white[3] = {255, 255, 255};
    cr_assert_eq(rd_text_width("ab", 1), 11);
    rd_draw_text(im, 1, 1, "H1", white, 1);
    int lit = 0, outside = 0;
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 40; x++)
            if (im->pix[(y * 40 + x) * 3]) {
                lit++;
                outside += x < 1 || x >= 12 || y < 1 || y >= 8;
            }
    cr_assert(lit > 10);
    cr_assert_eq(outside, 0);
    rd_draw_text(im, 35, 5, "clipped \x01", white, 2); /* must not write out of bounds */
    rd_image_free(im);
}

static rd_tiles *three_tiles(void)
{
    cl_err err = {0};
    rd_tiles *t = rd_tiles_new(&err);
    for (int i = 0; i < 3; i++) {
        rd_image *im = rd_image_new(28, 28, i == 1 ? 3 : 1, &err);
        memset(im->pix, 0, (size_t)28 * 28 * im->c);
        char cap[16];
        snprintf(cap, sizeof cap, "f%d <&>", i);
        cr_assert_eq(rd_tiles_add(t, im, cap, &err), 0, "%s", err.msg);
    }
    return t;
}

Test(render, grid_lays_out_captioned_tiles)
{
    cl_err err = {0};
    rd_tiles *t = three_tiles();
    rd_grid_opts o = {.cols = 2, .tile = 64, .pad = 4};
    rd_image *g = rd_grid(t, &o, &err);
    cr_assert_not_null(g, "%s", err.msg);
    /* 28 px tiles are enlarged 3x to 84; a caption strip of 7 + 4 px. */
    cr_assert_eq(g->w, 2 * (84 + 4) + 4);
    cr_assert_eq(g->h, 2 * (84 + 11 + 4) + 4);
    cr_assert_eq(g->c, 3);
    cr_assert_eq(g->pix[0], 255, "white background");
    cr_assert_eq(g->pix[(4 * g->w + 4) * 3], 0, "tile 0 starts after the padding");
    int ink = 0;
    for (int x = 4; x < 88; x++) ink += g->pix[((4 + 84 + 3) * g->w + x) * 3] == 0;
    cr_assert(ink > 0, "the caption is drawn under the tile");
    uint8_t *png;
    size_t len;
    cr_assert_eq(rd_png(g, &png, &len, &err), 0, "%s", err.msg);
    cr_assert(len > 8 && !memcmp(png, "\x89PNG", 4));
    free(png);
    rd_image_free(g);
    rd_tiles_free(t);
}

Test(render, html_grid_has_data_uris_and_escaped_captions)
{
    cl_err err = {0};
    rd_tiles *t = three_tiles();
    char *html = rd_tiles_html(t, 0, 0, &err);
    cr_assert_not_null(html, "%s", err.msg);
    int imgs = 0;
    for (const char *p = html; (p = strstr(p, "data:image/png;base64,iVBORw0KGgo")); p++) imgs++;
    cr_assert_eq(imgs, 3);
    cr_assert(strstr(html, "f1 &lt;&amp;&gt;") != NULL, "%s", html);
    cr_assert(strstr(html, "<&>") == NULL);
    cr_assert(strstr(html, "repeat(2,") != NULL, "3 tiles: 2 columns");
    free(html);
    rd_tiles_free(t);
}

Test(render, weight_tiles_colour_first_layer_and_per_channel_deeper)
{
    cl_err err = {0};
    tn_tensor *w = tn_new4(4, 3, 2, 2, &err);
    for (int i = 0; i < 48; i++) w->data[i] = (float)(i % 7) - 3.0f;
    rd_tiles *t = rd_weight_tiles(w, 0, 99, 0, 0, &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_eq(t->n, 4, "filters clamp to the layer's 4");
    cr_assert_eq(t->im[0]->c, 3);
    cr_assert_str_eq(t->caption[2], "f2");
    rd_tiles_free(t);
    tn_free(w);

    w = tn_new4(2, 5, 3, 3, &err);
    for (int i = 0; i < 90; i++) w->data[i] = (float)i;
    t = rd_weight_tiles(w, 1, 1, 1, 3, &err);
    cr_assert_eq(t->n, 3);
    cr_assert_str_eq(t->caption[0], "f1 c1");
    cr_assert_eq(t->im[0]->c, 1);
    /* Each tile on its own scale: its minimum is black and its maximum white. */
    cr_assert_eq(t->im[0]->pix[0], 0);
    cr_assert_eq(t->im[0]->pix[8], 255);
    rd_tiles_free(t);
    cr_assert_null(rd_weight_tiles(w, 5, 6, 0, 0, &err));
    cr_assert(strstr(err.msg, "0..1") != NULL, "%s", err.msg);
    tn_free(w);
}

Test(render, activation_tiles_shared_or_own_scale)
{
    cl_err err = {0};
    tn_tensor *a = tn_new4(1, 2, 1, 2, &err);
    float v[4] = {0, 1, 0, 4};
    memcpy(a->data, v, sizeof v);
    rd_tiles *own = rd_activation_tiles(a, NULL, 0, 0, &err);
    cr_assert_not_null(own, "%s", err.msg);
    cr_assert_eq(own->n, 2);
    cr_assert_eq(own->im[0]->pix[1], 255);
    cr_assert_eq(own->im[1]->pix[1], 255);
    rd_tiles *shared = rd_activation_tiles(a, (int[]){1, 0}, 2, 1, &err);
    cr_assert_str_eq(shared->caption[0], "ch 1");
    cr_assert_eq(shared->im[0]->pix[1], 255);
    cr_assert_eq(shared->im[1]->pix[1], 63, "1 on a 0..4 scale");
    cr_assert_null(rd_activation_tiles(a, (int[]){2}, 1, 0, &err));
    cr_assert(strstr(err.msg, "channel 2") != NULL, "%s", err.msg);
    rd_tiles_free(own);
    rd_tiles_free(shared);
    tn_free(a);
}

Test(render, big_tiles_shrink_in_grids_of_more_than_four)
{
    cl_err err = {0};
    rd_tiles *t = rd_tiles_new(&err);
    for (int i = 0; i < 5; i++) {
        rd_image *im = rd_image_new(200, 100, 3, &err);
        memset(im->pix, 100, (size_t)200 * 100 * 3);
        cr_assert_eq(rd_tiles_add(t, im, NULL, &err), 0, "%s", err.msg);
    }
    rd_grid_opts o = {.cols = 5, .tile = 64, .pad = 0};
    rd_image *g = rd_grid(t, &o, &err);
    cr_assert_not_null(g, "%s", err.msg);
    cr_assert_eq(g->w, 5 * RD_GRID_MAX_TILE);
    cr_assert_eq(g->h, RD_GRID_MAX_TILE / 2);
    cr_assert_eq(g->pix[0], 100, "a flat tile stays flat when shrunk");
    cr_assert_eq(t->im[0]->w, 200, "the tiles themselves are not changed");
    rd_image_free(g);
    rd_tiles_free(t);
}

Test(render, many_big_tiles_shrink_to_the_pixels_of_sixteen)
{
    cl_err err = {0};
    rd_tiles *t = rd_tiles_new(&err);
    for (int i = 0; i < 64; i++) {
        rd_image *im = rd_image_new(224, 224, 3, &err);
        memset(im->pix, 7 * i, (size_t)224 * 224 * 3);
        cr_assert_eq(rd_tiles_add(t, im, NULL, &err), 0, "%s", err.msg);
    }
    rd_grid_opts o = {.cols = 8, .tile = 64, .pad = 0};
    rd_image *g = rd_grid(t, &o, &err);
    cr_assert_not_null(g, "%s", err.msg);
    /* 64 tiles keep 16 tiles' pixels: sides of 160 * sqrt(16/64) = 80. */
    cr_assert_eq(g->w, 8 * 80);
    cr_assert_eq(g->h, 8 * 80);
    /* The HTML form carries the same shrunk tiles (80 = 0x50 in the IHDR). */
    char *html = rd_tiles_html(t, 8, 0, &err);
    cr_assert_not_null(html, "%s", err.msg);
    const char *uri = strstr(html, "data:image/png;base64,");
    cr_assert_not_null(uri);
    /* base64 of the PNG signature + IHDR length/type + width 80 starts like this. */
    cr_assert(strncmp(uri + 22, "iVBORw0KGgoAAAANSUhEUgAAAFA", 27) == 0, "%.60s", uri);
    free(html);
    rd_image_free(g);
    rd_tiles_free(t);
}
