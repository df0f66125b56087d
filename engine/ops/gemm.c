/* gemm — sgemm and sgemv split over the engine's threads.  OpenBLAS runs
 * single-threaded inside each part: with its own threads as well, two pools
 * would spin against each other on the same cores.  Each part computes a
 * disjoint block of C; the blocks depend only on the number of threads, so
 * results are identical run after run (another thread count may change the
 * last bits, as OpenBLAS's own threading does).
 * CNNLENS_BLAS=openblas leaves the threading to OpenBLAS instead (to compare). */
#include "engine/ops/ops.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/threads.h"

#ifndef CNNLENS_OPENBLAS_SONAME
#define CNNLENS_OPENBLAS_SONAME "libopenblas.so.0"
#endif

/* OpenBLAS is opened at the first product instead of being linked: loading
 * it maps its buffers and starts its thread pool, 7 ms of the 19 ms a cnnlens
 * process took to start, and the kernel answers its first messages (and most
 * lens cells) without a product. */
static __typeof__(cblas_sgemm) *blas_sgemm;
static __typeof__(cblas_sgemv) *blas_sgemv;
static __typeof__(openblas_set_num_threads) *blas_set_threads;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

static void *blas_symbol(void *lib, const char *name)
{
    void *f = dlsym(lib, name);
    if (!f) {
        fprintf(stderr, "cnnlens: OpenBLAS has no %s (%s)\n", name, dlerror());
        abort();
    }
    return f;
}

static void load_blas(void)
{
    void *lib = dlopen(CNNLENS_OPENBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libopenblas.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        /* As a missing linked library would stop the start: nothing can run. */
        fprintf(stderr, "cnnlens: cannot load OpenBLAS (%s): install libopenblas0\n", dlerror());
        abort();
    }
    *(void **)&blas_sgemm = blas_symbol(lib, "cblas_sgemm");
    *(void **)&blas_sgemv = blas_symbol(lib, "cblas_sgemv");
    *(void **)&blas_set_threads = blas_symbol(lib, "openblas_set_num_threads");
}

static void once_load_blas(void)
{
    pthread_once(&load_once, load_blas);
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static int blas_own_threads; /* CNNLENS_BLAS=openblas: OpenBLAS threads, no split */

static void single_threaded_blas(void)
{
    const char *env = getenv("CNNLENS_BLAS");
    once_load_blas();
    blas_own_threads = env && !strcmp(env, "openblas");
    if (!blas_own_threads) blas_set_threads(1);
}

static void once_single_threaded_blas(void)
{
    pthread_once(&blas_once, single_threaded_blas);
}

void op_blas_sgemm(int n, const float *a, const float *b, float *c)
{
    once_load_blas();
    blas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
}

/* Below this many multiply-adds per thread a split costs more than it saves. */
#define GEMM_GRAIN_MACS 200000

typedef struct gemm_job {
    CBLAS_TRANSPOSE ta, tb;
    int m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
} gemm_job;

/* Columns [lo, hi) of C. */
static void gemm_cols(void *ctx, int64_t lo, int64_t hi)
{
    const gemm_job *j = ctx;
    const float *b = j->tb == CblasNoTrans ? j->b + lo : j->b + lo * j->ldb;
    blas_sgemm(CblasRowMajor, j->ta, j->tb, j->m, (int)(hi - lo), j->k, j->alpha, j->a, j->lda, b,
               j->ldb, j->beta, j->c + lo, j->ldc);
}

/* Rows [lo, hi) of C. */
static void gemm_rows(void *ctx, int64_t lo, int64_t hi)
{
    const gemm_job *j = ctx;
    const float *a = j->ta == CblasNoTrans ? j->a + lo * j->lda : j->a + lo;
    blas_sgemm(CblasRowMajor, j->ta, j->tb, (int)(hi - lo), j->n, j->k, j->alpha, a, j->lda, j->b,
               j->ldb, j->beta, j->c + lo * j->ldc, j->ldc);
}

void op_sgemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    gemm_job j = {ta, tb, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c};
    int64_t macs = (int64_t)m * n * k;
    once_single_threaded_blas();
    if (blas_own_threads) {
        blas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* Split the longer side of C (a conv's last layers have few columns). */
    if (n >= m)
        th_parallel(n, GEMM_GRAIN_MACS * (int64_t)n / (macs + 1) + 16, gemm_cols, &j);
    else
        th_parallel(m, GEMM_GRAIN_MACS * (int64_t)m / (macs + 1) + 16, gemm_rows, &j);
}

typedef struct gemm_batch_job {
    CBLAS_TRANSPOSE ta;
    int m, n, k, lda, ldb, ldc;
    const float *const *a;
    const float *b;
    float *c;
    int64_t b_stride, c_stride;
} gemm_batch_job;

/* Products [lo, hi) of a batch, each whole on this thread. */
static void gemm_batch_part(void *ctx, int64_t lo, int64_t hi)
{
    const gemm_batch_job *j = ctx;
    for (int64_t i = lo; i < hi; i++)
        blas_sgemm(CblasRowMajor, j->ta, CblasNoTrans, j->m, j->n, j->k, 1.0f, j->a[i], j->lda,
                   j->b + i * j->b_stride, j->ldb, 0.0f, j->c + i * j->c_stride, j->ldc);
}

void op_sgemm_batch(int count, CBLAS_TRANSPOSE ta, int m, int n, int k, const float *const *a,
                    int lda, const float *b, int64_t b_stride, int ldb, float *c, int64_t c_stride,
                    int ldc)
{
    gemm_batch_job j = {ta, m, n, k, lda, ldb, ldc, a, b, c, b_stride, c_stride};
    once_single_threaded_blas();
    if (blas_own_threads) {
        gemm_batch_part(&j, 0, count);
        return;
    }
    /* One product per thread at a time: no product is split, so each is
     * computed the same way whatever the thread count. */
    th_parallel(count, 1, gemm_batch_part, &j);
}

typedef struct gemv_job {
    CBLAS_TRANSPOSE ta;
    int m, n;
    float beta;
    const float *a, *x;
    float *y;
} gemv_job;

/* Outputs [lo, hi) of y = op(A) x + beta y, A [m, n] row-major. */
static void gemv_part(void *ctx, int64_t lo, int64_t hi)
{
    const gemv_job *j = ctx;
    if (j->ta == CblasNoTrans)
        blas_sgemv(CblasRowMajor, CblasNoTrans, (int)(hi - lo), j->n, 1.0f, j->a + lo * j->n, j->n,
                   j->x, 1, j->beta, j->y + lo, 1);
    else
        blas_sgemv(CblasRowMajor, CblasTrans, j->m, (int)(hi - lo), 1.0f, j->a + lo, j->n, j->x, 1,
                   j->beta, j->y + lo, 1);
}

void op_sgemv(CBLAS_TRANSPOSE ta, int m, int n, const float *a, const float *x, float beta,
              float *y)
{
    gemv_job j = {ta, m, n, beta, a, x, y};
    once_single_threaded_blas();
    if (blas_own_threads) {
        blas_sgemv(CblasRowMajor, ta, m, n, 1.0f, a, n, x, 1, beta, y, 1);
        return;
    }
    int64_t outs = ta == CblasNoTrans ? m : n;
    th_parallel(outs, GEMM_GRAIN_MACS / (ta == CblasNoTrans ? n : m) + 16, gemv_part, &j);
}
