#include "engine/io/filemap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A file truncated while it is mapped (another program rewriting it in
 * place) makes every access past its new end raise SIGBUS, which would kill
 * the whole kernel.  Each open map registers its address range here; the
 * SIGBUS handler puts zero pages over the vanished part of a registered range
 * and marks it, the reader goes on reading zeros, and fm_check turns the mark
 * into an error.  Faults anywhere else go to the handler that was there
 * before (or the default action), as if this one were not installed. */
struct fm_guard {
    _Atomic uintptr_t begin, end; /* the mapped pages; both 0: slot free */
    atomic_int truncated;
    int fd; /* kept open to look at the same file again in fm_check */
    off_t size;
    struct timespec mtime;
};

#define FM_GUARDS 32
static struct fm_guard guards[FM_GUARDS];
static struct sigaction previous;
static uintptr_t page_size;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void chain(int sig, siginfo_t *si, void *uc)
{
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, si, uc);
    } else if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) {
        /* Returning re-runs the faulting access, which now takes the default action. */
        signal(sig, SIG_DFL);
    } else {
        previous.sa_handler(sig);
    }
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    for (int i = 0; i < FM_GUARDS; i++) {
        uintptr_t b = atomic_load(&guards[i].begin), e = atomic_load(&guards[i].end);
        if (!b || a < b || a >= e) continue;
        uintptr_t page = a & ~(page_size - 1);
        /* (mmap is a plain system call; the range is this thread's own map.) */
        void *p =
            mmap((void *)page, e - page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p == MAP_FAILED) break;
        atomic_store(&guards[i].truncated, 1);
        return;
    }
    chain(sig, si, uc);
}

static void install_handler(void)
{
    page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGBUS, &sa, &previous);
}

/* A free slot for [p, p+len), or NULL when all are taken (the map then goes
 * unguarded, as every map did before). */
static struct fm_guard *guard_range(const void *p, size_t len)
{
    uintptr_t b = (uintptr_t)p, e = (b + len + page_size - 1) & ~(page_size - 1);
    for (int i = 0; i < FM_GUARDS; i++) {
        uintptr_t free_slot = 0;
        /* A free slot's end is 0, so the handler matches nothing until end is set. */
        if (atomic_compare_exchange_strong(&guards[i].begin, &free_slot, b)) {
            atomic_store(&guards[i].end, e);
            atomic_store(&guards[i].truncated, 0);
            return &guards[i];
        }
    }
    return NULL;
}

int fm_open(fm_map *m, const char *path, cl_err *err)
{
    memset(m, 0, sizeof *m);
    pthread_once(&install_once, install_handler);
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
    if (p == MAP_FAILED) {
        close(fd);
        return cl_err_set(err, CL_EIO, "cannot map '%s': %s", path, strerror(e));
    }
    m->data = p;
    m->size = (size_t)st.st_size;
    struct fm_guard *g = guard_range(p, m->size);
    if (g) {
        g->fd = fd;
        g->size = st.st_size;
        g->mtime = st.st_mtim;
        m->guard = g;
    } else {
        close(fd);
    }
    return 0;
}

int fm_check(const fm_map *m, cl_err *err)
{
    const struct fm_guard *g = m->guard;
    if (!g) return 0;
    struct stat st;
    int changed = atomic_load(&g->truncated) || fstat(g->fd, &st) || st.st_size != g->size ||
                  st.st_mtim.tv_sec != g->mtime.tv_sec || st.st_mtim.tv_nsec != g->mtime.tv_nsec;
    if (!changed) return 0;
    return cl_err_set(err, CL_EIO,
                      "the file changed while it was being read (is another program writing "
                      "it?): nothing was loaded; wait until it is written and load it again");
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
    struct fm_guard *g = m->guard;
    if (g) {
        close(g->fd);
        /* The range stops being ours before it is unmapped. */
        atomic_store(&g->begin, 0);
        atomic_store(&g->end, 0);
    }
    if (m->data) munmap((void *)m->data, m->size);
    memset(m, 0, sizeof *m);
}
