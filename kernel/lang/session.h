/* session — what a kernel remembers between cells: variables, the current
 * model, class labels, the random generator, and the interrupt flag.
 *
 * An error in a cell never removes or changes a variable: assignments happen
 * only after a statement's value is complete.  `seed N` resets the generator
 * (xoshiro256**, seeded through splitmix64), so every random result after it
 * is the same on every run and machine.
 *
 * Ownership: ss_new returns a session freed with ss_free.  ss_get returns a
 * borrowed value; ss_set takes the caller's reference.
 */
#ifndef CNNLENS_LANG_SESSION_H
#define CNNLENS_LANG_SESSION_H

#include <stdatomic.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/progress.h"
#include "kernel/interp.h"
#include "kernel/lang/value.h"

typedef struct ss_var {
    char *name;
    lv_value *v;
} ss_var;

typedef struct ss_session {
    ss_var *vars;
    int nvars, cap;
    lv_value *model; /* the current model (the last one loaded), or NULL */
    char **labels;   /* class names, or NULL */
    int nlabels;
    uint64_t rng[4];
    atomic_int cancel; /* set by interrupt; cleared when a cell starts */
    kn_output *out;    /* callbacks of the running cell (NULL: output dropped) */
    double delay;      /* default pause of step-by-step displays, in seconds */
    int display_seq;   /* numbers display ids */
    json_t *payload;   /* pager payload of the running cell, or NULL */
    int displayed;     /* the running statement showed its own result */
    int skip_rest;     /* `require` found its file missing: end the cell quietly */
    /* The progress display of the running statement's long work: the next
     * plain display of the same statement replaces it, so a live progress bar
     * ends as the figure instead of leaving a "done" line behind. */
    char live_id[64];
    /* ...and the text it ends with if no display replaces it (a live picture
     * waits for that; see le_live_finish). */
    char live_end[128];
    const char *src; /* the running cell's source (borrowed) */
    int allow_stdin; /* the running cell may ask for input */
    /* Rehearsal (0: off): every `steps`, `epochs` and `samples` is cut to at
     * most this many, so a whole lecture runs in seconds to check that it
     * runs; the pictures are not the lecture's. */
    int rehearse;
} ss_session;

ss_session *ss_new(cl_err *err);
void ss_free(ss_session *s);
/* Forgets variables, model, labels (restart). */
void ss_clear(ss_session *s);

lv_value *ss_get(const ss_session *s, const char *name);
int ss_set(ss_session *s, const char *name, lv_value *v, cl_err *err);
/* Names of the variables, in the order they were first set. */
int ss_var_count(const ss_session *s);
const char *ss_var_name(const ss_session *s, int i);

int ss_set_labels(ss_session *s, char **labels, int n); /* takes the array and strings */
/* Index of a class named `name` (case-insensitive; any comma-separated
 * synonym; '_' matches ' '), or -1. */
int ss_find_label(const ss_session *s, const char *name);

void ss_seed(ss_session *s, uint64_t seed);
uint64_t ss_rand_u64(ss_session *s);
double ss_rand_uniform(ss_session *s); /* [0,1) with 53 random bits */
double ss_rand_normal(ss_session *s);  /* N(0,1), Box-Muller */

/* A progress struct whose cancel flag is the session's. */
cl_progress ss_progress(ss_session *s);
int ss_cancelled(ss_session *s);
/* -1 with CL_EINTERRUPT ("interrupted by the user") if the cell was interrupted, else 0. */
int ss_check_interrupt(ss_session *s, cl_err *err);
/* Sleeps up to `seconds`, waking early on interrupt (then returns -1 with err). */
int ss_sleep(ss_session *s, double seconds, cl_err *err);

/* Output of the running cell. */
void ss_stream(ss_session *s, const char *name, const char *text);
/* Sends a display (bundle borrowed); display_id may be NULL. */
void ss_display(ss_session *s, json_t *bundle, const char *display_id, int update);
/* A fresh display id ("lens-<pid>-<n>"), written to buf. */
void ss_new_display_id(ss_session *s, char *buf, size_t n);
/* At the end of a statement that went well: a live display that no display
 * replaced and that waits for its final text (live_end) gets it. */
void ss_live_end(ss_session *s);

#endif
