/* parse — the syntax tree of a lens cell.
 *
 * A cell is a list of statements, one per line (or separated by ';'):
 * `name = expression` or a bare expression.  A command is a verb followed by
 * argument atoms; which atoms are options is decided later from the command
 * table (kernel/lang/commands.h), because `layer` is an option of gradcam but
 * may be a plain word elsewhere.
 *
 * Ownership: ps_parse fills a program that owns its nodes, tokens and
 * strings; release it with ps_free.  Nodes stay valid until then.
 */
#ifndef CNNLENS_LANG_PARSE_H
#define CNNLENS_LANG_PARSE_H

#include <stddef.h>

#include "engine/err.h"
#include "kernel/lang/lex.h"

typedef enum {
    PN_NUM,
    PN_STR,
    PN_NAME,   /* a variable, or a bare word (layer name, dataset, option name) */
    PN_MATRIX, /* rows x cols element expressions, row-major */
    PN_RANGE,  /* kid[0]..kid[1] */
    PN_BIN,    /* kid[0] op kid[1]; op is an lx_kind (arithmetic or comparison) */
    PN_NEG,
    PN_INDEX, /* kid[0][kid[1], ...] */
    PN_CMD,   /* verb str, arguments kid[0..nkid) */
} ps_kind;

typedef struct ps_node ps_node;
struct ps_node {
    ps_kind kind;
    int line, col;   /* of the first token (the verb, for a command) */
    size_t off, end; /* byte span in the source */
    int paren;       /* written inside ( ) */
    int op;
    int opline, opcol; /* PN_BIN: where the operator is */
    double num;
    const char *str;
    ps_node **kid;
    int nkid;
    int rows, cols; /* PN_MATRIX; cols = -1 when rows differ in length (a list of
                     * named rows such as [conv 25 3; maxpool 2]) */
    int *rowlen;    /* then: each row's length */
    int depth;      /* of the expression tree below (evaluation recurses that deep) */
};

typedef struct ps_stmt {
    const char *name; /* non-NULL: assignment to this variable */
    int line, col;    /* of the statement's first token */
    ps_node *e;
} ps_stmt;

typedef struct ps_arena ps_arena;

typedef struct ps_program {
    ps_stmt *stmt;
    int n, cap;
    lx_tokens toks;
    ps_arena *arena;
    const char *src; /* borrowed */
} ps_program;

/* Parses src.  On a syntax error returns -1 with err (CL_ESYNTAX) and *where;
 * the program must still be freed. */
int ps_parse(const char *src, ps_program *prog, cl_err *err, lx_pos *where);
void ps_free(ps_program *prog);

/* Is `name` a verb of the command table? (the parser asks, to know where
 * commands start). */
int ps_is_verb(const char *name);

#endif
