/* filemap — a whole file mapped read-only, for the weight readers.
 *
 * Mapping instead of reading keeps a checkpoint load at about one copy of the
 * weights: the readers convert each storage straight from the mapping into its
 * tensor and then drop those pages (fm_release), so the file's bytes and the
 * tensors are never both resident in full.
 *
 * A file truncated by another program while mapped would raise SIGBUS on
 * the next access; fm_open installs (once, process-wide) a SIGBUS handler
 * that lets such reads return zeros instead, and fm_check reports that the
 * file changed (truncated, written, resized) since fm_open.  A file replaced
 * by rename is no change: the map keeps the old file, whole.
 *
 * Ownership: fm_open fills a fm_map the caller closes with fm_close; `data`
 * is valid until then.  A fm_map built by hand ({bytes, len}, no guard)
 * needs no fm_open and must not be passed to fm_close.
 */
#ifndef CNNLENS_IO_FILEMAP_H
#define CNNLENS_IO_FILEMAP_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/io/dtype.h"

typedef struct fm_map {
    const uint8_t *data;
    size_t size;
    struct fm_guard *guard; /* fm_open's watch on the file; NULL for a map built by hand */
} fm_map;

/* Maps `path`; an empty or unreadable file is an error. */
int fm_open(fm_map *m, const char *path, cl_err *err);
/* After reading: 0, or -1 with an error when the file was truncated or
 * written since fm_open (what was read may mix old and new bytes). */
int fm_check(const fm_map *m, cl_err *err);
/* Tells the kernel the bytes [off, off+len) are no longer needed (they stay
 * readable: a later access reads them from the file again). */
void fm_release(const fm_map *m, size_t off, size_t len);
/* Converts n elements of type t at byte `off` of the map into dst, dropping
 * the source pages as it goes, so a big storage never sits in memory twice.
 * The caller has checked the range against m->size. */
void fm_convert(const fm_map *m, size_t off, float *dst, int64_t n, io_dtype t);
void fm_close(fm_map *m);

#endif
