/* wt_private — what the weight readers (safetensors, pth) share with
 * weights.c.  Not for use outside engine/io.
 */
#ifndef CNNLENS_IO_WT_PRIVATE_H
#define CNNLENS_IO_WT_PRIVATE_H

#include "engine/io/weights.h"

/* Most tensors one file may hold: real checkpoints have a few thousand. */
#define WT_MAX_ENTRIES 200000

/* Appends without the duplicate check (the reader checked the whole set at
 * once); takes ownership of name and t, also on failure. */
int wt_append_owned(wt_dict *d, char *name, tn_tensor *t, cl_err *err);

/* Fails with a clear error if two of the n names are equal (O(n log n)). */
int wt_check_unique(const char *const *names, size_t n, cl_err *err);

#endif
