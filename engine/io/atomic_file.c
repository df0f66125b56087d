#include "engine/io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

int atomic_write_chunks(const char *path, const void *const *chunks, const size_t *lens, int n,
                        cl_err *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return cl_err_set(err, CL_ENOMEM, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cl_err_set(err, CL_EIO, "cannot write '%s': %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    int saved = 0;
    for (int i = 0; i < n && !saved; i++)
        if (write_all(fd, chunks[i], lens[i])) saved = errno;
    if (!saved && fsync(fd)) saved = errno;
    if (close(fd) && !saved) saved = errno;
    if (!saved) (void)chmod(tmp, 0644);
    if (!saved && rename(tmp, path)) saved = errno;
    if (saved) {
        unlink(tmp);
        cl_err_set(err, CL_EIO, "cannot write '%s': %s (nothing was written)", path,
                   strerror(saved));
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int atomic_write_file(const char *path, const void *data, size_t len, cl_err *err)
{
    const void *chunks[1] = {data};
    size_t lens[1] = {len};
    return atomic_write_chunks(path, chunks, lens, 1, err);
}
