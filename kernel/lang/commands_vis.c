/* Verbs that show what a CNN learns: gradcam, guided, guidedcam, saliency,
 * occlusion, weights, activations, maximize, fool. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/image.h"
#include "engine/render.h"
#include "engine/vis/vis.h"
#include "kernel/lang/lens_engine.h"
#include "kernel/lang/picture.h"

static int oom(cl_err *err)
{
    return cl_err_set(err, CL_ENOMEM, "out of memory");
}

static void class_text(const lc_call *c, int cls, char *buf, size_t n)
{
    const char *label = le_label(c->s, cls);
    if (label)
        snprintf(buf, n, "class %d (%s)", cls, label);
    else
        snprintf(buf, n, "class %d", cls);
}

/* A batch of one loses its batch axis: (1,h,w) maps become (h,w), (1,C,H,W)
 * images (C,H,W); an image (C,H,W) with C = 1 stays as it is. */
static void drop_batch(tn_tensor *t, int image)
{
    if (t->ndim == (image ? 4 : 3) && t->shape[0] == 1) {
        int64_t s[TN_MAXDIM];
        for (int i = 1; i < t->ndim; i++) s[i - 1] = t->shape[i];
        tn_reshape(t, t->ndim - 1, s, NULL);
    }
}

/* An input-space attribution (guided backprop and friends) as an image value
 * shown with the guided-backprop display; takes g. */
static int gradient_image(tn_tensor *g, const char *desc, lv_value **out, cl_err *err)
{
    drop_batch(g, 1);
    lv_value *v = lv_image(g, 0);
    if (!v) return oom(err);
    v->show = LV_SHOW_GUIDED;
    lv_set_desc(v, desc);
    *out = v;
    return 0;
}

static int do_gradcam(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    tn_tensor x;
    int layer, cls, used = -1;
    vis_cam_kind kind;
    if (le_input(c, m, "x", &x, err) < 0 || (layer = le_layer(c, m, "layer", err)) < 0 ||
        le_class(c, m, "class", &cls, err) < 0)
        return -1;
    if (vis_cam_kind_parse(lc_text(c, "method"), &kind, err) < 0)
        return lc_arg_error(c, "method", err, err->code, "gradcam: %s", err->msg);
    cl_progress p = ss_progress(c->s);
    tn_tensor *cam = vis_cam(m, &x, layer, cls, kind, &p, &used, err);
    if (!cam) return -1;
    drop_batch(cam, 0);
    net_node_info info;
    net_node_info_get(m, layer, &info);
    char what[160], desc[256];
    class_text(c, used, what, sizeof what);
    const char *named = lc_text(c, "layer"); /* as the student wrote it ("layer4") */
    snprintf(desc, sizeof desc, "%s of %s at %s", vis_cam_kind_name(kind), what,
             named ? named : info.name);
    return (*out = lv_heatmap(cam, lc_get(c, "x"), desc)) ? 0 : oom(err);
}

static int do_gradients(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    tn_tensor x;
    int layer, cls;
    if (le_input(c, m, "x", &x, err) < 0 || (layer = le_layer(c, m, "layer", err)) < 0 ||
        le_class(c, m, "class", &cls, err) < 0)
        return -1;
    if (net_forward(m, &x, err) < 0) return -1;
    const tn_tensor *z = net_output(m);
    int n = net_num_classes(m);
    if (cls < 0) {
        cls = 0;
        for (int i = 1; i < n; i++)
            if (z->data[i] > z->data[cls]) cls = i;
    }
    /* d logit[cls] / d A at the layer: backward from a one-hot on the logits. */
    tn_tensor *seed = tn_clone(z, err);
    if (!seed) return -1;
    tn_zero(seed);
    seed->data[cls] = 1;
    int r = net_backward(m, net_node_count(m) - 1, seed, layer, NET_RELU_PLAIN, err);
    tn_free(seed);
    if (r < 0) return -1;
    const tn_tensor *g = net_node_grad(m, layer);
    if (!g) return cl_err_set(err, CL_EINVAL, "gradients: no gradient reached this layer");
    tn_tensor *t = tn_clone(g, err);
    if (!t) return -1;
    drop_batch(t, 1);
    return (*out = lv_tensor(t)) ? 0 : oom(err);
}

static int do_guided(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    tn_tensor x;
    int cls, used = -1;
    if (le_input(c, m, "x", &x, err) < 0 || le_class(c, m, "class", &cls, err) < 0) return -1;
    const char *rule = lc_text(c, "rule");
    net_relu_rule r = !strcmp(rule, "guided")   ? NET_RELU_GUIDED
                      : !strcmp(rule, "deconv") ? NET_RELU_DECONV
                      : !strcmp(rule, "plain")  ? NET_RELU_PLAIN
                                                : (net_relu_rule)-1;
    if ((int)r < 0)
        return lc_arg_error(c, "rule", err, CL_EINVAL,
                            "guided: rule is guided, deconv or plain, not '%s'", rule);
    tn_tensor *g = vis_input_grad(m, &x, cls, r, &used, err);
    if (!g) return -1;
    char what[160], desc[256];
    class_text(c, used, what, sizeof what);
    snprintf(desc, sizeof desc, "%s backprop of %s", rule, what);
    return gradient_image(g, desc, out, err);
}

static int do_guidedcam(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    tn_tensor x;
    int layer, cls, used = -1;
    if (le_input(c, m, "x", &x, err) < 0 || (layer = le_layer(c, m, "layer", err)) < 0 ||
        le_class(c, m, "class", &cls, err) < 0)
        return -1;
    tn_tensor *g = vis_guided_gradcam(m, &x, layer, cls, &used, err);
    if (!g) return -1;
    char what[160], desc[256];
    class_text(c, used, what, sizeof what);
    snprintf(desc, sizeof desc, "guided Grad-CAM of %s", what);
    return gradient_image(g, desc, out, err);
}

static int do_saliency(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    tn_tensor x;
    int cls, used = -1;
    if (le_input(c, m, "x", &x, err) < 0 || le_class(c, m, "class", &cls, err) < 0) return -1;
    tn_tensor *s = vis_saliency(m, &x, cls, &used, err);
    if (!s) return -1;
    drop_batch(s, 0);
    char what[160], desc[256];
    class_text(c, used, what, sizeof what);
    snprintf(desc, sizeof desc, "saliency of %s", what);
    return (*out = lv_heatmap(s, lc_get(c, "x"), desc)) ? 0 : oom(err);
}

static int do_smoothgrad(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    tn_tensor x;
    int cls, used = -1;
    if (le_input(c, m, "x", &x, err) < 0 || le_class(c, m, "class", &cls, err) < 0) return -1;
    if (lc_check_limit(c, "samples", LIM_STEPS, lc_num(c, "samples", 25), "smoothgrad: samples",
                       err))
        return -1;
    int samples = (int)lc_num(c, "samples", 25);
    if (samples < 1 || samples > 1000)
        return lc_arg_error(c, "samples", err, CL_EINVAL, "smoothgrad: samples must be 1..1000");
    le_live live;
    cl_progress p = le_live_start(&live, c);
    tn_tensor *map = vis_smoothgrad(m, &x, cls, samples, (float)lc_num(c, "noise", 0.15),
                                    ss_rand_u64(c->s), &p, &used, err);
    le_live_finish(&live, map ? "smoothgrad: done" : "smoothgrad: stopped");
    if (!map) return -1;
    drop_batch(map, 0);
    char what[160], desc[256];
    class_text(c, used, what, sizeof what);
    snprintf(desc, sizeof desc, "SmoothGrad of %s, %d samples", what, samples);
    return (*out = lv_heatmap(map, lc_get(c, "x"), desc)) ? 0 : oom(err);
}

static int do_intgrad(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    tn_tensor x;
    int cls, used = -1;
    if (le_input(c, m, "x", &x, err) < 0 || le_class(c, m, "class", &cls, err) < 0) return -1;
    if (lc_check_limit(c, "steps", LIM_STEPS, lc_num(c, "steps", 50), "intgrad: steps", err))
        return -1;
    int steps = (int)lc_num(c, "steps", 50);
    if (steps < 1 || steps > 1000)
        return lc_arg_error(c, "steps", err, CL_EINVAL, "intgrad: steps must be 1..1000");
    le_live live;
    cl_progress p = le_live_start(&live, c);
    tn_tensor *a = vis_integrated_gradients(m, &x, cls, NULL, steps, &p, &used, err);
    le_live_finish(&live, a ? "intgrad: done" : "intgrad: stopped");
    if (!a) return -1;
    char what[160], desc[256];
    class_text(c, used, what, sizeof what);
    snprintf(desc, sizeof desc, "integrated gradients of %s, %d steps", what, steps);
    return gradient_image(a, desc, out, err);
}

/* ---- live pictures of maximize, fool and occlusion ---------------------- */

/* A live picture stays under this many bytes of PNG, 96 kB as base64 in its
 * message: one every 0.3 s is then at most a third of the 1 MB/s a notebook
 * server passes on IOPub. */
#define LIVE_MAX_PNG (72 * 1024)

/* Image i of a batch (n,C,H,W) as a (C,H,W) view. */
static tn_tensor batch_item(const tn_tensor *b, int i)
{
    tn_tensor one = *b;
    one.ndim = 3;
    for (int d = 0; d < 3; d++) {
        one.shape[d] = b->shape[d + 1];
        one.stride[d] = b->stride[d + 1];
    }
    one.data = b->data + (size_t)i * b->stride[0];
    one.cap = 0;
    return one;
}

/* A (C,H,W) tensor no longer than `side` on its longer side (bilinear, as
 * cv2.resize); side <= 0 or a small image: a copy. */
static tn_tensor *fit_side(const tn_tensor *x, int side, cl_err *err)
{
    int64_t h = x->shape[x->ndim - 2], w = x->shape[x->ndim - 1], longer = h > w ? h : w;
    if (side <= 0 || longer <= side) return tn_clone(x, err);
    int oh = (int)(h * side / longer), ow = (int)(w * side / longer);
    return img_resize(x, oh < 1 ? 1 : oh, ow < 1 ? 1 : ow, err);
}

/* A unit's value as a short caption number ("12.3", "-0.0456", "12345"). */
static void short_num(float v, char *buf, size_t n)
{
    snprintf(buf, n, fabsf(v) >= 1000.0f ? "%.0f" : "%.3g", (double)v);
}

/* One tile per image, each min-max scaled on its own like the lecture's
 * figures, captioned "filter 3" or, with values (live), "3: 12.3"; images
 * longer than `side` are shrunk first (side <= 0: as they are). */
static rd_tiles *max_tiles(const tn_tensor *imgs, const int *units, const char *which,
                           const float *values, int side, cl_err *err)
{
    rd_tiles *tiles = rd_tiles_new(err);
    for (int i = 0; tiles && i < (int)imgs->shape[0]; i++) {
        tn_tensor one = batch_item(imgs, i);
        tn_tensor *small = side > 0 ? fit_side(&one, side, err) : NULL;
        rd_image *im = side > 0 && !small ? NULL : rd_from_tensor(small ? small : &one, 1, err);
        tn_free(small);
        char cap[64], num[32];
        if (values) {
            short_num(values[i], num, sizeof num);
            snprintf(cap, sizeof cap, "%d: %s", units[i], num);
        } else {
            snprintf(cap, sizeof cap, "%s %d", which ? which : "unit", units[i]);
        }
        if (!im || rd_tiles_add(tiles, im, cap, err) < 0) {
            rd_tiles_free(tiles);
            tiles = NULL;
        }
    }
    return tiles;
}

/* im (taken) under a white strip with `text`, one line per '\n'. */
static rd_image *with_banner(rd_image *im, const char *text, cl_err *err)
{
    static const uint8_t ink[3] = {0, 0, 0};
    int lines = 1;
    for (const char *p = text; *p; p++) lines += *p == '\n';
    int scale = im->w >= 320 ? 2 : 1, line_h = (RD_FONT_H + 3) * scale;
    rd_image *o = rd_image_new(im->w, im->h + lines * line_h + 2 * scale, 3, err);
    if (o) {
        memset(o->pix, 255, (size_t)o->w * o->h * 3);
        uint8_t *d = o->pix + (size_t)(lines * line_h + 2 * scale) * o->w * 3;
        for (int i = 0; i < im->w * im->h; i++)
            for (int k = 0; k < 3; k++) d[3 * i + k] = im->pix[im->c * i + (im->c == 3 ? k : 0)];
        char line[256];
        const char *p = text;
        for (int l = 0; l < lines; l++) {
            size_t len = strcspn(p, "\n");
            snprintf(line, sizeof line, "%.*s", (int)(len < 255 ? len : 255), p);
            rd_draw_text(o, 2 * scale, 2 * scale + l * line_h, line, ink, scale);
            p += len + (p[len] == '\n');
        }
    }
    rd_image_free(im);
    return o;
}

/* What the live display of maximize or fool draws and says. */
typedef struct live_pic {
    le_live live;
    const char *layer, *which, *range; /* maximize: "conv2", "filter", "0..13" */
    const int *units;
    char what[160]; /* fool: "class 3 (Dress)" */
    char cls[32];   /* fool: "class 3" */
    int shrink;     /* how many times the picture had to shrink to fit LIVE_MAX_PNG */
    cl_progress *p; /* the engine's progress struct: its interval follows the pictures' cost */
} live_pic;

/* A copy of im with size ow x oh, nearest neighbour (up or down). */
static rd_image *resample_nearest(const rd_image *im, int ow, int oh, cl_err *err)
{
    rd_image *o = rd_image_new(ow < 1 ? 1 : ow, oh < 1 ? 1 : oh, im->c, err);
    for (int y = 0; o && y < o->h; y++)
        for (int x = 0; x < o->w; x++)
            memcpy(o->pix + ((size_t)y * o->w + x) * o->c,
                   im->pix + ((size_t)(y * im->h / o->h) * im->w + x * im->w / o->w) * im->c,
                   (size_t)o->c);
    return o;
}

/* The occlusion map so far, sum / count: jet over the range of the pixels
 * already covered, the others light grey, scaled so that its longer side is
 * f times the final figure's (small maps are enlarged to about 224). */
static rd_image *partial_map(const cl_snapshot *s, double f, cl_err *err)
{
    int64_t H = s->x->shape[s->x->ndim - 2], W = s->x->shape[s->x->ndim - 1], HW = H * W;
    tn_tensor *m = tn_new2(H, W, err);
    if (!m) return NULL;
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < HW; i++)
        if (s->counts[i] > 0) {
            m->data[i] = s->x->data[i] / s->counts[i];
            lo = fminf(lo, m->data[i]);
            hi = fmaxf(hi, m->data[i]);
        }
    for (int64_t i = 0; i < HW; i++)
        m->data[i] = s->counts[i] > 0 ? (m->data[i] - lo) / (1e-7f + hi - lo) : 0.0f;
    rd_image *jet = rd_colorize(m, RD_CMAP_JET, 0, err);
    tn_free(m);
    if (!jet) return NULL;
    for (int64_t i = 0; i < HW; i++)
        if (!(s->counts[i] > 0)) memset(jet->pix + 3 * i, 224, 3);
    int64_t longer = H > W ? H : W, full = longer < 224 ? 224 / longer * longer : longer;
    int side = (int)(f * (double)full);
    rd_image *o = resample_nearest(jet, (int)(W * side / longer), (int)(H * side / longer), err);
    rd_image_free(jet);
    return o;
}

/* The picture of a snapshot at shrink level k (each level 0.7 times smaller). */
static rd_image *live_image(const live_pic *L, const cl_snapshot *s, int k, cl_err *err)
{
    double f = pow(0.7, k);
    int64_t n = s->x->shape[0], C = s->x->shape[1], H = s->x->shape[2], W = s->x->shape[3];
    int64_t longer = H > W ? H : W;
    /* Start where noise (PNG's worst case) would just fit, so that big
     * ImageNet batches do not try their full size first. */
    double fits = sqrt(2.0 * LIVE_MAX_PNG / (double)(n * C));
    int side = (int)(f * (fits < (double)longer ? fits : (double)longer));
    if (side < 8) side = 8;
    /* The step and what the numbers are; the numbers sit under each tile. */
    char banner[160];
    int occ = !strcmp(s->what, "occlusion");
    int len =
        snprintf(banner, sizeof banner, "%s %ld/%ld", occ ? "windows" : "step", s->done, s->total);
    if (!strcmp(s->what, "fool"))
        len += snprintf(banner + len, sizeof banner - (size_t)len, "  p(%s) = %.4f", L->cls,
                        (double)s->prob);
    else if (s->values)
        len += snprintf(banner + len, sizeof banner - (size_t)len, "\n%s",
                        !L->which || !strcmp(L->which, "filter") ? "filter: sum a^k"
                        : !strcmp(L->which, "class")             ? "class: logit"
                                                                 : "neuron: value");
    if (s->stopped) snprintf(banner + len, sizeof banner - (size_t)len, "\nstopped");
    rd_image *im = NULL;
    if (occ) {
        im = partial_map(s, f, err);
    } else if (!strcmp(s->what, "maximize")) {
        rd_tiles *tiles = max_tiles(s->x, L->units, L->which, s->values, side, err);
        int tile = (int)(64 * f); /* small tiles are enlarged less as the picture shrinks */
        rd_grid_opts go = {.cols = 0, .tile = tile < 1 ? 1 : tile, .pad = 4};
        im = tiles ? rd_grid(tiles, &go, err) : NULL;
        rd_tiles_free(tiles);
    } else { /* fool: shown as its final figure is, enlarged to about 224 pixels */
        tn_tensor one = batch_item(s->x, 0);
        tn_tensor *t = fit_side(&one, side, err);
        for (int64_t i = 0; t && i < tn_numel(t); i++)
            t->data[i] = t->data[i] < 0.0f ? 0.0f : t->data[i] > 1.0f ? 1.0f : t->data[i];
        rd_image *small = t ? rd_from_tensor(t, 0, err) : NULL;
        tn_free(t);
        int64_t got = small ? (small->w > small->h ? small->w : small->h) : 1;
        int up = got < 224 ? (int)(224 * f / (double)got) : 1;
        im = small && up > 1 ? rd_scale_nearest(small, up, err) : small;
        if (im != small) rd_image_free(small);
    }
    return im ? with_banner(im, banner, err) : NULL;
}

static void live_text(const live_pic *L, const cl_snapshot *s, char *buf, size_t n)
{
    int len;
    if (!strcmp(s->what, "fool"))
        len = snprintf(buf, n, "fool %s: step %ld of %ld, probability %.4f", L->what, s->done,
                       s->total, (double)s->prob);
    else if (!strcmp(s->what, "occlusion"))
        len = snprintf(buf, n, "occlusion of %s: %ld of %ld windows", L->what, s->done, s->total);
    else
        len = snprintf(buf, n, "maximize %s %s %s: step %ld of %ld", L->layer,
                       L->which ? L->which : "unit", L->range, s->done, s->total);
    for (int i = 0; s->values && i < (int)s->x->shape[0] && len > 0 && (size_t)len < n; i++)
        len += snprintf(buf + len, n - (size_t)len, "%s%d: %g", i ? ", " : "; values ", L->units[i],
                        (double)s->values[i]);
    if (s->stopped && len > 0 && (size_t)len < n)
        snprintf(buf + len, n - (size_t)len, " (stopped)");
}

/* The picture under LIVE_MAX_PNG bytes into the live display, or nothing. */
static void draw_snapshot(live_pic *L, const cl_snapshot *s, cl_err *err)
{
    for (int k = L->shrink; k < L->shrink + 8; k++) {
        rd_image *im = live_image(L, s, k, err);
        uint8_t *png = NULL;
        size_t len = 0;
        int ok = im && rd_png(im, &png, &len, err) == 0;
        rd_image_free(im);
        if (ok && len <= LIVE_MAX_PNG) {
            char text[1024];
            live_text(L, s, text, sizeof text);
            le_live_picture(&L->live, png, len, text);
            L->shrink = k; /* the next picture starts at the size that fitted */
        }
        free(png);
        if (!ok || len <= LIVE_MAX_PNG) return;
    }
}

/* The engine's snapshot callback. */
static void live_snapshot(void *ctx, const cl_snapshot *s)
{
    live_pic *L = ctx;
    cl_err err = {0};
    /* A slow picture (a big grid, a busy machine) spaces out the next ones,
     * so that pictures never take more than about 5% of the run. */
    double t0 = cl_progress_now();
    /* The picture of where an interrupted run stopped is drawn after the
     * interrupt: the cancel flag must not stop its encoding. */
    atomic_int *cancel = s->stopped ? cl_cancel_bind(NULL) : NULL;
    draw_snapshot(L, s, &err);
    if (s->stopped) cl_cancel_bind(cancel);
    double every = 19.0 * (cl_progress_now() - t0);
    L->p->snapshot_every = every > CL_SNAPSHOT_EVERY ? every : CL_SNAPSHOT_EVERY;
}

/* A live display whose progress bar turns into pictures when someone watches. */
static void live_pic_start(live_pic *L, lc_call *c, cl_progress *p)
{
    *p = le_live_start(&L->live, c);
    L->p = p;
    if (le_live_watched(c)) {
        p->snapshot = live_snapshot;
        p->snapshot_ctx = L;
    }
}

/* Captum's count: ceil((D - w) / s) + 1 windows along each axis. */
static double occlusion_windows(const tn_tensor *x, const vis_occlusion_opts *o)
{
    double n = 1;
    int64_t d[2] = {x->shape[x->ndim - 2], x->shape[x->ndim - 1]};
    int w[2] = {o->window_h, o->window_w}, s[2] = {o->stride_h, o->stride_w};
    for (int i = 0; i < 2; i++) n *= d[i] <= w[i] ? 1 : ceil((double)(d[i] - w[i]) / s[i]) + 1;
    return n;
}

static int do_occlusion(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    tn_tensor x;
    int cls, used = -1;
    if (le_input(c, m, "x", &x, err) < 0 || le_class(c, m, "class", &cls, err) < 0) return -1;
    vis_occlusion_opts o = {0};
    o.window_h = o.window_w = (int)lc_num(c, "window", 16);
    o.stride_h = o.stride_w = (int)lc_num(c, "stride", 8);
    o.baseline = (float)lc_num(c, "baseline", 0);
    if (o.window_h < 1 || o.stride_h < 1)
        return lc_arg_error(c, "window", err, CL_EINVAL,
                            "occlusion: window and stride must be 1 or more");
    if (lc_check_limit(c, "stride", LIM_STEPS, occlusion_windows(&x, &o),
                       "occlusion: the number of windows", err))
        return -1;
    live_pic live = {0};
    if (cls >= 0)
        class_text(c, cls, live.what, sizeof live.what);
    else
        snprintf(live.what, sizeof live.what, "the predicted class");
    cl_progress p;
    live_pic_start(&live, c, &p);
    tn_tensor *map = vis_occlusion(m, &x, cls, &o, &p, &used, err);
    le_live_finish(&live.live, map ? "occlusion: done" : "occlusion: stopped");
    if (!map) return -1;
    drop_batch(map, 0);
    char what[160], desc[256];
    class_text(c, used, what, sizeof what);
    snprintf(desc, sizeof desc, "occlusion of %s, window %d stride %d", what, o.window_h,
             o.stride_h);
    return (*out = lv_heatmap(map, lc_get(c, "x"), desc)) ? 0 : oom(err);
}

/* A grid of tiles as a picture value; cols 0 lays them out about square. */
static lv_value *grid_value_cols(rd_tiles *tiles, tn_tensor *numbers, const char *desc, int cols,
                                 cl_err *err)
{
    rd_grid_opts go = {.cols = cols, .tile = 64, .pad = 4};
    rd_image *im = rd_grid(tiles, &go, err);
    /* The HTML form keeps each tile's caption as text (labels in any script). */
    char *html = im ? rd_tiles_html(tiles, cols, 0, err) : NULL;
    rd_tiles_free(tiles);
    if (!im || !html) {
        rd_image_free(im);
        free(html);
        tn_free(numbers);
        return NULL;
    }
    static const uint8_t white[3] = {255, 255, 255};
    pic *p = pic_new(im->w, im->h, white, err);
    if (p) {
        for (int i = 0; i < im->w * im->h; i++)
            for (int k = 0; k < 3; k++)
                p->px[3 * i + k] = im->pix[im->c * i + (im->c == 3 ? k : 0)];
    }
    rd_image_free(im);
    if (!p) {
        free(html);
        tn_free(numbers);
        return NULL;
    }
    lv_value *v = lv_picture(p, numbers, desc);
    if (!v) {
        free(html);
        oom(err);
        return NULL;
    }
    v->html = html;
    return v;
}

static lv_value *grid_value(rd_tiles *tiles, tn_tensor *numbers, const char *desc, cl_err *err)
{
    return grid_value_cols(tiles, numbers, desc, 0, err);
}

/* A tile caption: "alexnet features.11 / 285 Egyptian cat".  The PNG font is
 * ASCII, so a label in another script is left to the class number. */
static void compare_caption(const lc_call *c, const net *m, const char *layer, int cls, char *buf,
                            size_t n)
{
    const char *label = le_label(c->s, cls);
    for (const char *p = label; p && *p; p++)
        if ((unsigned char)*p >= 0x80) label = NULL;
    snprintf(buf, n, "%s %s / %d%s%.40s", net_arch(m), layer, cls, label ? " " : "",
             label ? label : "");
}

/* One overlay tile of `kind` for class cls (-1: the predicted one). */
static int compare_tile(lc_call *c, net *m, const tn_tensor *x, const tn_tensor *img01, int layer,
                        int cls, vis_cam_kind kind, int size, rd_tiles *tiles, cl_err *err)
{
    cl_progress p = ss_progress(c->s);
    int used = -1;
    tn_tensor *cam = vis_cam(m, x, layer, cls, kind, &p, &used, err);
    if (!cam) return -1;
    drop_batch(cam, 0);
    rd_image *im = rd_cam_over(cam, img01, size, size, err);
    tn_free(cam);
    if (!im) return -1;
    net_node_info info;
    net_node_info_get(m, layer, &info);
    char cap[160];
    compare_caption(c, m, info.name, used, cap, sizeof cap);
    return rd_tiles_add(tiles, im, cap, err);
}

/* The slide "class predicted by NN / class manually assigned": for each model
 * (default: the current one) its own lecture layer, the predicted class and,
 * with `class`, the picked one beside it. */
static int do_compare(lc_call *c, lv_value **out, cl_err *err)
{
    lv_value *models[1 + LC_MAXREST];
    int nm = 0;
    if (c->v[1]) models[nm++] = c->v[1];
    for (int i = 0; i < c->nrest; i++) models[nm++] = c->rest[i];
    if (!nm) {
        if (!c->s->model || c->s->model->kind != LV_MODEL)
            return cl_err_set(err, CL_EINVAL,
                              "compare needs a model: load one first, e.g. `m = model fashion`");
        models[nm++] = c->s->model;
    }
    vis_cam_kind kind;
    if (vis_cam_kind_parse(lc_text(c, "method"), &kind, err) < 0)
        return lc_arg_error(c, "method", err, err->code, "compare: %s", err->msg);
    int size = (int)lc_num(c, "size", 210);
    if (size < 16 || size > 1024)
        return lc_arg_error(c, "size", err, CL_EINVAL, "compare: size must be 16..1024, got %d",
                            size);
    tn_tensor *img01 = lv_image01(c->v[0], err);
    if (!img01) return -1;
    rd_tiles *tiles = rd_tiles_new(err);
    int picked = lc_get(c, "class") != NULL, rc = tiles ? 0 : -1;
    for (int i = 0; i < nm && rc == 0; i++) {
        net *m = models[i]->obj;
        tn_tensor x;
        int layer = 0, cls = -1; /* layer < 0 below means: no layer with maps */
        if (le_input(c, m, "x", &x, err) < 0 || (layer = le_default_layer(m)) < 0 ||
            (picked && le_class(c, m, "class", &cls, err) < 0)) {
            rc = -1;
            if (layer < 0)
                cl_err_set(err, CL_EINVAL, "compare: %s has no layer with feature maps",
                           net_arch(m));
            break;
        }
        rc = compare_tile(c, m, &x, img01, layer, -1, kind, size, tiles, err);
        if (rc == 0 && picked)
            rc = compare_tile(c, m, &x, img01, layer, cls, kind, size, tiles, err);
    }
    tn_free(img01);
    if (rc < 0) {
        rd_tiles_free(tiles);
        return -1;
    }
    char desc[160];
    snprintf(desc, sizeof desc, "%s, %d model%s: predicted class%s", vis_cam_kind_name(kind), nm,
             nm == 1 ? "" : "s", picked ? " | picked class" : "");
    return (*out = grid_value_cols(tiles, NULL, desc, picked ? 2 : nm, err)) ? 0 : -1;
}

static int range_of(lc_call *c, const char *arg, int limit, int *lo, int *hi, cl_err *err)
{
    lv_value *v = lc_get(c, arg);
    if (!v) {
        *lo = 0;
        *hi = limit - 1;
        return 0;
    }
    int64_t a = v->kind == LV_NUM ? (int64_t)v->num : v->lo,
            b = v->kind == LV_NUM ? (int64_t)v->num : v->hi;
    if (a < 0 || b >= limit)
        return lc_arg_error(c, arg, err, CL_EINVAL, "%s: %s must be within 0..%d", c->verb->name,
                            arg, limit - 1);
    *lo = (int)a;
    *hi = (int)b;
    return 0;
}

static int do_weights(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    const char *layer = lc_text(c, "layer");
    int node = net_find(m, layer, err);
    if (node < 0) return lc_arg_error(c, "layer", err, err->code, "weights: %s", err->msg);
    net_node_info info;
    net_node_info_get(m, node, &info);
    char want[256];
    snprintf(want, sizeof want, "%s.weight", info.name);
    const tn_tensor *w = NULL;
    for (int i = 0; i < net_param_tensors(m); i++) {
        net_param p;
        if (net_param_get(m, i, &p) == 0 && !strcmp(p.name, want)) w = p.value;
    }
    if (!w)
        return lc_arg_error(c, "layer", err, CL_EINVAL,
                            "weights: %s (%s) has no weights; try a conv or linear layer",
                            info.name, info.type);
    int f0, f1, c0, c1;
    if (range_of(c, "filter", (int)w->shape[0], &f0, &f1, err) < 0) return -1;
    if (!lc_get(c, "filter") && f1 > 63) f1 = 63;
    int nin = w->ndim >= 2 ? (int)w->shape[1] : 1;
    if (range_of(c, "channel", nin, &c0, &c1, err) < 0) return -1;
    if (!lc_get(c, "channel") && nin != 3 && c1 > 0) c1 = 0;
    rd_tiles *tiles = rd_weight_tiles(w, f0, f1, c0, c1, err);
    if (!tiles) return -1;
    tn_tensor *numbers = tn_clone(w, err);
    char desc[256], shape[64];
    snprintf(desc, sizeof desc, "weights of %s %s, filters %d..%d", info.name,
             tn_shape_str(w, shape, sizeof shape), f0, f1);
    return (*out = grid_value(tiles, numbers, desc, err)) ? 0 : -1;
}

static int do_activations(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    tn_tensor x;
    if (le_input(c, m, "x", &x, err) < 0) return -1;
    const char *layer = lc_text(c, "layer");
    int node = net_find(m, layer, err);
    if (node < 0) return lc_arg_error(c, "layer", err, err->code, "activations: %s", err->msg);
    if (net_forward_upto(m, &x, node, err) < 0) return -1;
    const tn_tensor *a = net_node_output(m, node);
    int C = (int)a->shape[1];
    int lo, hi;
    if (range_of(c, "channel", C, &lo, &hi, err) < 0) return -1;
    if (!lc_get(c, "channel") && hi > 63) hi = 63;
    int n = hi - lo + 1;
    int *ch = malloc((size_t)n * sizeof *ch);
    if (!ch) return oom(err);
    for (int i = 0; i < n; i++) ch[i] = lo + i;
    rd_tiles *tiles = rd_activation_tiles(a, ch, n, lc_flag(c, "shared"), err);
    free(ch);
    if (!tiles) return -1;
    tn_tensor *numbers = tn_clone(a, err);
    if (numbers) drop_batch(numbers, 1);
    net_node_info info;
    net_node_info_get(m, node, &info);
    char desc[256];
    snprintf(desc, sizeof desc, "activations of %s, channels %d..%d", info.name, lo, hi);
    return (*out = grid_value(tiles, numbers, desc, err)) ? 0 : -1;
}

/* "0..13" or "3" for the text of a live display. */
static void range_text(lc_call *c, const char *which, char *buf, size_t n)
{
    lv_value *v = which ? lc_get(c, which) : NULL;
    if (!v)
        snprintf(buf, n, "0");
    else if (v->kind == LV_NUM)
        snprintf(buf, n, "%g", v->num);
    else
        snprintf(buf, n, "%lld..%lld", (long long)v->lo, (long long)v->hi);
}

static int do_maximize(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    const char *layer = lc_text(c, "layer");
    int node = net_find(m, layer, err);
    if (node < 0) return lc_arg_error(c, "layer", err, err->code, "maximize: %s", err->msg);
    net_node_info info;
    net_node_info_get(m, node, &info);
    const char *which = lc_get(c, "filter")   ? "filter"
                        : lc_get(c, "neuron") ? "neuron"
                        : lc_get(c, "class")  ? "class"
                                              : NULL;
    int limit = (int)info.shape[1], n = 1, *units;
    if (which) {
        if (!(units = le_units(c, which, limit, &n, err))) return -1;
    } else {
        units = malloc(sizeof *units);
        if (!units) return oom(err);
        units[0] = 0;
    }
    vis_max_opts o = {0};
    if (lc_check_limit(c, "steps", LIM_STEPS, lc_num(c, "steps", 200), "maximize: steps", err)) {
        free(units);
        return -1;
    }
    o.steps = (int)lc_num(c, "steps", 200);
    o.lr = (float)lc_num(c, "lr", 0.05);
    o.l1 = (float)lc_num(c, "l1", 0);
    o.tv = (float)lc_num(c, "tv", 0);
    o.l2 = (float)lc_num(c, "l2", 0);
    o.jitter = (int)lc_num(c, "jitter", 0);
    o.blur_every = (int)lc_num(c, "blur", 0);
    o.plain = lc_flag(c, "plain");
    if (!lc_flag(c, "noclamp")) le_valid_range(m, &o.lo, &o.hi);
    lv_value *from = lc_get(c, "from");
    tn_tensor start;
    if (from && from->kind != LV_NUM) {
        if (le_input(c, m, "from", &start, err) < 0) {
            free(units);
            return -1;
        }
        o.init = VIS_INIT_IMAGE;
        o.image = &start;
    } else if (from) {
        o.init = VIS_INIT_ZEROS; /* `from 0`: a blank image */
    }
    o.seed = ss_rand_u64(c->s);
    char range[64];
    range_text(c, which, range, sizeof range);
    live_pic live = {.layer = info.name, .which = which, .range = range, .units = units};
    cl_progress p;
    live_pic_start(&live, c, &p);
    float *obj = malloc((size_t)n * sizeof *obj);
    tn_tensor *imgs = obj ? vis_maximize(m, node, units, n, &o, &p, obj, NULL, err) : NULL;
    le_live_finish(&live.live, imgs ? "maximize: done" : "maximize: stopped");
    if (!obj) oom(err);
    rd_tiles *tiles = imgs ? max_tiles(imgs, units, which, NULL, 0, err) : NULL;
    free(units);
    free(obj);
    if (!tiles) {
        tn_free(imgs);
        return -1;
    }
    char desc[256];
    snprintf(desc, sizeof desc, "images that maximise %s of %s (%d steps)",
             which ? which : "unit 0", info.name, o.steps);
    return (*out = grid_value(tiles, imgs, desc, err)) ? 0 : -1;
}

static int do_fool(lc_call *c, lv_value **out, cl_err *err)
{
    net *m = le_model(c, err);
    if (!m) return -1;
    int cls;
    if (le_class(c, m, "class", &cls, err) < 0) return -1;
    if (cls < 0) return cl_err_set(err, CL_EINVAL, "fool needs a class: fool class 3");
    vis_fool_opts o = {0};
    o.cls = cls;
    o.confidence = (float)lc_num(c, "confidence", 0.99);
    if (lc_check_limit(c, "steps", LIM_STEPS, lc_num(c, "steps", 2000), "fool: steps", err))
        return -1;
    o.max_steps = (int)lc_num(c, "steps", 2000);
    le_valid_range(m, &o.lo, &o.hi);
    o.seed = ss_rand_u64(c->s);
    live_pic live = {0};
    class_text(c, cls, live.what, sizeof live.what);
    snprintf(live.cls, sizeof live.cls, "class %d", cls);
    cl_progress p;
    live_pic_start(&live, c, &p);
    vis_fool_result r = {0};
    int rc = vis_fool(m, &o, &p, &r, err);
    le_live_finish(&live.live, rc < 0 ? "fool: stopped" : "fool: done");
    if (rc < 0) return -1;
    drop_batch(r.image, 1);
    char what[160], desc[256];
    class_text(c, cls, what, sizeof what);
    snprintf(desc, sizeof desc, "fooling image for %s: confidence %.4f after %d steps", what,
             (double)r.prob, r.steps);
    /* The confidence reached is half the lesson: say it in words too. */
    char line[320];
    snprintf(line, sizeof line, "%s", desc);
    static const char *marks[3] = {"0.99", "0.999", "0.9999"};
    for (int i = 0; i < 3; i++)
        if (r.first_past[i] >= 0)
            snprintf(line + strlen(line), sizeof line - strlen(line), "; past %s at step %d",
                     marks[i], r.first_past[i]);
    strcat(line, "\n");
    ss_stream(c->s, "stdout", line);
    lv_value *v = lv_image(r.image, 0);
    if (!v) return oom(err);
    lv_set_desc(v, desc);
    *out = v;
    return 0;
}

#define X_INPUT                                                                                    \
    {                                                                                              \
        "x", LA_IMAGE | LA_TENSOR | LA_NESTED, NULL, "an image (C,H,W) the model takes"            \
    }
#define CLASS_OPT                                                                                  \
    {                                                                                              \
        "class", LA_NUM | LA_INT | LA_WORD | LA_STR | LA_CLASS, NULL,                              \
            "the class to explain, a number or a label (default: the predicted one)"               \
    }

/* clang-format off */
const lc_verb lc_vis_verbs[] = {
    {"gradcam", "visualising", "Grad-CAM: where in the image the model finds evidence for a class.", 1, 3,
     {X_INPUT},
     {{"layer", LA_WORD | LA_STR | LA_LAYER, NULL, "the layer whose feature maps are weighted (default: the last conv layer's output)"},
      CLASS_OPT,
      {"method", LA_WORD | LA_STR, "gradcam", "gradcam, gradcam++, scorecam, layercam or hirescam"}},
     "As pytorch-grad-cam computes it: the raw logit's gradients averaged over each feature map "
     "weight the maps; ReLU of the sum.  Show it over the image: show cam over x.",
     "cam = gradcam x layer layer4 class 331\nshow cam over x size 420", do_gradcam},
    {"compare", "visualising", "Grad-CAM side by side: predicted class | picked class, one row per model.", 2, 3,
     {X_INPUT,
      {"models", LA_MODEL | LA_OPTIONAL | LA_REST, NULL, "models, each at its own lecture layer (default: the current model)"}},
     {CLASS_OPT,
      {"method", LA_WORD | LA_STR, "gradcam", "gradcam, gradcam++, scorecam, layercam or hirescam"},
      {"size", LA_NUM | LA_INT, "210", "side of each overlay tile in pixels"}},
     "The slide's table: each model's Grad-CAM at its lecture layer (AlexNet features.11, "
     "VGG16 features.30, VGG19 features.35, ResNet18 layer4, the lecture CNN conv2) for the "
     "class it predicts and, with `class`, the class you pick; each tile is captioned with "
     "model, layer, class id and label.",
     "show compare x alex v16 v19 r18 class 331", do_compare},
    {"gradients", "visualising", "d(class score)/d(feature maps): what Grad-CAM averages.", 1, 2,
     {X_INPUT},
     {{"layer", LA_WORD | LA_STR | LA_LAYER, NULL, "the layer (default: the last conv layer's output)"}, CLASS_OPT},
     "The raw logit's gradient at the layer, (C,H,W), for one image.",
     "G = gradients x layer conv2 class 1\nalpha = channelmean G", do_gradients},
    {"guided", "visualising", "Guided backpropagation: the input pixels the class is sensitive to.", 1, 2,
     {X_INPUT}, {CLASS_OPT, {"rule", LA_WORD | LA_STR, "guided", "guided, deconv or plain (the ReLU rule)"}},
     NULL, "show guided x class 331", do_guided},
    {"guidedcam", "visualising", "Guided Grad-CAM: guided backprop times the upsampled Grad-CAM map.", 1, 2,
     {X_INPUT}, {{"layer", LA_WORD | LA_STR | LA_LAYER, NULL, "the Grad-CAM layer (default: the last conv layer's output)"}, CLASS_OPT},
     NULL, "show guidedcam x layer layer4 class 331", do_guidedcam},
    {"saliency", "visualising", "Vanilla saliency: the largest |gradient| over the colour channels.", 1, 1,
     {X_INPUT}, {CLASS_OPT}, NULL, "show saliency x", do_saliency},
    {"smoothgrad", "visualising", "SmoothGrad: saliency averaged over noisy copies of the image.", 1, 3,
     {X_INPUT},
     {CLASS_OPT,
      {"samples", LA_NUM | LA_INT, "25", "noisy copies"},
      {"noise", LA_NUM, "0.15", "noise level, as a fraction of the image's value range"}},
     "As Captum's NoiseTunnel over Saliency; the noise is reproducible after `seed`.",
     "show smoothgrad x class 331 samples 25", do_smoothgrad},
    {"intgrad", "visualising", "Integrated gradients: attributions along the path from a black image.", 1, 2,
     {X_INPUT},
     {CLASS_OPT, {"steps", LA_NUM | LA_INT, "50", "points on the path (Gauss-Legendre, as Captum)"}},
     NULL, "show intgrad x class 331", do_intgrad},
    {"occlusion", "visualising", "Occlusion: how much the class score drops when a patch is hidden.", 1, 4,
     {X_INPUT},
     {CLASS_OPT,
      {"window", LA_NUM | LA_INT, "16", "side of the hidden patch in pixels"},
      {"stride", LA_NUM | LA_INT, "8", "step between patches"},
      {"baseline", LA_NUM, "0", "value of the hidden pixels (in the model's input space)"}},
     "As Captum's Occlusion: a pixel's value is the mean score drop over the patches covering it. "
     "In a notebook the rows done so far are shown (at most every 0.3 s).",
     "show occlusion x class 331 window 32 stride 16", do_occlusion},
    {"weights", "visualising", "A layer's filters as a grid of pictures.", 1, 2,
     {{"layer", LA_WORD | LA_STR | LA_LAYER, NULL, "a conv or linear layer"}},
     {{"filter", LA_NUM | LA_INT | LA_RANGE, NULL, "which filters (default: the first 64)"},
      {"channel", LA_NUM | LA_INT | LA_RANGE, NULL, "which input channels (default: colour, or channel 0)"}},
     NULL, "show weights conv1", do_weights},
    {"activations", "visualising", "The feature maps of an image at a layer, as a grid.", 2, 2,
     {X_INPUT, {"layer", LA_WORD | LA_STR | LA_LAYER, NULL, "the layer"}},
     {{"channel", LA_NUM | LA_INT | LA_RANGE, NULL, "which maps (default: the first 64)"},
      {"shared", LA_FLAG, NULL, "one grey scale for all maps, to compare them"}},
     NULL, "show activations x conv2 channel 0..13", do_activations},
    {"maximize", "visualising", "Activation maximisation: images that make a filter, neuron or class fire.", 1, 13,
     {{"layer", LA_WORD | LA_STR | LA_LAYER, NULL, "the layer (output: the class scores)"}},
     {{"filter", LA_NUM | LA_INT | LA_RANGE, NULL, "which feature maps (the sum of each map)"},
      {"neuron", LA_NUM | LA_INT | LA_RANGE, NULL, "which units of a dense layer"},
      {"class", LA_NUM | LA_INT | LA_RANGE, NULL, "which classes (at the output layer)"},
      {"steps", LA_NUM | LA_INT, "200", "optimisation steps"},
      {"lr", LA_NUM, "0.05", "learning rate (Adam)"},
      {"l1", LA_NUM, "0", "penalty on sum |x|: fewer \"ink\" pixels"},
      {"tv", LA_NUM, "0", "total-variation penalty: smoother images"},
      {"l2", LA_NUM, "0", "penalty on sum x^2: fainter images"},
      {"jitter", LA_NUM | LA_INT, "0", "random shift of up to N pixels per step"},
      {"blur", LA_NUM | LA_INT, "0", "blur the image every N steps (0: never)"},
      {"from", LA_NUM | LA_ARRAY, NULL, "start from this image, or 0 for a blank one (default: noise)"},
      {"plain", LA_FLAG, NULL, "plain gradient ascent x += lr * g instead of Adam"},
      {"noclamp", LA_FLAG, NULL, "let pixels leave the valid range (default: clamped, e.g. 0..1 ink)"}},
     "In a notebook the images are shown forming (at most every 0.3 s, with each unit's value); "
     "an interrupt stops it within a fraction of a second and leaves the last image.\n"
     "Pixels stay in the model's valid range: 0 (no ink) to 1 for the lecture CNN.",
     "show maximize conv2 filter 0..13 steps 200 lr 0.1\nshow maximize output class 0..9 l1 0.05", do_maximize},
    {"fool", "visualising", "A fooling image: noise pushed until the model is sure it sees a class.", 0, 3,
     {{0}},
     {{"class", LA_NUM | LA_INT | LA_WORD | LA_STR | LA_CLASS, NULL, "the class to fake"},
      {"confidence", LA_NUM, "0.99", "stop once the probability reaches this"},
      {"steps", LA_NUM | LA_INT, "2000", "at most this many steps"}},
     "Nguyen et al. 2015: gradient ascent on the softmax probability from random noise. In a "
     "notebook the image is shown forming with its probability (at most every 0.3 s).",
     "show fool class 3 confidence 0.99", do_fool},
};
/* clang-format on */

const int lc_vis_count = sizeof lc_vis_verbs / sizeof *lc_vis_verbs;
