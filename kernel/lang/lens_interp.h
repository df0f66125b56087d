/* lens_interp — the lens language behind kernel/interp.h.
 *
 * Ownership: lens_interp_new returns an interpreter freed through its
 * vtable's destroy.
 */
#ifndef CNNLENS_LANG_LENS_INTERP_H
#define CNNLENS_LANG_LENS_INTERP_H

#include "kernel/interp.h"

kn_interp *lens_interp_new(void);

/* Default pause between the frames of step-by-step displays (`conv ... step`):
 * 0.3 s in a notebook; `cnnlens run` sets 0. */
void lens_interp_set_delay(kn_interp *it, double seconds);
/* Rehearsal: every iterative command runs at most `steps` steps (epochs,
 * samples); 0 turns it off.  lens_interp_new starts with $CNNLENS_REHEARSE. */
void lens_interp_set_rehearse(kn_interp *it, int steps);
int lens_interp_rehearse(const kn_interp *it);
/* Wall-clock seconds the last execute spent in the interpreter. */
double lens_interp_last_seconds(const kn_interp *it);

/* The error report of a failed cell as Jupyter shows it: traceback lines
 * quoting the source line with a caret under the column.  Returns a new
 * array of strings. */
json_t *lens_traceback(const char *src, int line, int col, const char *ename, const char *evalue);

#endif
