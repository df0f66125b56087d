/* The limits table (engine/limits.h): defaults, parsing of values with units,
 * the environment, out-of-range and malformed values, the error text, and the
 * checks where the engine and the language allocate. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/image.h"
#include "engine/io/weights.h"
#include "engine/limits.h"
#include "engine/net.h"
#include "engine/train.h"
#include "kernel/lang/parse.h"

extern char **environ;

static void reset(void)
{
    lim_reset();
}

TestSuite(limits, .init = reset, .fini = reset);

Test(limits, every_limit_has_a_default_an_env_var_and_a_sane_range)
{
    for (int i = 0; i < LIM_COUNT; i++) {
        const lim_info *L = lim_info_of((lim_id)i);
        cr_assert_not_null(L);
        cr_assert_eq(lim_get((lim_id)i), L->def, "%s", L->name);
        cr_assert(L->lo >= 1 && L->lo <= L->def && L->def <= L->hi, "%s", L->name);
        char env[64] = "CNNLENS_MAX_";
        for (size_t k = 0; L->name[k]; k++) env[12 + k] = (char)toupper((unsigned char)L->name[k]);
        cr_assert_str_eq(L->env, env);
        cr_assert_eq(lim_find(L->name), i);
        cr_assert(strlen(L->guards) > 10);
    }
    cr_assert_null(lim_info_of(LIM_COUNT));
    cr_assert_eq(lim_find("IMAGE_PIXELS"), LIM_IMAGE_PIXELS, "names are case-insensitive");
    cr_assert_eq(lim_find("pixels"), -1);
}

Test(limits, defaults_leave_room_for_the_lecture)
{
    /* VGG19's weight file is 548 MiB and its biggest tensor (classifier.0.weight,
     * 25088x4096) 392 MiB; a 224x224 photo is 50 kpixels. */
    cr_assert_gt(lim_get(LIM_MODEL_BYTES), 548LL << 20);
    cr_assert_gt(lim_get(LIM_TENSOR_BYTES), 25088LL * 4096 * 4);
    cr_assert_eq(lim_get(LIM_IMAGE_PIXELS), 64000000);
    cr_assert_eq(lim_get(LIM_MESSAGE_BYTES), 16LL << 20);
    cr_assert_geq(lim_get(LIM_STEPS), 4 * 938, "4 epochs of Fashion-MNIST at batch 64");
}

static int64_t parsed(lim_id id, const char *text)
{
    int64_t v = -1;
    cl_err err = {0};
    cr_assert_eq(lim_parse(id, text, &v, &err), 0, "%s: %s", text, err.msg);
    return v;
}

static void parse_fails(lim_id id, const char *text, const char *needle)
{
    int64_t v = 12345;
    cl_err err = {0};
    cr_assert_eq(lim_parse(id, text, &v, &err), -1, "'%s' should be refused", text);
    cr_assert_eq(v, 12345, "a refused value is not stored");
    cr_assert_eq(err.code, CL_EINVAL);
    cr_assert(strstr(err.msg, needle), "'%s': '%s' lacks '%s'", text, err.msg, needle);
}

Test(limits, byte_limits_take_binary_suffixes)
{
    cr_assert_eq(parsed(LIM_TENSOR_BYTES, "64M"), 64LL << 20);
    cr_assert_eq(parsed(LIM_TENSOR_BYTES, "1G"), 1LL << 30);
    cr_assert_eq(parsed(LIM_TENSOR_BYTES, "1g"), 1LL << 30);
    cr_assert_eq(parsed(LIM_TENSOR_BYTES, "1.5GiB"), 3LL << 29);
    cr_assert_eq(parsed(LIM_TENSOR_BYTES, " 512 KB "), 512LL << 10);
    cr_assert_eq(parsed(LIM_TENSOR_BYTES, "4096"), 4096);
    cr_assert_eq(parsed(LIM_MODEL_BYTES, "0.25T"), 1LL << 38);
    cr_assert_eq(parsed(LIM_MESSAGE_BYTES, "1e6"), 1000000);
}

Test(limits, counts_take_decimal_suffixes)
{
    cr_assert_eq(parsed(LIM_IMAGE_PIXELS, "64M"), 64000000);
    cr_assert_eq(parsed(LIM_STEPS, "10k"), 10000);
    cr_assert_eq(parsed(LIM_STEPS, "10K"), 10000);
    cr_assert_eq(parsed(LIM_STEPS, "250"), 250);
    cr_assert_eq(parsed(LIM_MATRIX_ELEMENTS, "2.5M"), 2500000);
    cr_assert_eq(parsed(LIM_DEPTH, "1e3"), 1000);
}

Test(limits, malformed_and_out_of_range_values_are_refused)
{
    parse_fails(LIM_STEPS, "abc", "is not a valid limit (write a whole number");
    parse_fails(LIM_STEPS, "", "is not a valid limit");
    parse_fails(LIM_STEPS, "12Q", "is not a valid limit");
    parse_fails(LIM_STEPS, "10 k k", "is not a valid limit");
    parse_fails(LIM_STEPS, "nan", "is not a valid limit");
    parse_fails(LIM_STEPS, "inf", "is not a valid limit");
    parse_fails(LIM_STEPS, "1.5", "is not a whole number");
    parse_fails(LIM_IMAGE_PIXELS, "64MiB", "a number of pixels, e.g. 64000000 or 64M");
    parse_fails(LIM_TENSOR_BYTES, "0.1K", "is not a whole number (write a number of bytes");
    parse_fails(LIM_STEPS, "0", "steps 0 is out of range: it must be between 1 and 1000000000");
    parse_fails(LIM_STEPS, "-5", "out of range");
    parse_fails(LIM_STEPS, "1e30", "out of range");
    parse_fails(LIM_DEPTH, "5000", "depth 5000 is out of range: it must be between 8 and 2000");
    parse_fails(LIM_MESSAGE_BYTES, "1K",
                "message_bytes 1K is out of range: it must be between 64 KiB and 4 GiB");
}

Test(limits, set_checks_the_range_and_reset_restores_defaults)
{
    cl_err err = {0};
    cr_assert_eq(lim_set(LIM_STEPS, 500, &err), 0);
    cr_assert_eq(lim_get(LIM_STEPS), 500);
    cr_assert_eq(lim_set(LIM_DEPTH, 3, &err), -1);
    cr_assert(strstr(err.msg, "depth 3 is out of range: it must be between 8 and 2000"), "%s",
              err.msg);
    cr_assert_eq(lim_get(LIM_DEPTH), 200, "a refused value changes nothing");
    cr_assert_eq(lim_set(LIM_COUNT, 1, &err), -1);
    lim_reset();
    cr_assert_eq(lim_get(LIM_STEPS), 100000);
}

Test(limits, environment_overrides_defaults)
{
    char *env[] = {"PATH=/usr/bin",
                   "CNNLENS_MAX_STEPS=500",
                   "CNNLENS_MAX_TENSOR_BYTES=1G",
                   "CNNLENS_MAX_IMAGE_PIXELS= 2M ",
                   "CNNLENS_THREADS=2",
                   NULL};
    cl_err err = {0};
    cr_assert_eq(lim_load_env(env, &err), 0, "%s", err.msg);
    cr_assert_eq(lim_get(LIM_STEPS), 500);
    cr_assert_eq(lim_get(LIM_TENSOR_BYTES), 1LL << 30);
    cr_assert_eq(lim_get(LIM_IMAGE_PIXELS), 2000000);
    cr_assert_eq(lim_get(LIM_DEPTH), 200, "unset variables keep the default");
}

Test(limits, the_process_environment_is_read_through_environ)
{
    cr_assert_eq(setenv("CNNLENS_MAX_MATRIX_ELEMENTS", "5k", 1), 0);
    cl_err err = {0};
    int rc = lim_load_env(environ, &err);
    unsetenv("CNNLENS_MAX_MATRIX_ELEMENTS");
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(lim_get(LIM_MATRIX_ELEMENTS), 5000);
}

Test(limits, a_bad_environment_value_names_the_variable_and_changes_nothing)
{
    char *bad[] = {"CNNLENS_MAX_STEPS=500", "CNNLENS_MAX_TENSOR_BYTES=lots", NULL};
    cl_err err = {0};
    cr_assert_eq(lim_load_env(bad, &err), -1);
    cr_assert_str_eq(err.msg, "CNNLENS_MAX_TENSOR_BYTES \"lots\" is not a valid limit (write a "
                              "number of bytes, e.g. 67108864, 64M or 1G)");
    cr_assert_eq(lim_get(LIM_STEPS), 100000, "all or nothing");
    char *range[] = {"CNNLENS_MAX_DEPTH=1", NULL};
    cr_assert_eq(lim_load_env(range, &err), -1);
    cr_assert(strstr(err.msg, "CNNLENS_MAX_DEPTH 1 is out of range"), "%s", err.msg);
    char *typo[] = {"CNNLENS_MAX_IMAGE_PIXEL=5M", NULL};
    cr_assert_eq(lim_load_env(typo, &err), -1);
    cr_assert(strstr(err.msg, "CNNLENS_MAX_IMAGE_PIXEL is not a limit (the limits are: "
                              "CNNLENS_MAX_IMAGE_PIXELS, CNNLENS_MAX_TENSOR_BYTES"),
              "%s", err.msg);
    char *empty[] = {"CNNLENS_MAX_STEPS=", NULL};
    cr_assert_eq(lim_load_env(empty, &err), -1);
}

Test(limits, amounts_read_as_a_student_would_say_them)
{
    char b[48];
    lim_format(LIM_TENSOR_BYTES, 1023, b, sizeof b);
    cr_assert_str_eq(b, "1023 bytes");
    lim_format(LIM_TENSOR_BYTES, 1024, b, sizeof b);
    cr_assert_str_eq(b, "1 KiB");
    lim_format(LIM_TENSOR_BYTES, 3LL << 29, b, sizeof b);
    cr_assert_str_eq(b, "1.5 GiB");
    lim_format(LIM_MESSAGE_BYTES, 100e6, b, sizeof b);
    cr_assert_str_eq(b, "95.37 MiB");
    lim_format(LIM_IMAGE_PIXELS, 999, b, sizeof b);
    cr_assert_str_eq(b, "999 pixels");
    lim_format(LIM_IMAGE_PIXELS, 1.6e9, b, sizeof b);
    cr_assert_str_eq(b, "1.6 Gpixels");
    lim_format(LIM_STEPS, 100000, b, sizeof b);
    cr_assert_str_eq(b, "100000");
}

Test(limits, a_check_names_the_amount_the_limit_and_how_to_raise_it)
{
    cl_err err = {0};
    cr_assert_eq(lim_check_pixels(8000, 8000, "the image", &err), 0);
    cr_assert_eq(lim_check_pixels(40000, 40000, "the image", &err), -1);
    cr_assert_eq(err.code, CL_ELIMIT);
    cr_assert_str_eq(cl_err_name(err.code), "LimitError");
    cr_assert_str_eq(err.msg, "the image is 40000x40000 = 1.6 Gpixels; the limit is 64 Mpixels "
                              "(set CNNLENS_MAX_IMAGE_PIXELS or `limits image_pixels ...`)");
    cr_assert_eq(lim_check(LIM_STEPS, 100000, "maximize: steps", &err), 0);
    cr_assert_eq(lim_check(LIM_STEPS, 100001, "maximize: steps", &err), -1);
    cr_assert_str_eq(err.msg, "maximize: steps is 100001; the limit is 100000 (set "
                              "CNNLENS_MAX_STEPS or `limits steps ...`)");
    cr_assert_eq(lim_check(LIM_STEPS, 0.0 / 0.0, "NaN", &err), -1, "NaN is never within");
}

/* ---- where the engine allocates ---- */

Test(limits, tensors_over_the_byte_limit_are_refused)
{
    cl_err err = {0};
    cr_assert_eq(lim_set(LIM_TENSOR_BYTES, 1 << 20, NULL), 0);
    tn_tensor *ok = tn_new2(512, 512, &err); /* exactly 1 MiB */
    cr_assert_not_null(ok, "%s", err.msg);
    tn_free(ok);
    cr_assert_null(tn_new2(513, 512, &err));
    cr_assert_eq(err.code, CL_ELIMIT);
    cr_assert_str_eq(err.msg, "a tensor of shape [513, 512] (262656 numbers) is 1 MiB (1050624 "
                              "bytes); the limit is 1 MiB (1048576 bytes) (set "
                              "CNNLENS_MAX_TENSOR_BYTES or `limits tensor_bytes ...`)");
    cr_assert_eq(tn_max_elems, 1 << 18, "readers bound arrays by the same limit");
}

Test(limits, resizing_past_the_pixel_limit_is_refused)
{
    cl_err err = {0};
    tn_tensor *x = tn_new(3, (int64_t[]){3, 8, 8}, &err);
    cr_assert_not_null(x);
    cr_assert_eq(lim_set(LIM_IMAGE_PIXELS, 10000, NULL), 0);
    tn_tensor *y = img_resize(x, 100, 100, &err);
    cr_assert_not_null(y, "%s", err.msg);
    tn_free(y);
    cr_assert_null(img_resize(x, 100, 101, &err));
    cr_assert(strstr(err.msg, "the resized image is 101x100 = 10.1 kpixels; the limit is 10 "
                              "kpixels"),
              "%s", err.msg);
    cr_assert_null(img_center_crop(x, 200, 200, &err));
    cr_assert(strstr(err.msg, "the cropped image is 200x200"), "%s", err.msg);
    tn_free(x);
}

Test(limits, weight_files_over_the_model_limit_are_refused_before_reading)
{
    char dir[] = "/tmp/cnnlens-lim-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    cl_err err = {0};
    wt_dict *d = wt_new(&err);
    cr_assert_eq(wt_add(d, "w", tn_new1(2048, &err), &err), 0);
    cr_assert_eq(wt_save_safetensors(d, path, &err), 0, "%s", err.msg);
    wt_free(d);
    wt_dict *back = wt_load(path, &err);
    cr_assert_not_null(back, "%s", err.msg);
    wt_free(back);
    cr_assert_eq(lim_set(LIM_MODEL_BYTES, 4096, NULL), 0);
    cr_assert_null(wt_load(path, &err));
    cr_assert_eq(err.code, CL_ELIMIT);
    cr_assert(strstr(err.msg, "w.safetensors': the weight file is 8."), "%s", err.msg);
    cr_assert(strstr(err.msg, "KiB; the limit is 4 KiB (set CNNLENS_MAX_MODEL_BYTES"), "%s",
              err.msg);
    unlink(path);
    rmdir(dir);
}

Test(limits, models_whose_parameters_exceed_the_limit_are_not_built)
{
    trn_layer layers[] = {{.kind = TRN_DENSE, .n = 1000}, {.kind = TRN_DENSE, .n = 10}};
    cl_err err = {0};
    net *m = trn_build_sequential("mine", layers, 2, 1, 28, 28, 1, &err);
    cr_assert_not_null(m, "%s", err.msg); /* 795,010 parameters: 3 MiB */
    net_free(m);
    cr_assert_eq(lim_set(LIM_MODEL_BYTES, 1 << 20, NULL), 0);
    cr_assert_null(trn_build_sequential("mine", layers, 2, 1, 28, 28, 1, &err));
    cr_assert_eq(err.code, CL_ELIMIT);
    cr_assert(strstr(err.msg, "the size of the model's parameters up to 'dense1' is 2.99 MiB; "
                              "the limit is 1 MiB"),
              "%s", err.msg);
}

/* ---- where the language nests and counts ---- */

static void parse_limit(const char *src, const char *needle, int line, int col)
{
    ps_program p;
    cl_err err = {0};
    lx_pos where = {0, 0};
    cr_assert_eq(ps_parse(src, &p, &err, &where), -1, "%.60s should fail", src);
    ps_free(&p);
    cr_assert_eq(err.code, CL_ELIMIT, "%s", err.msg);
    cr_assert(strstr(err.msg, needle), "'%s' lacks '%s'", err.msg, needle);
    if (line) {
        cr_assert_eq(where.line, line);
        cr_assert_eq(where.col, col, "column %d, expected %d", where.col, col);
    }
}

static void parses(const char *src)
{
    ps_program p;
    cl_err err = {0};
    lx_pos where;
    cr_assert_eq(ps_parse(src, &p, &err, &where), 0, "%s", err.msg);
    ps_free(&p);
}

Test(limits, nesting_follows_the_depth_limit)
{
    cr_assert_eq(lim_set(LIM_DEPTH, 10, NULL), 0);
    parses("x = ((((((((1))))))))");
    parse_limit("x = (((((((((((1)))))))))))",
                "brackets nested too deeply: the depth is 11; the "
                "limit is 10 (set CNNLENS_MAX_DEPTH",
                1, 15);
    parse_limit("x = - - - - - - - - - - - 1", "expression nested too deeply: the depth is 11", 0,
                0);
    parse_limit("x = 1+1+1+1+1+1+1+1+1+1+1+1",
                "expression too long (split it over several lines "
                "with variables): its depth is 11",
                1, 26);
    cr_assert_eq(lim_set(LIM_DEPTH, 2000, NULL), 0);
    static char deep[4200];
    memset(deep, '[', 1999);
    deep[1999] = '1';
    memset(deep + 2000, ']', 1999);
    parses(deep);
}

Test(limits, long_matrix_literals_and_strings_are_refused)
{
    cr_assert_eq(lim_set(LIM_MATRIX_ELEMENTS, 6, NULL), 0);
    parses("m = [1 2 3; 4 5 6]");
    parse_limit("m = [1 2 3; 4 5 6; 7]",
                "the number of elements of this matrix literal (counted "
                "so far) is 7; the limit is 6 (set "
                "CNNLENS_MAX_MATRIX_ELEMENTS or `limits matrix_elements",
                1, 20);
    cr_assert_eq(lim_set(LIM_STRING_BYTES, 256, NULL), 0);
    char src[400] = "s = \"";
    memset(src + 5, 'a', 256);
    strcpy(src + 5 + 256, "\"");
    parses(src);
    strcpy(src + 5 + 256, "\\u00e9\"");
    parse_limit(src,
                "this string is 258 bytes; the limit is 256 bytes (set "
                "CNNLENS_MAX_STRING_BYTES",
                1, 5);
}
