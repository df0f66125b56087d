/* The server's input history as history_request reads it. */
#include <criterion/criterion.h>
#include <string.h>

#include "kernel/server/sv_internal.h"

static sv_history h;

static void fill(void)
{
    sv_hist_init(&h);
    const char *in[] = {"a = 1", "a + 1", "a + 2", "a + 1", "print \"x\""};
    const char *out[] = {NULL, "2", "3", "2", NULL};
    for (int i = 0; i < 5; i++) cr_assert_eq(sv_hist_add(&h, i + 1, in[i], out[i]), 0);
}

static void done(void)
{
    sv_hist_clear(&h);
}

static json_t *query(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_error_t e;
    json_t *req = json_vpack_ex(&e, 0, fmt, ap);
    va_end(ap);
    cr_assert_not_null(req, "%s", e.text);
    json_t *r = sv_hist_query(&h, req);
    json_decref(req);
    return r;
}

static char *dump(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

#define EXPECT(json, want)                                                                         \
    do {                                                                                           \
        char *got_ = dump(json);                                                                   \
        cr_assert_str_eq(got_, want);                                                              \
        free(got_);                                                                                \
    } while (0)

Test(history, tail, .init = fill, .fini = done)
{
    EXPECT(query("{s:s,s:i,s:b}", "hist_access_type", "tail", "n", 2, "output", 0),
           "[[1,4,\"a + 1\"],[1,5,\"print \\\"x\\\"\"]]");
    EXPECT(query("{s:s,s:i,s:b}", "hist_access_type", "tail", "n", 3, "output", 1),
           "[[1,3,[\"a + 2\",\"3\"]],[1,4,[\"a + 1\",\"2\"]],[1,5,[\"print \\\"x\\\"\",null]]]");
    json_t *all = query("{s:s,s:i}", "hist_access_type", "tail", "n", 100);
    cr_assert_eq(json_array_size(all), 5);
    json_decref(all);
}

Test(history, range, .init = fill, .fini = done)
{
    EXPECT(query("{s:s,s:i,s:i,s:i}", "hist_access_type", "range", "session", 1, "start", 2, "stop",
                 4),
           "[[1,2,\"a + 1\"],[1,3,\"a + 2\"]]");
    EXPECT(query("{s:s,s:i,s:i}", "hist_access_type", "range", "session", 0, "start", 5),
           "[[1,5,\"print \\\"x\\\"\"]]");
    EXPECT(query("{s:s,s:i,s:i}", "hist_access_type", "range", "session", 7, "start", 1), "[]");
}

Test(history, search, .init = fill, .fini = done)
{
    EXPECT(query("{s:s,s:s}", "hist_access_type", "search", "pattern", "a + 1"),
           "[[1,2,\"a + 1\"],[1,4,\"a + 1\"]]");
    EXPECT(query("{s:s,s:s,s:b}", "hist_access_type", "search", "pattern", "a + ?", "unique", 1),
           "[[1,3,\"a + 2\"],[1,4,\"a + 1\"]]");
    EXPECT(query("{s:s,s:s,s:i}", "hist_access_type", "search", "pattern", "a*", "n", 2),
           "[[1,3,\"a + 2\"],[1,4,\"a + 1\"]]");
    EXPECT(query("{s:s}", "hist_access_type", "search"), "[[1,1,\"a = 1\"],[1,2,\"a + 1\"],[1,3,"
                                                         "\"a + 2\"],[1,4,\"a + 1\"],[1,5,"
                                                         "\"print \\\"x\\\"\"]]");
}

Test(history, bad_requests, .init = fill, .fini = done)
{
    cr_assert_null(query("{s:s}", "hist_access_type", "everything"));
    cr_assert_null(query("{s:i}", "hist_access_type", 3));
}

Test(history, forgets_the_oldest_cells_past_its_byte_bound)
{
    sv_history b;
    sv_hist_init(&b);
    cr_assert_eq(b.max_bytes, SV_HIST_MAX_BYTES);
    b.max_bytes = 10;
    cr_assert_eq(sv_hist_add(&b, 1, "aaaa", "1"), 0);  /* 5 bytes */
    cr_assert_eq(sv_hist_add(&b, 2, "bbbb", NULL), 0); /* 9 */
    cr_assert_eq(b.n, 2);
    cr_assert_eq(sv_hist_add(&b, 3, "cc", "33"), 0); /* 13: cell 1 goes */
    cr_assert_eq(b.n, 2);
    cr_assert_eq(b.bytes, 8);
    cr_assert_eq(b.items[0].line, 2);
    cr_assert_str_eq(b.items[1].input, "cc");
    /* A cell bigger than the bound alone stays, as the only one. */
    cr_assert_eq(sv_hist_add(&b, 4, "a cell of more than ten bytes", NULL), 0);
    cr_assert_eq(b.n, 1);
    cr_assert_eq(b.items[0].line, 4);
    sv_hist_clear(&b);
}
