/* limits — the one table of resource limits: how big an image, a tensor, a
 * model, a matrix literal or a string may be, how deeply code may nest, how
 * many steps an iterative command may take, and how large an incoming
 * message may be.  A limit turns what would be memory exhaustion (or a stack
 * overflow, or an hour of computing) into an error a student can act on,
 * naming the limit and how to raise it.
 *
 * Each limit has a default, is read once at start from the environment
 * variable CNNLENS_MAX_<NAME> (lim_load_env), and can be changed in a session
 * with the lens command `limits NAME VALUE` (lim_set).  Values are whole
 * numbers with an optional suffix: for byte limits K, M, G, T are powers of
 * 1024 ("64M", "1G", "1.5GiB"), for counts k/K, M, G, T are powers of 1000
 * ("64M" pixels = 64,000,000).
 *
 * The table is process-wide (a kernel has one session) and safe to read from
 * any thread while the session thread changes it.
 *
 * Ownership: lim_info_of returns a pointer into static storage.  Nothing here
 * allocates.
 */
#ifndef CNNLENS_LIMITS_H
#define CNNLENS_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

typedef enum {
    LIM_IMAGE_PIXELS = 0, /* pixels of a decoded or resized image */
    LIM_TENSOR_BYTES,     /* bytes of one float32 tensor */
    LIM_MODEL_BYTES,      /* bytes of a weight file, and of a model's parameters */
    LIM_MATRIX_ELEMENTS,  /* elements of one matrix literal [1 0; 0 1] */
    LIM_STRING_BYTES,     /* bytes of a string literal or a string built from strings */
    LIM_DEPTH,            /* nesting of brackets, signs and operators; evaluator recursion */
    LIM_STEPS,            /* steps, epochs x batches, samples, windows of a long command */
    LIM_MESSAGE_BYTES,    /* bytes of one incoming Jupyter message (all frames) */
    LIM_COUNT
} lim_id;

typedef enum {
    LIM_UNIT_COUNT = 0, /* plain number: "200 steps" */
    LIM_UNIT_PIXELS,    /* shown as "64 Mpixels" (powers of 1000) */
    LIM_UNIT_BYTES,     /* shown as "64 MiB" (powers of 1024) */
} lim_unit;

typedef struct lim_info {
    const char *name; /* "image_pixels": what `limits` and its errors call it */
    const char *env;  /* "CNNLENS_MAX_IMAGE_PIXELS" */
    lim_unit unit;
    int64_t def;        /* the default */
    int64_t lo, hi;     /* the range lim_set accepts (hi: what the code can bear) */
    const char *guards; /* one line for the table and the README */
} lim_info;

/* The current value. */
int64_t lim_get(lim_id id);
/* Sets a limit; a value outside [lo, hi] is refused with an error naming the range. */
int lim_set(lim_id id, int64_t value, cl_err *err);
/* Every limit back to its default. */
void lim_reset(void);

const lim_info *lim_info_of(lim_id id);
/* The limit called `name` ("image_pixels", case-insensitive), or -1. */
int lim_find(const char *name);

/* Parses "64M", "1G", "1.5GiB", "200", "1e6" for limit id (the unit picks the
 * suffix base).  The result must be a whole number in [lo, hi]. */
int lim_parse(lim_id id, const char *text, int64_t *out, cl_err *err);

/* Reads every CNNLENS_MAX_<NAME> set in env (a NULL-terminated "NAME=value"
 * array such as environ).  A malformed or out-of-range value, or a
 * CNNLENS_MAX_ variable that names no limit, is an error naming the variable;
 * nothing is changed then. */
int lim_load_env(char *const *env, cl_err *err);

/* An amount in the limit's unit, for messages and the table: "64 Mpixels",
 * "1.5 GiB", "200". */
void lim_format(lim_id id, double amount, char *buf, size_t n);

/* 0 when amount <= the limit; otherwise -1 and a CL_ELIMIT error
 * "WHAT is AMOUNT; the limit is LIMIT (set CNNLENS_MAX_X or `limits x ...`)".
 * `what` is a noun phrase ("the matrix literal", "maximize: steps"); amount is
 * a double so that products computed in floating point cannot overflow. */
int lim_check(lim_id id, double amount, const char *what, cl_err *err);
/* The same for an image of w x h pixels: "WHAT is 40000x40000 = 1.6 Gpixels; ...". */
int lim_check_pixels(double w, double h, const char *what, cl_err *err);
/* Sets that error for an image over an explicit `limit` (a decoder given its
 * own bound); returns -1. */
int lim_refuse_pixels(double w, double h, int64_t limit, const char *what, cl_err *err);

#endif
