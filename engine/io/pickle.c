#include "engine/io/pickle.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* A torch state_dict needs about 20 objects per tensor; a million is far
 * beyond any real checkpoint and bounds what a hostile stream can allocate. */
#define PK_MAX_VALUES (1u << 20)
#define PK_MAX_DEPTH  (1u << 20)
#define PK_MAX_ITEMS  (1u << 22)

enum {
    G_ODICT,
    G_REBUILD_V2,
    G_REBUILD,
    G_PARAM,
    G_PARAM_STATE,
    G_FROM_TYPE,
    G_TENSOR_CLS,
    G_PARAM_CLS,
    G_STORAGE, /* + io_dtype */
};

static const struct {
    const char *module, *name;
    int id;
} allowed[] = {
    {"collections", "OrderedDict", G_ODICT},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2},
    {"torch._utils", "_rebuild_tensor", G_REBUILD},
    {"torch._utils", "_rebuild_parameter", G_PARAM},
    {"torch._utils", "_rebuild_parameter_with_state", G_PARAM_STATE},
    {"torch._tensor", "_rebuild_from_type_v2", G_FROM_TYPE},
    {"torch", "Tensor", G_TENSOR_CLS},
    {"torch.nn.parameter", "Parameter", G_PARAM_CLS},
    {"torch", "FloatStorage", G_STORAGE + IO_F32},
    {"torch", "HalfStorage", G_STORAGE + IO_F16},
    {"torch", "BFloat16Storage", G_STORAGE + IO_BF16},
    {"torch", "DoubleStorage", G_STORAGE + IO_F64},
    {"torch", "LongStorage", G_STORAGE + IO_I64},
    {"torch", "IntStorage", G_STORAGE + IO_I32},
    {"torch", "ShortStorage", G_STORAGE + IO_I16},
    {"torch", "CharStorage", G_STORAGE + IO_I8},
    {"torch", "ByteStorage", G_STORAGE + IO_U8},
    {"torch", "BoolStorage", G_STORAGE + IO_BOOL},
};

struct pk_reader {
    pk_value **all; /* every value made, freed by pk_free */
    size_t nall, capall;
    size_t nitems; /* items added to containers, for PK_MAX_ITEMS */
    pk_value **stack;
    size_t sp, stcap;
    size_t *marks;
    size_t nmarks, mcap;
    pk_value **memo;
    size_t memocap;
    const uint8_t *buf;
    size_t len, pos, op_at;
    cl_err *err;
};

static int fail(pk_reader *r, cl_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(pk_reader *r, cl_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cl_err_vset(r->err, code, fmt, ap);
    va_end(ap);
    return cl_err_prefix(r->err, "pickle byte %zu", r->op_at);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *np = realloc(*p, c * elem);
    if (!np) return -1;
    *p = np;
    *cap = c;
    return 0;
}

static pk_value *mk(pk_reader *r, pk_kind kind)
{
    if (r->nall >= PK_MAX_VALUES) {
        fail(r, CL_ENOMEM, "the pickle holds more than %u objects; not a weights file?",
             PK_MAX_VALUES);
        return NULL;
    }
    if (grow((void **)&r->all, &r->capall, r->nall + 1, sizeof *r->all)) goto oom;
    pk_value *v = calloc(1, sizeof *v);
    if (!v) goto oom;
    v->kind = kind;
    r->all[r->nall++] = v;
    return v;
oom:
    fail(r, CL_ENOMEM, "out of memory");
    return NULL;
}

static int add_item(pk_reader *r, pk_value *c, pk_value *item)
{
    /* BINGET can add one object many times over: bound the total too. */
    if (++r->nitems > PK_MAX_ITEMS)
        return fail(r, CL_ENOMEM, "the pickle's containers hold more than %u items", PK_MAX_ITEMS);
    if (grow((void **)&c->items, &c->cap, c->n + 1, sizeof *c->items))
        return fail(r, CL_ENOMEM, "out of memory");
    c->items[c->n++] = item;
    return 0;
}

static int push(pk_reader *r, pk_value *v)
{
    if (!v) return -1;
    if (r->sp >= PK_MAX_DEPTH) return fail(r, CL_ENOMEM, "pickle stack too deep");
    if (grow((void **)&r->stack, &r->stcap, r->sp + 1, sizeof *r->stack))
        return fail(r, CL_ENOMEM, "out of memory");
    r->stack[r->sp++] = v;
    return 0;
}

static pk_value *pop(pk_reader *r)
{
    size_t floor = r->nmarks ? r->marks[r->nmarks - 1] : 0;
    if (r->sp <= floor) {
        fail(r, CL_EFORMAT, "pickle stack underflow (corrupt file)");
        return NULL;
    }
    return r->stack[--r->sp];
}

static pk_value *top(pk_reader *r)
{
    size_t floor = r->nmarks ? r->marks[r->nmarks - 1] : 0;
    if (r->sp <= floor) {
        fail(r, CL_EFORMAT, "pickle stack underflow (corrupt file)");
        return NULL;
    }
    return r->stack[r->sp - 1];
}

/* Pops everything above the last MARK into *first..; returns the count. */
static int pop_mark(pk_reader *r, size_t *start)
{
    if (!r->nmarks) return fail(r, CL_EFORMAT, "pickle: no MARK on the stack (corrupt file)");
    *start = r->marks[--r->nmarks];
    return 0;
}

static int need(pk_reader *r, size_t n)
{
    if (n > r->len - r->pos) return fail(r, CL_EFORMAT, "the pickle is truncated");
    return 0;
}

static uint64_t rd_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static pk_value *mk_int(pk_reader *r, int64_t i)
{
    pk_value *v = mk(r, PK_INT);
    if (v) v->i = i;
    return v;
}

static pk_value *mk_str(pk_reader *r, const uint8_t *p, size_t n)
{
    pk_value *v = mk(r, PK_STR);
    if (!v) return NULL;
    v->s = malloc(n + 1);
    if (!v->s) {
        fail(r, CL_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(v->s, p, n);
    v->s[n] = '\0';
    v->n = n;
    return v;
}

static int op_string(pk_reader *r, int lenbytes)
{
    if (need(r, (size_t)lenbytes)) return -1;
    uint64_t n = rd_le(r->buf + r->pos, lenbytes);
    r->pos += (size_t)lenbytes;
    if (need(r, n)) return -1;
    pk_value *v = mk_str(r, r->buf + r->pos, (size_t)n);
    r->pos += (size_t)n;
    return push(r, v);
}

/* GLOBAL "module\nname\n": only the allow-listed names resolve. */
static int op_global(pk_reader *r)
{
    const uint8_t *p = r->buf + r->pos, *end = r->buf + r->len;
    const uint8_t *nl1 = memchr(p, '\n', (size_t)(end - p));
    const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
    if (!nl2) return fail(r, CL_EFORMAT, "the pickle is truncated");
    size_t ml = (size_t)(nl1 - p), nlen = (size_t)(nl2 - nl1 - 1);
    r->pos = (size_t)(nl2 + 1 - r->buf);
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++) {
        if (strlen(allowed[i].module) == ml && !memcmp(allowed[i].module, p, ml) &&
            strlen(allowed[i].name) == nlen && !memcmp(allowed[i].name, nl1 + 1, nlen)) {
            pk_value *v = mk(r, PK_GLOBAL);
            if (v) v->i = allowed[i].id;
            return push(r, v);
        }
    }
    int mshow = ml > 80 ? 80 : (int)ml, nshow = nlen > 80 ? 80 : (int)nlen;
    return fail(r, CL_EFORMAT,
                "the file asks for '%.*s.%.*s', which a weights file never needs; refusing to "
                "load it (cnnlens runs no code from files; save a state_dict with torch.save)",
                mshow, (const char *)p, nshow, (const char *)nl1 + 1);
}

static int as_int(pk_reader *r, const pk_value *v, int64_t *out, const char *what)
{
    if (!v || (v->kind != PK_INT && v->kind != PK_BOOL))
        return fail(r, CL_EFORMAT, "tensor %s is not an integer", what);
    *out = v->i;
    return 0;
}

static int int_tuple(pk_reader *r, const pk_value *t, int64_t *out, int *n, const char *what)
{
    if (!t || t->kind != PK_TUPLE) return fail(r, CL_EFORMAT, "tensor %s is not a tuple", what);
    if (t->n > TN_MAXDIM)
        return fail(r, CL_EFORMAT, "a tensor has %zu dimensions (at most %d)", t->n, TN_MAXDIM);
    for (size_t i = 0; i < t->n; i++) {
        if (as_int(r, t->items[i], &out[i], what)) return -1;
        if (out[i] < 0) return fail(r, CL_EFORMAT, "tensor %s has a negative entry", what);
    }
    *n = (int)t->n;
    return 0;
}

/* Every element the view can reach lies inside the storage. */
static int check_view(pk_reader *r, const pk_tensor *t)
{
    int64_t numel = 1, last = t->offset;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] == 0) return 0;
        if (t->shape[i] > tn_max_elems || (numel *= t->shape[i]) > tn_max_elems)
            return fail(r, CL_ENOMEM, "a tensor exceeds the limit of %lld elements",
                        (long long)tn_max_elems);
        int64_t reach = t->shape[i] - 1;
        if (t->stride[i] && reach > (t->storage->numel - last) / t->stride[i]) goto out;
        last += reach * t->stride[i];
    }
    if (last < t->storage->numel) return 0;
out:
    return fail(r, CL_EFORMAT,
                "a tensor's offset/strides reach past its storage '%s' of %lld elements "
                "(corrupt file)",
                t->storage->s, (long long)t->storage->numel);
}

/* _rebuild_tensor(_v2)(storage, offset, size, stride, ...) */
static pk_value *rebuild_tensor(pk_reader *r, const pk_value *args, size_t min, size_t max)
{
    if (args->n < min || args->n > max) {
        fail(r, CL_EFORMAT, "_rebuild_tensor got %zu arguments", args->n);
        return NULL;
    }
    pk_value *st = args->items[0];
    if (st->kind != PK_STORAGE) {
        fail(r, CL_EFORMAT, "_rebuild_tensor's first argument is not a storage");
        return NULL;
    }
    pk_tensor *t = calloc(1, sizeof *t);
    pk_value *v = t ? mk(r, PK_TENSOR) : NULL;
    if (!v) {
        if (!t) fail(r, CL_ENOMEM, "out of memory");
        free(t);
        return NULL;
    }
    v->tensor = t;
    t->storage = st;
    int nst;
    if (as_int(r, args->items[1], &t->offset, "offset") ||
        int_tuple(r, args->items[2], t->shape, &t->ndim, "size") ||
        int_tuple(r, args->items[3], t->stride, &nst, "stride"))
        return NULL;
    if (t->offset < 0) {
        fail(r, CL_EFORMAT, "a tensor has a negative storage offset");
        return NULL;
    }
    if (nst != t->ndim) {
        fail(r, CL_EFORMAT, "a tensor's size and stride differ in length");
        return NULL;
    }
    return check_view(r, t) ? NULL : v;
}

static pk_value *call(pk_reader *r, const pk_value *fn, pk_value *args);

/* _rebuild_from_type_v2(func, type, args, state): a plain tensor or parameter. */
static pk_value *rebuild_from_type(pk_reader *r, pk_value *args)
{
    if (args->n != 4 || args->items[0]->kind != PK_GLOBAL || args->items[1]->kind != PK_GLOBAL ||
        args->items[2]->kind != PK_TUPLE) {
        fail(r, CL_EFORMAT, "bad _rebuild_from_type_v2 call");
        return NULL;
    }
    int64_t fn = args->items[0]->i, type = args->items[1]->i;
    if ((fn != G_REBUILD_V2 && fn != G_REBUILD) || (type != G_TENSOR_CLS && type != G_PARAM_CLS)) {
        fail(r, CL_EFORMAT, "_rebuild_from_type_v2 of an unsupported tensor type");
        return NULL;
    }
    return call(r, args->items[0], args->items[2]);
}

static pk_value *ordered_dict(pk_reader *r, const pk_value *args)
{
    pk_value *d = mk(r, PK_DICT);
    if (!d || args->n == 0) return d;
    /* Python 2 pickled OrderedDict as OrderedDict([[k, v], ...]). */
    const pk_value *items = args->items[0];
    if (args->n != 1 || (items->kind != PK_LIST && items->kind != PK_TUPLE)) goto bad;
    for (size_t i = 0; i < items->n; i++) {
        const pk_value *kv = items->items[i];
        if ((kv->kind != PK_LIST && kv->kind != PK_TUPLE) || kv->n != 2) goto bad;
        if (add_item(r, d, kv->items[0]) || add_item(r, d, kv->items[1])) return NULL;
    }
    return d;
bad:
    fail(r, CL_EFORMAT, "bad OrderedDict arguments");
    return NULL;
}

static pk_value *call(pk_reader *r, const pk_value *fn, pk_value *args)
{
    if (fn->kind != PK_GLOBAL || args->kind != PK_TUPLE) {
        fail(r, CL_EFORMAT, "REDUCE on something that is not an allowed callable");
        return NULL;
    }
    switch (fn->i) {
    case G_ODICT:
        return ordered_dict(r, args);
    case G_REBUILD_V2:
        return rebuild_tensor(r, args, 6, 7);
    case G_REBUILD:
        return rebuild_tensor(r, args, 4, 4);
    case G_PARAM:
    case G_PARAM_STATE:
        if (args->n >= 1 && args->items[0]->kind == PK_TENSOR) return args->items[0];
        fail(r, CL_EFORMAT, "_rebuild_parameter of something that is not a tensor");
        return NULL;
    case G_FROM_TYPE:
        return rebuild_from_type(r, args);
    }
    fail(r, CL_EFORMAT, "a torch class or storage type is called like a function");
    return NULL;
}

static const char *const storage_tag = "storage";

/* BINPERSID: ('storage', torch.XStorage, key, location, numel[, view]) */
static pk_value *persistent(pk_reader *r, const pk_value *pid)
{
    if (pid->kind != PK_TUPLE || (pid->n != 5 && pid->n != 6) || pid->items[0]->kind != PK_STR ||
        strcmp(pid->items[0]->s, storage_tag)) {
        fail(r, CL_EFORMAT, "a persistent id that is not a torch storage");
        return NULL;
    }
    const pk_value *type = pid->items[1], *key = pid->items[2], *numel = pid->items[4];
    if (type->kind != PK_GLOBAL || type->i < G_STORAGE || key->kind != PK_STR ||
        numel->kind != PK_INT || numel->i < 0) {
        fail(r, CL_EFORMAT, "a malformed storage reference");
        return NULL;
    }
    if (pid->n == 6 && pid->items[5]->kind != PK_NONE) {
        fail(r, CL_EFORMAT, "storage views of pre-0.4 PyTorch files are not supported");
        return NULL;
    }
    pk_value *v = mk(r, PK_STORAGE);
    if (!v) return NULL;
    v->dt = (io_dtype)(type->i - G_STORAGE);
    v->s = key->s; /* shared with the key string, owned by that value */
    v->n = key->n;
    v->numel = numel->i;
    return v;
}

static int op_memo_put(pk_reader *r, size_t idx)
{
    pk_value *v = top(r);
    if (!v) return -1;
    /* Picklers number memo entries 0, 1, 2, ..., one per object: an index
     * beyond the objects made so far is not from a real pickler. */
    if (idx > r->nall + 16) return fail(r, CL_EFORMAT, "memo index %zu out of range", idx);
    if (idx >= r->memocap) {
        size_t old = r->memocap;
        if (grow((void **)&r->memo, &r->memocap, idx + 1, sizeof *r->memo))
            return fail(r, CL_ENOMEM, "out of memory");
        memset(r->memo + old, 0, (r->memocap - old) * sizeof *r->memo);
    }
    r->memo[idx] = v;
    return 0;
}

static int op_memo_get(pk_reader *r, size_t idx)
{
    if (idx >= r->memocap || !r->memo[idx])
        return fail(r, CL_EFORMAT, "memo entry %zu is used before it is set", idx);
    return push(r, r->memo[idx]);
}

static int op_tuple(pk_reader *r, size_t n_from_stack, int use_mark)
{
    size_t start = 0;
    if (use_mark) {
        if (pop_mark(r, &start)) return -1;
    } else {
        size_t floor = r->nmarks ? r->marks[r->nmarks - 1] : 0;
        if (r->sp - floor < n_from_stack) return fail(r, CL_EFORMAT, "pickle stack underflow");
        start = r->sp - n_from_stack;
    }
    pk_value *t = mk(r, PK_TUPLE);
    if (!t) return -1;
    for (size_t i = start; i < r->sp; i++)
        if (add_item(r, t, r->stack[i])) return -1;
    r->sp = start;
    return push(r, t);
}

static int op_setitems(pk_reader *r, int use_mark)
{
    size_t start = 0;
    if (use_mark) {
        if (pop_mark(r, &start)) return -1;
    } else {
        size_t floor = r->nmarks ? r->marks[r->nmarks - 1] : 0;
        if (r->sp - floor < 2) return fail(r, CL_EFORMAT, "pickle stack underflow");
        start = r->sp - 2;
    }
    if ((r->sp - start) % 2) return fail(r, CL_EFORMAT, "SETITEMS with an odd number of items");
    size_t floor = r->nmarks ? r->marks[r->nmarks - 1] : 0;
    if (start <= floor || r->stack[start - 1]->kind != PK_DICT)
        return fail(r, CL_EFORMAT, "SETITEM on something that is not a dict");
    pk_value *d = r->stack[start - 1];
    for (size_t i = start; i < r->sp; i++)
        if (add_item(r, d, r->stack[i])) return -1;
    r->sp = start;
    return 0;
}

static int op_appends(pk_reader *r, int use_mark)
{
    size_t start = 0;
    if (use_mark) {
        if (pop_mark(r, &start)) return -1;
    } else {
        size_t floor = r->nmarks ? r->marks[r->nmarks - 1] : 0;
        if (r->sp - floor < 1) return fail(r, CL_EFORMAT, "pickle stack underflow");
        start = r->sp - 1;
    }
    size_t floor = r->nmarks ? r->marks[r->nmarks - 1] : 0;
    if (start <= floor || r->stack[start - 1]->kind != PK_LIST)
        return fail(r, CL_EFORMAT, "APPEND on something that is not a list");
    pk_value *l = r->stack[start - 1];
    for (size_t i = start; i < r->sp; i++)
        if (add_item(r, l, r->stack[i])) return -1;
    r->sp = start;
    return 0;
}

static int op_reduce(pk_reader *r, int newobj)
{
    pk_value *args = pop(r);
    pk_value *fn = args ? pop(r) : NULL;
    if (!fn) return -1;
    if (newobj) {
        /* cls.__new__(cls, *args): only an empty OrderedDict makes sense. */
        if (fn->kind != PK_GLOBAL || fn->i != G_ODICT || args->kind != PK_TUPLE || args->n)
            return fail(r, CL_EFORMAT, "NEWOBJ of something that is not an OrderedDict");
        return push(r, mk(r, PK_DICT));
    }
    return push(r, call(r, fn, args));
}

static int op_build(pk_reader *r)
{
    pk_value *state = pop(r), *obj = state ? top(r) : NULL;
    if (!obj) return -1;
    /* A state_dict's `_metadata` and tensor attributes carry nothing we use. */
    if (obj->kind != PK_DICT && obj->kind != PK_TENSOR)
        return fail(r, CL_EFORMAT, "BUILD on something that is not a dict or tensor");
    return 0;
}

static int op_long1(pk_reader *r)
{
    if (need(r, 1)) return -1;
    size_t n = r->buf[r->pos++];
    if (need(r, n)) return -1;
    if (n > 8) return fail(r, CL_EFORMAT, "an integer of %zu bytes is too large", n);
    uint64_t u = n ? rd_le(r->buf + r->pos, (int)n) : 0;
    if (n && n < 8 && (r->buf[r->pos + n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n);
    r->pos += n;
    return push(r, mk_int(r, (int64_t)u));
}

static int op_binfloat(pk_reader *r)
{
    if (need(r, 8)) return -1;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = u << 8 | r->buf[r->pos + (size_t)i];
    r->pos += 8;
    pk_value *v = mk(r, PK_FLOAT);
    if (v) memcpy(&v->f, &u, 8);
    return push(r, v);
}

static int op_fixed_int(pk_reader *r, int n, int is_signed)
{
    if (need(r, (size_t)n)) return -1;
    uint64_t u = rd_le(r->buf + r->pos, n);
    r->pos += (size_t)n;
    int64_t v = is_signed ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
    return push(r, mk_int(r, v));
}

static int op_memo_arg(pk_reader *r, int n, int put)
{
    if (need(r, (size_t)n)) return -1;
    size_t idx = (size_t)rd_le(r->buf + r->pos, n);
    r->pos += (size_t)n;
    return put ? op_memo_put(r, idx) : op_memo_get(r, idx);
}

static int op_bool(pk_reader *r, int v)
{
    pk_value *b = mk(r, PK_BOOL);
    if (b) b->i = v;
    return push(r, b);
}

static int op_mark(pk_reader *r)
{
    if (grow((void **)&r->marks, &r->mcap, r->nmarks + 1, sizeof *r->marks))
        return fail(r, CL_ENOMEM, "out of memory");
    r->marks[r->nmarks++] = r->sp;
    return 0;
}

static int op_persid(pk_reader *r)
{
    pk_value *pid = pop(r);
    return pid ? push(r, persistent(r, pid)) : -1;
}

static int op_proto(pk_reader *r)
{
    if (need(r, 1)) return -1;
    int v = r->buf[r->pos++];
    if (v > 2)
        return fail(r, CL_EFORMAT,
                    "pickle protocol %d is not supported (torch.save writes protocol 2)", v);
    return 0;
}

/* One opcode; returns 1 on STOP, 0 to continue, -1 on error. */
static int step(pk_reader *r)
{
    if (need(r, 1)) return -1;
    r->op_at = r->pos;
    uint8_t op = r->buf[r->pos++];
    switch (op) {
    case 0x80:
        return op_proto(r);
    case '.':
        return top(r) ? 1 : -1;
    case '(':
        return op_mark(r);
    case '}':
        return push(r, mk(r, PK_DICT));
    case ']':
        return push(r, mk(r, PK_LIST));
    case ')':
        return op_tuple(r, 0, 0);
    case 't':
        return op_tuple(r, 0, 1);
    case 0x85:
        return op_tuple(r, 1, 0);
    case 0x86:
        return op_tuple(r, 2, 0);
    case 0x87:
        return op_tuple(r, 3, 0);
    case 's':
        return op_setitems(r, 0);
    case 'u':
        return op_setitems(r, 1);
    case 'a':
        return op_appends(r, 0);
    case 'e':
        return op_appends(r, 1);
    case 'q':
        return op_memo_arg(r, 1, 1);
    case 'r':
        return op_memo_arg(r, 4, 1);
    case 'h':
        return op_memo_arg(r, 1, 0);
    case 'j':
        return op_memo_arg(r, 4, 0);
    case 'J':
        return op_fixed_int(r, 4, 1);
    case 'K':
        return op_fixed_int(r, 1, 0);
    case 'M':
        return op_fixed_int(r, 2, 0);
    case 0x8a:
        return op_long1(r);
    case 'G':
        return op_binfloat(r);
    case 'N':
        return push(r, mk(r, PK_NONE));
    case 0x88:
        return op_bool(r, 1);
    case 0x89:
        return op_bool(r, 0);
    case 'X':
        return op_string(r, 4);
    case 'T':
        return op_string(r, 4);
    case 'U':
        return op_string(r, 1);
    case 'c':
        return op_global(r);
    case 'R':
        return op_reduce(r, 0);
    case 0x81:
        return op_reduce(r, 1);
    case 'b':
        return op_build(r);
    case 'Q':
        return op_persid(r);
    }
    return fail(r, CL_EFORMAT,
                "pickle opcode 0x%02x is not allowed in a weights file (corrupt file, or not a "
                "plain state_dict)",
                op);
}

pk_reader *pk_new(cl_err *err)
{
    pk_reader *r = calloc(1, sizeof *r);
    if (!r) cl_err_set(err, CL_ENOMEM, "out of memory");
    return r;
}

pk_value *pk_load(pk_reader *r, const uint8_t *buf, size_t len, size_t *used, cl_err *err)
{
    r->buf = buf;
    r->len = len;
    r->pos = r->op_at = 0;
    r->sp = r->nmarks = 0;
    r->err = err;
    /* Each pickle of a stream has its own memo. */
    if (r->memo) memset(r->memo, 0, r->memocap * sizeof *r->memo);
    int rc;
    while ((rc = step(r)) == 0) {
    }
    if (rc < 0) return NULL;
    *used = r->pos;
    return r->stack[r->sp - 1];
}

pk_value *pk_dict_get(const pk_value *dict, const char *key)
{
    if (!dict || dict->kind != PK_DICT) return NULL;
    for (size_t i = 0; i + 1 < dict->n; i += 2)
        if (dict->items[i]->kind == PK_STR && !strcmp(dict->items[i]->s, key))
            return dict->items[i + 1];
    return NULL;
}

pk_value **pk_storages(const pk_reader *r, size_t *n, cl_err *err)
{
    size_t k = 0;
    for (size_t i = 0; i < r->nall; i++) k += r->all[i]->kind == PK_STORAGE;
    *n = 0;
    if (!k) return NULL;
    pk_value **out = malloc(k * sizeof *out);
    if (!out) {
        cl_err_set(err, CL_ENOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < r->nall; i++)
        if (r->all[i]->kind == PK_STORAGE) out[(*n)++] = r->all[i];
    return out;
}

void pk_free(pk_reader *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nall; i++) {
        pk_value *v = r->all[i];
        if (v->kind == PK_STR) free(v->s);
        free(v->items);
        free(v->tensor);
        free(v);
    }
    free(r->all);
    free(r->stack);
    free(r->marks);
    free(r->memo);
    free(r);
}
