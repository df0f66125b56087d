#include "engine/progress.h"

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
