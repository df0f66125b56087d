/* eval — runs a parsed cell against a session.
 *
 * Each statement is evaluated completely before its variable is bound, so an
 * error or an interrupt leaves every variable as it was.  Errors carry the
 * line and column of the piece of source they are about.
 *
 * Ownership: ev_run gives the caller the last statement's value (*last, one
 * reference, or NULL).  ev_eval returns a new reference or NULL.
 */
#ifndef CNNLENS_LANG_EVAL_H
#define CNNLENS_LANG_EVAL_H

#include "engine/err.h"
#include "kernel/lang/commands.h"
#include "kernel/lang/parse.h"
#include "kernel/lang/session.h"

typedef struct ev_ctx {
    ss_session *s;
    cl_err *err;
    lx_pos where; /* position of the error */
    int depth;    /* current recursion, bounded by the depth limit (engine/limits.h) */
} ev_ctx;

/* Runs every statement.  *last receives the value of a bare expression that
 * ends the cell (NULL if the cell ends otherwise, its value is nothing, or
 * the statement displayed it itself). */
int ev_run(ev_ctx *E, const ps_program *prog, lv_value **last);
lv_value *ev_eval(ev_ctx *E, const ps_node *n);

/* Shapes equal once size-1 axes are dropped ([3] and [1, 3]). */
int ev_same_squeezed(const tn_tensor *a, const tn_tensor *b);

/* Arithmetic and comparison on values (op is an lx_kind). */
lv_value *ev_binary(int op, const lv_value *a, const lv_value *b, cl_err *err);

#endif
