/* fuzz_util — what the fuzz targets share: the input as a file.
 *
 * Most readers take a path, so each input is written to an anonymous
 * in-memory file (memfd) and handed over as /proc/self/fd/N: nothing touches
 * the disk, and one file is reused for every input of a process.
 *
 * Ownership: fz_path returns a pointer to static storage, valid until the
 * next call.
 */
#ifndef CNNLENS_FUZZ_UTIL_H
#define CNNLENS_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Replaces the file's content with data[0..size) and returns its path. */
static inline const char *fz_path(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("cnnlens-fuzz", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort(); /* the harness itself cannot run: not a finding */
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("memfd write");
        abort();
    }
    return path;
}

#endif
