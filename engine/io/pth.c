#include "engine/io/pth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/dtype.h"
#include "engine/io/pickle.h"
#include "engine/io/wt_private.h"
#include "engine/io/zip.h"

/* The legacy format's first pickle: the magic number 0x1950a86a20f9469cfc6c. */
static const uint8_t legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                       0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

/* Where a storage's bytes are: a view into the mapped file or an inflated copy. */
typedef struct pth_src {
    const fm_map *m;
    /* zip */
    const zip_archive *z;
    const char *root;
    /* legacy: storages sorted by key with their file offsets */
    struct legacy_storage *legacy;
    size_t nlegacy;
} pth_src;

typedef struct legacy_storage {
    const char *key;
    io_dtype dt;
    uint64_t off, bytes;
} legacy_storage;

int pth_is_legacy(const fm_map *m)
{
    return m->size >= sizeof legacy_magic && !memcmp(m->data, legacy_magic, sizeof legacy_magic);
}

/* The state_dict inside a checkpoint: the object itself, or its "state_dict"
 * or "model" entry (the usual training-script wrappers). */
static const pk_value *find_state_dict(const pk_value *obj, cl_err *err)
{
    for (int depth = 0; obj && obj->kind == PK_DICT && depth < 3; depth++) {
        const pk_value *inner = pk_dict_get(obj, "state_dict");
        if (!inner) inner = pk_dict_get(obj, "model");
        if (!inner || inner->kind != PK_DICT) return obj;
        obj = inner;
    }
    if (obj && obj->kind == PK_DICT) return obj;
    cl_err_set(err, CL_EFORMAT,
               "the checkpoint is not a state_dict (save one with "
               "torch.save(model.state_dict(), path))");
    return NULL;
}

static int cmp_legacy(const void *a, const void *b)
{
    return strcmp(((const legacy_storage *)a)->key, ((const legacy_storage *)b)->key);
}

static const legacy_storage *legacy_find(const pth_src *s, const char *key)
{
    legacy_storage k = {.key = key};
    return bsearch(&k, s->legacy, s->nlegacy, sizeof k, cmp_legacy);
}

/* The bytes of storage `st`, at least numel x element size of them. */
static int storage_bytes(const pth_src *s, const pk_value *st, const uint8_t **data,
                         size_t *base_off, uint8_t **owned, cl_err *err)
{
    uint64_t need = (uint64_t)st->numel * io_dtype_size(st->dt);
    size_t size = 0;
    *owned = NULL;
    *base_off = 0;
    if (s->z) {
        char name[512];
        if ((size_t)snprintf(name, sizeof name, "%s/data/%s", s->root, st->s) >= sizeof name)
            return cl_err_set(err, CL_EFORMAT, "storage key '%.64s' is too long", st->s);
        const zip_entry *e = zip_find(s->z, name);
        if (!e) return cl_err_set(err, CL_EFORMAT, "the archive lacks the storage '%s'", name);
        if (zip_data(s->m->data, s->m->size, e, need, data, &size, owned, err)) return -1;
        if (!*owned) *base_off = (size_t)(*data - s->m->data);
    } else {
        const legacy_storage *ls = legacy_find(s, st->s);
        if (!ls) return cl_err_set(err, CL_EFORMAT, "the file lacks the storage '%s'", st->s);
        *data = s->m->data + ls->off;
        *base_off = (size_t)ls->off;
        size = (size_t)ls->bytes;
        if (ls->dt != st->dt && io_dtype_size(ls->dt) != io_dtype_size(st->dt))
            return cl_err_set(err, CL_EFORMAT, "storage '%s' is used with two types", st->s);
    }
    if (size < need) {
        free(*owned);
        *owned = NULL;
        return cl_err_set(err, CL_EFORMAT,
                          "storage '%s' should hold %llu bytes but has %zu (truncated?)", st->s,
                          (unsigned long long)need, size);
    }
    return 0;
}

static tn_tensor *make_tensor(const pth_src *s, const pk_tensor *pt, cl_err *err)
{
    const uint8_t *data;
    uint8_t *owned;
    size_t base_off;
    if (storage_bytes(s, pt->storage, &data, &base_off, &owned, err)) return NULL;
    tn_tensor *t = tn_new(pt->ndim, pt->shape, err);
    if (t) {
        int64_t n = tn_numel(t), expect = 1;
        int contiguous = 1;
        for (int i = pt->ndim - 1; i >= 0; i--) {
            if (pt->shape[i] != 1 && pt->stride[i] != expect) contiguous = 0;
            expect *= pt->shape[i];
        }
        size_t es = io_dtype_size(pt->storage->dt);
        if (contiguous && !owned) {
            fm_convert(s->m, base_off + (size_t)pt->offset * es, t->data, n, pt->storage->dt);
        } else if (contiguous) {
            io_convert(t->data, data + (size_t)pt->offset * es, n, pt->storage->dt);
        } else {
            io_gather(t->data, data, pt->storage->dt, pt->ndim, pt->shape, pt->stride, pt->offset);
            if (!owned) fm_release(s->m, base_off, (size_t)pt->storage->numel * es);
        }
    }
    free(owned);
    return t;
}

static int add_tensors(const pth_src *s, const pk_value *sd, wt_dict *d, cl_err *err)
{
    size_t n = 0;
    const char **names = malloc((sd->n / 2 + 1) * sizeof *names);
    if (!names) return cl_err_set(err, CL_ENOMEM, "out of memory");
    for (size_t i = 0; i + 1 < sd->n; i += 2)
        if (sd->items[i]->kind == PK_STR && sd->items[i + 1]->kind == PK_TENSOR)
            names[n++] = sd->items[i]->s;
    int rc =
        n ? wt_check_unique(names, n, err)
          : cl_err_set(err, CL_EFORMAT, "the checkpoint holds no tensors (is it a state_dict?)");
    free(names);
    for (size_t i = 0; !rc && i + 1 < sd->n; i += 2) {
        const pk_value *k = sd->items[i], *v = sd->items[i + 1];
        if (k->kind != PK_STR || v->kind != PK_TENSOR) continue;
        tn_tensor *t = make_tensor(s, v->tensor, err);
        char *name = t ? strdup(k->s) : NULL;
        if (!t)
            rc = cl_err_prefix(err, "tensor '%s'", k->s);
        else if (!name)
            rc = (tn_free(t), cl_err_set(err, CL_ENOMEM, "out of memory"));
        else
            rc = wt_append_owned(d, name, t, err);
    }
    return rc;
}

static char *root_of(const zip_archive *z, cl_err *err)
{
    const char *first = z->entries[0].name, *slash = strchr(first, '/');
    if (!slash || slash == first) {
        cl_err_set(err, CL_EFORMAT, "a zip file but not a PyTorch checkpoint (no root folder)");
        return NULL;
    }
    char *root = strndup(first, (size_t)(slash - first));
    if (!root) cl_err_set(err, CL_ENOMEM, "out of memory");
    return root;
}

/* Checks `byteorder` if present (files from torch < 1.10 lack it). */
static int check_byteorder(const fm_map *m, const zip_archive *z, const char *root, cl_err *err)
{
    char name[512];
    snprintf(name, sizeof name, "%s/byteorder", root);
    const zip_entry *e = zip_find(z, name);
    if (!e) return 0;
    const uint8_t *data;
    size_t size;
    uint8_t *owned;
    if (zip_data(m->data, m->size, e, 64, &data, &size, &owned, err)) return -1;
    int little = size == 6 && !memcmp(data, "little", 6);
    free(owned);
    return little ? 0 : cl_err_set(err, CL_EFORMAT, "big-endian checkpoints are not supported");
}

/* Pickles hold about 100 bytes per tensor; 1 GiB is far beyond any model. */
#define PTH_MAX_PICKLE ((uint64_t)1 << 30)

int pth_load_zip(const fm_map *m, wt_dict *d, cl_err *err)
{
    zip_archive z;
    if (zip_open(&z, m->data, m->size, err)) return -1;
    char *root = root_of(&z, err);
    pk_reader *r = root ? pk_new(err) : NULL;
    uint8_t *owned = NULL;
    int rc = -1;
    if (!r || check_byteorder(m, &z, root, err)) goto out;
    char name[512];
    snprintf(name, sizeof name, "%s/data.pkl", root);
    const zip_entry *e = zip_find(&z, name);
    if (!e) {
        cl_err_set(err, CL_EFORMAT, "the archive lacks '%s': not a PyTorch checkpoint", name);
        goto out;
    }
    const uint8_t *pkl;
    size_t size = 0, used = 0;
    if (zip_data(m->data, m->size, e, PTH_MAX_PICKLE, &pkl, &size, &owned, err)) goto out;
    const pk_value *obj = pk_load(r, pkl, size, &used, err);
    const pk_value *sd = obj ? find_state_dict(obj, err) : NULL;
    if (!sd) goto out;
    pth_src s = {.m = m, .z = &z, .root = root};
    rc = add_tensors(&s, sd, d, err);
out:
    free(owned);
    pk_free(r);
    free(root);
    zip_close(&z);
    return rc;
}

/* ---- legacy ---- */

/* Gives each key of the storage list its offset: the data follow the list
 * in its order, each as an int64 element count and the raw bytes. */
static int index_storages(pk_reader *r, const pk_value *keys, const fm_map *m, size_t pos,
                          pth_src *s, cl_err *err)
{
    if (keys->kind != PK_LIST) return cl_err_set(err, CL_EFORMAT, "bad storage key list");
    size_t nst;
    pk_value **st = pk_storages(r, &nst, err);
    if (!st && nst) return -1;
    s->legacy = calloc(keys->n + 1, sizeof *s->legacy);
    if (!s->legacy) {
        free(st);
        return cl_err_set(err, CL_ENOMEM, "out of memory");
    }
    /* The element size of each key comes from its references in the object. */
    legacy_storage *refs = calloc(nst + 1, sizeof *refs);
    int rc = refs ? 0 : cl_err_set(err, CL_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < nst; i++) refs[i] = (legacy_storage){st[i]->s, st[i]->dt, 0, 0};
    if (!rc) qsort(refs, nst, sizeof *refs, cmp_legacy);
    pth_src lookup = {.legacy = refs, .nlegacy = nst};
    for (size_t i = 0; !rc && i < keys->n; i++) {
        const pk_value *k = keys->items[i];
        const legacy_storage *ref = k->kind == PK_STR ? legacy_find(&lookup, k->s) : NULL;
        if (!ref) {
            rc = cl_err_set(err, CL_EFORMAT, "the storage list names a storage nothing uses");
            break;
        }
        if (m->size - pos < 8) {
            rc =
                cl_err_set(err, CL_EFORMAT, "the file ends before storage '%s' (truncated?)", k->s);
            break;
        }
        uint64_t count = 0;
        for (int b = 7; b >= 0; b--) count = count << 8 | m->data[pos + (size_t)b];
        pos += 8;
        size_t es = io_dtype_size(ref->dt);
        if (count > (uint64_t)(m->size - pos) / es) {
            rc = cl_err_set(err, CL_EFORMAT,
                            "storage '%s' claims %llu elements, more than the file holds "
                            "(truncated?)",
                            k->s, (unsigned long long)count);
            break;
        }
        s->legacy[i] = (legacy_storage){k->s, ref->dt, pos, count * es};
        pos += (size_t)(count * es);
    }
    s->nlegacy = keys->n;
    if (!rc) qsort(s->legacy, s->nlegacy, sizeof *s->legacy, cmp_legacy);
    for (size_t i = 1; !rc && i < s->nlegacy; i++)
        if (!strcmp(s->legacy[i - 1].key, s->legacy[i].key))
            rc = cl_err_set(err, CL_EFORMAT, "storage '%s' is listed twice", s->legacy[i].key);
    free(refs);
    free(st);
    return rc;
}

static const pk_value *next_pickle(pk_reader *r, const fm_map *m, size_t *pos, cl_err *err)
{
    size_t used;
    const pk_value *v = pk_load(r, m->data + *pos, m->size - *pos, &used, err);
    if (v) *pos += used;
    return v;
}

int pth_load_legacy(const fm_map *m, wt_dict *d, cl_err *err)
{
    pk_reader *r = pk_new(err);
    if (!r) return -1;
    pth_src s = {.m = m};
    int rc = -1;
    size_t pos = sizeof legacy_magic;
    const pk_value *proto = next_pickle(r, m, &pos, err);
    if (!proto) goto out;
    if (proto->kind != PK_INT || proto->i != 1001) {
        cl_err_set(err, CL_EFORMAT, "legacy checkpoint of an unknown version");
        goto out;
    }
    const pk_value *info = next_pickle(r, m, &pos, err);
    if (!info) goto out;
    const pk_value *little = pk_dict_get(info, "little_endian");
    if (little && little->kind == PK_BOOL && !little->i) {
        cl_err_set(err, CL_EFORMAT, "big-endian checkpoints are not supported");
        goto out;
    }
    const pk_value *obj = next_pickle(r, m, &pos, err);
    const pk_value *keys = obj ? next_pickle(r, m, &pos, err) : NULL;
    if (!keys || index_storages(r, keys, m, pos, &s, err)) goto out;
    const pk_value *sd = find_state_dict(obj, err);
    if (sd) rc = add_tensors(&s, sd, d, err);
out:
    free(s.legacy);
    pk_free(r);
    return rc;
}
