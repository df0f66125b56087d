/* The lens interpreter's kernel hooks: completion (verbs, options, variables,
 * labels, paths; cursor in code points), inspect, is_complete, tracebacks,
 * language_info. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel/lang/lens_interp.h"

static kn_interp *it;

static void setup(void)
{
    it = lens_interp_new();
    lens_interp_set_delay(it, 0);
}

static void teardown(void)
{
    it->vt->destroy(it);
}

TestSuite(interp, .init = setup, .fini = teardown);

static void exec_ok(const char *code)
{
    kn_exec_request req = {code, 0, 1, 0, 1};
    kn_exec_result res;
    kn_output out = {0};
    it->vt->execute(it, &req, &out, &res);
    cr_assert(res.ok, "%s: %s", code, res.evalue);
    kn_exec_result_free(&res);
}

static int has(json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) if (!strcmp(json_string_value(v), s)) return 1;
    return 0;
}

/* Completes at the end of `code` (or at `cursor` code points). */
static json_t *complete(const char *code, int cursor)
{
    json_t *r = it->vt->complete(it, code, cursor);
    cr_assert_not_null(r);
    cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "ok");
    return r;
}

static json_t *matches(json_t *r)
{
    return json_object_get(r, "matches");
}

static int start(json_t *r)
{
    return (int)json_integer_value(json_object_get(r, "cursor_start"));
}

Test(interp, completes_verbs_and_variables_at_line_start)
{
    exec_ok("conversion = 1");
    json_t *r = complete("con", 3);
    cr_assert(has(matches(r), "conv"));
    cr_assert(has(matches(r), "conversion"));
    cr_assert_eq(start(r), 0);
    cr_assert_eq(json_integer_value(json_object_get(r, "cursor_end")), 3);
    json_decref(r);
    r = complete("x = 1\ny = co", 12);
    cr_assert(has(matches(r), "conv"));
    cr_assert_eq(start(r), 10);
    json_decref(r);
}

Test(interp, completes_options_of_the_verb_under_the_cursor)
{
    exec_ok("img = 1\nf = 2");
    json_t *r = complete("conv img f st", 13);
    cr_assert(has(matches(r), "stride"));
    cr_assert(has(matches(r), "step"));
    cr_assert_not(has(matches(r), "pad"));
    cr_assert_eq(start(r), 11);
    json_t *types = json_object_get(json_object_get(r, "metadata"), "_jupyter_types_experimental");
    cr_assert_gt(json_array_size(types), 0);
    json_decref(r);
    r = complete("conv img f stride 2 ", 20);
    cr_assert(has(matches(r), "pad"));
    cr_assert_not(has(matches(r), "stride"), "an option already given is not offered again");
    cr_assert(has(matches(r), "img"));
    json_decref(r);
    /* The cursor in the middle: only the text before it counts. */
    r = complete("conv img f st\nprint 1", 13);
    cr_assert(has(matches(r), "stride"));
    json_decref(r);
}

Test(interp, completes_verbs_after_help_and_show)
{
    json_t *r = complete("help co", 7);
    cr_assert(has(matches(r), "conv"));
    cr_assert_not(has(matches(r), "stride"));
    json_decref(r);
    r = complete("show co", 7);
    cr_assert(has(matches(r), "conv"));
    json_decref(r);
}

Test(interp, completes_options_of_a_nested_verb)
{
    exec_ok("x = 1");
    json_t *r = complete("show gradcam x cl", 17);
    cr_assert(has(matches(r), "class"), "%s", json_dumps(r, 0));
    json_decref(r);
    r = complete("show gradcam x ov", 17);
    cr_assert(has(matches(r), "over"), "show's own options too");
    json_decref(r);
}

Test(interp, completes_inside_parentheses)
{
    exec_ok("img = 1");
    json_t *r = complete("save (conv img img str", 22);
    cr_assert(has(matches(r), "stride"));
    json_decref(r);
}

Test(interp, cursor_positions_count_code_points)
{
    exec_ok("\xc3\xa9t\xc3\xa9 = 1"); /* été */
    /* "print "ü" ét" : the cursor after "ét" is code point 13. */
    const char *code = "print \"\xc3\xbc\" \xc3\xa9t";
    json_t *r = complete(code, 12);
    cr_assert(has(matches(r), "\xc3\xa9t\xc3\xa9"), "%s", json_dumps(r, 0));
    cr_assert_eq(start(r), 10);
    cr_assert_eq(json_integer_value(json_object_get(r, "cursor_end")), 12);
    json_decref(r);
}

Test(interp, completes_paths_inside_strings)
{
    char dir[] = "/tmp/lens-complete-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/bunny.jpg", dir);
    FILE *f = fopen(path, "w");
    fclose(f);
    snprintf(path, sizeof path, "%s/bund", dir);
    mkdir(path, 0700);
    char code[256];
    snprintf(code, sizeof code, "x = load \"%s/bun", dir);
    int len = (int)strlen(code);
    json_t *r = complete(code, len);
    char want1[256], want2[256];
    snprintf(want1, sizeof want1, "%s/bunny.jpg", dir);
    snprintf(want2, sizeof want2, "%s/bund/", dir);
    cr_assert(has(matches(r), want1), "%s", json_dumps(r, 0));
    cr_assert(has(matches(r), want2), "directories end with /");
    cr_assert_eq(start(r), 10, "the match replaces the string's text");
    json_decref(r);
    snprintf(code, sizeof code, "rm -rf %s", dir);
    cr_assert_eq(system(code), 0);
}

Test(interp, inspect_shows_help_of_the_verb)
{
    json_t *r = it->vt->inspect(it, "conv img f", 2, 0);
    cr_assert(json_is_true(json_object_get(r, "found")));
    const char *t = json_string_value(json_object_get(json_object_get(r, "data"), "text/plain"));
    cr_assert(strstr(t, "conv IMAGE FILTER"), "%s", t);
    json_decref(r);
    /* On an argument of the verb, the verb's help too. */
    r = it->vt->inspect(it, "m = conv img f stride 2", 17, 0);
    cr_assert(json_is_true(json_object_get(r, "found")));
    json_decref(r);
    exec_ok("v = [1 2]");
    r = it->vt->inspect(it, "v", 1, 0);
    t = json_string_value(json_object_get(json_object_get(r, "data"), "text/plain"));
    cr_assert(strstr(t, "v: matrix"), "%s", t);
    json_decref(r);
    r = it->vt->inspect(it, "nothing here", 3, 0);
    cr_assert(json_is_false(json_object_get(r, "found")));
    json_decref(r);
}

static void is_complete(const char *code, const char *status)
{
    json_t *r = it->vt->is_complete(it, code);
    cr_assert_str_eq(json_string_value(json_object_get(r, "status")), status, "%s", code);
    if (!strcmp(status, "incomplete"))
        cr_assert_str_eq(json_string_value(json_object_get(r, "indent")), "  ");
    json_decref(r);
}

Test(interp, is_complete_statuses)
{
    is_complete("conv img f", "complete");
    is_complete("m = [1 0 -1;", "incomplete");
    is_complete("m = [1 0 -1\n 0 1 0", "incomplete");
    is_complete("x = (conv img", "incomplete");
    is_complete("print \"abc", "invalid");
    is_complete("x = [\"abc", "invalid");
    is_complete("print \"abc\nprint 1", "invalid");
    is_complete("x = 1)", "invalid");
    is_complete("x = [1 2; 3]", "invalid");
    is_complete("a $ b", "invalid");
    is_complete("", "complete");
}

Test(interp, traceback_quotes_the_line_with_a_caret)
{
    kn_exec_request req = {"a = 1\nprint a + nosuch", 0, 1, 0, 1};
    kn_exec_result res;
    kn_output out = {0};
    it->vt->execute(it, &req, &out, &res);
    cr_assert_not(res.ok);
    cr_assert_str_eq(res.ename, "NameError");
    cr_assert_eq(json_array_size(res.traceback), 4);
    cr_assert_str_eq(json_string_value(json_array_get(res.traceback, 0)), "  line 2, column 11:");
    cr_assert_str_eq(json_string_value(json_array_get(res.traceback, 1)), "    print a + nosuch");
    cr_assert_str_eq(json_string_value(json_array_get(res.traceback, 2)), "              ^");
    cr_assert(strstr(json_string_value(json_array_get(res.traceback, 3)),
                     "NameError: unknown name 'nosuch'"));
    kn_exec_result_free(&res);
}

Test(interp, language_info)
{
    json_t *li = it->vt->language_info(it);
    cr_assert_str_eq(json_string_value(json_object_get(li, "name")), "lens");
    cr_assert_str_eq(json_string_value(json_object_get(li, "file_extension")), ".lens");
    json_decref(li);
    cr_assert(strstr(it->vt->banner(it), "lens"));
}

Test(interp, restart_clears_the_session)
{
    exec_ok("a = 1");
    it->vt->shutdown(it, 1);
    kn_exec_request req = {"a", 0, 1, 0, 1};
    kn_exec_result res;
    kn_output out = {0};
    it->vt->execute(it, &req, &out, &res);
    cr_assert_not(res.ok);
    kn_exec_result_free(&res);
}
