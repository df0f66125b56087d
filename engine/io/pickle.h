/* pickle — a pickle reader that runs no code, for PyTorch checkpoints.
 *
 * Only the opcodes a torch.save stream uses (protocol 2) are accepted, and
 * GLOBAL may name only the allow-listed callables: collections.OrderedDict,
 * torch._utils._rebuild_tensor(_v2), _rebuild_parameter(_with_state),
 * torch._tensor._rebuild_from_type_v2 (for plain tensors and parameters) and
 * the torch.*Storage types.  "Calling" one of them builds a description, never
 * runs anything: a tensor is (storage key, dtype, offset, shape, strides) and
 * its data is read later by the caller (pth.c), which checks it against the
 * bytes present.  Anything else (e.g. `os system`) is refused with an error.
 *
 * Ownership: every value belongs to the pk_reader and lives until pk_free.
 */
#ifndef CNNLENS_IO_PICKLE_H
#define CNNLENS_IO_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/io/dtype.h"
#include "engine/tensor.h"

typedef enum {
    PK_NONE,
    PK_BOOL,
    PK_INT,
    PK_FLOAT,
    PK_STR,
    PK_TUPLE,
    PK_LIST,
    PK_DICT, /* items hold key, value, key, value, ... in insertion order */
    PK_GLOBAL,
    PK_STORAGE,
    PK_TENSOR,
} pk_kind;

typedef struct pk_value pk_value;
struct pk_tensor;
struct pk_value {
    pk_kind kind;
    int64_t i;  /* BOOL, INT; GLOBAL: which allowed global */
    double f;   /* FLOAT */
    char *s;    /* STR (NUL-terminated; len in n); STORAGE: the key */
    size_t n;   /* items in a TUPLE, LIST or DICT (2 per entry); STR length */
    size_t cap; /* allocated items */
    pk_value **items;
    io_dtype dt;              /* STORAGE */
    int64_t numel;            /* STORAGE: elements */
    struct pk_tensor *tensor; /* TENSOR */
};

typedef struct pk_tensor {
    pk_value *storage;
    int64_t offset;
    int ndim;
    int64_t shape[TN_MAXDIM], stride[TN_MAXDIM];
} pk_tensor;

typedef struct pk_reader pk_reader;

pk_reader *pk_new(cl_err *err);
/* Runs one pickle from buf (up to STOP) and returns its object; *used is the
 * number of bytes consumed.  NULL on error.  May be called again for the next
 * pickle of a stream (the legacy .pth format is several in a row). */
pk_value *pk_load(pk_reader *r, const uint8_t *buf, size_t len, size_t *used, cl_err *err);
/* The value of `key` in a DICT, or NULL. */
pk_value *pk_dict_get(const pk_value *dict, const char *key);
/* Every storage reference made so far, in a malloc'd array the caller frees
 * (the values stay the reader's); NULL with *n = 0 if there are none. */
pk_value **pk_storages(const pk_reader *r, size_t *n, cl_err *err);
void pk_free(pk_reader *r);

#endif
