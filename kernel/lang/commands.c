#include "kernel/lang/commands.h"

#include "kernel/lang/lens_engine.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every topic table, in the order `help` lists them. */
static const struct {
    const lc_verb *v;
    const int *n;
} tables[] = {
    {lc_core_verbs, &lc_core_count},
    {lc_limits_verbs, &lc_limits_count},
    {lc_model_verbs, &lc_model_count},
    {lc_vis_verbs, &lc_vis_count},
};

int lc_count(void)
{
    int n = 0;
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) n += *tables[i].n;
    return n;
}

const lc_verb *lc_at(int i)
{
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++) {
        if (i < *tables[t].n) return &tables[t].v[i];
        i -= *tables[t].n;
    }
    return NULL;
}

const lc_verb *lc_find(const char *name)
{
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
        for (int i = 0; i < *tables[t].n; i++)
            if (!strcmp(tables[t].v[i].name, name)) return &tables[t].v[i];
    return NULL;
}

int lc_arg_index(const lc_verb *v, const char *name)
{
    for (int i = 0; i < v->npos; i++)
        if (!strcmp(v->pos[i].name, name)) return i;
    for (int i = 0; i < v->nopt; i++)
        if (!strcmp(v->opt[i].name, name)) return LC_MAXPOS + i;
    return -1;
}

const lc_arg *lc_arg_at(const lc_verb *v, int idx)
{
    if (idx < 0) return NULL;
    if (idx < LC_MAXPOS) return idx < v->npos ? &v->pos[idx] : NULL;
    return idx - LC_MAXPOS < v->nopt ? &v->opt[idx - LC_MAXPOS] : NULL;
}

lv_value *lc_get(const lc_call *c, const char *name)
{
    int i = lc_arg_index(c->verb, name);
    return i < 0 ? NULL : c->v[i];
}

double lc_num(const lc_call *c, const char *name, double fallback)
{
    lv_value *v = lc_get(c, name);
    return v && v->kind == LV_NUM ? v->num : fallback;
}

int lc_flag(const lc_call *c, const char *name)
{
    lv_value *v = lc_get(c, name);
    return v && v->kind == LV_NUM && v->num != 0;
}

const char *lc_text(const lc_call *c, const char *name)
{
    lv_value *v = lc_get(c, name);
    return v && v->kind == LV_STR ? v->str : NULL;
}

int lc_arg_error(lc_call *c, const char *name, cl_err *err, cl_code code, const char *fmt, ...)
{
    (void)name;
    /* Through a copy: callers may pass err->msg itself as an argument. */
    char msg[CL_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cl_err_set(err, code, "%s", msg);
    /* The evaluator reads the position back from the call. */
    int i = lc_arg_index(c->verb, name);
    if (i >= 0 && c->line[i]) {
        c->vline = c->line[i];
        c->vcol = c->col[i];
    }
    return -1;
}

void lc_types_text(unsigned types, char *buf, size_t n)
{
    if ((types & LA_ANY) == LA_ANY) {
        snprintf(buf, n, "any value");
        return;
    }
    const char *names[16];
    int k = 0;
    /* The most likely kinds first: "an image or tensor", "a number or range". */
    if (types & LA_IMAGE) names[k++] = "image";
    if (types & LA_TENSOR) names[k++] = (types & LA_IMAGE) ? "tensor" : "matrix or tensor";
    if (types & LA_NUM) names[k++] = (types & LA_INT) ? "whole number" : "number";
    if (types & LA_RANGE) names[k++] = "range";
    if (types & LA_HEATMAP) names[k++] = "heatmap";
    if (types & LA_WORD) names[k++] = "name";
    if ((types & LA_STR) && !(types & LA_WORD)) names[k++] = "string";
    if (types & LA_MODEL) names[k++] = "model";
    if (types & LA_TABLE) names[k++] = "table";
    if (types & LA_PICTURE) names[k++] = "picture";
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < k && len < n; i++) {
        const char *sep = i == 0       ? (strchr("aeiou", names[0][0]) ? "an " : "a ")
                          : i == k - 1 ? " or "
                                       : ", ";
        len += (size_t)snprintf(buf + len, n - len, "%s%s", sep, names[i]);
    }
}

static const char *meta_of(const lc_arg *a)
{
    unsigned t = a->types;
    if (t & LA_PATH) return "PATH";
    if (t & LA_LAYER) return "LAYER";
    if (t & LA_CLASS) return "CLASS";
    if ((t & LA_RANGE) && (t & LA_NUM)) return "N|A..B";
    if (t & LA_INT) return "N";
    if (t & LA_NUM) return "X";
    if (t & LA_WORD) return "NAME";
    return "VALUE";
}

static void upper(const char *s, char *buf, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++) buf[i] = (char)toupper((unsigned char)s[i]);
    buf[i] = '\0';
}

void lc_usage(const lc_verb *v, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "%s", v->name);
    for (int i = 0; i < v->npos && len < n; i++) {
        char u[32];
        upper(v->pos[i].name, u, sizeof u);
        int opt = (v->pos[i].types & LA_OPTIONAL) != 0;
        len += (size_t)snprintf(buf + len, n - len, opt ? " [%s]" : " %s", u);
    }
    for (int i = 0; i < v->nopt && len < n; i++) {
        const lc_arg *a = &v->opt[i];
        if (a->types & LA_FLAG)
            len += (size_t)snprintf(buf + len, n - len, " [%s]", a->name);
        else
            len += (size_t)snprintf(buf + len, n - len, " [%s %s]", a->name, meta_of(a));
    }
}

/* A growable string for help texts. */
typedef struct hbuf {
    char *s;
    size_t n, cap;
} hbuf;

static void hb_printf(hbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hb_printf(hbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0 || !b->s) return;
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t cap = b->cap * 2;
        while (cap < b->n + (size_t)k + 1) cap *= 2;
        char *d = realloc(b->s, cap);
        if (!d) {
            free(b->s);
            b->s = NULL;
            return;
        }
        b->s = d;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

static void help_arg(hbuf *b, const lc_arg *a, int positional)
{
    char left[64], types[96];
    if (positional)
        upper(a->name, left, sizeof left);
    else if (a->types & LA_FLAG)
        snprintf(left, sizeof left, "%s", a->name);
    else
        snprintf(left, sizeof left, "%s %s", a->name, meta_of(a));
    lc_types_text(a->types, types, sizeof types);
    hb_printf(b, "  %-16s %s", left, a->help ? a->help : "");
    if (!(a->types & LA_FLAG) && !(a->types & LA_CMP)) hb_printf(b, " (%s)", types);
    if (a->def) hb_printf(b, "; default %s", a->def);
    hb_printf(b, "\n");
}

char *lc_help(const lc_verb *v)
{
    hbuf b = {malloc(512), 0, 512};
    if (!b.s) return NULL;
    b.s[0] = '\0';
    char usage[512];
    lc_usage(v, usage, sizeof usage);
    hb_printf(&b, "%s\n\n%s\n", usage, v->summary);
    if (v->details) {
        /* Wrapped at 78 columns, for the pager and the inspect tooltip. */
        hb_printf(&b, "\n");
        const char *p = v->details;
        while (*p) {
            while (*p == ' ') p++;
            size_t len = strlen(p);
            if (len > 78) {
                len = 78;
                while (len > 0 && p[len] != ' ') len--;
                if (len == 0) len = 78;
            }
            hb_printf(&b, "%.*s\n", (int)len, p);
            p += len;
        }
    }
    if (v->npos) {
        hb_printf(&b, "\nArguments:\n");
        for (int i = 0; i < v->npos; i++) help_arg(&b, &v->pos[i], 1);
    }
    if (v->nopt) {
        hb_printf(&b, "\nOptions (any order, after the arguments):\n");
        for (int i = 0; i < v->nopt; i++) help_arg(&b, &v->opt[i], 0);
    }
    if (v->example) {
        hb_printf(&b, "\nExample:\n");
        const char *p = v->example;
        while (*p) {
            const char *nl = strchr(p, '\n');
            int len = nl ? (int)(nl - p) : (int)strlen(p);
            hb_printf(&b, "  %.*s\n", len, p);
            p += len + (nl ? 1 : 0);
        }
    }
    return b.s;
}

char *lc_help_all(void)
{
    hbuf b = {malloc(2048), 0, 2048};
    if (!b.s) return NULL;
    b.s[0] = '\0';
    hb_printf(&b, "lens: one command per line, `name = value` stores a value.\n"
                  "Type `help VERB` (or Shift-Tab on a verb) for its options.\n");
    int n = lc_count();
    /* Each topic once, in the order topics first appear, with all its verbs. */
    for (int i = 0; i < n; i++) {
        const char *topic = lc_at(i)->topic;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(lc_at(j)->topic, topic);
        if (seen) continue;
        hb_printf(&b, "\n%s:\n", topic);
        for (int j = i; j < n; j++)
            if (!strcmp(lc_at(j)->topic, topic))
                hb_printf(&b, "  %-12s %s\n", lc_at(j)->name, lc_at(j)->summary);
    }
    return b.s;
}

/* Damerau-style edit distance (adjacent swaps count as one), capped. */
static int distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 40 || lb > 40) return 99;
    int d[41][41];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int m = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < m) m = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < m) m = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < m)
                m = d[i - 2][j - 2] + 1;
            d[i][j] = m;
        }
    return d[la][lb];
}

const char *lc_nearest(const char *word, const char *const *cands, int n)
{
    const char *best = NULL;
    int bd = 99;
    int len = (int)strlen(word);
    for (int i = 0; i < n; i++) {
        int d = distance(word, cands[i]);
        /* A prefix of a candidate ("grad" for "gradcam") also counts as close. */
        if (len >= 3 && !strncmp(word, cands[i], (size_t)len) && d > 1) d = 1 + (d > 3);
        if (d < bd) {
            bd = d;
            best = cands[i];
        }
    }
    int limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    return bd <= limit ? best : NULL;
}

const char *lc_nearest_verb(const char *word)
{
    int n = lc_count();
    const char *names[256];
    if (n > 256) n = 256;
    for (int i = 0; i < n; i++) names[i] = lc_at(i)->name;
    return lc_nearest(word, names, n);
}
