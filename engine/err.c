#include "engine/err.h"

#include <stdio.h>
#include <string.h>

int cl_err_vset(cl_err *err, cl_code code, const char *fmt, va_list ap)
{
    if (!err) return -1;
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return -1;
}

int cl_err_set(cl_err *err, cl_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cl_err_vset(err, code, fmt, ap);
    va_end(ap);
    return -1;
}

int cl_err_prefix(cl_err *err, const char *fmt, ...)
{
    if (!err) return -1;
    char head[CL_ERR_MSG], old[CL_ERR_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t k = strlen(head);
    if (k > sizeof err->msg - 3) k = sizeof err->msg - 3;
    memcpy(err->msg, head, k);
    memcpy(err->msg + k, ": ", 2);
    size_t room = sizeof err->msg - k - 3;
    size_t n = strnlen(old, room);
    memcpy(err->msg + k + 2, old, n);
    err->msg[k + 2 + n] = '\0';
    return -1;
}

void cl_err_clear(cl_err *err)
{
    if (!err) return;
    err->code = CL_OK;
    err->msg[0] = '\0';
}

const char *cl_err_name(cl_code code)
{
    switch (code) {
    case CL_OK: return "OK";
    case CL_EINVAL: return "ValueError";
    case CL_ENOMEM: return "MemoryError";
    case CL_EIO: return "IOError";
    case CL_EFORMAT: return "FormatError";
    case CL_EINTERRUPT: return "KeyboardInterrupt";
    case CL_ETYPE: return "TypeError";
    case CL_ENAME: return "NameError";
    case CL_ESYNTAX: return "SyntaxError";
    case CL_ECHECK: return "ExpectationFailed";
    case CL_ELIMIT: return "LimitError";
    }
    return "Error";
}
