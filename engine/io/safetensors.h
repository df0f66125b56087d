/* safetensors — the Hugging Face tensor file: an 8-byte little-endian header
 * length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
 * {...}}, then the raw little-endian data.
 *
 * The reader checks everything the format promises (header at most 100 MB,
 * offsets tiling the data exactly, sizes equal to numel x dtype size, unique
 * names, header + data = file size) and converts every dtype to float32.  The
 * writer writes F32, in the dict's order, atomically.
 *
 * Ownership: st_load adds tensors it allocates to the caller's dict.
 */
#ifndef CNNLENS_IO_SAFETENSORS_H
#define CNNLENS_IO_SAFETENSORS_H

#include "engine/io/filemap.h"
#include "engine/io/weights.h"

#define ST_MAX_HEADER (100u * 1000u * 1000u)

/* A cheap sniff: a plausible header length followed by '{'. */
int st_looks_like(const fm_map *m);
int st_load(const fm_map *m, wt_dict *d, cl_err *err);
int st_save(const wt_dict *d, const char *path, cl_err *err);

#endif
