/* atomic_file — write a whole file or nothing.
 *
 * The bytes go to a temporary file in the destination's folder, are flushed,
 * and the temporary file is renamed over the destination, so an error, a full
 * disk or an interrupt never leaves a partial file behind.
 */
#ifndef CNNLENS_IO_ATOMIC_FILE_H
#define CNNLENS_IO_ATOMIC_FILE_H

#include <stddef.h>

#include "engine/err.h"

/* Failures are CL_EIO errors that name the file, say why (a full disk, no
 * such folder, ...) and that nothing was written. */
int atomic_write_file(const char *path, const void *data, size_t len, cl_err *err);

/* Same, with the content produced by up to `n` chunks (e.g. a header and a body). */
int atomic_write_chunks(const char *path, const void *const *chunks, const size_t *lens, int n,
                        cl_err *err);

/* Removes the temporary files of writes still in progress on other threads:
 * for a process about to exit without waiting for them. */
void atomic_file_remove_partial(void);

#endif
