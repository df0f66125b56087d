/* progress: the snapshot contract of long vis loops (maximize, fool) — how
 * often the live picture is asked for, what it holds, and that watching
 * changes nothing about the result. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "engine/progress.h"
#include "engine/vis/vis.h"
#include "engine/zoo/zoo.h"

static net *fashion(void)
{
    cl_err err = {0};
    net *m = zoo_build_seeded("fashion", 7, &err);
    cr_assert_not_null(m, "%s", err.msg);
    return m;
}

static void nap(double seconds)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(seconds * 1e9)};
    nanosleep(&ts, NULL);
}

/* What a test's snapshot callback saw. */
typedef struct seen {
    int calls, stopped_calls;
    long last_done;
    double first_at, last_at, min_gap, cb_seconds;
    int cancel_after; /* set the cancel flag after this many calls (0: never) */
    atomic_int *cancel;
    net *check; /* a second copy of the net, to recompute what a snapshot claims */
    int layer;
    const int *units;
    int cls;
    double worst; /* largest relative error of a claimed value */
    int shape_ok, order_ok;
} seen;

static void record(seen *S, const cl_snapshot *s)
{
    double t = cl_progress_now();
    if (S->calls && t - S->last_at < S->min_gap) S->min_gap = t - S->last_at;
    if (!S->calls) S->first_at = t;
    S->order_ok &= s->done >= S->last_done && s->done <= s->total;
    S->last_done = s->done;
    S->calls++;
    S->stopped_calls += s->stopped;
    if (S->cancel_after && S->calls == S->cancel_after) atomic_store(S->cancel, 1);
}

static void on_max(void *ctx, const cl_snapshot *s)
{
    seen *S = ctx;
    record(S, s);
    int n = (int)s->x->shape[0];
    S->shape_ok &= s->x->ndim == 4 && s->x->shape[1] == 1 && s->x->shape[2] == 28 &&
                   isnan(s->prob) && !strcmp(s->what, "maximize");
    if (s->values) { /* the value claimed is that of the image shown (no jitter) */
        cl_err err = {0};
        cr_assert_eq(net_forward(S->check, s->x, &err), 0, "%s", err.msg);
        const tn_tensor *a = net_node_output(S->check, S->layer);
        int64_t K = a->shape[1], hw = a->shape[2] * a->shape[3];
        for (int j = 0; j < n; j++) {
            double sum = 0;
            for (int64_t i = 0; i < hw; i++) sum += a->data[(j * K + S->units[j]) * hw + i];
            double rel = fabs(sum - s->values[j]) / (fabs(sum) + 1e-3);
            if (rel > S->worst) S->worst = rel;
        }
    }
    nap(S->cb_seconds);
    S->last_at = cl_progress_now();
}

static void on_fool(void *ctx, const cl_snapshot *s)
{
    seen *S = ctx;
    record(S, s);
    S->shape_ok &= s->x->ndim == 4 && s->x->shape[0] == 1 && !s->values &&
                   !strcmp(s->what, "fool") && s->prob >= 0.0f && s->prob <= 1.0f;
    cl_err err = {0};
    cr_assert_eq(net_forward(S->check, s->x, &err), 0, "%s", err.msg);
    const tn_tensor *y = net_output(S->check);
    double top = y->data[0], sum = 0;
    for (int i = 1; i < 10; i++) top = fmax(top, y->data[i]);
    for (int i = 0; i < 10; i++) sum += exp(y->data[i] - top);
    double p = exp(y->data[S->cls] - top) / sum, rel = fabs(p - s->prob) / (p + 1e-6);
    if (rel > S->worst) S->worst = rel;
    S->last_at = cl_progress_now();
}

static seen fresh(void)
{
    seen S = {.min_gap = 1e9, .shape_ok = 1, .order_ok = 1};
    return S;
}

Test(progress, due_only_with_a_callback_and_after_the_interval)
{
    cl_progress none = {0};
    double clock = 0;
    cr_assert_eq(cl_progress_snapshot_due(&none, &clock), 0);
    cr_assert_eq(cl_progress_snapshot_due(NULL, &clock), 0);
    seen S = fresh();
    cl_progress p = {.snapshot = on_fool, .snapshot_ctx = &S, .snapshot_every = 0.05};
    cr_assert_eq(cl_progress_snapshot_due(&p, &clock), 0, "the first ask only starts the clock");
    cr_assert_gt(clock, 0);
    cr_assert_eq(cl_progress_snapshot_due(&p, &clock), 0);
    nap(0.06);
    cr_assert_eq(cl_progress_snapshot_due(&p, &clock), 1);
    cr_assert_eq(cl_progress_snapshot_due(&p, &clock), 1, "asking does not restart the clock");
    cl_progress q = p;
    q.snapshot_every = 0; /* the default interval */
    double c2 = cl_progress_now() - 0.5 * CL_SNAPSHOT_EVERY;
    cr_assert_eq(cl_progress_snapshot_due(&q, &c2), 0);
    c2 -= CL_SNAPSHOT_EVERY;
    cr_assert_eq(cl_progress_snapshot_due(&q, &c2), 1);
}

Test(progress, maximize_snapshots_are_rate_limited_true_and_change_nothing)
{
    cl_err err = {0};
    net *m = fashion();
    seen S = fresh();
    S.check = fashion();
    S.layer = net_find(m, "conv2", &err);
    int units[3] = {0, 5, 13};
    S.units = units;
    S.cb_seconds = 0.002;
    cl_progress p = {.snapshot = on_max, .snapshot_ctx = &S, .snapshot_every = 0.005};
    vis_max_opts o = {.steps = 40, .seed = 11, .lo = 0, .hi = 1};
    float watched_obj[3], plain_obj[3];
    double t0 = cl_progress_now();
    tn_tensor *a = vis_maximize(m, S.layer, units, 3, &o, &p, watched_obj, NULL, &err);
    double elapsed = cl_progress_now() - t0;
    cr_assert_not_null(a, "%s", err.msg);
    tn_tensor *b = vis_maximize(m, S.layer, units, 3, &o, NULL, plain_obj, NULL, &err);
    cr_assert_not_null(b, "%s", err.msg);
    cr_assert_eq(memcmp(a->data, b->data, sizeof(float) * (size_t)tn_numel(a)), 0,
                 "watching must not change the images");
    cr_assert_eq(memcmp(watched_obj, plain_obj, sizeof watched_obj), 0);
    /* Gaps are measured from the end of one callback to the start of the next. */
    int most = (int)(elapsed / (0.005 + S.cb_seconds)) + 1;
    cr_assert(S.calls >= 1 && S.calls <= most, "%d snapshots in %.3f s (at most %d)", S.calls,
              elapsed, most);
    if (S.calls > 1) cr_assert_geq(S.min_gap, 0.005 - 1e-4, "gap %.4f s", S.min_gap);
    cr_assert(S.first_at - t0 >= 0.005 - 1e-4, "the first snapshot waits one interval");
    cr_assert(S.shape_ok && S.order_ok);
    cr_assert_eq(S.stopped_calls, 0);
    cr_assert_lt(S.worst, 1e-4, "a claimed value is off by %g", S.worst);
    tn_free(a);
    tn_free(b);
    net_free(S.check);
    net_free(m);
}

Test(progress, a_run_shorter_than_the_interval_sees_no_snapshot)
{
    cl_err err = {0};
    net *m = fashion();
    seen S = fresh();
    int unit = 0;
    cl_progress p = {.snapshot = on_max, .snapshot_ctx = &S, .snapshot_every = 30};
    vis_max_opts o = {.steps = 20};
    tn_tensor *a = vis_maximize(m, net_find(m, "conv2", &err), &unit, 1, &o, &p, NULL, NULL, &err);
    cr_assert_not_null(a, "%s", err.msg);
    cr_assert_eq(S.calls, 0);
    tn_free(a);
    net_free(m);
}

Test(progress, an_interrupt_ends_maximize_with_a_stopped_snapshot)
{
    cl_err err = {0};
    net *m = fashion();
    atomic_int cancel = 0;
    seen S = fresh();
    S.check = fashion();
    S.layer = net_find(m, "conv2", &err);
    int units[2] = {1, 2};
    S.units = units;
    S.cancel_after = 2;
    S.cancel = &cancel;
    cl_progress p = {
        .cancel = &cancel, .snapshot = on_max, .snapshot_ctx = &S, .snapshot_every = 0.02};
    vis_max_opts o = {.steps = 100000};
    double t0 = cl_progress_now();
    cr_assert_null(vis_maximize(m, S.layer, units, 2, &o, &p, NULL, NULL, &err));
    cr_assert_eq(err.code, CL_EINTERRUPT);
    cr_assert_lt(cl_progress_now() - t0, 5.0);
    cr_assert_eq(S.calls, 3, "two live snapshots and the one where it stopped, got %d", S.calls);
    cr_assert_eq(S.stopped_calls, 1);
    cr_assert(S.last_done > 0 && S.last_done < 100000);
    net_free(S.check);
    net_free(m);
}

Test(progress, fool_snapshots_carry_the_true_probability_and_stop_on_interrupt)
{
    cl_err err = {0};
    net *m = fashion();
    atomic_int cancel = 0;
    seen S = fresh();
    S.check = fashion();
    S.cls = 3;
    cl_progress p = {
        .cancel = &cancel, .snapshot = on_fool, .snapshot_ctx = &S, .snapshot_every = 0.01};
    /* An unreachable confidence keeps it climbing until the interrupt. */
    vis_fool_opts o = {
        .cls = 3, .confidence = 0.9999999f, .max_steps = 100000, .lo = 0, .hi = 1, .seed = 5};
    S.cancel_after = 4;
    S.cancel = &cancel;
    vis_fool_result r;
    cr_assert_eq(vis_fool(m, &o, &p, &r, &err), -1);
    cr_assert_eq(err.code, CL_EINTERRUPT);
    cr_assert_eq(S.calls, 5);
    cr_assert_eq(S.stopped_calls, 1);
    cr_assert(S.shape_ok && S.order_ok);
    cr_assert_lt(S.worst, 1e-3, "a claimed probability is off by %g", S.worst);
    /* Watching changes nothing. */
    vis_fool_opts short_run = o;
    short_run.max_steps = 100;
    atomic_store(&cancel, 0);
    net_free(S.check);
    S = fresh();
    S.check = fashion();
    S.cls = 3;
    vis_fool_result watched, plain;
    cr_assert_eq(vis_fool(m, &short_run, &p, &watched, &err), 0, "%s", err.msg);
    cr_assert_eq(vis_fool(m, &short_run, NULL, &plain, &err), 0, "%s", err.msg);
    cr_assert_eq(watched.steps, plain.steps);
    cr_assert_eq(memcmp(watched.image->data, plain.image->data, sizeof(float) * 784), 0);
    tn_free(watched.image);
    tn_free(plain.image);
    net_free(S.check);
    net_free(m);
}

/* Occlusion: the map's running sums and counts after `done` windows. */
typedef struct occ_seen {
    int calls, bad_counts, bad_means, total_ok;
    long last_done;
    const tn_tensor *final; /* the map of the same run without watching */
    int win, stride;
    float now[784], all[784]; /* windows covering each pixel: done so far, in all */
} occ_seen;

/* Adds windows [from, to) (Captum's rule, a 28x28 image) to the counts in c. */
static void cover(const occ_seen *S, long from, long to, float *c)
{
    int n = (28 - S->win + S->stride - 1) / S->stride + 1;
    for (long k = from; k < to; k++) {
        int y0 = (int)(k / n) * S->stride, x0 = (int)(k % n) * S->stride;
        for (int y = y0; y < y0 + S->win && y < 28; y++)
            for (int x = x0; x < x0 + S->win && x < 28; x++) c[y * 28 + x] += 1.0f;
    }
}

static void on_occ(void *ctx, const cl_snapshot *s)
{
    occ_seen *S = ctx;
    S->calls++;
    S->total_ok &= !strcmp(s->what, "occlusion") && s->done > S->last_done && s->done <= s->total &&
                   s->counts && s->x->shape[s->x->ndim - 1] == 28;
    if (S->calls == 1) cover(S, 0, s->total, S->all);
    cover(S, S->last_done, s->done, S->now);
    S->last_done = s->done;
    for (int i = 0; i < 784; i++) {
        S->bad_counts += s->counts[i] != S->now[i];
        /* A pixel whose windows are all done already has its final value. */
        if (S->now[i] > 0 && S->now[i] == S->all[i])
            S->bad_means += fabsf(s->x->data[i] / s->counts[i] - S->final->data[i]) >
                            1e-5f * (1.0f + fabsf(S->final->data[i]));
    }
}

Test(progress, occlusion_snapshots_hold_the_rows_done_so_far)
{
    cl_err err = {0};
    net *m = fashion();
    tn_tensor *x = tn_new4(1, 1, 28, 28, &err);
    for (int i = 0; i < 784; i++) x->data[i] = (float)((i * 37) % 101) / 100.0f;
    vis_occlusion_opts o = {.window_h = 4, .stride_h = 2, .batch = 4};
    tn_tensor *plain = vis_occlusion(m, x, 2, &o, NULL, NULL, &err);
    cr_assert_not_null(plain, "%s", err.msg);
    occ_seen S = {.total_ok = 1, .final = plain, .win = 4, .stride = 2};
    cl_progress p = {.snapshot = on_occ, .snapshot_ctx = &S, .snapshot_every = 1e-6};
    tn_tensor *watched = vis_occlusion(m, x, 2, &o, &p, NULL, &err);
    cr_assert_not_null(watched, "%s", err.msg);
    cr_assert_eq(memcmp(watched->data, plain->data, sizeof(float) * 784), 0,
                 "watching must not change the map");
    cr_assert_gt(S.calls, 10, "%d snapshots", S.calls);
    cr_assert(S.total_ok);
    cr_assert_eq(S.bad_counts, 0, "%d counts are not the windows done so far", S.bad_counts);
    cr_assert_eq(S.bad_means, 0, "%d finished pixels differ from the final map", S.bad_means);
    tn_free(watched);
    tn_free(plain);
    tn_free(x);
    net_free(m);
}
