/* threads — a small pool that splits the engine's own loops (im2col, col2im,
 * pooling, relu, add) over the cores; sgemm has OpenBLAS's threads.
 *
 * th_parallel cuts [0, n) into contiguous parts, one per thread, the caller
 * taking the first.  Every index is handled by exactly one call, and the
 * parts depend only on n and the thread count, so results are identical run
 * after run.  While one caller uses the pool, another (a second engine thread)
 * runs its loop serially instead of waiting.
 *
 * Ownership: the pool is process-wide and started on first use; it owns its
 * threads, which sleep between jobs.
 */
#ifndef CNNLENS_THREADS_H
#define CNNLENS_THREADS_H

#include <stdint.h>

typedef void (*th_task)(void *ctx, int64_t lo, int64_t hi);

/* Runs task over [0, n), in parts of at least `grain` indices. */
void th_parallel(int64_t n, int64_t grain, th_task task, void *ctx);
/* Threads used (default: $CNNLENS_THREADS, else the online CPUs; at most
 * TH_MAX); 1 makes every loop serial. */
int th_count(void);
void th_set_count(int n);

#define TH_MAX 8

#endif
