#include "kernel/lang/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/limits.h"

static void *fail(ev_ctx *E, const ps_node *n, cl_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void *fail(ev_ctx *E, const ps_node *n, cl_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cl_err_vset(E->err, code, fmt, ap);
    va_end(ap);
    E->where.line = n->line;
    E->where.col = n->col;
    return NULL;
}

static void *oom(ev_ctx *E, const ps_node *n)
{
    return fail(E, n, CL_ENOMEM, "out of memory");
}

/* One level deeper (an operand, an argument, a nested command): recursion
 * is bounded, so `show show ... x` is an error and not a stack overflow. */
static int enter(ev_ctx *E, const ps_node *n)
{
    if (E->depth <= lim_get(LIM_DEPTH)) return E->depth++, 0; /* the top level is depth 0 */
    lim_check(LIM_DEPTH, E->depth, "evaluation nested too deeply: the depth", E->err);
    E->where.line = n->line;
    E->where.col = n->col;
    return -1;
}

/* Positions an error the callee set without one. */
static void *locate(ev_ctx *E, const ps_node *n)
{
    if (!E->where.line) {
        E->where.line = n->line;
        E->where.col = n->col;
    }
    return NULL;
}

/* ---- arithmetic ---------------------------------------------------------- */

static const char *op_text(int op)
{
    switch (op) {
    case LT_PLUS:
        return "add";
    case LT_MINUS:
        return "subtract";
    case LT_STAR:
        return "multiply";
    case LT_SLASH:
        return "divide";
    default:
        return "compare";
    }
}

static double apply(int op, double x, double y)
{
    switch (op) {
    case LT_PLUS:
        return x + y;
    case LT_MINUS:
        return x - y;
    case LT_STAR:
        return x * y;
    case LT_SLASH:
        return x / y;
    case LT_EQ:
        return x == y;
    case LT_NE:
        return x != y;
    case LT_LT:
        return x < y;
    case LT_LE:
        return x <= y;
    case LT_GT:
        return x > y;
    case LT_GE:
        return x >= y;
    case LT_APPROX:
        return fabs(x - y) <= 1e-6 * (1 + fabs(y));
    }
    return NAN;
}

static int is_cmp(int op)
{
    return op == LT_EQ || op == LT_NE || op == LT_LT || op == LT_LE || op == LT_GT || op == LT_GE ||
           op == LT_APPROX;
}

/* NULL with err set: out of memory or over the string limit. */
static char *concat(const lv_value *a, const lv_value *b, cl_err *err)
{
    char *x = lv_text(a), *y = lv_text(b);
    char *r = NULL;
    if (!x || !y)
        cl_err_set(err, CL_ENOMEM, "out of memory");
    else if (!lim_check(LIM_STRING_BYTES, (double)strlen(x) + (double)strlen(y),
                        "the joined string", err) &&
             !(r = malloc(strlen(x) + strlen(y) + 1)))
        cl_err_set(err, CL_ENOMEM, "out of memory");
    if (r) {
        strcpy(r, x);
        strcat(r, y);
    }
    free(x);
    free(y);
    return r;
}

/* Shape result of an elementwise op: a wins unless it is 1x1-like. */
static lv_value *like(const lv_value *proto, tn_tensor *t)
{
    if (proto->kind == LV_IMAGE) return lv_image(t, proto->norm);
    if (proto->kind == LV_HEATMAP) return lv_heatmap(t, proto->base, proto->desc);
    return lv_tensor(t);
}

/* Shapes equal once size-1 axes are dropped: [3] and [1, 3] match. */
int ev_same_squeezed(const tn_tensor *a, const tn_tensor *b)
{
    int i = 0, j = 0;
    for (;;) {
        while (i < a->ndim && a->shape[i] == 1) i++;
        while (j < b->ndim && b->shape[j] == 1) j++;
        if (i == a->ndim || j == b->ndim) return i == a->ndim && j == b->ndim;
        if (a->shape[i++] != b->shape[j++]) return 0;
    }
}

#define same_squeezed ev_same_squeezed

static lv_value *array_op(int op, const lv_value *a, const lv_value *b, cl_err *err)
{
    const lv_value *arr = lv_is_array(a) ? a : b;
    int64_t na = a->kind == LV_NUM ? 1 : tn_numel(a->t),
            nb = b->kind == LV_NUM ? 1 : tn_numel(b->t);
    if (lv_is_array(a) && lv_is_array(b) && !same_squeezed(a->t, b->t) && na != 1 && nb != 1) {
        char sa[64], sb[64];
        cl_err_set(err, CL_EINVAL, "cannot %s arrays of shapes %s and %s (they must match)",
                   op_text(op), tn_shape_str(a->t, sa, sizeof sa),
                   tn_shape_str(b->t, sb, sizeof sb));
        return NULL;
    }
    if (na == 1 && nb != 1) arr = b;
    tn_tensor *r = tn_clone(arr->t, err);
    if (!r) return NULL;
    const float *pa = a->kind == LV_NUM ? NULL : a->t->data,
                *pb = b->kind == LV_NUM ? NULL : b->t->data;
    double ka = a->kind == LV_NUM ? a->num : 0, kb = b->kind == LV_NUM ? b->num : 0;
    int64_t n = tn_numel(r);
    if (is_cmp(op)) {
        /* A comparison of arrays holds when it holds everywhere; `!=` is the
         * negation of `==` (the arrays differ somewhere), as a student means it. */
        int test = op == LT_NE ? LT_EQ : op, all = 1;
        for (int64_t i = 0; i < n && all; i++)
            all = apply(test, pa ? pa[na == 1 ? 0 : i] : ka, pb ? pb[nb == 1 ? 0 : i] : kb) != 0;
        tn_free(r);
        return lv_num(op == LT_NE ? !all : all);
    }
    for (int64_t i = 0; i < n; i++)
        r->data[i] = (float)apply(op, pa ? pa[na == 1 ? 0 : i] : ka, pb ? pb[nb == 1 ? 0 : i] : kb);
    return like(arr, r);
}

lv_value *ev_binary(int op, const lv_value *a, const lv_value *b, cl_err *err)
{
    if (op == LT_PLUS && (a->kind == LV_STR || b->kind == LV_STR) && a->kind != LV_NONE &&
        b->kind != LV_NONE) {
        char *s = concat(a, b, err);
        lv_value *v = s ? lv_str(s) : NULL;
        if (s && !v) cl_err_set(err, CL_ENOMEM, "out of memory");
        free(s);
        return v;
    }
    if ((op == LT_EQ || op == LT_NE) && a->kind == LV_STR && b->kind == LV_STR)
        return lv_num((strcmp(a->str, b->str) == 0) == (op == LT_EQ));
    int an = a->kind == LV_NUM, bn = b->kind == LV_NUM;
    if (an && bn) {
        if (op == LT_SLASH && b->num == 0) {
            cl_err_set(err, CL_EINVAL, "division by zero");
            return NULL;
        }
        return lv_num(apply(op, a->num, b->num));
    }
    if ((an || lv_is_array(a)) && (bn || lv_is_array(b))) return array_op(op, a, b, err);
    cl_err_set(err, CL_ETYPE, "cannot %s %s and %s", op_text(op), lv_type_name(a), lv_type_name(b));
    return NULL;
}

static lv_value *negate(const lv_value *v, cl_err *err)
{
    if (v->kind == LV_NUM) return lv_num(-v->num);
    if (lv_is_array(v)) {
        tn_tensor *t = tn_clone(v->t, err);
        if (!t) return NULL;
        for (int64_t i = 0; i < tn_numel(t); i++) t->data[i] = -t->data[i];
        return like(v, t);
    }
    cl_err_set(err, CL_ETYPE, "cannot negate %s", lv_type_name(v));
    return NULL;
}

/* ---- literals and indexing ---------------------------------------------- */

static int whole(double x)
{
    return isfinite(x) && x == floor(x) && fabs(x) < 9e15;
}

static lv_value *eval_matrix(ev_ctx *E, const ps_node *n)
{
    if (n->cols < 0)
        return fail(E, n, CL_ETYPE,
                    "a list of layers like this one is read by `sequential`, it has no value "
                    "of its own");
    tn_tensor *t = tn_new2(n->rows, n->cols, E->err);
    if (!t) return locate(E, n);
    for (int i = 0; i < n->nkid; i++) {
        lv_value *x = ev_eval(E, n->kid[i]);
        if (!x) {
            tn_free(t);
            return NULL;
        }
        if (x->kind != LV_NUM) {
            const char *ty = lv_type_name(x);
            lv_unref(x);
            tn_free(t);
            return fail(E, n->kid[i], CL_ETYPE, "a matrix holds numbers, got %s", ty);
        }
        t->data[i] = (float)x->num;
        lv_unref(x);
    }
    lv_value *v = lv_tensor(t);
    return v ? v : oom(E, n);
}

static lv_value *eval_range(ev_ctx *E, const ps_node *n)
{
    double b[2];
    for (int i = 0; i < 2; i++) {
        lv_value *x = ev_eval(E, n->kid[i]);
        if (!x) return NULL;
        int ok = x->kind == LV_NUM && whole(x->num);
        const char *ty = lv_type_name(x);
        b[i] = x->kind == LV_NUM ? x->num : 0;
        lv_unref(x);
        if (!ok)
            return fail(E, n->kid[i], CL_ETYPE, "a range goes between whole numbers, got %s",
                        ty[0] == 'n' && ty[1] == 'u' ? "a fraction" : ty);
    }
    if (b[1] < b[0])
        return fail(E, n, CL_EINVAL, "a range must go upwards: %.0f..%.0f is empty", b[0], b[1]);
    return lv_range((int64_t)b[0], (int64_t)b[1]);
}

static const char *dim_word(int ndim, int d)
{
    if (ndim == 2) return d == 0 ? "rows" : "columns";
    if (ndim == 3) return d == 0 ? "channels" : d == 1 ? "rows" : "columns";
    return "entries along that axis";
}

static lv_value *eval_index(ev_ctx *E, const ps_node *n)
{
    lv_value *base = ev_eval(E, n->kid[0]);
    if (!base) return NULL;
    if (!lv_is_array(base)) {
        const char *ty = lv_type_name(base);
        lv_unref(base);
        return fail(E, n, CL_ETYPE, "only matrices, tensors and images can be indexed, not %s", ty);
    }
    const tn_tensor *t = base->t;
    int nix = n->nkid - 1;
    if (nix > t->ndim) {
        int nd = t->ndim;
        lv_unref(base);
        return fail(E, n->kid[nd + 1], CL_EINVAL, "too many indices: this array has %d dimension%s",
                    nd, nd == 1 ? "" : "s");
    }
    int64_t lo[TN_MAXDIM], hi[TN_MAXDIM];
    int keep[TN_MAXDIM];
    for (int d = 0; d < t->ndim; d++) {
        lo[d] = 0;
        hi[d] = t->shape[d] - 1;
        keep[d] = 1;
    }
    for (int d = 0; d < nix; d++) {
        const ps_node *ix = n->kid[d + 1];
        lv_value *x = ev_eval(E, ix);
        if (!x) {
            lv_unref(base);
            return NULL;
        }
        int64_t a, b;
        if (x->kind == LV_NUM && whole(x->num)) {
            a = b = (int64_t)x->num;
            if (a < 0) a = b = a + t->shape[d]; /* -1 is the last one */
            keep[d] = 0;
        } else if (x->kind == LV_RANGE) {
            a = x->lo;
            b = x->hi;
        } else {
            const char *ty = x->kind == LV_NUM ? "a fraction" : lv_type_name(x);
            lv_unref(x);
            lv_unref(base);
            return fail(E, ix, CL_ETYPE, "an index must be a whole number or a range, got %s", ty);
        }
        lv_unref(x);
        if (a < 0 || b >= t->shape[d]) {
            int64_t size = t->shape[d];
            const char *w = dim_word(t->ndim, d);
            lv_unref(base);
            return fail(E, ix, CL_EINVAL, "index out of range: there are %lld %s (0..%lld)",
                        (long long)size, w, (long long)size - 1);
        }
        lo[d] = a;
        hi[d] = b;
    }
    int nd = 0;
    int64_t shape[TN_MAXDIM];
    for (int d = 0; d < t->ndim; d++)
        if (keep[d]) shape[nd++] = hi[d] - lo[d] + 1;
    if (nd == 0) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++) off += lo[d] * t->stride[d];
        double v = t->data[off];
        lv_unref(base);
        return lv_num(v);
    }
    tn_tensor *r = tn_new(nd, shape, E->err);
    if (!r) {
        lv_unref(base);
        return locate(E, n);
    }
    /* Walk every element of the selection with an odometer over its dims. */
    int64_t idx[TN_MAXDIM];
    for (int d = 0; d < t->ndim; d++) idx[d] = lo[d];
    int64_t total = tn_numel(r);
    for (int64_t k = 0; k < total; k++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
        r->data[k] = t->data[off];
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] <= hi[d]) break;
            idx[d] = lo[d];
        }
    }
    lv_value *v = base->kind == LV_IMAGE && nd == 3 ? lv_image(r, base->norm) : lv_tensor(r);
    lv_unref(base);
    return v ? v : oom(E, n);
}

/* ---- commands ----------------------------------------------------------- */

static lv_value *default_value(const char *def)
{
    char *end;
    double x = strtod(def, &end);
    if (*def && !*end) return lv_num(x);
    return lv_str(def);
}

static void free_call(lc_call *c)
{
    for (int i = 0; i < LC_MAXARG; i++) lv_unref(c->v[i]);
    for (int i = 0; i < c->nrest; i++) lv_unref(c->rest[i]);
}

static int is_word_node(const ps_node *a)
{
    return a->kind == PN_NAME && !a->paren;
}

/* Takes x; gives it back if its kind is one the argument accepts, else
 * reports the mismatch at a and frees x.  Every way a value reaches a
 * command (a word, an expression, a nested command) goes through here, so a
 * command can trust its table entry. */
static lv_value *check_kind(ev_ctx *E, const lc_verb *v, const lc_arg *spec, lv_value *x,
                            const ps_node *a)
{
    unsigned ty = spec->types;
    if (!(ty & (1u << x->kind)) && !(x->kind == LV_STR && (ty & LA_WORD))) {
        char want[128];
        lc_types_text(ty, want, sizeof want);
        const char *got = lv_type_name(x);
        lv_unref(x);
        return fail(E, a, CL_ETYPE, "%s: %s must be %s, got %s", v->name, spec->name, want, got);
    }
    if (x->kind == LV_NUM && (ty & LA_INT) && !whole(x->num)) {
        lv_unref(x);
        return fail(E, a, CL_ETYPE, "%s: %s must be a whole number, got a fraction", v->name,
                    spec->name);
    }
    return x;
}

/* Evaluates one argument against its table entry, checking its type. */
static lv_value *eval_arg(ev_ctx *E, const lc_verb *v, const lc_arg *spec, const ps_node *a)
{
    unsigned ty = spec->types;
    lv_value *x;
    if (is_word_node(a) && (ty & LA_WORD)) {
        lv_value *var = ss_get(E->s, a->str);
        /* A variable wins where values are wanted too ("class c"); otherwise
         * the name is text: a layer, a dataset, a topic. */
        if (var && (ty & (LA_ANY & ~LA_STR)))
            x = lv_ref(var);
        else
            x = lv_str(a->str);
        if (!x) return oom(E, a);
    } else {
        x = ev_eval(E, a);
        if (!x) return NULL;
    }
    return check_kind(E, v, spec, x, a);
}

static int option_of(const lc_verb *v, const char *name)
{
    for (int i = 0; i < v->nopt; i++)
        if (!strcmp(v->opt[i].name, name)) return LC_MAXPOS + i;
    return -1;
}

static int bind_option(ev_ctx *E, lc_call *c, int oi, const ps_node *const *k, int nk, int i)
{
    const lc_arg *spec = lc_arg_at(c->verb, oi);
    const ps_node *a = k[i];
    if (c->v[oi]) {
        fail(E, a, CL_EINVAL, "%s: option '%s' is given twice", c->verb->name, spec->name);
        return -1;
    }
    /* Errors about an option's value point at the value. */
    const ps_node *val = i + 1 < nk && !(spec->types & LA_FLAG) ? k[i + 1] : a;
    c->line[oi] = val->line;
    c->col[oi] = val->col;
    if (spec->types & LA_FLAG) {
        if (!(c->v[oi] = lv_num(1))) return oom(E, a), -1;
        return 1;
    }
    if (i + 1 >= nk) {
        char want[128];
        lc_types_text(spec->types, want, sizeof want);
        fail(E, a, CL_EINVAL, "%s: option '%s' needs a value (%s) after it", c->verb->name,
             spec->name, want);
        return -1;
    }
    if (!(c->v[oi] = eval_arg(E, c->verb, spec, k[i + 1]))) return -1;
    return 2;
}

static int unknown_word(ev_ctx *E, const lc_verb *v, const ps_node *a, lc_call *outer)
{
    const char *names[LC_MAXOPT * 2];
    int n = 0;
    for (int i = 0; i < v->nopt; i++) names[n++] = v->opt[i].name;
    if (outer)
        for (int i = 0; i < outer->verb->nopt; i++) names[n++] = outer->verb->opt[i].name;
    const char *near = lc_nearest(a->str, names, n);
    if (near)
        fail(E, a, CL_ENAME, "unknown option '%s' \xe2\x80\x94 did you mean '%s'?", a->str, near);
    else if (n) {
        char list[256] = "";
        size_t len = 0;
        for (int i = 0; i < n && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", names[i]);
        fail(E, a, CL_ENAME, "%s has no option '%s' (its options: %s)", v->name, a->str, list);
    } else {
        char usage[256];
        lc_usage(v, usage, sizeof usage);
        fail(E, a, CL_ENAME, "%s has no option '%s' (usage: %s)", v->name, a->str, usage);
    }
    return -1;
}

/* Binds the atoms k[0..nk) to the verb's table entry. Options that the verb
 * does not know but `outer` does (show gradcam x ... size 420) go to outer. */
static int bind(ev_ctx *E, lc_call *c, const ps_node *const *k, int nk, lc_call *outer)
{
    const lc_verb *v = c->verb;
    int posi = 0;
    for (int i = 0; i < nk;) {
        const ps_node *a = k[i];
        if (is_word_node(a)) {
            int oi = option_of(v, a->str);
            if (oi >= 0) {
                int used = bind_option(E, c, oi, k, nk, i);
                if (used < 0) return -1;
                i += used;
                continue;
            }
            if (outer && (oi = option_of(outer->verb, a->str)) >= 0) {
                int used = bind_option(E, outer, oi, k, nk, i);
                if (used < 0) return -1;
                i += used;
                continue;
            }
            int is_var = ss_get(E->s, a->str) != NULL;
            const lc_verb *nested = is_var ? NULL : lc_find(a->str);
            if (nested && posi < v->npos && (v->pos[posi].types & LA_NESTED))
                return -2 - i; /* the nested command takes the atoms from i on */
            if (!is_var && posi < v->npos && !(v->pos[posi].types & LA_WORD)) {
                /* A misspelt option in the place of a value reads better as one. */
                const char *names[LC_MAXOPT];
                for (int j = 0; j < v->nopt; j++) names[j] = v->opt[j].name;
                const char *near = lc_nearest(a->str, names, v->nopt);
                if (near && !lc_find(a->str) && i > 0) return unknown_word(E, v, a, outer);
            }
            if (posi >= v->npos && !is_var) {
                if (v->npos && (v->pos[v->npos - 1].types & LA_REST)) goto rest;
                return unknown_word(E, v, a, outer);
            }
        }
        if (posi < v->npos && (v->pos[posi].types & LA_LAZY)) {
            /* The handler evaluates the comparison's sides itself (expect). */
            if (!(c->v[posi] = lv_none())) return oom(E, a), -1;
            c->line[posi] = a->line;
            c->col[posi] = a->col;
            posi++;
            i++;
            continue;
        }
        if (posi < v->npos) {
            if (!(c->v[posi] = eval_arg(E, v, &v->pos[posi], a))) return -1;
            c->line[posi] = a->line;
            c->col[posi] = a->col;
            posi++;
            i++;
            continue;
        }
    rest:
        if (v->npos && (v->pos[v->npos - 1].types & LA_REST) && c->nrest < LC_MAXREST) {
            if (!(c->rest[c->nrest] = eval_arg(E, v, &v->pos[v->npos - 1], a))) return -1;
            c->nrest++;
            i++;
            continue;
        }
        char usage[256];
        lc_usage(v, usage, sizeof usage);
        fail(E, a, CL_EINVAL, "%s takes %d argument%s; this one is one too many (usage: %s)",
             v->name, v->npos, v->npos == 1 ? "" : "s", usage);
        return -1;
    }
    return 0;
}

/* Rehearsal: the counts of iterative work, given or default, cut to the
 * session's cap.  The value may be a variable's: it is replaced, not written. */
static int rehearse(ev_ctx *E, lc_call *c, const ps_node *at)
{
    static const char *const counts[] = {"steps", "epochs", "samples"};
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
        int i = lc_arg_index(c->verb, counts[k]);
        lv_value *v = i < 0 ? NULL : c->v[i];
        if (!v || v->kind != LV_NUM || v->num <= E->s->rehearse) continue;
        lv_value *cut = lv_num(E->s->rehearse);
        if (!cut) return oom(E, at), -1;
        lv_unref(v);
        c->v[i] = cut;
    }
    return 0;
}

static int finish_bind(ev_ctx *E, lc_call *c, const ps_node *at)
{
    const lc_verb *v = c->verb;
    for (int i = 0; i < v->npos; i++) {
        if (c->v[i]) continue;
        if (v->pos[i].def) { /* optional positionals may have defaults too */
            if (!(c->v[i] = default_value(v->pos[i].def))) return oom(E, at), -1;
            continue;
        }
        if (v->pos[i].types & (LA_OPTIONAL | LA_LAZY)) continue;
        char usage[256], up[32];
        lc_usage(v, usage, sizeof usage);
        size_t j = 0;
        for (; v->pos[i].name[j] && j + 1 < sizeof up; j++)
            up[j] =
                (char)(v->pos[i].name[j] >= 'a' && v->pos[i].name[j] <= 'z' ? v->pos[i].name[j] - 32
                                                                            : v->pos[i].name[j]);
        up[j] = '\0';
        fail(E, at, CL_EINVAL, "%s needs %s (usage: %s)", v->name, up, usage);
        return -1;
    }
    for (int i = 0; i < v->nopt; i++) {
        int oi = LC_MAXPOS + i;
        if (c->v[oi] || !v->opt[i].def) continue;
        if (!(c->v[oi] = default_value(v->opt[i].def))) return oom(E, at), -1;
    }
    return E->s->rehearse ? rehearse(E, c, at) : 0;
}

/* Runs verb v with the atoms of cmd from index `first`; when a positional
 * slot holds another verb (show gradcam x), that verb runs on the rest. */
static lv_value *run_verb(ev_ctx *E, const lc_verb *v, const ps_node *cmd, int first,
                          lc_call *outer)
{
    lc_call c;
    memset(&c, 0, sizeof c);
    c.verb = v;
    c.s = E->s;
    c.node = (ps_node *)cmd;
    c.ev = E;
    const ps_node *at = first ? cmd->kid[first - 1] : cmd;
    c.vline = at->line;
    c.vcol = at->col;
    const ps_node *const *k = cmd->kid ? (const ps_node *const *)cmd->kid + first : NULL;
    int nk = cmd->nkid - first;
    int r = bind(E, &c, k, nk, outer);
    if (r <= -2) {
        /* A nested command starts at atom -2 - r: run it, then bind what it gave. */
        int start = -2 - r;
        int posi = 0;
        while (posi < v->npos && c.v[posi]) posi++;
        lv_value *inner = NULL;
        if (!enter(E, k[start])) {
            inner = run_verb(E, lc_find(k[start]->str), cmd, first + start + 1, &c);
            E->depth--;
        }
        if (!inner) {
            free_call(&c);
            return NULL;
        }
        if (inner->kind == LV_NONE) {
            const char *name = k[start]->str;
            lv_unref(inner);
            free_call(&c);
            return fail(E, k[start], CL_ETYPE, "%s gives no value that %s could use", name,
                        v->name);
        }
        /* bind only starts a nested command in a free positional slot. */
        if (!(inner = check_kind(E, v, lc_arg_at(v, posi), inner, k[start]))) {
            free_call(&c);
            return NULL;
        }
        c.v[posi] = inner;
        c.line[posi] = k[start]->line;
        c.col[posi] = k[start]->col;
        r = 0;
    }
    if (r < 0 || finish_bind(E, &c, at) < 0) {
        free_call(&c);
        return NULL;
    }
    if (ss_cancelled(E->s)) {
        free_call(&c);
        return fail(E, at, CL_EINTERRUPT, "interrupted by the user");
    }
    lv_value *out = NULL;
    cl_err_clear(E->err);
    if (v->fn(&c, &out, E->err) < 0) {
        if (!E->where.line) {
            E->where.line = c.vline;
            E->where.col = c.vcol;
        }
        free_call(&c);
        lv_unref(out);
        if (E->err->code == CL_OK) cl_err_set(E->err, CL_EINVAL, "%s failed", v->name);
        return NULL;
    }
    free_call(&c);
    if (!out && !(out = lv_none())) return oom(E, at);
    return out;
}

static lv_value *eval_cmd(ev_ctx *E, const ps_node *n)
{
    const lc_verb *v = lc_find(n->str);
    if (!v) {
        if (ss_get(E->s, n->str))
            return fail(E, n, CL_ENAME,
                        "'%s' is a variable, not a command: a line starts with a command or "
                        "`name = ...`",
                        n->str);
        const char *near = lc_nearest_verb(n->str);
        if (near)
            return fail(E, n, CL_ENAME, "unknown command '%s' \xe2\x80\x94 did you mean '%s'?",
                        n->str, near);
        return fail(E, n, CL_ENAME, "unknown command '%s' (type `help` for the list)", n->str);
    }
    return run_verb(E, v, n, 0, NULL);
}

static lv_value *eval_name(ev_ctx *E, const ps_node *n)
{
    lv_value *v = ss_get(E->s, n->str);
    if (v) return lv_ref(v);
    const lc_verb *verb = lc_find(n->str);
    if (verb) return run_verb(E, verb, n, 0, NULL);
    int nv = ss_var_count(E->s);
    const char **names = malloc(((size_t)nv + 1) * sizeof *names);
    const char *near = NULL;
    if (names) {
        for (int i = 0; i < nv; i++) names[i] = ss_var_name(E->s, i);
        near = lc_nearest(n->str, names, nv);
    }
    if (!near) near = lc_nearest_verb(n->str);
    lv_value *r = near ? fail(E, n, CL_ENAME, "unknown name '%s' \xe2\x80\x94 did you mean '%s'?",
                              n->str, near)
                       : fail(E, n, CL_ENAME,
                              "unknown name '%s': no variable or command is called that", n->str);
    free(names);
    return r;
}

static lv_value *eval_node(ev_ctx *E, const ps_node *n)
{
    lv_value *a, *b, *r;
    switch (n->kind) {
    case PN_NUM:
        return (r = lv_num(n->num)) ? r : oom(E, n);
    case PN_STR:
        return (r = lv_str(n->str)) ? r : oom(E, n);
    case PN_NAME:
        return eval_name(E, n);
    case PN_MATRIX:
        return eval_matrix(E, n);
    case PN_RANGE:
        return eval_range(E, n);
    case PN_INDEX:
        return eval_index(E, n);
    case PN_CMD:
        return eval_cmd(E, n);
    case PN_NEG:
        if (!(a = ev_eval(E, n->kid[0]))) return NULL;
        r = negate(a, E->err);
        lv_unref(a);
        return r ? r : locate(E, n);
    case PN_BIN:
        if (!(a = ev_eval(E, n->kid[0]))) return NULL;
        if (!(b = ev_eval(E, n->kid[1]))) {
            lv_unref(a);
            return NULL;
        }
        r = ev_binary(n->op, a, b, E->err);
        lv_unref(a);
        lv_unref(b);
        if (!r) {
            /* Point at the operator, which is what went wrong. */
            E->where.line = n->opline;
            E->where.col = n->opcol;
            return NULL;
        }
        return r;
    }
    return fail(E, n, CL_EINVAL, "cannot evaluate this");
}

lv_value *ev_eval(ev_ctx *E, const ps_node *n)
{
    if (enter(E, n)) return NULL;
    lv_value *r = eval_node(E, n);
    E->depth--;
    return r;
}

int ev_run(ev_ctx *E, const ps_program *prog, lv_value **last)
{
    *last = NULL;
    E->where.line = E->where.col = 0;
    E->s->skip_rest = 0;
    for (int i = 0; i < prog->n; i++) {
        const ps_stmt *st = &prog->stmt[i];
        if (ss_cancelled(E->s)) {
            cl_err_set(E->err, CL_EINTERRUPT, "interrupted by the user");
            E->where.line = st->line;
            E->where.col = st->col;
            return -1;
        }
        if (st->name && lc_find(st->name)) {
            cl_err_set(E->err, CL_ENAME,
                       "'%s' is the name of a command; choose another name for the variable",
                       st->name);
            E->where.line = st->line;
            E->where.col = st->col;
            return -1;
        }
        E->s->displayed = 0;
        E->s->live_id[0] = '\0';
        lv_value *v = ev_eval(E, st->e);
        if (!v) return -1;
        ss_live_end(E->s);
        if (E->s->skip_rest) {
            E->s->skip_rest = 0;
            lv_unref(v);
            return 0;
        }
        if (st->name) {
            if (v->kind == LV_NONE) {
                lv_unref(v);
                cl_err_set(E->err, CL_ETYPE, "this command gives no value to store in '%s'",
                           st->name);
                E->where.line = st->e->line;
                E->where.col = st->e->col;
                return -1;
            }
            if (ss_set(E->s, st->name, v, E->err) < 0) return -1;
        } else if (i == prog->n - 1 && v->kind != LV_NONE && !E->s->displayed) {
            *last = v;
        } else {
            lv_unref(v);
        }
    }
    return 0;
}
