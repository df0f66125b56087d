/* vis on the lecture CNN (random init): what the PyTorch parity tests in
 * tests/py/test_vis*.py cannot see — errors, interrupts, seeding, batching. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "engine/render.h"
#include "engine/vis/vis.h"
#include "engine/zoo/zoo.h"

static net *fashion(void)
{
    cl_err err = {0};
    net *m = zoo_build_seeded("fashion", 7, &err);
    cr_assert_not_null(m, "%s", err.msg);
    return m;
}

static tn_tensor *image(int n, uint64_t seed)
{
    cl_err err = {0};
    tn_tensor *x = tn_new4(n, 1, 28, 28, &err);
    vis_rng r;
    vis_rng_seed(&r, seed);
    for (int64_t i = 0; i < tn_numel(x); i++) x->data[i] = (float)vis_rng_uniform(&r);
    return x;
}

static int find(net *m, const char *name)
{
    cl_err err = {0};
    int i = net_find(m, name, &err);
    cr_assert_geq(i, 0, "%s", err.msg);
    return i;
}

Test(vis, rng_is_seeded_and_normal)
{
    vis_rng a, b;
    vis_rng_seed(&a, 42);
    vis_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) cr_assert_eq(vis_rng_next(&a), vis_rng_next(&b));
    vis_rng_seed(&b, 43);
    cr_assert_neq(vis_rng_next(&a), vis_rng_next(&b));
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double v = vis_rng_normal(&a);
        s += v;
        s2 += v * v;
    }
    cr_assert(fabs(s / n) < 0.01, "mean %g", s / n);
    cr_assert(fabs(s2 / n - 1.0) < 0.02, "variance %g", s2 / n);
}

Test(vis, cam_kind_names_round_trip)
{
    cl_err err = {0};
    vis_cam_kind k;
    for (int i = VIS_GRADCAM; i <= VIS_HIRESCAM; i++) {
        cr_assert_eq(vis_cam_kind_parse(vis_cam_kind_name((vis_cam_kind)i), &k, &err), 0);
        cr_assert_eq((int)k, i);
    }
    cr_assert_eq(vis_cam_kind_parse("gradcamm", &k, &err), -1);
    cr_assert_eq(err.code, CL_ENAME);
    cr_assert(strstr(err.msg, "gradcam++") != NULL, "%s", err.msg);
}

Test(vis, cam_of_a_batch_is_the_cams_of_its_images)
{
    cl_err err = {0};
    net *m = fashion();
    tn_tensor *x = image(3, 1);
    int layer = find(m, "pool1"), cls[3];
    tn_tensor *all = vis_cam(m, x, layer, 4, VIS_GRADCAM, NULL, cls, &err);
    cr_assert_not_null(all, "%s", err.msg);
    cr_assert_eq(all->shape[0], 3);
    cr_assert_eq(all->shape[1], 13);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(cls[i], 4);
        tn_tensor one = *x;
        one.shape[0] = 1;
        one.data = x->data + i * 784;
        one.cap = 0;
        tn_tensor *c = vis_cam(m, &one, layer, 4, VIS_GRADCAM, NULL, NULL, &err);
        for (int j = 0; j < 169; j++) cr_assert_float_eq(c->data[j], all->data[i * 169 + j], 1e-5);
        tn_free(c);
    }
    tn_free(all);
    tn_free(x);
    net_free(m);
}

Test(vis, cam_errors_say_what_to_do)
{
    cl_err err = {0};
    net *m = fashion();
    tn_tensor *x = image(1, 2);
    cr_assert_null(vis_cam(m, x, find(m, "dense1"), -1, VIS_GRADCAM, NULL, NULL, &err));
    cr_assert(strstr(err.msg, "feature maps") != NULL, "%s", err.msg);
    cr_assert_null(vis_cam(m, x, find(m, "conv2"), 10, VIS_GRADCAM, NULL, NULL, &err));
    cr_assert(strstr(err.msg, "classes 0..9") != NULL, "%s", err.msg);
    tn_tensor *rgb = tn_new4(1, 3, 28, 28, &err);
    cr_assert_null(vis_saliency(m, rgb, -1, NULL, &err));
    cr_assert(strstr(err.msg, "[N, 1, H, W]") != NULL, "%s", err.msg);
    tn_tensor *two = image(2, 3);
    vis_occlusion_opts o = {.window_h = 40};
    cr_assert_null(vis_occlusion(m, two, -1, &o, NULL, NULL, &err));
    cr_assert(strstr(err.msg, "one image") != NULL, "%s", err.msg);
    cr_assert_null(vis_occlusion(m, x, -1, &o, NULL, NULL, &err));
    cr_assert(strstr(err.msg, "window") != NULL, "%s", err.msg);
    tn_free(two);
    tn_free(rgb);
    tn_free(x);
    net_free(m);
}

static void count_calls(void *ctx, long done, long total, const char *what)
{
    (void)done, (void)total, (void)what;
    (*(int *)ctx)++;
}

Test(vis, long_loops_report_progress_and_stop_when_cancelled)
{
    cl_err err = {0};
    net *m = fashion();
    int calls = 0;
    atomic_int cancel = 0;
    cl_progress p = {.fn = count_calls, .ctx = &calls, .cancel = &cancel};
    int units[2] = {0, 1};
    vis_max_opts o = {.steps = 5};
    tn_tensor *r = vis_maximize(m, find(m, "conv2"), units, 2, &o, &p, NULL, NULL, &err);
    cr_assert_not_null(r, "%s", err.msg);
    cr_assert_eq(calls, 5);
    tn_free(r);
    atomic_store(&cancel, 1);
    cr_assert_null(vis_maximize(m, find(m, "conv2"), units, 2, &o, &p, NULL, NULL, &err));
    cr_assert_eq(err.code, CL_EINTERRUPT);
    tn_tensor *x = image(1, 4);
    cr_assert_null(vis_occlusion(m, x, -1, NULL, &p, NULL, &err));
    cr_assert_eq(err.code, CL_EINTERRUPT);
    vis_fool_opts fo = {.cls = 1, .max_steps = 10};
    vis_fool_result res;
    cr_assert_eq(vis_fool(m, &fo, &p, &res, &err), -1);
    cr_assert_eq(err.code, CL_EINTERRUPT);
    cr_assert_null(res.image);
    tn_free(x);
    net_free(m);
}

Test(vis, guided_gradcam_is_zero_where_the_cam_is)
{
    cl_err err = {0};
    net *m = fashion();
    tn_tensor *x = image(1, 5);
    int layer = find(m, "pool1"), cls;
    tn_tensor *gc = vis_guided_gradcam(m, x, layer, 2, &cls, &err);
    cr_assert_not_null(gc, "%s", err.msg);
    cr_assert_eq(gc->ndim, 3);
    tn_tensor *cam = vis_cam(m, x, layer, 2, VIS_GRADCAM, NULL, NULL, &err);
    tn_tensor *up = rd_cam_resize(cam, 28, 28, &err);
    for (int i = 0; i < 784; i++)
        if (up->data[i] == 0.0f) cr_assert_eq(gc->data[i], 0.0f);
    tn_free(up);
    tn_free(cam);
    tn_free(gc);
    tn_free(x);
    net_free(m);
}

Test(vis, integrated_gradients_add_up_to_the_logit_difference)
{
    /* Completeness (Sundararajan 2017): sum of attributions ~ f(x) - f(0). */
    cl_err err = {0};
    net *m = fashion();
    tn_tensor *x = image(1, 6);
    int cls;
    tn_tensor *ig = vis_integrated_gradients(m, x, -1, NULL, 64, NULL, &cls, &err);
    cr_assert_not_null(ig, "%s", err.msg);
    double s = 0;
    for (int i = 0; i < 784; i++) s += ig->data[i];
    cr_assert_eq(net_forward(m, x, &err), 0);
    float fx = net_output(m)->data[cls];
    tn_tensor *zero = tn_new4(1, 1, 28, 28, &err);
    cr_assert_eq(net_forward(m, zero, &err), 0);
    float f0 = net_output(m)->data[cls];
    cr_assert(fabs(s - (fx - f0)) < 1e-2 * fabs(fx - f0) + 1e-4, "%g vs %g", s, fx - f0);
    tn_free(zero);
    tn_free(ig);
    tn_free(x);
    net_free(m);
}

/* Buffers are reused across passes: after the first Grad-CAM call on a model, the next
 * ones reuse every buffer (node outputs, gradients, the conv workspace,
 * Winograd weights, max-pool winners) and allocate only the map they return. */
Test(vis, a_second_gradcam_allocates_only_its_map)
{
    cl_err err = {0};
    net *m = zoo_build_seeded("resnet18", 3, &err);
    cr_assert_not_null(m, "%s", err.msg);
    tn_tensor *x = tn_new4(1, 3, 64, 64, &err);
    vis_rng r;
    vis_rng_seed(&r, 5);
    for (int64_t i = 0; i < tn_numel(x); i++) x->data[i] = (float)vis_rng_normal(&r);
    int layer = find(m, "layer4");
    size_t before[3];
    for (int call = 0; call < 3; call++) {
        before[call] = tn_alloc_count();
        tn_tensor *cam = vis_cam(m, x, layer, -1, VIS_GRADCAM, NULL, NULL, &err);
        cr_assert_not_null(cam, "%s", err.msg);
        tn_free(cam);
    }
    size_t second = tn_alloc_count() - before[2], first = before[1] - before[0];
    cr_assert_gt(first, 50, "the first call sets up the buffers (%zu allocations)", first);
    cr_assert_eq(before[2] - before[1], 1, "second call: %zu allocations", before[2] - before[1]);
    cr_assert_eq(second, 1, "third call: %zu allocations", second);
    for (int call = 0; call < 2; call++) { /* guided backprop: down to the image */
        size_t at = tn_alloc_count();
        tn_tensor *g = vis_input_grad(m, x, -1, NET_RELU_GUIDED, NULL, &err);
        cr_assert_not_null(g, "%s", err.msg);
        tn_free(g);
        if (call == 1)
            cr_assert_eq(tn_alloc_count() - at, 1, "guided backprop, second call: %zu allocations",
                         tn_alloc_count() - at);
    }
    tn_free(x);
    net_free(m);
}
