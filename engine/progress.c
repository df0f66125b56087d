#include "engine/progress.h"

#include <time.h>

static _Thread_local atomic_int *bound_cancel;

atomic_int *cl_cancel_bind(atomic_int *flag)
{
    atomic_int *before = bound_cancel;
    bound_cancel = flag;
    return before;
}

int cl_cancel_requested(void)
{
    return bound_cancel && atomic_load_explicit(bound_cancel, memory_order_relaxed);
}

int cl_progress_cancelled(const cl_progress *p)
{
    return p && p->cancel && atomic_load_explicit(p->cancel, memory_order_relaxed);
}

int cl_progress_step(const cl_progress *p, long done, long total, const char *what, cl_err *err)
{
    if (cl_progress_cancelled(p)) return cl_err_set(err, CL_EINTERRUPT, "interrupted by the user");
    if (p && p->fn) p->fn(p->ctx, done, total, what);
    return 0;
}

double cl_progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cl_progress_snapshot_due(const cl_progress *p, double *clock)
{
    if (!p || !p->snapshot) return 0;
    double t = cl_progress_now();
    if (*clock <= 0.0) {
        *clock = t;
        return 0;
    }
    double every = p->snapshot_every > 0.0 ? p->snapshot_every : CL_SNAPSHOT_EVERY;
    return t - *clock >= every;
}

void cl_progress_snapshot(const cl_progress *p, const cl_snapshot *s, double *clock)
{
    if (!p || !p->snapshot) return;
    p->snapshot(p->snapshot_ctx, s);
    if (clock) *clock = cl_progress_now();
}

void cl_progress_offer(const cl_progress *p, const cl_snapshot *s, double *clock)
{
    if (cl_progress_snapshot_due(p, clock)) cl_progress_snapshot(p, s, clock);
}
