/* pth — PyTorch checkpoints: the zip format (torch >= 1.6) and the legacy
 * pickle stream (torch.save(..., _use_new_zipfile_serialization=False), the
 * torchvision VGG files).
 *
 * Both are read through pickle.h, which runs no code; the object must be a
 * state_dict (an OrderedDict or dict of tensors), possibly wrapped as
 * {"state_dict": ...} or {"model": ...}.  Tensors may have a storage offset
 * and any strides; float16/float64/bfloat16 and integer storages are
 * converted to float32.
 *
 * Ownership: the loaders add tensors they allocate to the caller's dict.
 */
#ifndef CNNLENS_IO_PTH_H
#define CNNLENS_IO_PTH_H

#include "engine/io/filemap.h"
#include "engine/io/weights.h"

int pth_load_zip(const fm_map *m, wt_dict *d, cl_err *err);
/* True if the file starts with the legacy format's magic-number pickle. */
int pth_is_legacy(const fm_map *m);
int pth_load_legacy(const fm_map *m, wt_dict *d, cl_err *err);

#endif
