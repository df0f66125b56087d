/* The engine-backed lens verbs on the built-in lecture CNN and
 * Fashion-MNIST: argument binding, defaults, label names, results and their
 * pictures, errors a student meets, and seeded reproducibility. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/io/npy.h"
#include "kernel/lang/lens_interp.h"

static kn_interp *it;
static kn_exec_result res;
static int displays, updates;
static json_t *shown;
static char out[1 << 14];

static void on_stream(void *ctx, const char *name, const char *text)
{
    (void)ctx, (void)name;
    strncat(out, text, sizeof out - strlen(out) - 1);
}

static void on_display(void *ctx, json_t *data, json_t *meta, const char *id, int update)
{
    (void)ctx, (void)meta, (void)id;
    if (update)
        updates++;
    else
        displays++;
    json_decref(shown);
    shown = json_incref(data);
}

static void setup(void)
{
    it = lens_interp_new();
    lens_interp_set_delay(it, 0);
    memset(&res, 0, sizeof res);
}

static void teardown(void)
{
    kn_exec_result_free(&res);
    json_decref(shown);
    shown = NULL;
    it->vt->destroy(it);
}

static void run(const char *code)
{
    kn_exec_result_free(&res);
    displays = updates = 0;
    out[0] = '\0';
    kn_output o = {NULL, on_stream, on_display, NULL, NULL};
    kn_exec_request req = {code, 0, 1, 0, 1};
    it->vt->execute(it, &req, &o, &res);
}

static void ok(const char *code)
{
    run(code);
    cr_assert(res.ok, "%s: %s: %s", code, res.ename, res.evalue);
}

static void fails(const char *code, const char *ename, const char *part)
{
    run(code);
    cr_assert_not(res.ok, "%s succeeded", code);
    cr_assert_str_eq(res.ename, ename, "%s: %s", code, res.evalue);
    cr_assert(strstr(res.evalue, part), "%s: '%s' lacks '%s'", code, res.evalue, part);
}

static const char *text(void)
{
    cr_assert_not_null(res.result);
    return json_string_value(json_object_get(res.result, "text/plain"));
}

TestSuite(engine, .init = setup, .fini = teardown, .timeout = 120 * CNNLENS_TEST_TIMEOUT_SCALE);

Test(engine, model_layers_sample_predict)
{
    ok("m = model fashion\nm");
    cr_assert(strstr(text(), "model fashion: 137660 parameters, input 1x28x28, 10 classes"), "%s",
              text());
    ok("layers");
    const char *t = text();
    cr_assert(strstr(t, "conv2") && strstr(t, "conv2d") && strstr(t, "50x11x11"), "%s", t);
    cr_assert(strstr(t, "total") && strstr(t, "137660"));
    cr_assert_not_null(json_object_get(res.result, "text/html"));
    ok("x = sample fashion test 0\nx");
    cr_assert_str_eq(text(), "image 1x28x28: fashion test 0, class 9 (Ankle boot)");
    cr_assert_not_null(json_object_get(res.result, "image/png"));
    ok("predict x top 2");
    t = text();
    cr_assert(strstr(t, "class  label") && strstr(t, "Ankle boot"), "%s", t);
    ok("expect top1 x == 9");
}

Test(engine, errors_students_meet)
{
    fails("predict [1 2]", "ValueError", "predict needs a model: load one first");
    ok("m = model fashion");
    fails("predict [1 2]", "ValueError", "the model takes 1x28x28 images, x is [1, 2]");
    fails("gradcam m", "TypeError", "gradcam: x must be an image or tensor, got model");
    ok("x = sample fashion test 0");
    fails("gradcam x layer conv9", "NameError", "unknown layer 'conv9'");
    fails("gradcam x class 10", "ValueError",
          "class 10 is out of range: this model has classes 0..9");
    fails("gradcam x class sneakers", "NameError", "no class called 'sneakers'");
    fails("gradcam x clas 3", "NameError",
          "unknown option 'clas' \xe2\x80\x94 did you mean 'class'?");
    fails("model resnet19", "NameError", "resnet18");
    fails("sample fashion test 10000", "ValueError", "has images 0..9999");
    fails("sample nowhere test 0", "IOError", "");
    fails("image \"/nonexistent.png\"", "IOError", "");
}

Test(engine, gradcam_defaults_and_labels)
{
    ok("m = model fashion\nx = sample fashion test 0\ncam = gradcam x\ncam");
    cr_assert(strstr(text(), "heatmap 11x11 gradcam of class 9 (Ankle boot) at conv2"), "%s",
              text());
    cr_assert_not_null(json_object_get(res.result, "image/png"), "the map in jet colours");
    ok("c2 = gradcam x class \"ankle boot\"\nc3 = gradcam x class Ankle_boot\nexpect c2 == "
       "cam\nexpect c3 == cam");
    ok("c4 = gradcam x class 0 layer conv1 method gradcam++\nshape c4");
    cr_assert_str_eq(text(), "[26 26]");
    ok("show cam over x size 280");
    cr_assert_eq(displays, 1);
    cr_assert_not_null(json_object_get(shown, "image/png"));
}

Test(engine, save_maps_raw_or_as_pytorch_grad_cam_returns_them)
{
    char dir[] = "/tmp/lens-engine-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char code[1024];
    snprintf(code, sizeof code,
             "m = model fashion\nx = sample fashion test 0\ncam = gradcam x\n"
             "save cam \"%s/raw.npy\"\nsave cam \"%s/up.npy\" size 28\n"
             "save cam \"%s/over.png\" over x\nsave x \"%s/x.npy\"\ny = load \"%s/x.npy\"\n"
             "expect top1 y == 9",
             dir, dir, dir, dir, dir);
    ok(code);
    char path[256];
    cl_err err = {0};
    snprintf(path, sizeof path, "%s/raw.npy", dir);
    tn_tensor *raw = npy_read(path, &err);
    cr_assert_not_null(raw, "%s", err.msg);
    cr_assert_eq(raw->ndim, 2);
    cr_assert_eq(raw->shape[0], 11);
    float lo = 1e9f, hi = -1e9f;
    for (int i = 0; i < 121; i++) {
        lo = raw->data[i] < lo ? raw->data[i] : lo;
        hi = raw->data[i] > hi ? raw->data[i] : hi;
    }
    cr_assert_geq(lo, 0.0f, "after ReLU");
    tn_free(raw);
    snprintf(path, sizeof path, "%s/up.npy", dir);
    tn_tensor *up = npy_read(path, &err);
    cr_assert_not_null(up);
    cr_assert_eq(up->shape[0], 28);
    lo = 1e9f, hi = -1e9f;
    for (int i = 0; i < 28 * 28; i++) {
        lo = up->data[i] < lo ? up->data[i] : lo;
        hi = up->data[i] > hi ? up->data[i] : hi;
    }
    cr_assert_float_eq(lo, 0.0f, 1e-6);
    cr_assert_float_eq(hi, 1.0f, 1e-5, "normalised to [0,1] like pytorch-grad-cam");
    tn_free(up);
    snprintf(path, sizeof path, "%s/over.png", dir);
    cr_assert_eq(access(path, R_OK), 0);
    snprintf(code, sizeof code, "rm -rf %s", dir);
    cr_assert_eq(system(code), 0);
}

Test(engine, pictures_of_filters_activations_and_gradients)
{
    ok("m = model fashion\nx = sample fashion test 0");
    ok("weights conv1");
    cr_assert(strstr(text(), "weights of conv1 [25, 1, 3, 3], filters 0..24"), "%s", text());
    cr_assert_not_null(json_object_get(res.result, "image/png"));
    ok("a = activations x conv2 channel 0..3\nshape a");
    cr_assert_str_eq(text(), "[50 11 11]", "the numbers of the whole layer");
    ok("show guided x\nshow guidedcam x\nshow saliency x\nshow occlusion x window 8 stride 4\n"
       "seed 5\ns1 = smoothgrad x samples 4\nseed 5\ns2 = smoothgrad x samples 4\nexpect s1 == s2\n"
       "show intgrad x steps 8");
    cr_assert_geq(displays, 5, "five pictures (and live progress)");
    cr_assert_not_null(json_object_get(shown, "image/png"));
    fails("weights pool1", "ValueError", "has no weights");
}

Test(engine, seeded_maximize_and_fool_are_reproducible)
{
    ok("m = model fashion\nseed 3\na = maximize conv2 filter 0..1 steps 5");
    json_t *first = json_incref(res.result);
    ok("seed 3\nb = maximize conv2 filter 0..1 steps 5\nexpect a == b\nseed 4\nc = maximize conv2 "
       "filter 0..1 steps 5\nexpect a != c");
    json_decref(first);
    ok("seed 1\nf = fool class 3 steps 50 confidence 0.5\nf");
    cr_assert(strstr(text(), "fooling image for class 3 (Dress): confidence"), "%s", text());
}

Test(engine, train_and_evaluate)
{
    ok("m = model fashion\nevaluate m on fashion test limit 300");
    cr_assert(strstr(out, "accuracy") || displays, "the accuracy is reported");
    cr_assert(strstr(text(), "true \\ predicted"), "%s", text());
    ok("seed 0\nn = model fashion\ntrain n on fashion epochs 1 limit 256 batch 64");
}

Test(engine, gradcam_step_by_step_equals_gradcam)
{
    /* Lecture 6.4: the pieces of Grad-CAM, computed one by one. */
    ok("m = model fashion\nx = sample fashion test 2\nA = activations x conv2\n"
       "G = gradients x layer conv2 class 1\nshape G");
    cr_assert_str_eq(text(), "[50 11 11]");
    ok("alpha = channelmean G\nshape alpha");
    cr_assert_str_eq(text(), "[50]");
    ok("L = relu (weightedsum A alpha)\ncam = gradcam x layer conv2 class 1\n"
       "expect cam ~= L tol 1e-5\nexpect shape L == [11 11]");
    fails("weightedsum A [1 2]", "ValueError", "2 weights for 50 maps");
    fails("channelmean [1 2]", "ValueError", "must be feature maps (C,H,W)");
}

Test(engine, labels_listed_and_kept_for_a_model_of_their_size)
{
    ok("m = model fashion\nlabels");
    cr_assert(strstr(text(), "    9  Ankle boot"), "%s", text());
    char path[] = "/tmp/lens-labels-XXXXXX";
    int fd = mkstemp(path);
    for (int i = 0; i < 1000; i++) cr_assert_gt(dprintf(fd, "name %d\n", i), 0);
    close(fd);
    char code[256];
    snprintf(code, sizeof code, "labels \"%s\"\nseed 1\nm = model alexnet\nx = zeros 1 1\nlabels",
             path);
    ok(code);
    unlink(path);
    cr_assert(strstr(text(), "  999  name 999"), "read before the model, kept: %s",
              text() + strlen(text()) - 40);
}

Test(engine, require_skips_the_cell_naming_the_missing_file_and_the_fix)
{
    ok("require \"/\"\nprint \"present\"");
    cr_assert(strstr(out, "present"), "an existing file lets the cell go on: %s", out);
    ok("x = 1\nrequire \"weights/none.pth\" hint \"install/fetch-weights.sh alexnet\"\n"
       "x = 2\nprint \"not reached\"");
    cr_assert(strstr(out, "skipped: 'weights/none.pth' is not here (to get it, run: "
                             "install/fetch-weights.sh alexnet)"),
              "%s", out);
    cr_assert(!strstr(out, "not reached"), "%s", out);
    ok("print x");
    cr_assert(strstr(out, "1"), "statements before require ran, after it did not: %s", out);
}

Test(engine, grids_have_an_html_form_with_tiles_as_data_uris)
{
    ok("m = model fashion\nx = sample fashion test 0\ng = activations x conv1 channel 0..3\ng");
    const char *html = json_string_value(json_object_get(res.result, "text/html"));
    cr_assert_not_null(html);
    cr_assert_not_null(json_object_get(res.result, "image/png"), "and one PNG of the whole grid");
    int tiles = 0;
    for (const char *p = html; (p = strstr(p, "data:image/png;base64,")); p++) tiles++;
    cr_assert_eq(tiles, 4, "%s", html);
    cr_assert(strstr(html, "figcaption"), "captions are text");
}

Test(engine, compare_puts_predicted_and_picked_side_by_side)
{
    ok("m = model fashion\nx = sample fashion test 0\nc = compare x class 5\nc");
    cr_assert(strstr(text(), "gradcam, 1 model: predicted class | picked class"), "%s", text());
    cr_assert_not_null(json_object_get(res.result, "image/png"));
    /* each model checks the image it is given */
    fails("seed 0\na = model alexnet\nc = compare x m a class 5", "ValueError",
          "compare: the model takes 3x224x224 images, x is [1, 28, 28]");
}

Test(engine, a_cnn_of_ones_own)
{
    ok("seed 0\nn = sequential [conv 8 3; maxpool 2\n    dense 10]\nlayers n");
    const char *t = text();
    cr_assert(strstr(t, "conv1") && strstr(t, "pool1") && strstr(t, "dense1") && strstr(t, "13530"),
              "%s", t);
    ok("train n on fashion epochs 1 limit 512\nevaluate n on fashion limit 200");
    cr_assert(strstr(text(), "true \\ predicted"), "the split defaults to test");
    char path[] = "/tmp/lens-model-XXXXXX.safetensors";
    int fd = mkstemps(path, 12);
    close(fd);
    char code[256];
    snprintf(code, sizeof code, "save n \"%s\"", path);
    ok(code);
    snprintf(code, sizeof code, "m = model fashion weights \"%s\"", path);
    fails(code, "FormatError", "conv1.weight: file has [8, 1, 3, 3], model needs [25, 1, 3, 3]");
    /* the same layers load it back, and answer as the trained model did */
    snprintf(code, sizeof code,
             "x = sample fashion test 3\np1 = top1 x\nc1 = gradcam x class 2\n"
             "n2 = sequential [conv 8 3; maxpool 2\n    dense 10] weights \"%s\"\n"
             "expect top1 x == p1\nexpect (gradcam x class 2) ~= c1 tol 1e-6",
             path);
    ok(code);
    unlink(path);
    fails("sequential [conv 8; dense 10]", "ValueError", "conv takes 2 numbers, got 1");
    fails("sequential [conv 8 3; pool 2; dance 10]", "NameError", "a layer is conv FILTERS SIZE");
    fails("x = [conv 8 3; dense 10]", "TypeError", "read by `sequential`");
    fails("x = [1 2; 3]", "SyntaxError", "row 2 of this matrix has 1 numbers but row 1 has 2");
}

Test(engine, image_reads_png_and_prepares_it)
{
    char path[] = "/tmp/lens-image-XXXXXX.png";
    int fd = mkstemps(path, 4);
    close(fd);
    char code[512];
    snprintf(code, sizeof code, "g = [0 0.5 1; 1 0.5 0]\nsave g \"%s\"\nx = image \"%s\"\nshape x",
             path, path);
    ok(code);
    cr_assert_str_eq(text(), "[1 2 3]", "a grey PNG is one channel");
    ok("x[0, 0, 2]");
    cr_assert_str_eq(text(), "1");
    snprintf(code, sizeof code, "y = image \"%s\" preprocess imagenet\nshape y", path);
    ok(code);
    cr_assert_str_eq(text(), "[3 224 224]", "repeated to RGB, resized, cropped");
    ok("y");
    cr_assert(strstr(text(), "(ImageNet-normalised)"), "%s", text());
    snprintf(code, sizeof code, "image \"%s\" preprocess imagenett", path);
    fails(code, "ValueError", "preprocess is imagenet, half or none");
    unlink(path);
}
