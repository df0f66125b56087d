/* weights — a state_dict: an ordered list of named float32 tensors, read from
 * PyTorch .pth (zip or legacy pickle, by an allow-listed pickle reader that
 * runs no code) or safetensors, and written as safetensors.
 *
 * CONTRACT HEADER (see engine/net.h).
 *
 * Ownership: wt_load returns a dict the caller frees with wt_free; it owns its
 * tensors.  wt_get returns a borrowed tensor.
 */
#ifndef CNNLENS_IO_WEIGHTS_H
#define CNNLENS_IO_WEIGHTS_H

#include <stddef.h>

#include "engine/err.h"
#include "engine/tensor.h"

typedef struct wt_entry {
    char *name;   /* e.g. "layer4.1.bn2.running_var" */
    tn_tensor *t; /* float32 (other dtypes converted; int64 num_batches_tracked kept as float) */
} wt_entry;

typedef struct wt_dict {
    wt_entry *items;
    size_t count, cap;
} wt_dict;

/* Reads .pth (zip or legacy) or .safetensors, chosen by the file's magic bytes. */
wt_dict *wt_load(const char *path, cl_err *err);
wt_dict *wt_new(cl_err *err);
/* Adds a tensor (the dict takes ownership of t); names must be unique. */
int wt_add(wt_dict *d, const char *name, tn_tensor *t, cl_err *err);
const tn_tensor *wt_get(const wt_dict *d, const char *name);
/* Writes safetensors (F32), atomically. */
int wt_save_safetensors(const wt_dict *d, const char *path, cl_err *err);
void wt_free(wt_dict *d);

#endif
