#include "engine/io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

/* The temporary files being written now, so that a process that must exit
 * without waiting for a write (the kernel on SIGTERM) can remove them. */
#define AF_SLOTS 8
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static char *pending[AF_SLOTS];

static void set_pending(const char *tmp, char *value)
{
    pthread_mutex_lock(&pending_lock);
    for (int i = 0; i < AF_SLOTS; i++)
        if (pending[i] == tmp) {
            pending[i] = value;
            break;
        }
    pthread_mutex_unlock(&pending_lock);
}

void atomic_file_remove_partial(void)
{
    pthread_mutex_lock(&pending_lock);
    for (int i = 0; i < AF_SLOTS; i++)
        if (pending[i]) unlink(pending[i]);
    pthread_mutex_unlock(&pending_lock);
}

/* What a student can do about the usual reasons a write fails. */
static const char *write_hint(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return "the disk is full: free some space or save somewhere else; ";
    case EFBIG:
        return "the file would be larger than this process may write; ";
    case EACCES:
    case EPERM:
    case EROFS:
        return "that folder cannot be written to: save somewhere else; ";
    case ENOENT:
        return "the folder does not exist; ";
    default:
        return "";
    }
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
        int e = errno;
        cl_err_set(err, CL_EIO, "cannot write '%s': %s (%snothing was written)", path, strerror(e),
                   write_hint(e));
        free(tmp);
        return -1;
    }
    set_pending(NULL, tmp);
    int saved = 0;
    for (int i = 0; i < n && !saved; i++)
        if (write_all(fd, chunks[i], lens[i])) saved = errno;
    if (!saved && fsync(fd)) saved = errno;
    if (close(fd) && !saved) saved = errno;
    if (!saved) (void)chmod(tmp, 0644);
    if (!saved && rename(tmp, path)) saved = errno;
    if (saved) unlink(tmp);
    set_pending(tmp, NULL);
    free(tmp);
    if (saved)
        return cl_err_set(err, CL_EIO, "cannot write '%s': %s (%snothing was written)", path,
                          strerror(saved), write_hint(saved));
    return 0;
}

int atomic_write_file(const char *path, const void *data, size_t len, cl_err *err)
{
    const void *chunks[1] = {data};
    size_t lens[1] = {len};
    return atomic_write_chunks(path, chunks, lens, 1, err);
}
