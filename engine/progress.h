/* progress — how long engine loops report progress and learn of interrupts.
 *
 * The engine knows nothing of Jupyter: a long loop (maximise, occlusion, train,
 * fool) calls cl_progress_step() now and then.  The caller's callback may draw a
 * live display; a set cancel flag (written by the kernel's control thread or a
 * SIGINT handler) makes the loop stop with CL_EINTERRUPT.
 *
 * Ownership: the struct only borrows `ctx` and `cancel`.
 */
#ifndef CNNLENS_PROGRESS_H
#define CNNLENS_PROGRESS_H

#include <stdatomic.h>

#include "engine/err.h"

typedef struct cl_progress {
    /* Called with done/total steps and a short text; may be NULL. */
    void (*fn)(void *ctx, long done, long total, const char *what);
    void *ctx;
    /* Non-zero means "stop now"; may be NULL. */
    atomic_int *cancel;
} cl_progress;

/* Returns -1 with CL_EINTERRUPT if the cancel flag is set, else reports progress
 * (if fn is set) and returns 0.  p may be NULL. */
int cl_progress_step(const cl_progress *p, long done, long total, const char *what, cl_err *err);

/* Only checks the cancel flag (cheap: for inner loops). */
int cl_progress_cancelled(const cl_progress *p);

#endif
