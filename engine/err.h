/* err — errors as values.
 *
 * Every fallible function in cnnlens takes a `cl_err *` (may be NULL) and
 * returns a status (0 on success, -1 on failure) or NULL.  On failure it fills
 * the error with a message a student can act on.  Nothing below kernel/main.c
 * calls exit() or abort().
 *
 * Ownership: a cl_err is a plain value; it owns no memory.
 */
#ifndef CNNLENS_ERR_H
#define CNNLENS_ERR_H

#include <stdarg.h>

typedef enum {
    CL_OK = 0,
    CL_EINVAL,     /* bad argument or value from the user */
    CL_ENOMEM,     /* allocation failed or a limit was exceeded */
    CL_EIO,        /* file or socket error */
    CL_EFORMAT,    /* a file or message is malformed */
    CL_EINTERRUPT, /* the user interrupted a long computation */
    CL_ETYPE,      /* wrong kind of value */
    CL_ENAME,      /* unknown name (variable, layer, command, option) */
    CL_ESYNTAX,    /* lens syntax error */
    CL_ECHECK,     /* an `expect` that did not hold */
    CL_ELIMIT,     /* a limit of engine/limits.h was reached (the message says which) */
} cl_code;

#define CL_ERR_MSG 1024

typedef struct cl_err {
    cl_code code;
    char msg[CL_ERR_MSG];
} cl_err;

/* Sets the error (if err is not NULL) and returns -1, so that callers can write
 * `return cl_err_set(err, CL_EIO, "cannot open '%s': %s", path, strerror(errno));` */
int cl_err_set(cl_err *err, cl_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cl_err_vset(cl_err *err, cl_code code, const char *fmt, va_list ap);

/* Prepends "context: " to an existing message (e.g. the file name). Returns -1. */
int cl_err_prefix(cl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void cl_err_clear(cl_err *err);

/* A short name for the code, e.g. "ValueError", used as the Jupyter ename. */
const char *cl_err_name(cl_code code);

#endif
