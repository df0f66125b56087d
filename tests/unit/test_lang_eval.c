/* The lens evaluator and the engine-free commands, driven through the
 * kn_interp table as the kernel drives them: outputs, results, errors with
 * positions, variables kept across errors, seeds, files. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/io/npy.h"
#include "kernel/lang/lens_interp.h"

typedef struct capture {
    char out[1 << 16];
    size_t nout;
    char err[1024];
    int clears;
    int displays, updates;
    char first_id[64];
    json_t *last; /* last display bundle */
} capture;

static void cap_stream(void *ctx, const char *name, const char *text)
{
    capture *c = ctx;
    if (!strcmp(name, "stderr")) {
        strncat(c->err, text, sizeof c->err - strlen(c->err) - 1);
        return;
    }
    cr_assert_str_eq(name, "stdout");
    size_t k = strlen(text);
    cr_assert_lt(c->nout + k, sizeof c->out);
    memcpy(c->out + c->nout, text, k + 1);
    c->nout += k;
}

static void cap_display(void *ctx, json_t *data, json_t *meta, const char *id, int update)
{
    capture *c = ctx;
    (void)meta;
    if (update) {
        c->updates++;
        cr_assert_str_eq(id, c->first_id, "updates go to the first display");
    } else {
        c->displays++;
        if (id) snprintf(c->first_id, sizeof c->first_id, "%s", id);
    }
    json_decref(c->last);
    c->last = json_incref(data);
}

static void cap_clear(void *ctx, int wait)
{
    capture *c = ctx;
    (void)wait;
    c->clears++;
}

static char *cap_input(void *ctx, const char *prompt, int password)
{
    (void)ctx;
    cr_assert_str_eq(prompt, "name? ");
    return strdup(password ? "secret" : "Ada");
}

static kn_interp *it;
static capture cap;
static kn_exec_result res;

static void setup(void)
{
    it = lens_interp_new();
    lens_interp_set_delay(it, 0);
    memset(&cap, 0, sizeof cap);
    memset(&res, 0, sizeof res);
}

static void teardown(void)
{
    kn_exec_result_free(&res);
    json_decref(cap.last);
    it->vt->destroy(it);
}

/* Runs one cell; resets the capture first. */
static kn_exec_result *run(const char *code)
{
    kn_exec_result_free(&res);
    json_decref(cap.last);
    memset(&cap, 0, sizeof cap);
    kn_output out = {&cap, cap_stream, cap_display, cap_clear, cap_input};
    kn_exec_request req = {code, 0, 1, 1, 1};
    it->vt->execute(it, &req, &out, &res);
    return &res;
}

static void ok(const char *code)
{
    run(code);
    cr_assert(res.ok, "%s failed: %s: %s", code, res.ename, res.evalue);
}

static const char *result_text(void)
{
    cr_assert_not_null(res.result, "no execute_result");
    return json_string_value(json_object_get(res.result, "text/plain"));
}

static void fails(const char *code, const char *ename, const char *part)
{
    run(code);
    cr_assert_not(res.ok, "%s succeeded", code);
    cr_assert_str_eq(res.ename, ename, "%s: %s: %s", code, res.ename, res.evalue);
    cr_assert(strstr(res.evalue, part), "%s: '%s' lacks '%s'", code, res.evalue, part);
}

/* The traceback's "line L, column C:" header. */
static void at(int line, int col)
{
    char want[64];
    snprintf(want, sizeof want, "  line %d, column %d:", line, col);
    const char *got = json_string_value(json_array_get(res.traceback, 0));
    cr_assert_str_eq(got, want, "error at '%s', wanted '%s' (%s)", got, want, res.evalue);
}

#define SLIDE_IMG                                                                                  \
    "img = [1 0 0 0 0 1; 0 1 0 0 1 0; 0 0 1 1 0 0; 1 0 0 0 1 0; 0 1 0 0 1 0; 0 0 1 0 1 0]\n"       \
    "f = [-1 1 -1; -1 1 -1; -1 1 -1]\n"

TestSuite(eval, .init = setup, .fini = teardown);

Test(eval, print_writes_stdout)
{
    ok("print \"hello, world\"");
    cr_assert_str_eq(cap.out, "hello, world\n");
    cr_assert_null(res.result);
    ok("x = 2\nprint \"x is\" x (x * 3)");
    cr_assert_str_eq(cap.out, "x is 2 6\n");
    ok("print sum [1 2 3]");
    cr_assert_str_eq(cap.out, "6\n");
    ok("print \"a\" + \"b\" + 1");
    cr_assert_str_eq(cap.out, "ab1\n");
    ok("m = [1 2]\nprint \"total:\" sum m + 1 m[0,0] -1");
    cr_assert_str_eq(cap.out, "total: 4 0\n", "each argument of print is a whole expression");
}

Test(eval, conv_gives_the_slide_map)
{
    ok(SLIDE_IMG "conv img f");
    cr_assert_str_eq(result_text(), "-1 -1 -1 -1\n-1 -1 -2  1\n-1 -1 -2  1\n-1  0 -4  3");
    const char *html = json_string_value(json_object_get(res.result, "text/html"));
    cr_assert_not_null(html, "a small matrix has an HTML form");
    cr_assert(strstr(html, "<table") && strstr(html, ">-4</td>"));
    cr_assert(strstr(html, "background:rgb("), "cells are shaded");
}

Test(eval, conv_stride_and_pad)
{
    ok(SLIDE_IMG "m = conv img f stride 2 pad 1\nshape m");
    cr_assert_str_eq(result_text(), "[3 3]");
    /* Padding: the top-left window sees only img[0..1,0..1] against f[1..2,1..2]. */
    ok("m[0,0]");
    cr_assert_str_eq(result_text(), "0");
    ok("conv img f stride 3");
    cr_assert_str_eq(result_text(), "-1 -1\n-1  3");
}

Test(eval, conv_step_updates_one_display)
{
    ok(SLIDE_IMG "m = conv img f step");
    cr_assert_eq(cap.displays, 1);
    cr_assert_eq(cap.updates, 16, "one update per window");
    cr_assert_not_null(json_object_get(cap.last, "image/png"));
    ok("m");
    cr_assert_str_eq(result_text(), "-1 -1 -1 -1\n-1 -1 -2  1\n-1 -1 -2  1\n-1  0 -4  3");
    ok(SLIDE_IMG "conv img f step delay 0");
    cr_assert_null(res.result, "the step display is the result");
}

Test(eval, conv_errors)
{
    ok(SLIDE_IMG);
    fails("conv img", "ValueError", "conv needs FILTER");
    at(1, 1);
    fails("conv img f stride 0", "ValueError", "stride must be 1 or more");
    at(1, 19);
    fails("conv img \"f\"", "TypeError", "conv: filter must be a matrix or tensor, got string");
    at(1, 10);
    fails("conv f img", "ValueError", "bigger than");
    fails("conv img f stride 1.5", "TypeError", "whole number");
    fails("conv img f strid 2", "NameError",
          "unknown option 'strid' \xe2\x80\x94 did you mean 'stride'?");
    at(1, 12);
    fails("conv img f step stride 1 stride 2", "ValueError", "given twice");
    fails("conv img f stride", "ValueError", "option 'stride' needs a value");
    fails("conv (zeros 30 30) f step", "ValueError",
          "step shows at most 400 windows, this map has 784");
}

Test(eval, misspelt_verbs_and_names)
{
    fails("x = 1\ncovn x x", "NameError",
          "unknown command 'covn' \xe2\x80\x94 did you mean 'conv'?");
    at(2, 1);
    fails("img = 1\nprint imgg", "NameError",
          "unknown name 'imgg' \xe2\x80\x94 did you mean 'img'?");
    at(2, 7);
    fails("frobnicate 3", "NameError", "unknown command 'frobnicate'");
}

Test(eval, arithmetic_and_indexing)
{
    ok("x = 2 + 3 * 4 - 10 / 4\nx");
    cr_assert_str_eq(result_text(), "11.5");
    ok("m = [1 2; 3 4]\nm * 2 - 1");
    cr_assert_str_eq(result_text(), "1 3\n5 7");
    ok("m * m");
    cr_assert_str_eq(result_text(), " 1  4\n 9 16");
    ok("-m[1, 0] + m[-1, -1]");
    cr_assert_str_eq(result_text(), "1");
    ok("m[0..1, 1]");
    cr_assert_str_eq(result_text(), "[2 4]");
    ok("sum (m[0..1, 0..1] * [1 0; 0 1])");
    cr_assert_str_eq(result_text(), "5");
    ok("2 >= 1");
    cr_assert_str_eq(result_text(), "1");
    fails("m[2, 0]", "ValueError", "index out of range: there are 2 rows (0..1)");
    at(1, 3);
    fails("m[0, 0, 0]", "ValueError", "too many indices");
    fails("m + [1 2 3]", "ValueError", "shapes [2, 2] and [1, 3]");
    fails("1 / 0", "ValueError", "division by zero");
    at(1, 3);
    fails("\"a\" * 2", "TypeError", "cannot multiply string and number");
    fails("m[0.5, 0]", "TypeError", "whole number or a range");
    fails("x = 3..1", "ValueError", "range must go upwards");
}

Test(eval, reductions_and_elementwise)
{
    ok("m = [1 -2; 3 0]");
    ok("sum m");
    cr_assert_str_eq(result_text(), "2");
    ok("mean m");
    cr_assert_str_eq(result_text(), "0.5");
    ok("max m");
    cr_assert_str_eq(result_text(), "3");
    ok("min m");
    cr_assert_str_eq(result_text(), "-2");
    ok("argmax m");
    cr_assert_str_eq(result_text(), "2");
    ok("relu m");
    cr_assert_str_eq(result_text(), "1 0\n3 0");
    ok("abs m");
    cr_assert_str_eq(result_text(), "1 2\n3 0");
    ok("shape [1 2 3]");
    cr_assert_str_eq(result_text(), "[1 3]");
    ok("pool [1 2 3 4; 5 6 7 8; 9 10 11 12; 13 14 15 16]");
    cr_assert_str_eq(result_text(), " 6  8\n14 16");
    ok("pool [1 2 3 4; 5 6 7 8; 9 10 11 12; 13 14 15 16] mode avg");
    cr_assert_str_eq(result_text(), " 3.5  5.5\n11.5 13.5");
    ok("s = softmax [1 2 3]\nsum s");
    cr_assert_str_eq(result_text(), "1");
    ok("zeros 2 3");
    cr_assert_str_eq(result_text(), "0 0 0\n0 0 0");
    ok("ones 2");
    cr_assert_str_eq(result_text(), "1 1\n1 1");
    fails("sum \"x\"", "TypeError",
          "sum: x must be an image, tensor, number, heatmap or picture, got string");
    fails("pool m size 3", "ValueError", "bigger than");
}

/* A nested command's value meets the same type check as a written one: the
 * fuzzer found `shape model fashion` reading a model as a tensor. */
Test(eval, a_nested_commands_value_is_type_checked)
{
    ok("sum ones 2 3");
    cr_assert_str_eq(result_text(), "6");
    fails("shape model fashion", "TypeError",
          "shape: x must be an image, tensor, number, heatmap or picture, got model");
    fails("gradcam model fashion", "TypeError", "gradcam: x must be an image or tensor, got model");
}

Test(eval, seed_makes_random_results_reproducible)
{
    ok("seed 42\na = rand 3 3\nb = randn 2 2");
    ok("seed 42\nc = rand 3 3\nd = randn 2 2\nexpect a == c\nexpect b == d");
    ok("e = rand 3 3\nexpect a != e");
    ok("expect max a < 1\nexpect min a >= 0");
    fails("seed -1", "ValueError", "0 or more");
    fails("seed 1.5", "TypeError", "whole number");
}

Test(eval, array_inequality_means_they_differ_somewhere)
{
    ok("expect [1 2 3] != [1 2 4]\nexpect [1 2 3] == [1 2 3]\nexpect [1 2] < [2 3]");
    fails("expect [1 2 3] != [1 2 3]", "ExpectationFailed", "expected [1 2 3] != [1 2 3]");
}

Test(eval, expect_passes_silently_or_names_both_sides)
{
    ok(SLIDE_IMG "m = conv img f\nexpect sum m == -12\nexpect m[3,3] > 2");
    cr_assert_null(res.result);
    cr_assert_str_eq(cap.out, "");
    fails("expect sum m == 3", "ExpectationFailed", "expected sum m == 3, but sum m is -12");
    at(1, 8);
    fails("x = 1\nexpect max m != m[3,3]", "ExpectationFailed",
          "expected max m != m[3,3], but max m is 3 and m[3,3] is 3");
    at(2, 8);
    ok("expect mean m ~= -0.75\nexpect 3.14159 ~= 3.14 tolerance 0.01");
    fails("expect 3.14159 ~= 3.14", "ExpectationFailed", "(tolerance 1e-06)");
    ok("expect m ~= m + 0.001 tolerance 0.01");
    ok("expect \"a\" == \"a\"");
    fails("expect 1 + 1", "ValueError", "needs a comparison");
    fails("expect m == \"x\"", "TypeError", "cannot compare");
}

Test(eval, errors_never_lose_variables)
{
    ok("a = 1\nb = [1 2]");
    fails("a = 5\nb = nosuch\nc = 3", "NameError", "unknown name 'nosuch'");
    at(2, 5);
    ok("a");
    cr_assert_str_eq(result_text(), "5", "statements before the error ran");
    ok("b");
    cr_assert_str_eq(result_text(), "1 2");
    fails("c", "NameError", "unknown name 'c'");
    fails("b = 1 / 0", "ValueError", "division by zero");
    ok("b");
    cr_assert_str_eq(result_text(), "1 2");
}

Test(eval, last_expression_is_the_result_and_show_displays)
{
    ok("x = 3\nx + 1\nx * 2");
    cr_assert_str_eq(result_text(), "6");
    ok("x = 3");
    cr_assert_null(res.result, "an assignment has no result");
    ok("show [1 2; 3 4]\nshow 5\nx");
    cr_assert_eq(cap.displays, 2);
    cr_assert_str_eq(result_text(), "3");
    ok("print 1");
    cr_assert_null(res.result, "print gives no result");
    fails("y = print 1", "TypeError", "gives no value to store in 'y'");
    fails("conv = 3", "NameError", "'conv' is the name of a command");
    fails("x y", "NameError", "'x' is a variable, not a command");
}

Test(eval, big_matrices_show_as_pictures)
{
    ok("zeros 20 30");
    cr_assert_not_null(json_object_get(res.result, "image/png"));
    cr_assert_null(json_object_get(res.result, "text/html"));
    cr_assert(strstr(result_text(), "matrix 20x30 (min 0, max 0, mean 0)"));
}

Test(eval, help_pages_through_the_payload)
{
    ok("help conv");
    cr_assert_eq(json_array_size(res.payload), 1);
    json_t *p = json_array_get(res.payload, 0);
    cr_assert_str_eq(json_string_value(json_object_get(p, "source")), "page");
    cr_assert_eq(json_integer_value(json_object_get(p, "start")), 0);
    const char *text = json_string_value(json_object_get(json_object_get(p, "data"), "text/plain"));
    cr_assert(strstr(text, "conv IMAGE FILTER [stride N] [pad N] [step] [delay X]"), "%s", text);
    cr_assert(strstr(text, "stride N"));
    cr_assert(strstr(text, "default 1"));
    ok("help");
    text = json_string_value(
        json_object_get(json_object_get(json_array_get(res.payload, 0), "data"), "text/plain"));
    cr_assert(strstr(text, "conv ") && strstr(text, "expect ") && strstr(text, "seed "));
    fails("help cnov", "NameError", "did you mean 'conv'?");
}

Test(eval, vars_lists_the_session)
{
    ok("a = 1\nb = \"text\"\nvars");
    const char *t = result_text();
    cr_assert(strstr(t, "name") && strstr(t, "a     number") && strstr(t, "b     string"), "%s", t);
    cr_assert_not_null(json_object_get(res.result, "text/html"));
}

Test(eval, save_and_load_npy_round_trip)
{
    char dir[] = "/tmp/lens-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char code[512];
    snprintf(code, sizeof code,
             SLIDE_IMG "m = conv img f\nsave m \"%s/m.npy\"\nsave img \"%s/img.png\"\n"
                       "n = load \"%s/m.npy\"\nexpect n == m\nshape n",
             dir, dir, dir);
    ok(code);
    cr_assert_str_eq(result_text(), "[4 4]");
    char path[256];
    snprintf(path, sizeof path, "%s/m.npy", dir);
    cl_err err = {0};
    tn_tensor *t = npy_read(path, &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_eq(t->ndim, 2);
    cr_assert_eq(t->data[15], 3.0f);
    tn_free(t);
    snprintf(path, sizeof path, "%s/img.png", dir);
    cr_assert_eq(access(path, R_OK), 0);
    snprintf(code, sizeof code, "save m \"%s/nodir/m.npy\"", dir);
    fails(code, "IOError", "save:");
    at(1, 8);
    snprintf(path, sizeof path, "%s/nodir/m.npy", dir);
    cr_assert_neq(access(path, F_OK), 0);
    fails("save m \"m.txt\"", "ValueError", "save writes .npy");
    fails("load \"/nonexistent/x.npy\"", "IOError", "load:");
    snprintf(code, sizeof code, "rm -rf %s", dir);
    cr_assert_eq(system(code), 0);
}

Test(eval, labels_file)
{
    char path[] = "/tmp/lens-labels-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "tench, Tinca tinca\ngoldfish\n\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char code[128];
    snprintf(code, sizeof code, "labels \"%s\"", path);
    ok(code);
    cr_assert_str_eq(cap.out, "2 class labels\n");
    ok("labels");
    cr_assert(strstr(result_text(), "1  goldfish"), "%s", result_text());
    unlink(path);
    /* A label file in Latin-1, not UTF-8: shown with '?' instead of failing. */
    FILE *f = fopen(path, "w");
    fputs("caf\xe9\n", f);
    fclose(f);
    ok(code);
    ok("labels");
    cr_assert(strstr(result_text(), "caf?"), "%s", result_text());
    unlink(path);
    fails(code, "IOError", "cannot open");
}

Test(eval, interrupt_stops_the_cell_and_keeps_variables)
{
    ok("a = 1");
    it->vt->interrupt(it); /* a flag set before a cell is cleared when it starts */
    ok("a = 2");
    /* An interrupt during a paced step-through ends it with KeyboardInterrupt. */
    lens_interp_set_delay(it, 5);
    pthread_t th;
    extern void *interrupt_later(void *);
    pthread_create(&th, NULL, interrupt_later, it);
    run(SLIDE_IMG "a = 3\nm = conv img f step");
    pthread_join(th, NULL);
    cr_assert_not(res.ok);
    cr_assert_str_eq(res.ename, "KeyboardInterrupt");
    cr_assert_lt(lens_interp_last_seconds(it), 2.0 * CNNLENS_TEST_TIMEOUT_SCALE,
                 "stopped within a fraction of a second");
    ok("a");
    cr_assert_str_eq(result_text(), "3");
    fails("m", "NameError", "unknown name 'm'");
}

void *interrupt_later(void *arg)
{
    usleep(200 * 1000);
    kn_interp *i = arg;
    i->vt->interrupt(i);
    return NULL;
}

Test(eval, user_expressions)
{
    ok("x = [1 2]");
    json_t *r = it->vt->user_expression(it, "sum x");
    cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "ok");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "data"), "text/plain")),
                     "3");
    json_decref(r);
    r = it->vt->user_expression(it, "nosuch");
    cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "error");
    cr_assert_str_eq(json_string_value(json_object_get(r, "ename")), "NameError");
    json_decref(r);
}

Test(eval, eprint_sleep_input_clear)
{
    ok("eprint \"careful:\" 1 + 1");
    cr_assert_str_eq(cap.err, "careful: 2\n");
    cr_assert_str_eq(cap.out, "");
    ok("sleep 0.01\nname = input \"name? \"\npw = input \"name? \" password\nprint name pw");
    cr_assert_str_eq(cap.out, "Ada secret\n");
    ok("clear\nclear wait");
    cr_assert_eq(cap.clears, 2);
    fails("sleep -1", "ValueError", "seconds must be 0..3600");
}
