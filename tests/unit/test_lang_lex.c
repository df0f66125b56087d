/* The lens lexer and parser: tokens with line and column, strings with
 * escapes and UTF-8, numbers, ranges, comments, continuation inside brackets,
 * matrix literals, commands, and syntax errors with their positions. */
#include <criterion/criterion.h>
#include <string.h>

#include "kernel/lang/lex.h"
#include "kernel/lang/parse.h"

static lx_tokens lex_ok(const char *src)
{
    lx_tokens t;
    cl_err err = {0};
    lx_pos where = {0, 0};
    cr_assert_eq(lx_lex(src, &t, &err, &where), 0, "%s: %s", src, err.msg);
    return t;
}

static void lex_fails(const char *src, int line, int col, const char *msg_part)
{
    lx_tokens t;
    cl_err err = {0};
    lx_pos where = {0, 0};
    cr_assert_eq(lx_lex(src, &t, &err, &where), -1, "%s lexed", src);
    cr_assert_eq(err.code, CL_ESYNTAX);
    cr_assert_eq(where.line, line, "%s: line %d", src, where.line);
    cr_assert_eq(where.col, col, "%s: col %d", src, where.col);
    cr_assert(strstr(err.msg, msg_part), "%s: '%s' lacks '%s'", src, err.msg, msg_part);
    lx_free(&t);
}

Test(lex, tokens_have_line_and_column)
{
    lx_tokens t = lex_ok("x = conv img f\n  y = 3.5e2 # comment\n");
    lx_kind want[] = {LT_IDENT, LT_ASSIGN, LT_IDENT,  LT_IDENT,   LT_IDENT, LT_NEWLINE,
                      LT_IDENT, LT_ASSIGN, LT_NUMBER, LT_NEWLINE, LT_EOF};
    cr_assert_eq(t.n, sizeof want / sizeof *want);
    for (size_t i = 0; i < t.n; i++) cr_assert_eq(t.v[i].kind, want[i], "token %zu", i);
    cr_assert_eq(t.v[3].line, 1);
    cr_assert_eq(t.v[3].col, 10);
    cr_assert_eq(t.v[6].line, 2);
    cr_assert_eq(t.v[6].col, 3);
    cr_assert_float_eq(t.v[8].num, 350.0, 1e-9);
    cr_assert_str_eq(t.v[2].str, "conv");
    lx_free(&t);
}

Test(lex, columns_count_code_points)
{
    lx_tokens t = lex_ok("print \"h\xc3\xa9llo \xe4\xb8\xad\" x");
    cr_assert_eq(t.v[1].kind, LT_STRING);
    cr_assert_str_eq(t.v[1].str, "h\xc3\xa9llo \xe4\xb8\xad");
    cr_assert_eq(t.v[2].col, 17, "x is the 17th character, got %d", t.v[2].col);
    lx_free(&t);
}

Test(lex, string_escapes)
{
    lx_tokens t = lex_ok("\"a\\n\\t\\\\\\\"b\\u00e9\"");
    cr_assert_str_eq(t.v[0].str, "a\n\t\\\"b\xc3\xa9");
    lx_free(&t);
}

Test(lex, ranges_numbers_and_layer_names)
{
    lx_tokens t = lex_ok("0..13 .5 features.11 layer4.1.conv2 1e-3");
    cr_assert_eq(t.v[0].kind, LT_NUMBER);
    cr_assert_eq(t.v[1].kind, LT_DOTDOT);
    cr_assert_eq(t.v[2].kind, LT_NUMBER);
    cr_assert_float_eq(t.v[2].num, 13, 0);
    cr_assert_float_eq(t.v[3].num, 0.5, 1e-12);
    cr_assert_str_eq(t.v[4].str, "features.11");
    cr_assert_str_eq(t.v[5].str, "layer4.1.conv2");
    cr_assert_float_eq(t.v[6].num, 1e-3, 1e-15);
    lx_free(&t);
}

Test(lex, comparison_operators)
{
    lx_tokens t = lex_ok("== != < <= > >= ~= =");
    lx_kind want[] = {LT_EQ, LT_NE, LT_LT, LT_LE, LT_GT, LT_GE, LT_APPROX, LT_ASSIGN};
    for (size_t i = 0; i < 8; i++) cr_assert_eq(t.v[i].kind, want[i]);
    lx_free(&t);
}

Test(lex, newlines_continue_inside_parentheses_but_split_matrix_rows)
{
    lx_tokens t = lex_ok("(a\nb)\n[1\n2]");
    lx_kind want[] = {LT_LPAREN, LT_IDENT,   LT_IDENT,  LT_RPAREN, LT_NEWLINE, LT_LBRACK,
                      LT_NUMBER, LT_NEWLINE, LT_NUMBER, LT_RBRACK, LT_EOF};
    cr_assert_eq(t.n, sizeof want / sizeof *want);
    for (size_t i = 0; i < t.n; i++) cr_assert_eq(t.v[i].kind, want[i], "token %zu", i);
    lx_free(&t);
}

Test(lex, errors_have_positions)
{
    lex_fails("x = \"abc", 1, 5, "unterminated string");
    lex_fails("a = 1\nb = 2 $ 3", 2, 7, "unexpected character '$'");
    lex_fails("\"\\q\"", 1, 2, "unknown escape");
    lex_fails("x = 3abc", 1, 5, "number must not run into a name");
    lex_fails("a ! b", 1, 3, "'!='");
}

Test(lex, partial_lex_reports_open_string_and_depth)
{
    lx_tokens t;
    cl_err err = {0};
    lx_pos where;
    cr_assert_eq(lx_lex_partial("load \"data/x", &t, &err, &where), 0);
    cr_assert(t.open_string);
    cr_assert_str_eq(t.v[1].str, "data/x");
    lx_free(&t);
    cr_assert_eq(lx_lex_partial("m = [1 2\n", &t, &err, &where), 0);
    cr_assert_eq(t.depth, 1);
    lx_free(&t);
}

Test(lex, utf8_offsets)
{
    const char *s = "a\xc3\xa9\xe4\xb8\xad"
                    "b";
    cr_assert_eq(lx_utf8_count(s, strlen(s)), 4);
    cr_assert_eq(lx_utf8_offset(s, 2), 3);
    cr_assert_eq(lx_utf8_offset(s, 3), 6);
    cr_assert_eq(lx_utf8_offset(s, 99), strlen(s));
}

/* ---- parser --------------------------------------------------------------- */

static ps_program parse_ok(const char *src)
{
    ps_program p;
    cl_err err = {0};
    lx_pos where = {0, 0};
    cr_assert_eq(ps_parse(src, &p, &err, &where), 0, "%s: %s (line %d col %d)", src, err.msg,
                 where.line, where.col);
    return p;
}

static void parse_fails(const char *src, int line, int col, const char *msg_part)
{
    ps_program p;
    cl_err err = {0};
    lx_pos where = {0, 0};
    cr_assert_eq(ps_parse(src, &p, &err, &where), -1, "%s parsed", src);
    cr_assert_eq(err.code, CL_ESYNTAX);
    cr_assert_eq(where.line, line, "%s: line %d (%s)", src, where.line, err.msg);
    cr_assert_eq(where.col, col, "%s: col %d (%s)", src, where.col, err.msg);
    cr_assert(strstr(err.msg, msg_part), "%s: '%s' lacks '%s'", src, err.msg, msg_part);
    ps_free(&p);
}

Test(parse, statements_and_assignments)
{
    ps_program p = parse_ok("img = [1 0; 0 1]\n\n# note\nconv img f stride 2; x = 3");
    cr_assert_eq(p.n, 3);
    cr_assert_str_eq(p.stmt[0].name, "img");
    cr_assert_eq(p.stmt[0].e->kind, PN_MATRIX);
    cr_assert_eq(p.stmt[0].e->rows, 2);
    cr_assert_eq(p.stmt[0].e->cols, 2);
    cr_assert_null(p.stmt[1].name);
    const ps_node *c = p.stmt[1].e;
    cr_assert_eq(c->kind, PN_CMD);
    cr_assert_str_eq(c->str, "conv");
    cr_assert_eq(c->nkid, 4);
    cr_assert_eq(c->kid[2]->kind, PN_NAME);
    cr_assert_str_eq(c->kid[2]->str, "stride");
    cr_assert_eq(c->line, 4);
    cr_assert_eq(c->col, 1);
    cr_assert_str_eq(p.stmt[2].name, "x");
    ps_free(&p);
}

Test(parse, matrix_rows_by_semicolon_or_newline_and_signs)
{
    ps_program p = parse_ok("f = [-1 1 -1\n     -1, 1, -1\n]");
    const ps_node *m = p.stmt[0].e;
    cr_assert_eq(m->rows, 2);
    cr_assert_eq(m->cols, 3);
    cr_assert_eq(m->kid[0]->kind, PN_NEG);
    ps_free(&p);
    p = parse_ok("x = [1 - 1]"); /* inside a matrix a lone '-' is the next number's sign */
    cr_assert_eq(p.stmt[0].e->cols, 2, "got %d columns", p.stmt[0].e->cols);
    ps_free(&p);
}

Test(parse, arithmetic_precedence)
{
    ps_program p = parse_ok("1 + 2 * 3 - 4 / 2");
    const ps_node *e = p.stmt[0].e;
    cr_assert_eq(e->kind, PN_BIN);
    cr_assert_eq(e->op, LT_MINUS);
    cr_assert_eq(e->kid[0]->op, LT_PLUS);
    cr_assert_eq(e->kid[0]->kid[1]->op, LT_STAR);
    ps_free(&p);
}

Test(parse, commands_end_at_operators_and_take_atoms)
{
    ps_program p = parse_ok("s = sum m + max m");
    const ps_node *e = p.stmt[0].e;
    cr_assert_eq(e->kind, PN_BIN);
    cr_assert_eq(e->kid[0]->kind, PN_CMD);
    cr_assert_eq(e->kid[1]->kind, PN_CMD);
    ps_free(&p);
    p = parse_ok("show maximize conv2 filter 0..13 steps 200 lr 0.1");
    e = p.stmt[0].e;
    cr_assert_eq(e->nkid, 8);
    cr_assert_eq(e->kid[3]->kind, PN_RANGE);
    ps_free(&p);
    p = parse_ok("save (conv img f) \"m.npy\"");
    cr_assert_eq(p.stmt[0].e->kid[0]->kind, PN_CMD);
    cr_assert(p.stmt[0].e->kid[0]->paren);
    ps_free(&p);
}

Test(parse, expect_takes_a_whole_comparison)
{
    ps_program p = parse_ok("expect sum m == 3 tolerance 0.1");
    const ps_node *e = p.stmt[0].e;
    cr_assert_eq(e->kind, PN_CMD);
    cr_assert_eq(e->nkid, 3);
    cr_assert_eq(e->kid[0]->kind, PN_BIN);
    cr_assert_eq(e->kid[0]->op, LT_EQ);
    cr_assert_eq(e->kid[0]->kid[0]->kind, PN_CMD);
    ps_free(&p);
}

Test(parse, indexing_only_when_glued_in_arguments)
{
    ps_program p = parse_ok("print m[0,1] [1 2]");
    const ps_node *e = p.stmt[0].e;
    cr_assert_eq(e->nkid, 2);
    cr_assert_eq(e->kid[0]->kind, PN_INDEX);
    cr_assert_eq(e->kid[0]->nkid, 3);
    cr_assert_eq(e->kid[1]->kind, PN_MATRIX);
    ps_free(&p);
    p = parse_ok("x = m[0..2, -1]");
    cr_assert_eq(p.stmt[0].e->kind, PN_INDEX);
    cr_assert_eq(p.stmt[0].e->kid[1]->kind, PN_RANGE);
    ps_free(&p);
}

Test(parse, continuation_inside_brackets)
{
    ps_program p = parse_ok("x = (conv img\n   f stride 1)\ny = 2");
    cr_assert_eq(p.n, 2);
    cr_assert_eq(p.stmt[0].e->nkid, 4);
    ps_free(&p);
}

Test(parse, unknown_words_followed_by_arguments_are_commands)
{
    ps_program p = parse_ok("conb img f");
    cr_assert_eq(p.stmt[0].e->kind, PN_CMD);
    cr_assert_str_eq(p.stmt[0].e->str, "conb");
    ps_free(&p);
}

Test(parse, syntax_errors_have_positions)
{
    parse_fails("x = [1 2; 3]", 1, 11, "row 2 of this matrix has 1 numbers but row 1 has 2");
    parse_fails("x = (1 + 2", 1, 5, "never closed");
    parse_fails("x = [1 2", 1, 5, "never closed");
    parse_fails("a = 1\nb = 2 +", 2, 8, "line ends where a value was expected");
    parse_fails("x = 1)", 1, 6, "unmatched ')'");
    parse_fails("x =", 1, 4, "nothing after '='");
    parse_fails("x = []", 1, 5, "empty matrix");
    parse_fails("1 + 2 = 3", 1, 7, "unexpected '='");
    parse_fails("x = m[0", 1, 6, "never closed");
    parse_fails("print ,", 1, 7, "unexpected ','");
}

Test(parse, deep_nesting_is_an_error_not_a_crash)
{
    static char src[100000];
    memset(src, '-', sizeof src - 2);
    src[sizeof src - 2] = '1';
    ps_program p;
    cl_err err = {0};
    lx_pos where;
    cr_assert_eq(ps_parse(src, &p, &err, &where), -1);
    cr_assert(strstr(err.msg, "nested too deeply"));
    ps_free(&p);
}

Test(parse, very_long_expressions_are_an_error_not_a_crash)
{
    static char src[60000];
    for (size_t i = 0; i + 2 < sizeof src; i += 2) memcpy(src + i, "1+", 2);
    src[sizeof src - 2] = '1';
    ps_program p;
    cl_err err = {0};
    lx_pos where;
    cr_assert_eq(ps_parse(src, &p, &err, &where), -1);
    cr_assert(strstr(err.msg, "expression too long"), "%s", err.msg);
    ps_free(&p);
}
