/* lex — tokens of the lens language, each with its line and column.
 *
 * Columns count Unicode code points from 1 (what a student sees in the
 * editor), offsets count bytes from the start of the cell.  Newlines inside
 * `(` are skipped (continuation); inside `[` they are kept, because a new line
 * there starts a new matrix row.
 *
 * Ownership: lx_lex fills a token list that owns the decoded strings; release
 * it with lx_free.  Token `text` points into the caller's source.
 */
#ifndef CNNLENS_LANG_LEX_H
#define CNNLENS_LANG_LEX_H

#include <stddef.h>

#include "engine/err.h"

typedef enum {
    LT_EOF = 0,
    LT_NEWLINE,
    LT_IDENT,
    LT_NUMBER,
    LT_STRING,
    LT_LBRACK,
    LT_RBRACK,
    LT_LPAREN,
    LT_RPAREN,
    LT_COMMA,
    LT_SEMI,
    LT_ASSIGN,
    LT_PLUS,
    LT_MINUS,
    LT_STAR,
    LT_SLASH,
    LT_DOTDOT,
    LT_EQ,
    LT_NE,
    LT_LT,
    LT_LE,
    LT_GT,
    LT_GE,
    LT_APPROX,
} lx_kind;

typedef struct lx_token {
    lx_kind kind;
    int line, col;    /* 1-based; col in code points */
    size_t off, len;  /* bytes of the token in the source */
    int space_before; /* whitespace (or line start) right before the token */
    double num;       /* LT_NUMBER */
    char *str;        /* LT_STRING (decoded) and LT_IDENT (copy); owned by the list */
} lx_token;

typedef struct lx_tokens {
    lx_token *v;
    size_t n, cap;
    /* Set by a lenient lex (lx_lex_partial): the source ends inside an open
     * string, and the bracket depth at the end. */
    int open_string;
    int depth;
} lx_tokens;

/* Where an error happened (line 0: no position). */
typedef struct lx_pos {
    int line, col;
} lx_pos;

/* Lexes src (NUL-terminated UTF-8).  On a syntax error returns -1 with err
 * (CL_ESYNTAX) and *where set; the partial token list is still freed by lx_free. */
int lx_lex(const char *src, lx_tokens *out, cl_err *err, lx_pos *where);
/* Same, but an unterminated string at the end is not an error: it ends the
 * list with open_string = 1 (used by completion and is_complete). */
int lx_lex_partial(const char *src, lx_tokens *out, cl_err *err, lx_pos *where);
void lx_free(lx_tokens *t);

/* Printable name of a token kind for messages, e.g. "']'". */
const char *lx_kind_name(lx_kind k);

/* UTF-8 helpers: code points in the first `bytes` bytes of s, and the byte
 * offset of code point `cp` (clamped to the string's end). */
size_t lx_utf8_count(const char *s, size_t bytes);
size_t lx_utf8_offset(const char *s, size_t cp);

/* Copies source line `line` (1-based) of src into buf without its newline. */
void lx_source_line(const char *src, int line, char *buf, size_t n);

#endif
