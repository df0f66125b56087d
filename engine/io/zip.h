/* zip — the central directory of a zip archive held in memory, as PyTorch
 * writes it (entries stored, 64-byte aligned; zip64 records).  Deflated
 * entries are inflated with zlib.
 *
 * Every offset and length is checked against the bytes present.
 *
 * Ownership: zip_open fills a zip_archive the caller releases with
 * zip_close; entries point into nothing of the caller's (names are copies).
 * zip_data gives either a pointer into the caller's buffer (*owned = NULL)
 * or a malloc'd inflated copy (*owned, freed by the caller with free()).
 */
#ifndef CNNLENS_IO_ZIP_H
#define CNNLENS_IO_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

typedef struct zip_entry {
    char *name;
    int method; /* 0 stored, 8 deflate */
    uint64_t local_off, csize, usize;
} zip_entry;

typedef struct zip_archive {
    zip_entry *entries; /* in central-directory order */
    size_t count;
    zip_entry **sorted; /* by name, for zip_find */
} zip_archive;

int zip_open(zip_archive *z, const uint8_t *buf, size_t len, cl_err *err);
const zip_entry *zip_find(const zip_archive *z, const char *name);
/* The entry's bytes; at most `max_size` (a limit on what may be inflated). */
int zip_data(const uint8_t *buf, size_t len, const zip_entry *e, uint64_t max_size,
             const uint8_t **data, size_t *size, uint8_t **owned, cl_err *err);
void zip_close(zip_archive *z);

#endif
