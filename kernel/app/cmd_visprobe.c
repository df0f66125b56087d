/* cnnlens vis-probe — hidden: runs one visualisation method or renderer on
 * .npy inputs and writes .npy/.png outputs, so that tests/py/test_vis*.py and
 * test_render*.py can compare the C code with PyTorch, OpenCV and Captum-style
 * references, and bench/vis.py can time it without process start-up.
 *
 *   cnnlens vis-probe METHOD --arch A [--weights W] --input X.npy --out PREFIX
 *       [--layer L] [--class K] [--repeat R] [method options]
 *   cnnlens vis-probe overlay --cam C.npy --image I.npy --size H[xW] --out O.png
 *   cnnlens vis-probe guided-display --input G.npy --out O.png
 *   cnnlens vis-probe colorize --input M.npy --cmap grey|jet|diverging --out O.png
 *   cnnlens vis-probe cam-resize --cam C.npy --size H[xW] --out O.npy
 *   cnnlens vis-probe weights|activations ... --out O.png (also O.html)
 *
 * Results go to stdout as "key value" lines. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/image.h"
#include "engine/io/npy.h"
#include "engine/io/weights.h"
#include "engine/render.h"
#include "engine/vis/vis.h"
#include "engine/zoo/zoo.h"
#include "kernel/app/commands.h"

typedef struct probe_args {
    const char *method, *arch, *weights, *input, *out, *layer, *cam, *image, *cmap, *units,
        *baseline, *init;
    int cls, repeat, size_h, size_w, window, stride, batch, samples, steps, jitter, blur_every,
        plain, shared, f0, f1, c0, c1, max_steps;
    float noise, lr, l1, l2, tv, lo, hi, confidence, blur;
    unsigned long long seed;
} probe_args;

static int parse_size(const char *s, int *h, int *w)
{
    char *end;
    *h = (int)strtol(s, &end, 10);
    *w = *end == 'x' ? (int)strtol(end + 1, NULL, 10) : *h;
    return *h > 0 && *w > 0 ? 0 : -1;
}

typedef enum { OPT_STR, OPT_INT, OPT_FLT } opt_kind;

typedef struct probe_opt {
    const char *name;
    opt_kind kind;
    size_t off;
} probe_opt;

#define OPT(n, k)                                                                                  \
    {                                                                                              \
        "--" #n, k, offsetof(probe_args, n)                                                        \
    }
static const probe_opt probe_opts[] = {
    OPT(arch, OPT_STR),
    OPT(weights, OPT_STR),
    OPT(input, OPT_STR),
    OPT(out, OPT_STR),
    OPT(layer, OPT_STR),
    OPT(cam, OPT_STR),
    OPT(image, OPT_STR),
    OPT(cmap, OPT_STR),
    OPT(units, OPT_STR),
    OPT(baseline, OPT_STR),
    OPT(init, OPT_STR),
    OPT(window, OPT_INT),
    OPT(stride, OPT_INT),
    OPT(batch, OPT_INT),
    OPT(samples, OPT_INT),
    OPT(steps, OPT_INT),
    OPT(jitter, OPT_INT),
    OPT(plain, OPT_INT),
    OPT(shared, OPT_INT),
    OPT(f0, OPT_INT),
    OPT(f1, OPT_INT),
    OPT(c0, OPT_INT),
    OPT(c1, OPT_INT),
    OPT(max_steps, OPT_INT),
    OPT(repeat, OPT_INT),
    OPT(noise, OPT_FLT),
    OPT(lr, OPT_FLT),
    OPT(l1, OPT_FLT),
    OPT(l2, OPT_FLT),
    OPT(tv, OPT_FLT),
    OPT(lo, OPT_FLT),
    OPT(hi, OPT_FLT),
    OPT(confidence, OPT_FLT),
    OPT(blur, OPT_FLT),
    {"--blur-every", OPT_INT, offsetof(probe_args, blur_every)},
    {"--class", OPT_INT, offsetof(probe_args, cls)},
};
#undef OPT

/* Sets one table option; 1 if `k` is not in the table. */
static int set_opt(probe_args *a, const char *k, const char *v)
{
    for (size_t i = 0; i < sizeof probe_opts / sizeof *probe_opts; i++) {
        if (strcmp(k, probe_opts[i].name)) continue;
        char *field = (char *)a + probe_opts[i].off;
        switch (probe_opts[i].kind) {
        case OPT_STR:
            *(const char **)field = v;
            break;
        case OPT_INT:
            *(int *)field = atoi(v);
            break;
        case OPT_FLT:
            *(float *)field = strtof(v, NULL);
            break;
        }
        return 0;
    }
    return 1;
}

/* --name value pairs; returns -1 (with a message) on an unknown option. */
static int parse_args(int argc, char **argv, probe_args *a)
{
    *a = (probe_args){
        .cls = -1, .repeat = 1, .samples = 25, .f1 = 1 << 30, .c1 = 1 << 30, .noise = 0.15f};
    if (argc < 1) return -1;
    a->method = argv[0];
    for (int i = 1; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "vis-probe: option %s needs a value\n", k);
            return -1;
        }
        if (!set_opt(a, k, v)) continue;
        if (!strcmp(k, "--seed")) {
            a->seed = strtoull(v, NULL, 10);
        } else if (!strcmp(k, "--size")) {
            if (parse_size(v, &a->size_h, &a->size_w)) return -1;
        } else {
            fprintf(stderr, "vis-probe: unknown option %s\n", k);
            return -1;
        }
    }
    if (a->repeat < 1) a->repeat = 1;
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fail(const cl_err *err)
{
    fprintf(stderr, "vis-probe: %s\n", err->msg);
    return 1;
}

static net *load_net(const probe_args *a, cl_err *err)
{
    if (!a->arch) {
        cl_err_set(err, CL_EINVAL, "--arch is required");
        return NULL;
    }
    net *m = zoo_build(a->arch, err);
    if (!m || !a->weights) return m;
    if (net_load_weights_file(m, a->weights, err)) {
        net_free(m);
        return NULL;
    }
    return m;
}

static int save_npy(const char *prefix, const char *suffix, const tn_tensor *t, cl_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s", prefix, suffix);
    return npy_write(path, t, err);
}

static void print_classes(const int *cls, int64_t n)
{
    printf("class");
    for (int64_t i = 0; i < n; i++) printf(" %d", cls[i]);
    printf("\n");
}

static int parse_units(const char *s, int **out, int *n)
{
    /* "3" or "0..13" or "1,4,7" */
    *n = 0;
    *out = NULL;
    if (!s) return -1;
    int a, b;
    if (sscanf(s, "%d..%d", &a, &b) == 2 && b >= a) {
        *out = malloc(sizeof(int) * (b - a + 1));
        for (int i = a; *out && i <= b; i++) (*out)[(*n)++] = i;
        return *out ? 0 : -1;
    }
    *out = malloc(sizeof(int) * (strlen(s) + 1));
    for (const char *p = s; *out && *p;) {
        (*out)[(*n)++] = (int)strtol(p, (char **)&p, 10);
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return *out ? 0 : -1;
}

/* The timed call: one method on one input; returns the result or NULL. */
static tn_tensor *run_method(const probe_args *a, net *m, const tn_tensor *x, int layer, int *cls,
                             cl_err *err)
{
    vis_cam_kind kind;
    const char *me = a->method;
    if (!vis_cam_kind_parse(me, &kind, NULL))
        return vis_cam(m, x, layer, a->cls, kind, NULL, cls, err);
    if (!strcmp(me, "guided")) return vis_input_grad(m, x, a->cls, NET_RELU_GUIDED, cls, err);
    if (!strcmp(me, "deconv")) return vis_input_grad(m, x, a->cls, NET_RELU_DECONV, cls, err);
    if (!strcmp(me, "grad")) return vis_input_grad(m, x, a->cls, NET_RELU_PLAIN, cls, err);
    if (!strcmp(me, "guidedcam")) return vis_guided_gradcam(m, x, layer, a->cls, cls, err);
    if (!strcmp(me, "saliency")) return vis_saliency(m, x, a->cls, cls, err);
    if (!strcmp(me, "smoothgrad"))
        return vis_smoothgrad(m, x, a->cls, a->samples, a->noise, a->seed, NULL, cls, err);
    if (!strcmp(me, "ig")) {
        tn_tensor *b = a->baseline ? npy_read(a->baseline, err) : NULL;
        if (a->baseline && !b) return NULL;
        tn_tensor *r =
            vis_integrated_gradients(m, x, a->cls, b, a->steps ? a->steps : 50, NULL, cls, err);
        tn_free(b);
        return r;
    }
    if (!strcmp(me, "occlusion")) {
        vis_occlusion_opts o = {.window_h = a->window, .stride_h = a->stride, .batch = a->batch};
        return vis_occlusion(m, x, a->cls, &o, NULL, cls, err);
    }
    cl_err_set(err, CL_ENAME, "unknown method '%s'", me);
    return NULL;
}

static int probe_method(const probe_args *a)
{
    cl_err err = {0};
    net *m = load_net(a, &err);
    tn_tensor *x = m && a->input ? npy_read(a->input, &err) : NULL, *r = NULL;
    int rc = 1, layer = -1;
    if (!x) {
        if (m && !a->input) cl_err_set(&err, CL_EINVAL, "--input is required");
        goto done;
    }
    if (x->ndim == 3) tn_reshape(x, 4, (int64_t[]){1, x->shape[0], x->shape[1], x->shape[2]}, NULL);
    if (a->layer && (layer = net_find(m, a->layer, &err)) < 0) goto done;
    int *cls = calloc((size_t)x->shape[0], sizeof(int));
    double *times = calloc((size_t)(a->repeat > 0 ? a->repeat : 1), sizeof(double)), total = 0;
    int runs = 0;
    for (int i = 0; i < a->repeat; i++) {
        tn_free(r);
        double t0 = now_ms();
        r = run_method(a, m, x, layer, cls, &err);
        if (!r) break;
        times[runs] = now_ms() - t0;
        total += times[runs++];
    }
    if (r) {
        print_classes(cls, x->shape[0]);
        qsort(times, (size_t)runs, sizeof *times, cmp_double);
        printf("time_ms %.3f\nbest_ms %.3f\nmedian_ms %.3f\n", total / runs, times[0],
               times[runs / 2]);
        rc = save_npy(a->out, ".npy", r, &err) ? 1 : 0;
        if (!rc && r->ndim == 3 && strcmp(a->method, "guidedcam")) {
            /* CAM-like maps: also the normalised map at the input's size. */
            tn_tensor *one = tn_view(r, &err);
            tn_reshape(one, 2, (int64_t[]){r->shape[1], r->shape[2]}, NULL);
            tn_tensor *up = r->shape[0] == 1
                                ? rd_cam_resize(one, (int)x->shape[2], (int)x->shape[3], &err)
                                : NULL;
            if (up) rc = save_npy(a->out, "_up.npy", up, &err) ? 1 : 0;
            tn_free(up);
            tn_free(one);
        }
    }
    free(cls);
    free(times);
done:
    if (rc && err.code) fail(&err);
    tn_free(r);
    tn_free(x);
    net_free(m);
    return rc;
}

static int probe_maximize(const probe_args *a)
{
    cl_err err = {0};
    net *m = load_net(a, &err);
    int *units = NULL, n = 0, rc = 1, layer = -1;
    tn_tensor *r = NULL, *img = NULL;
    float *obj = NULL, *first = NULL;
    if (!m || !a->layer || (layer = net_find(m, a->layer, &err)) < 0) goto done;
    if (parse_units(a->units ? a->units : "0", &units, &n)) {
        cl_err_set(&err, CL_EINVAL, "bad --units");
        goto done;
    }
    vis_max_opts o = {.steps = a->steps,
                      .lr = a->lr,
                      .plain = a->plain,
                      .l1 = a->l1,
                      .l2 = a->l2,
                      .tv = a->tv,
                      .jitter = a->jitter,
                      .blur_every = a->blur_every,
                      .blur = a->blur,
                      .lo = a->lo,
                      .hi = a->hi,
                      .seed = a->seed};
    if (a->init && !strcmp(a->init, "zeros")) o.init = VIS_INIT_ZEROS;
    if (a->input) {
        if (!(img = npy_read(a->input, &err))) goto done;
        o.init = VIS_INIT_IMAGE;
        o.image = img;
    }
    obj = calloc((size_t)n, sizeof(float));
    first = calloc((size_t)n, sizeof(float));
    double t0 = now_ms();
    if (!(r = vis_maximize(m, layer, units, n, &o, NULL, obj, first, &err))) goto done;
    printf("time_ms %.3f\nfirst", now_ms() - t0);
    for (int i = 0; i < n; i++) printf(" %.6g", first[i]);
    printf("\nobjective");
    for (int i = 0; i < n; i++) printf(" %.6g", obj[i]);
    printf("\n");
    rc = save_npy(a->out, ".npy", r, &err) ? 1 : 0;
done:
    if (rc && err.code) fail(&err);
    free(units);
    free(obj);
    free(first);
    tn_free(r);
    tn_free(img);
    net_free(m);
    return rc;
}

static int probe_fool(const probe_args *a)
{
    cl_err err = {0};
    net *m = load_net(a, &err);
    vis_fool_result res = {0};
    int rc = 1;
    vis_fool_opts o = {.cls = a->cls < 0 ? 0 : a->cls,
                       .confidence = a->confidence,
                       .max_steps = a->max_steps,
                       .lo = a->lo,
                       .hi = a->hi,
                       .seed = a->seed};
    if (!m || vis_fool(m, &o, NULL, &res, &err)) goto done;
    printf("prob %.6f\nsteps %d\nfirst_past %d %d %d\n", res.prob, res.steps, res.first_past[0],
           res.first_past[1], res.first_past[2]);
    rc = save_npy(a->out, ".npy", res.image, &err) ? 1 : 0;
done:
    if (rc && err.code) fail(&err);
    tn_free(res.image);
    net_free(m);
    return rc;
}

/* Renderers: no net involved. */
static int probe_render(const probe_args *a)
{
    cl_err err = {0};
    tn_tensor *c = a->cam ? npy_read(a->cam, &err) : NULL;
    tn_tensor *x = a->input || a->image ? npy_read(a->input ? a->input : a->image, &err) : NULL;
    rd_image *im = NULL;
    tn_tensor *t = NULL;
    int rc = 1;
    const char *me = a->method;
    if (!a->out)
        cl_err_set(&err, CL_EINVAL, "--out is required");
    else if (!strcmp(me, "overlay") && c && x)
        im = rd_cam_over(c, x, a->size_h, a->size_w, &err);
    else if (!strcmp(me, "cam-resize") && c) {
        if ((t = rd_cam_resize(c, a->size_h, a->size_w, &err)))
            rc = npy_write(a->out, t, &err) ? 1 : 0;
    } else if (!strcmp(me, "guided-display") && x) {
        if ((t = rd_guided_display(x, &err))) im = rd_from_tensor(t, 0, &err);
    } else if (!strcmp(me, "colorize") && x) {
        rd_cmap cm = !a->cmap || !strcmp(a->cmap, "jet") ? RD_CMAP_JET
                     : !strcmp(a->cmap, "grey")          ? RD_CMAP_GREY
                                                         : RD_CMAP_DIVERGING;
        im = rd_colorize(x, cm, 0, &err);
    } else if (!strcmp(me, "tiles") && x && x->ndim == 4) {
        /* (N,C,H,W) images, each min-max scaled on its own, as maximize shows them. */
        rd_tiles *tl = rd_tiles_new(&err);
        for (int64_t i = 0; tl && i < x->shape[0]; i++) {
            tn_tensor one = *x;
            one.ndim = 3;
            for (int d = 0; d < 3; d++)
                one.shape[d] = x->shape[d + 1], one.stride[d] = x->stride[d + 1];
            one.data = x->data + i * x->stride[0];
            one.cap = 0;
            rd_image *ti = rd_from_tensor(&one, 1, &err);
            char cap[32];
            snprintf(cap, sizeof cap, "filter %lld", (long long)i);
            if (!ti || rd_tiles_add(tl, ti, cap, &err)) {
                rd_tiles_free(tl);
                tl = NULL;
            }
        }
        if (tl) im = rd_grid(tl, NULL, &err);
        rd_tiles_free(tl);
    } else if ((!strcmp(me, "weights") || !strcmp(me, "activations")) && x) {
        int *units = NULL, n = 0;
        if (a->units && parse_units(a->units, &units, &n))
            cl_err_set(&err, CL_EINVAL, "bad --units");
        rd_tiles *tl = !strcmp(me, "weights") ? rd_weight_tiles(x, a->f0, a->f1, a->c0, a->c1, &err)
                                              : rd_activation_tiles(x, units, n, a->shared, &err);
        free(units);
        if (tl) {
            im = rd_grid(tl, NULL, &err);
            char *html = im ? rd_tiles_html(tl, 0, 0, &err) : NULL;
            char path[4096];
            snprintf(path, sizeof path, "%s.html", a->out);
            FILE *f = html ? fopen(path, "w") : NULL;
            if (f) {
                fputs(html, f);
                fclose(f);
            }
            free(html);
            printf("tiles %d\n", tl->n);
        }
        rd_tiles_free(tl);
    } else if (!err.code)
        cl_err_set(&err, CL_EINVAL, "%s: missing --cam/--input, or unknown renderer", me);
    if (im) {
        uint8_t *png;
        size_t len;
        if (!rd_png(im, &png, &len, &err)) {
            printf("png_bytes %zu\nwidth %d\nheight %d\n", len, im->w, im->h);
            free(png);
            rc = rd_save_png(im, a->out, &err) ? 1 : 0;
        }
    }
    if (rc && err.code) fail(&err);
    rd_image_free(im);
    tn_free(t);
    tn_free(c);
    tn_free(x);
    return rc;
}

int app_visprobe(int argc, char **argv)
{
    probe_args a;
    if (parse_args(argc, argv, &a)) {
        fprintf(stderr, "usage: cnnlens vis-probe METHOD --arch A [--weights W] --input X.npy "
                        "--out PREFIX [--layer L] [--class K] ...\n");
        return 2;
    }
    static const char *const renderers[] = {"overlay", "cam-resize",  "guided-display", "colorize",
                                            "weights", "activations", "tiles"};
    for (size_t i = 0; i < sizeof renderers / sizeof *renderers; i++)
        if (!strcmp(a.method, renderers[i])) return probe_render(&a);
    if (!a.out) {
        fprintf(stderr, "vis-probe: --out is required\n");
        return 2;
    }
    if (!strcmp(a.method, "maximize")) return probe_maximize(&a);
    if (!strcmp(a.method, "fool")) return probe_fool(&a);
    return probe_method(&a);
}
