/* progress — how long engine loops report progress and learn of interrupts.
 *
 * The engine knows nothing of Jupyter: a long loop (maximise, occlusion, train,
 * fool) calls cl_progress_step() now and then.  The caller's callback may draw a
 * live display; a set cancel flag (written by the kernel's control thread or a
 * SIGINT handler) makes the loop stop with CL_EINTERRUPT.
 *
 * Snapshots (optional): a loop whose result is a picture (maximize, fool,
 * occlusion) can also show what it has so far.  It asks
 * cl_progress_snapshot_due() once a step, which is true at most every
 * `snapshot_every` seconds of wall time and never on the first ask (so a run
 * shorter than that pays nothing), and then hands its current images to
 * cl_progress_snapshot().  On an interrupt, maximize and fool send one last
 * snapshot (`stopped`) of where they stopped before returning.
 *
 * Ownership: the struct only borrows `ctx`, `snapshot_ctx` and `cancel`; a
 * snapshot callback borrows everything in its cl_snapshot for the call only.
 */
#ifndef CNNLENS_PROGRESS_H
#define CNNLENS_PROGRESS_H

#include <stdatomic.h>

#include "engine/err.h"
#include "engine/tensor.h"

/* Seconds between snapshots when snapshot_every is 0. */
#define CL_SNAPSHOT_EVERY 0.3

/* What a loop has so far, for a live picture; a zero field is "none". */
typedef struct cl_snapshot {
    const char *what;    /* the loop's name: "maximize", "fool", "occlusion" */
    long done, total;    /* steps done (the image is after `done` steps), the most there are */
    const tn_tensor *x;  /* the current images, (n,C,H,W) */
    const float *values; /* the objective of each of the n images, or NULL */
    float prob;          /* fool: the class probability of x (NaN or 0 for other loops) */
    int stopped;         /* 1: the loop was interrupted and this is where it stopped */
    /* occlusion: x is the map's running sums (1,H,W) and counts[i] the terms
     * in pixel i so far: the map so far is sum / count where count > 0 */
    const float *counts;
} cl_snapshot;

typedef struct cl_progress {
    /* Called with done/total steps and a short text; may be NULL. */
    void (*fn)(void *ctx, long done, long total, const char *what);
    void *ctx;
    /* Non-zero means "stop now"; may be NULL. */
    atomic_int *cancel;
    /* The live picture; may be NULL (then no loop spends a cycle on it). */
    void (*snapshot)(void *snapshot_ctx, const cl_snapshot *s);
    void *snapshot_ctx;
    /* Seconds of wall time between snapshots; 0 = CL_SNAPSHOT_EVERY.  The
     * callback may change it (read at every ask) to keep its own cost small. */
    double snapshot_every;
} cl_progress;

/* Returns -1 with CL_EINTERRUPT if the cancel flag is set, else reports progress
 * (if fn is set) and returns 0.  p may be NULL. */
int cl_progress_step(const cl_progress *p, long done, long total, const char *what, cl_err *err);

/* Only checks the cancel flag (cheap: for inner loops). */
int cl_progress_cancelled(const cl_progress *p);

/* 1 if p has a snapshot callback and its interval has passed since *clock (the
 * loop's own, zero at the start: the first ask only starts it), else 0. */
int cl_progress_snapshot_due(const cl_progress *p, double *clock);

/* Calls p's snapshot callback (if any) with s, then restarts *clock (clock may
 * be NULL), so the time the callback takes is not taken from the loop's share. */
void cl_progress_snapshot(const cl_progress *p, const cl_snapshot *s, double *clock);

/* Both in one: sends s if a snapshot is due (for loops whose snapshot costs
 * nothing to describe). */
void cl_progress_offer(const cl_progress *p, const cl_snapshot *s, double *clock);

/* The cancel flag of the work this thread is doing, for code too deep to be
 * handed a cl_progress: encoding the PNG of a 16-megapixel picture takes
 * seconds, under any of a dozen display paths.  The language binds its
 * session's flag for the length of a cell (NULL unbinds); the flag stays the
 * binder's.  Returns the flag bound before. */
atomic_int *cl_cancel_bind(atomic_int *flag);
/* 1 if this thread's bound flag is set. */
int cl_cancel_requested(void);

/* Wall-clock seconds (CLOCK_MONOTONIC) from an arbitrary start. */
double cl_progress_now(void);

#endif
