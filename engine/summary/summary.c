/* summary — formats net_node_info rows as an aligned text table. */
#include "engine/summary/summary.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sm_buf {
    char *s;
    size_t len, cap;
    int failed;
} sm_buf;

static void put(sm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(sm_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->failed || n < 0) {
        b->failed = 1;
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = 1;
            return;
        }
        b->s = s, b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* 11689512 -> "11,689,512" */
static char *thousands(int64_t v, char *buf, size_t n)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", (long long)v), o = 0;
    for (int i = 0; i < len && (size_t)o + 2 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0 && digits[i - 1] != '-') buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = 0;
    return buf;
}

char *sm_table(const net *m, cl_err *err)
{
    int wname = 5, wtype = 4;
    for (int i = 0; i < net_node_count(m); i++) {
        net_node_info info;
        net_node_info_get(m, i, &info);
        if ((int)strlen(info.name) > wname) wname = (int)strlen(info.name);
        if ((int)strlen(info.type) > wtype) wtype = (int)strlen(info.type);
    }
    sm_buf b = {0};
    char shape[96], num[32];
    put(&b, "%-*s  %-*s  %-20s  %12s\n", wname, "layer", wtype, "type", "output", "params");
    for (int i = 0; i < net_node_count(m); i++) {
        net_node_info info;
        net_node_info_get(m, i, &info);
        put(&b, "%-*s  %-*s  %-20s  %12s\n", wname, info.name, wtype, info.type,
            tn_shape_str_raw(info.ndim, info.shape, shape, sizeof shape),
            info.params ? thousands(info.params, num, sizeof num) : "");
    }
    put(&b, "total parameters: %s\n", thousands(net_param_count(m), num, sizeof num));
    if (b.failed) {
        free(b.s);
        cl_err_set(err, CL_ENOMEM, "out of memory formatting the model summary");
        return NULL;
    }
    return b.s;
}
