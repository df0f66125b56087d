#include "kernel/lang/parse.h"

#include <stdlib.h>
#include <string.h>

#include "engine/limits.h"
#include "kernel/lang/commands.h"

struct ps_arena {
    ps_arena *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
};

typedef struct parser {
    ps_program *prog;
    lx_token *t;
    size_t i, n;
    int nest;
    size_t stmt_first; /* token index where the current statement's value starts */
    cl_err *err;
    lx_pos *where;
} parser;

static void *arena_alloc(ps_program *p, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    ps_arena *a = p->arena;
    if (!a || a->used + n > a->cap) {
        size_t cap = n > 8192 ? n : 8192;
        ps_arena *b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a;
        b->used = 0;
        b->cap = cap;
        p->arena = b;
        a = b;
    }
    void *r = a->mem + a->used;
    a->used += n;
    memset(r, 0, n);
    return r;
}

int ps_is_verb(const char *name)
{
    return lc_find(name) != NULL;
}

static lx_token *cur(parser *P)
{
    return &P->t[P->i];
}

static lx_token *peek(parser *P, size_t k)
{
    size_t j = P->i + k;
    return &P->t[j < P->n ? j : P->n - 1];
}

static int fail_at(parser *P, const lx_token *t, const char *fmt, const char *arg)
{
    if (P->where) {
        P->where->line = t->line;
        P->where->col = t->col;
    }
    return cl_err_set(P->err, CL_ESYNTAX, fmt, arg);
}

/* A limit of engine/limits.h reached at token t (the error is a LimitError). */
static int limit_at(parser *P, const lx_token *t, lim_id id, double amount, const char *what)
{
    fail_at(P, t, "%s", what);
    return lim_check(id, amount, what, P->err);
}

/* The top level counts as depth 0, so the depth is the number of enclosing
 * brackets and signs, as the lexer counts brackets. */
static int nest_in(parser *P, const lx_token *t)
{
    if (++P->nest <= lim_get(LIM_DEPTH) + 1) return 0;
    return limit_at(P, t, LIM_DEPTH, P->nest - 1.0, "expression nested too deeply: the depth");
}

static ps_node *node(parser *P, ps_kind k, const lx_token *t)
{
    ps_node *n = arena_alloc(P->prog, sizeof *n);
    if (!n) {
        cl_err_set(P->err, CL_ENOMEM, "out of memory");
        return NULL;
    }
    n->kind = k;
    n->line = t->line;
    n->col = t->col;
    n->off = t->off;
    n->end = t->off + t->len;
    return n;
}

/* A growable list of child nodes, copied into the arena when done. */
typedef struct kids {
    ps_node **v;
    int n, cap;
} kids;

static int kids_push(parser *P, kids *k, ps_node *x)
{
    if (k->n == k->cap) {
        int cap = k->cap ? k->cap * 2 : 8;
        ps_node **v = realloc(k->v, (size_t)cap * sizeof *v);
        if (!v) return cl_err_set(P->err, CL_ENOMEM, "out of memory");
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n++] = x;
    return 0;
}

static int kids_move(parser *P, kids *k, ps_node *to)
{
    to->nkid = k->n;
    if (k->n) {
        to->kid = arena_alloc(P->prog, (size_t)k->n * sizeof *to->kid);
        if (!to->kid) {
            free(k->v);
            return cl_err_set(P->err, CL_ENOMEM, "out of memory");
        }
        memcpy(to->kid, k->v, (size_t)k->n * sizeof *to->kid);
    }
    free(k->v);
    return 0;
}

static ps_node *parse_expr(parser *P);
static ps_node *parse_atom(parser *P);

static int is_cmp(int k)
{
    return k == LT_EQ || k == LT_NE || k == LT_LT || k == LT_LE || k == LT_GT || k == LT_GE ||
           k == LT_APPROX;
}

/* A '-' written right against what follows ("-1", "-x") after a space: in a
 * list of atoms it is a sign, not a subtraction ("[1 -1]", "stride -1"). */
static int glued_minus(parser *P)
{
    lx_token *t = cur(P), *n = peek(P, 1);
    return t->kind == LT_MINUS && t->space_before && !n->space_before &&
           (n->kind == LT_NUMBER || n->kind == LT_IDENT || n->kind == LT_LPAREN);
}

static int starts_atom(parser *P)
{
    switch (cur(P)->kind) {
    case LT_NUMBER:
    case LT_STRING:
    case LT_IDENT:
    case LT_LBRACK:
    case LT_LPAREN:
        return 1;
    case LT_MINUS:
        return glued_minus(P);
    default:
        return 0;
    }
}

static void span_to(ps_node *n, const lx_token *last)
{
    if (last->off + last->len > n->end) n->end = last->off + last->len;
}

/* Ends a row of a matrix literal: remembers its length and whether it
 * starts with a name (a list like [conv 25 3; maxpool 2] may be ragged). */
static int end_row(parser *P, int **lens, int *rows, int start, int n, const ps_node *const *kid,
                   int *named)
{
    int *d = realloc(*lens, (size_t)(*rows + 1) * sizeof *d);
    if (!d) return cl_err_set(P->err, CL_ENOMEM, "out of memory");
    *lens = d;
    d[(*rows)++] = n - start;
    if (kid[start]->kind != PN_NAME || kid[start]->paren) *named = 0;
    return 0;
}

static ps_node *parse_matrix(parser *P)
{
    lx_token *open = cur(P);
    ps_node *m = node(P, PN_MATRIX, open);
    if (!m) return NULL;
    P->i++;
    kids k = {0};
    int rows = 0, in_row = 0, start = 0, named = 1, *lens = NULL;
    lx_token *row_tok[2] = {NULL, NULL}; /* the first row that differs in length */
    lx_token *cur_row = NULL;
    for (;;) {
        lx_token *t = cur(P);
        if (t->kind == LT_RBRACK) break;
        if (t->kind == LT_EOF) {
            free(k.v);
            free(lens);
            fail_at(P, open, "this '[' is never closed%s", "");
            return NULL;
        }
        if (t->kind == LT_SEMI || t->kind == LT_NEWLINE) {
            if (in_row) {
                if (end_row(P, &lens, &rows, start, k.n, (const ps_node *const *)k.v, &named) < 0)
                    goto fail;
                if (lens[rows - 1] != lens[0] && !row_tok[0]) row_tok[0] = cur_row;
                in_row = 0;
            }
            P->i++;
            continue;
        }
        if (t->kind == LT_COMMA && in_row) {
            P->i++;
            continue;
        }
        if (!starts_atom(P) && t->kind != LT_MINUS) {
            fail_at(
                P, t,
                "unexpected %s inside a matrix (write numbers separated by spaces, rows by ';')",
                lx_kind_name(t->kind));
            goto fail;
        }
        if (!in_row) {
            cur_row = t;
            start = k.n;
        }
        in_row = 1;
        if (k.n >= lim_get(LIM_MATRIX_ELEMENTS)) {
            limit_at(P, t, LIM_MATRIX_ELEMENTS, k.n + 1.0,
                     "the number of elements of this matrix literal (counted so far)");
            goto fail;
        }
        ps_node *e = t->kind == LT_MINUS ? NULL : parse_atom(P);
        if (t->kind == LT_MINUS) { /* "[- 1]": a lone sign still negates */
            ps_node *neg = node(P, PN_NEG, t);
            P->i++;
            if (neg && (neg->kid = arena_alloc(P->prog, sizeof *neg->kid)) &&
                (neg->kid[0] = parse_atom(P))) {
                neg->nkid = 1;
                e = neg;
            }
        }
        if (!e || kids_push(P, &k, e) < 0) goto fail;
    }
    if (in_row) {
        if (end_row(P, &lens, &rows, start, k.n, (const ps_node *const *)k.v, &named) < 0)
            goto fail;
        if (lens[rows - 1] != lens[0] && !row_tok[0]) row_tok[0] = cur_row;
    }
    if (!rows) {
        fail_at(P, open, "empty matrix: write its numbers, e.g. [1 0; 0 1]%s", "");
        goto fail;
    }
    if (row_tok[0] && !named) {
        int r = 0;
        while (lens[r] == lens[0]) r++;
        char msg[160];
        snprintf(msg, sizeof msg,
                 "row %d of this matrix has %d numbers but row 1 has %d: every row needs the "
                 "same length",
                 r + 1, lens[r], lens[0]);
        fail_at(P, row_tok[0], "%s", msg);
        goto fail;
    }
    span_to(m, cur(P));
    P->i++;
    m->rows = rows;
    m->cols = row_tok[0] ? -1 : lens[0];
    if (row_tok[0]) { /* ragged: keep each row's length */
        if (!(m->rowlen = arena_alloc(P->prog, (size_t)rows * sizeof *m->rowlen))) goto fail;
        memcpy(m->rowlen, lens, (size_t)rows * sizeof *lens);
    }
    free(lens);
    if (kids_move(P, &k, m) < 0) return NULL;
    return m;
fail:
    free(k.v);
    free(lens);
    return NULL;
}

static ps_node *parse_command(parser *P, lx_token *verb);

/* primary: number, string, name, command, matrix or ( expression ). In
 * `atoms` mode (command arguments, matrix elements) a verb is a plain word. */
static ps_node *parse_primary(parser *P, int atoms)
{
    lx_token *t = cur(P);
    ps_node *n;
    switch (t->kind) {
    case LT_NUMBER:
        if (!(n = node(P, PN_NUM, t))) return NULL;
        n->num = t->num;
        P->i++;
        return n;
    case LT_STRING:
        if (!(n = node(P, PN_STR, t))) return NULL;
        n->str = t->str;
        P->i++;
        return n;
    case LT_IDENT: {
        if (!atoms) {
            lx_token *nx = peek(P, 1);
            int arg_follows = nx->kind == LT_NUMBER || nx->kind == LT_STRING ||
                              nx->kind == LT_IDENT || (nx->kind == LT_LPAREN && nx->space_before);
            /* An unknown word followed by arguments is still a command, so that
             * the evaluator can say which verb was meant. */
            if (ps_is_verb(t->str) || (arg_follows && P->i == P->stmt_first))
                return parse_command(P, t);
        }
        if (!(n = node(P, PN_NAME, t))) return NULL;
        n->str = t->str;
        P->i++;
        return n;
    }
    case LT_LBRACK:
        return parse_matrix(P);
    case LT_LPAREN: {
        P->i++;
        while (cur(P)->kind == LT_NEWLINE) P->i++;
        n = parse_expr(P);
        if (!n) return NULL;
        while (cur(P)->kind == LT_NEWLINE) P->i++;
        if (cur(P)->kind != LT_RPAREN) {
            if (cur(P)->kind == LT_EOF)
                fail_at(P, t, "this '(' is never closed%s", "");
            else
                fail_at(P, cur(P), "expected ')' here, found %s", lx_kind_name(cur(P)->kind));
            return NULL;
        }
        n->paren = 1;
        n->off = t->off;
        span_to(n, cur(P));
        P->i++;
        return n;
    }
    case LT_EOF:
        fail_at(P, t, "the line ends where a value was expected%s", "");
        return NULL;
    default:
        fail_at(P, t, "expected a value here, found %s", lx_kind_name(t->kind));
        return NULL;
    }
}

static ps_node *parse_postfix(parser *P, int atoms)
{
    if (nest_in(P, cur(P))) return NULL;
    ps_node *e = parse_primary(P, atoms);
    /* "m[0]" is an index; "m [0]" is m followed by a matrix (print m [1 2]). */
    while (e && cur(P)->kind == LT_LBRACK && !cur(P)->space_before && e->kind != PN_CMD) {
        lx_token *open = cur(P);
        ps_node *ix = node(P, PN_INDEX, open);
        if (!ix) return NULL;
        ix->off = e->off;
        ix->line = e->line;
        ix->col = e->col;
        P->i++;
        kids k = {0};
        if (kids_push(P, &k, e) < 0) return NULL;
        for (;;) {
            while (cur(P)->kind == LT_NEWLINE) P->i++;
            ps_node *i = parse_expr(P);
            if (!i || kids_push(P, &k, i) < 0) {
                free(k.v);
                return NULL;
            }
            while (cur(P)->kind == LT_NEWLINE) P->i++;
            if (cur(P)->kind == LT_COMMA) {
                P->i++;
                continue;
            }
            if (cur(P)->kind == LT_RBRACK) break;
            free(k.v);
            if (cur(P)->kind == LT_EOF)
                fail_at(P, open, "this '[' is never closed%s", "");
            else
                fail_at(P, cur(P), "expected ',' or ']' in an index, found %s",
                        lx_kind_name(cur(P)->kind));
            return NULL;
        }
        span_to(ix, cur(P));
        P->i++;
        if (kids_move(P, &k, ix) < 0) return NULL;
        e = ix;
    }
    P->nest--;
    return e;
}

static ps_node *binary(parser *P, int op, lx_token *t, ps_node *a, ps_node *b)
{
    if (!a || !b) return NULL;
    ps_node *n = node(P, PN_BIN, t);
    if (!n || !(n->kid = arena_alloc(P->prog, 2 * sizeof *n->kid))) return NULL;
    n->op = op;
    n->opline = t->line;
    n->opcol = t->col;
    n->kid[0] = a;
    n->kid[1] = b;
    n->nkid = 2;
    n->depth = 1 + (a->depth > b->depth ? a->depth : b->depth);
    if (n->depth > lim_get(LIM_DEPTH)) {
        limit_at(P, t, LIM_DEPTH, n->depth,
                 "expression too long (split it over several lines with variables): its depth");
        return NULL;
    }
    n->line = a->line;
    n->col = a->col;
    n->off = a->off;
    n->end = b->end;
    return n;
}

static ps_node *parse_unary(parser *P)
{
    lx_token *t = cur(P);
    if (t->kind == LT_MINUS) {
        if (nest_in(P, t)) return NULL;
        P->i++;
        ps_node *n = node(P, PN_NEG, t), *x = parse_unary(P);
        P->nest--;
        if (!n || !x || !(n->kid = arena_alloc(P->prog, sizeof *n->kid))) return NULL;
        n->kid[0] = x;
        n->nkid = 1;
        n->end = x->end;
        return n;
    }
    return parse_postfix(P, 0);
}

static ps_node *parse_mul(parser *P)
{
    ps_node *a = parse_unary(P);
    while (a && (cur(P)->kind == LT_STAR || cur(P)->kind == LT_SLASH)) {
        lx_token *t = cur(P);
        P->i++;
        a = binary(P, t->kind, t, a, parse_unary(P));
    }
    return a;
}

static ps_node *parse_add(parser *P)
{
    ps_node *a = parse_mul(P);
    while (a && (cur(P)->kind == LT_PLUS || cur(P)->kind == LT_MINUS)) {
        lx_token *t = cur(P);
        P->i++;
        a = binary(P, t->kind, t, a, parse_mul(P));
    }
    return a;
}

static ps_node *range_of(parser *P, ps_node *a, ps_node *(*next)(parser *))
{
    if (!a || cur(P)->kind != LT_DOTDOT) return a;
    lx_token *t = cur(P);
    P->i++;
    ps_node *b = next(P);
    ps_node *r = binary(P, LT_DOTDOT, t, a, b);
    if (r) r->kind = PN_RANGE;
    return r;
}

static ps_node *parse_range(parser *P)
{
    return range_of(P, parse_add(P), parse_add);
}

static ps_node *parse_expr(parser *P)
{
    ps_node *a = parse_range(P);
    if (a && is_cmp(cur(P)->kind)) {
        lx_token *t = cur(P);
        P->i++;
        a = binary(P, t->kind, t, a, parse_range(P));
    }
    return a;
}

static ps_node *signed_postfix(parser *P)
{
    if (cur(P)->kind != LT_MINUS) return parse_postfix(P, 1);
    lx_token *t = cur(P);
    P->i++;
    ps_node *n = node(P, PN_NEG, t), *x = parse_postfix(P, 1);
    if (!n || !x || !(n->kid = arena_alloc(P->prog, sizeof *n->kid))) return NULL;
    n->kid[0] = x;
    n->nkid = 1;
    n->end = x->end;
    return n;
}

/* atom: [-]postfix [.. [-]postfix] — one command argument or matrix element. */
static ps_node *parse_atom(parser *P)
{
    return range_of(P, signed_postfix(P), signed_postfix);
}

static ps_node *parse_command(parser *P, lx_token *verb)
{
    ps_node *c = node(P, PN_CMD, verb);
    if (!c) return NULL;
    c->str = verb->str;
    P->i++;
    kids k = {0};
    /* `expect top1 x == 331`: the verb's first argument is a whole comparison. */
    const lc_verb *v = lc_find(verb->str);
    /* `print "sum:" sum m + 1`: each argument a whole expression. */
    int exprs = v && v->npos > 0 && (v->pos[0].types & LA_EXPR);
    int all = exprs && (v->pos[0].types & LA_REST);
    while (exprs && starts_atom(P)) {
        ps_node *e = parse_expr(P);
        if (!e || kids_push(P, &k, e) < 0) {
            free(k.v);
            return NULL;
        }
        if (!all) break;
    }
    while (starts_atom(P)) {
        ps_node *a = parse_atom(P);
        if (!a || kids_push(P, &k, a) < 0) {
            free(k.v);
            return NULL;
        }
    }
    if (k.n) c->end = k.v[k.n - 1]->end;
    if (kids_move(P, &k, c) < 0) return NULL;
    return c;
}

static int push_stmt(parser *P, ps_stmt s)
{
    ps_program *p = P->prog;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        ps_stmt *v = realloc(p->stmt, (size_t)cap * sizeof *v);
        if (!v) return cl_err_set(P->err, CL_ENOMEM, "out of memory");
        p->stmt = v;
        p->cap = cap;
    }
    p->stmt[p->n++] = s;
    return 0;
}

static int parse_stmt(parser *P)
{
    lx_token *t = cur(P);
    ps_stmt s = {.line = t->line, .col = t->col};
    if (t->kind == LT_IDENT && peek(P, 1)->kind == LT_ASSIGN) {
        s.name = t->str;
        P->i += 2;
        if (cur(P)->kind == LT_NEWLINE || cur(P)->kind == LT_EOF || cur(P)->kind == LT_SEMI)
            return fail_at(P, cur(P), "nothing after '=': write the value to store in '%s'",
                           t->str);
    }
    P->stmt_first = P->i;
    s.e = parse_expr(P);
    if (!s.e) return -1;
    lx_token *e = cur(P);
    if (e->kind != LT_NEWLINE && e->kind != LT_EOF && e->kind != LT_SEMI) {
        if (e->kind == LT_ASSIGN)
            return fail_at(
                P, e, "unexpected '=' (to compare, write '=='; to store, write name = value)%s",
                "");
        if (e->kind == LT_RPAREN || e->kind == LT_RBRACK)
            return fail_at(P, e, "unmatched %s", lx_kind_name(e->kind));
        return fail_at(P, e, "unexpected %s here", lx_kind_name(e->kind));
    }
    return push_stmt(P, s);
}

int ps_parse(const char *src, ps_program *prog, cl_err *err, lx_pos *where)
{
    memset(prog, 0, sizeof *prog);
    prog->src = src;
    if (lx_lex(src, &prog->toks, err, where) < 0) return -1;
    parser P = {.prog = prog, .t = prog->toks.v, .n = prog->toks.n, .err = err, .where = where};
    for (;;) {
        lx_token *t = cur(&P);
        if (t->kind == LT_EOF) return 0;
        if (t->kind == LT_NEWLINE || t->kind == LT_SEMI) {
            P.i++;
            continue;
        }
        if (t->kind == LT_RPAREN || t->kind == LT_RBRACK)
            return fail_at(&P, t, "unmatched %s", lx_kind_name(t->kind));
        if (parse_stmt(&P) < 0) return -1;
    }
}

void ps_free(ps_program *prog)
{
    ps_arena *a = prog->arena;
    while (a) {
        ps_arena *n = a->next;
        free(a);
        a = n;
    }
    free(prog->stmt);
    lx_free(&prog->toks);
    memset(prog, 0, sizeof *prog);
}
