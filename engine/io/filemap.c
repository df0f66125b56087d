#include "engine/io/filemap.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int fm_open(fm_map *m, const char *path, cl_err *err)
{
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cl_err_set(err, CL_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        int e = errno;
        close(fd);
        return cl_err_set(err, CL_EIO, "cannot read '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cl_err_set(err, CL_EIO, "'%s' is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return cl_err_set(err, CL_EFORMAT, "'%s' is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return cl_err_set(err, CL_EIO, "cannot map '%s': %s", path, strerror(e));
    m->data = p;
    m->size = (size_t)st.st_size;
    return 0;
}

void fm_release(const fm_map *m, size_t off, size_t len)
{
    if (!m || !m->data || off >= m->size) return;
    if (len > m->size - off) len = m->size - off;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)(m->data + off), b = a + len;
    /* Only whole pages inside the range: neighbours may still be in use. */
    a = (a + page - 1) & ~(uintptr_t)(page - 1);
    b &= ~(uintptr_t)(page - 1);
    if (b > a) (void)madvise((void *)a, b - a, MADV_DONTNEED);
}

void fm_convert(const fm_map *m, size_t off, float *dst, int64_t n, io_dtype t)
{
    size_t es = io_dtype_size(t);
    int64_t chunk = (int64_t)((1u << 20) / es);
    for (int64_t k = 0; k < n; k += chunk) {
        int64_t cnt = n - k < chunk ? n - k : chunk;
        io_convert(dst + k, m->data + off + (size_t)k * es, cnt, t);
        fm_release(m, off + (size_t)k * es, (size_t)cnt * es);
    }
}

void fm_close(fm_map *m)
{
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}
