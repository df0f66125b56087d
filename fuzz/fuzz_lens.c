/* The lens language: lexer, parser and evaluator (kernel/lang) through the
 * interpreter's hooks, as a notebook drives them: execute the cell, then
 * complete, inspect and is_complete on it.
 *
 * Each input is a cell (UTF-8 text or not).  A watchdog thread interrupts a
 * cell that runs longer than FZ_CELL_MS through the session's cancel flag,
 * exactly as the kernel's control thread does: a cell that ignores the
 * interrupt shows up as a libFuzzer timeout.  After every input the session
 * is cleared (the restart hook), so memory does not pile up across inputs.
 *
 * Cells that could write files or read devices (`save`, paths under /dev,
 * /proc, /sys) are skipped: they would touch the machine, not the code under
 * test (and `save` is the only verb that writes).  So are cells that change
 * the limits: the harness lowers them (fuzz_limits) so that an allocation
 * over libFuzzer's 1 GiB malloc limit always means a missing check. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/limits.h"
#include "kernel/lang/lens_interp.h"

#define FZ_CELL_MS 300

static kn_interp *interp;
static atomic_long deadline_ms; /* 0: no cell running */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Keeps interrupting while the running cell is past its time: the first
 * interrupt may land before execute clears the flag for the new cell. */
static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        long d = atomic_load(&deadline_ms);
        if (d && now_ms() > d) interp->vt->interrupt(interp);
        usleep(5000);
    }
    return NULL;
}

static void on_stream(void *ctx, const char *name, const char *text)
{
    (void)ctx, (void)name, (void)text;
}

static void on_display(void *ctx, json_t *data, json_t *meta, const char *id, int update)
{
    (void)ctx, (void)data, (void)meta, (void)id, (void)update;
}

static void on_clear(void *ctx, int wait)
{
    (void)ctx, (void)wait;
}

static char *on_input(void *ctx, const char *prompt, int password)
{
    (void)ctx, (void)prompt, (void)password;
    return strdup("3");
}

/* Limits well under libFuzzer's 1 GiB malloc limit, so that any allocation
 * past it is a size check missing, not a big value the limits allow.  They
 * are also small enough for libFuzzer's time limit (10 s an input) to mean
 * "a cell ignored the interrupt": the watchdog stops a cell between two
 * commands and inside every long loop, but one pass over a tensor, a picture
 * or a model's weights runs to its end, and under coverage instrumentation
 * such a pass is 10-30x slower than in a release build (`rand 4000 4000`,
 * 64 MB, took 3.4 s here, and CI machines are up to 3x slower; AlexNet's
 * 244 MB of weights took 4 s).  So: tensors up to 32 MiB, pictures up to 4
 * megapixels, models up to 64 MiB (the lecture CNN and resnet18; bigger ones
 * exercise the refusal). */
static void fuzz_limits(void)
{
    static const struct {
        lim_id id;
        int64_t value;
    } lims[] = {
        {LIM_TENSOR_BYTES, 32 << 20}, {LIM_MODEL_BYTES, 64 << 20}, {LIM_IMAGE_PIXELS, 4000000}};
    for (size_t i = 0; i < sizeof lims / sizeof *lims; i++)
        if (lim_set(lims[i].id, lims[i].value, NULL)) abort(); /* the harness cannot run */
}

static void setup(void)
{
    if (interp) return;
    interp = lens_interp_new();
    pthread_t t;
    if (!interp || pthread_create(&t, NULL, watchdog, NULL)) abort();
    pthread_detach(t);
    lens_interp_set_delay(interp, 0);
    fuzz_limits();
}

static int touches_machine(const char *code)
{
    static const char *const words[] = {"save", "limits", "/dev", "/proc", "/sys"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strstr(code, words[i])) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    char *code = malloc(size + 1);
    if (!code) return 0;
    memcpy(code, data, size);
    code[size] = '\0';
    if (touches_machine(code)) {
        free(code);
        return 0;
    }
    kn_output out = {NULL, on_stream, on_display, on_clear, on_input};
    kn_exec_result res;
    /* The same random numbers for every run of an input: crashes reproduce. */
    kn_exec_request seed = {"seed 1", 1, 0, 0, 1};
    interp->vt->execute(interp, &seed, &out, &res);
    kn_exec_result_free(&res);
    kn_exec_request req = {code, 0, 1, 1, 1};
    atomic_store(&deadline_ms, now_ms() + FZ_CELL_MS);
    interp->vt->execute(interp, &req, &out, &res);
    atomic_store(&deadline_ms, 0);
    kn_exec_result_free(&res);
    int len = (int)strlen(code);
    json_decref(interp->vt->complete(interp, code, len));
    json_decref(interp->vt->complete(interp, code, len / 2));
    json_decref(interp->vt->inspect(interp, code, len, 1));
    json_decref(interp->vt->is_complete(interp, code));
    interp->vt->shutdown(interp, 1);
    free(code);
    return 0;
}
