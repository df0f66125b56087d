/* mini_interp — a minimal stand-in for the lens language, behind kn_interp.
 *
 * Until kernel/lang lands, this is what `cnnlens kernel` runs: enough to
 * drive every path of the server (streams, errors, displays updated in
 * place, stdin, interrupts, results, completion, inspection, the pager).
 * One statement per line:
 *   print EXPR | eprint EXPR      stdout / stderr
 *   NAME = EXPR | EXPR            bind / the cell's result (last line)
 *   input "prompt"                an expression: a line read from the front end
 *   logo                          displays the kernel logo (image/png)
 *   progress N                    one display updated in place N times
 *   sleep SECONDS | loop N        long, interruptible work
 *   clear                         clear_output
 *   help [WORD]                   pager text
 * EXPR: numbers, "strings", names, + - * / and parentheses.
 *
 * Ownership: mi_new() returns an interpreter the caller releases with
 * interp->vt->destroy(interp).
 */
#ifndef CNNLENS_MINI_INTERP_H
#define CNNLENS_MINI_INTERP_H

#include "kernel/interp.h"

kn_interp *mi_new(void);

#endif
