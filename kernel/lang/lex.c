#include "kernel/lang/lex.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/limits.h"

/* The bracket stack holds as many as the depth limit may ever allow. */
#define LX_MAXDEPTH 2000

typedef struct lexer {
    const char *src;
    size_t i;
    int line;
    size_t line_start; /* byte offset where the current line begins */
    size_t col_off;    /* a byte offset on the current line and its column: columns */
    int col;           /* are counted on from there, so a long line stays linear */
    lx_tokens *out;
    char stack[LX_MAXDEPTH];
    int depth;
    int lenient;
    cl_err *err;
    lx_pos *where;
} lexer;

size_t lx_utf8_count(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes && s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) n++;
    return n;
}

size_t lx_utf8_offset(const char *s, size_t cp)
{
    size_t i = 0, n = 0;
    while (s[i]) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (n == cp) return i;
            n++;
        }
        i++;
    }
    return i;
}

void lx_source_line(const char *src, int line, char *buf, size_t n)
{
    const char *p = src;
    for (int l = 1; l < line && *p; p++)
        if (*p == '\n') l++;
    size_t k = 0;
    while (p[k] && p[k] != '\n' && p[k] != '\r' && k + 1 < n) {
        buf[k] = p[k];
        k++;
    }
    buf[k] = '\0';
}

const char *lx_kind_name(lx_kind k)
{
    static const char *names[] = {
        "end of input", "end of line", "a name", "a number", "a string", "'['", "']'",  "'('",
        "')'",          "','",         "';'",    "'='",      "'+'",      "'-'", "'*'",  "'/'",
        "'..'",         "'=='",        "'!='",   "'<'",      "'<='",     "'>'", "'>='", "'~='",
    };
    return (unsigned)k < sizeof names / sizeof *names ? names[k] : "?";
}

static int col_of(lexer *L, size_t off)
{
    if (!L->col || L->col_off < L->line_start || off < L->col_off) {
        L->col_off = L->line_start;
        L->col = 1;
    }
    L->col += (int)lx_utf8_count(L->src + L->col_off, off - L->col_off);
    L->col_off = off;
    return L->col;
}

static int fail(lexer *L, size_t off, const char *msg)
{
    if (L->where) {
        L->where->line = L->line;
        L->where->col = col_of(L, off);
    }
    return cl_err_set(L->err, CL_ESYNTAX, "%s", msg);
}

static lx_token *push(lexer *L, lx_kind kind, size_t off, size_t len)
{
    lx_tokens *t = L->out;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        lx_token *v = realloc(t->v, cap * sizeof *v);
        if (!v) return NULL;
        t->v = v;
        t->cap = cap;
    }
    lx_token *tok = &t->v[t->n++];
    memset(tok, 0, sizeof *tok);
    tok->kind = kind;
    tok->off = off;
    tok->len = len;
    tok->line = L->line;
    tok->col = col_of(L, off);
    tok->space_before =
        off == 0 || L->src[off - 1] == ' ' || L->src[off - 1] == '\t' || L->src[off - 1] == '\n';
    return tok;
}

static int is_ident_start(unsigned char c)
{
    return isalpha(c) || c == '_' || c >= 0x80;
}

static int is_ident_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c >= 0x80;
}

static int lex_number(lexer *L)
{
    const char *s = L->src;
    size_t b = L->i, i = L->i;
    while (isdigit((unsigned char)s[i])) i++;
    /* "0..13" is a range: a dot followed by a dot is not a decimal point. */
    if (s[i] == '.' && s[i + 1] != '.') {
        i++;
        while (isdigit((unsigned char)s[i])) i++;
    }
    if ((s[i] == 'e' || s[i] == 'E') &&
        (isdigit((unsigned char)s[i + 1]) ||
         ((s[i + 1] == '+' || s[i + 1] == '-') && isdigit((unsigned char)s[i + 2])))) {
        i += 2;
        while (isdigit((unsigned char)s[i])) i++;
    }
    if (is_ident_start((unsigned char)s[i]))
        return fail(L, b, "a number must not run into a name (put a space between them)");
    char buf[64];
    size_t n = i - b < sizeof buf - 1 ? i - b : sizeof buf - 1;
    memcpy(buf, s + b, n);
    buf[n] = '\0';
    lx_token *t = push(L, LT_NUMBER, b, i - b);
    if (!t) return cl_err_set(L->err, CL_ENOMEM, "out of memory");
    t->num = strtod(buf, NULL);
    L->i = i;
    return 0;
}

static void put_utf8(char *d, size_t *k, unsigned long cp)
{
    if (cp < 0x80) {
        d[(*k)++] = (char)cp;
    } else if (cp < 0x800) {
        d[(*k)++] = (char)(0xC0 | (cp >> 6));
        d[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        d[(*k)++] = (char)(0xE0 | (cp >> 12));
        d[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        d[(*k)++] = (char)(0xF0 | (cp >> 18));
        d[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        d[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[(*k)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int lex_string(lexer *L)
{
    const char *s = L->src;
    size_t b = L->i, i = L->i + 1;
    size_t end = i;
    while (s[end] && s[end] != '"' && s[end] != '\n') end += (s[end] == '\\' && s[end + 1]) ? 2 : 1;
    if (s[end] != '"') {
        if (L->lenient && !s[end]) {
            L->out->open_string = 1;
            lx_token *t = push(L, LT_STRING, b, end - b);
            if (!t) return cl_err_set(L->err, CL_ENOMEM, "out of memory");
            t->str = strndup(s + i, end - i);
            L->i = end;
            return t->str ? 0 : cl_err_set(L->err, CL_ENOMEM, "out of memory");
        }
        return fail(L, b, "unterminated string: a string must end with \" on the same line");
    }
    char *d = malloc(end - i + 1);
    if (!d) return cl_err_set(L->err, CL_ENOMEM, "out of memory");
    size_t k = 0;
    while (i < end) {
        if (s[i] != '\\') {
            d[k++] = s[i++];
            continue;
        }
        char c = s[i + 1];
        size_t at = i;
        i += 2;
        switch (c) {
        case 'n':
            d[k++] = '\n';
            break;
        case 't':
            d[k++] = '\t';
            break;
        case 'r':
            d[k++] = '\r';
            break;
        case '0':
            d[k++] = '\0';
            break;
        case '\\':
            d[k++] = '\\';
            break;
        case '"':
            d[k++] = '"';
            break;
        case 'u': {
            unsigned long cp = 0;
            int nd = 0;
            while (nd < 4 && isxdigit((unsigned char)s[i])) {
                char h = s[i++];
                cp = cp * 16 +
                     (unsigned long)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
                nd++;
            }
            if (nd != 4 || (cp >= 0xD800 && cp <= 0xDFFF)) {
                free(d);
                return fail(L, at, "bad escape: \\u needs four hex digits, e.g. \\u00e9");
            }
            put_utf8(d, &k, cp);
            break;
        }
        default:
            free(d);
            return fail(L, at, "unknown escape in string (use \\n, \\t, \\\\, \\\" or \\uXXXX)");
        }
    }
    d[k] = '\0';
    if (k > (size_t)lim_get(LIM_STRING_BYTES)) {
        free(d);
        fail(L, b, "string too long");
        return lim_check(LIM_STRING_BYTES, (double)k, "this string", L->err);
    }
    lx_token *t = push(L, LT_STRING, b, end + 1 - b);
    if (!t) {
        free(d);
        return cl_err_set(L->err, CL_ENOMEM, "out of memory");
    }
    t->str = d;
    L->i = end + 1;
    return 0;
}

static int lex_ident(lexer *L)
{
    const char *s = L->src;
    size_t b = L->i, i = L->i;
    /* Layer names carry dots ("features.11", "layer4.1.conv2"); ".." never does. */
    while (is_ident_char((unsigned char)s[i]) ||
           (s[i] == '.' && is_ident_char((unsigned char)s[i + 1])))
        i++;
    /* "gradcam++" is one word (a method name), "x++" nothing else. */
    if (s[i] == '+' && s[i + 1] == '+' && !is_ident_char((unsigned char)s[i + 2])) i += 2;
    lx_token *t = push(L, LT_IDENT, b, i - b);
    if (!t || !(t->str = strndup(s + b, i - b)))
        return cl_err_set(L->err, CL_ENOMEM, "out of memory");
    L->i = i;
    return 0;
}

static int open_bracket(lexer *L, char c)
{
    if (L->depth >= LX_MAXDEPTH || L->depth >= lim_get(LIM_DEPTH)) {
        fail(L, L->i, "brackets nested too deeply");
        return lim_check(LIM_DEPTH, L->depth + 1.0, "brackets nested too deeply: the depth",
                         L->err);
    }
    L->stack[L->depth++] = c;
    return 0;
}

static int lex_op(lexer *L)
{
    const char *s = L->src;
    size_t b = L->i;
    char c = s[b], n = s[b + 1];
    lx_kind k;
    size_t len = 1;
    switch (c) {
    case '[':
        k = LT_LBRACK;
        break;
    case ']':
        k = LT_RBRACK;
        break;
    case '(':
        k = LT_LPAREN;
        break;
    case ')':
        k = LT_RPAREN;
        break;
    case ',':
        k = LT_COMMA;
        break;
    case ';':
        k = LT_SEMI;
        break;
    case '+':
        k = LT_PLUS;
        break;
    case '-':
        k = LT_MINUS;
        break;
    case '*':
        k = LT_STAR;
        break;
    case '/':
        k = LT_SLASH;
        break;
    case '=':
        k = n == '=' ? LT_EQ : LT_ASSIGN;
        break;
    case '<':
        k = n == '=' ? LT_LE : LT_LT;
        break;
    case '>':
        k = n == '=' ? LT_GE : LT_GT;
        break;
    case '!':
        if (n != '=') return fail(L, b, "unexpected '!' (did you mean '!='?)");
        k = LT_NE;
        break;
    case '~':
        if (n != '=') return fail(L, b, "unexpected '~' (did you mean '~='?)");
        k = LT_APPROX;
        break;
    case '.':
        if (n != '.') return fail(L, b, "unexpected '.'");
        k = LT_DOTDOT;
        break;
    default: {
        char msg[64];
        if ((unsigned char)c < 0x20 || c == 0x7f)
            snprintf(msg, sizeof msg, "unexpected control character (code %d)", c);
        else
            snprintf(msg, sizeof msg, "unexpected character '%c'", c);
        return fail(L, b, msg);
    }
    }
    if (k == LT_EQ || k == LT_LE || k == LT_GE || k == LT_NE || k == LT_APPROX || k == LT_DOTDOT)
        len = 2;
    if (k == LT_LBRACK || k == LT_LPAREN) {
        if (open_bracket(L, c) < 0) return -1;
    } else if (k == LT_RBRACK || k == LT_RPAREN) {
        if (L->depth > 0) L->depth--; /* the parser reports mismatches with context */
    }
    if (!push(L, k, b, len)) return cl_err_set(L->err, CL_ENOMEM, "out of memory");
    L->i = b + len;
    return 0;
}

static int lex_all(lexer *L)
{
    const char *s = L->src;
    for (;;) {
        char c = s[L->i];
        if (c == '\0') break;
        if (c == ' ' || c == '\t' || c == '\r') {
            L->i++;
        } else if (c == '#') {
            while (s[L->i] && s[L->i] != '\n') L->i++;
        } else if (c == '\n') {
            /* Inside ( a new line only continues; inside [ it separates rows. */
            if (L->depth == 0 || L->stack[L->depth - 1] == '[')
                if (!push(L, LT_NEWLINE, L->i, 1))
                    return cl_err_set(L->err, CL_ENOMEM, "out of memory");
            L->i++;
            L->line++;
            L->line_start = L->i;
        } else if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)s[L->i + 1]))) {
            if (lex_number(L) < 0) return -1;
        } else if (c == '"') {
            if (lex_string(L) < 0) return -1;
        } else if (is_ident_start((unsigned char)c)) {
            if (lex_ident(L) < 0) return -1;
        } else if (lex_op(L) < 0) {
            return -1;
        }
    }
    L->out->depth = L->depth;
    if (!push(L, LT_EOF, L->i, 0)) return cl_err_set(L->err, CL_ENOMEM, "out of memory");
    return 0;
}

static int lex(const char *src, lx_tokens *out, cl_err *err, lx_pos *where, int lenient)
{
    memset(out, 0, sizeof *out);
    lexer L = {.src = src, .line = 1, .out = out, .lenient = lenient, .err = err, .where = where};
    return lex_all(&L);
}

int lx_lex(const char *src, lx_tokens *out, cl_err *err, lx_pos *where)
{
    return lex(src, out, err, where, 0);
}

int lx_lex_partial(const char *src, lx_tokens *out, cl_err *err, lx_pos *where)
{
    return lex(src, out, err, where, 1);
}

void lx_free(lx_tokens *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->v[i].str);
    free(t->v);
    memset(t, 0, sizeof *t);
}
