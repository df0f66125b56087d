/* grade_report — scoring executed notebooks and writing the gradebook.
 *
 * A gr_row is one student notebook: its run outcome and every `expect` line
 * in order of appearance.  gr_row_free releases what a row owns (its expects
 * and messages); the row itself belongs to the caller.
 */
#ifndef CNNLENS_APP_GRADE_REPORT_H
#define CNNLENS_APP_GRADE_REPORT_H

#include <jansson.h>

#include "engine/err.h"

typedef enum { GR_OK = 0, GR_FAILED, GR_TIMEOUT, GR_CRASHED, GR_INVALID } gr_outcome;
typedef enum { GR_NOTRUN = 0, GR_PASS, GR_FAIL } gr_state;

typedef struct gr_expect {
    int cell;     /* 1-based, counting code cells */
    int line;     /* 1-based, within the cell */
    char *source; /* the expect line, trimmed */
    gr_state state;
    char *message; /* why it failed, or NULL */
} gr_expect;

typedef struct gr_row {
    char notebook[256];
    gr_outcome outcome;
    char note[512];
    double seconds;
    gr_expect *expects;
    int n_expects;
    int n_errors;  /* cells that stopped on an error other than a failed expect */
    char **errors; /* "cell 3, line 2: NameError: unknown variable 'y'" */
} gr_row;

/* Lists the expect lines of a notebook's code cells (all start NOTRUN). */
void gr_collect_expects(json_t *nb, gr_row *r);
/* Scores the expects against an executed notebook, and collects its errors. */
void gr_score(json_t *executed, gr_row *r);
int gr_passed(const gr_row *r);
const char *gr_outcome_name(gr_outcome o);

int gr_write_csv(const char *dir, const gr_row *rows, int n, cl_err *err);
int gr_write_html(const char *dir, const gr_row *rows, int n, cl_err *err);
void gr_row_free(gr_row *r);

#endif
