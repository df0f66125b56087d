#include <stdlib.h>
#include "engine/limits.h"

#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define KIB ((int64_t)1 << 10)
#define MIB ((int64_t)1 << 20)
#define GIB ((int64_t)1 << 30)

/* Defaults for a 2-core, 24 GiB lecture machine; the lecture notebooks stay
 * far below every one of them (VGG19's weights are 548 MiB, its biggest
 * tensor 392 MiB, the biggest literal a 6x6 matrix, maximize 200 steps,
 * train 4 epochs of 938 batches). A cell costs about 200 bytes of memory
 * per token while it is parsed, so message_bytes also bounds that: 16 MiB
 * (Jupyter's notebook server passes at most 10 MiB per websocket message)
 * holds the largest matrix literal allowed. `hi` is what the code can bear:
 * the lexer's bracket stack and the parser's recursion are sized for
 * LIM_DEPTH's. */
static const lim_info table[LIM_COUNT] = {
    [LIM_IMAGE_PIXELS] = {"image_pixels", "CNNLENS_MAX_IMAGE_PIXELS", LIM_UNIT_PIXELS, 64000000, 1,
                          1000000000,
                          "pixels of an image read from a file, resized, cropped or shown"},
    [LIM_TENSOR_BYTES] = {"tensor_bytes", "CNNLENS_MAX_TENSOR_BYTES", LIM_UNIT_BYTES, 2 * GIB, KIB,
                          256 * GIB,
                          "bytes of one tensor (4 per element): matrices, activations, arrays "
                          "read from files"},
    [LIM_MODEL_BYTES] = {"model_bytes", "CNNLENS_MAX_MODEL_BYTES", LIM_UNIT_BYTES, GIB, KIB,
                         256 * GIB, "bytes of a weight file, and of a model's parameters"},
    [LIM_MATRIX_ELEMENTS] = {"matrix_elements", "CNNLENS_MAX_MATRIX_ELEMENTS", LIM_UNIT_COUNT,
                             1000000, 1, 100000000, "numbers written in one matrix literal [...]"},
    [LIM_STRING_BYTES] = {"string_bytes", "CNNLENS_MAX_STRING_BYTES", LIM_UNIT_BYTES, MIB, 256, GIB,
                          "bytes of a string literal, or of a string built with +"},
    [LIM_DEPTH] = {"depth", "CNNLENS_MAX_DEPTH", LIM_UNIT_COUNT, 200, 8, 2000,
                   "nesting of brackets, signs and operators in a line, and of nested commands"},
    [LIM_STEPS] = {"steps", "CNNLENS_MAX_STEPS", LIM_UNIT_COUNT, 100000, 1, 1000000000,
                   "steps of maximize and fool, epochs x batches of train, windows of occlusion, "
                   "samples of smoothgrad, steps of intgrad"},
    [LIM_MESSAGE_BYTES] = {"message_bytes", "CNNLENS_MAX_MESSAGE_BYTES", LIM_UNIT_BYTES, 16 * MIB,
                           64 * KIB, 4 * GIB, "bytes of one incoming Jupyter message"},
};

/* 0 means "the default": a zero-initialised table needs no start-up call. */
static _Atomic int64_t current[LIM_COUNT];

const lim_info *lim_info_of(lim_id id)
{
    return (unsigned)id < LIM_COUNT ? &table[id] : NULL;
}

int64_t lim_get(lim_id id)
{
    if ((unsigned)id >= LIM_COUNT) return 0;
    int64_t v = atomic_load_explicit(&current[id], memory_order_relaxed);
    return v ? v : table[id].def;
}

static int out_of_range(lim_id id, const char *who, const char *text, cl_err *err)
{
    char lo[32], hi[32];
    lim_format(id, (double)table[id].lo, lo, sizeof lo);
    lim_format(id, (double)table[id].hi, hi, sizeof hi);
    return cl_err_set(err, CL_EINVAL, "%s %s is out of range: it must be between %s and %s", who,
                      text, lo, hi);
}

int lim_set(lim_id id, int64_t value, cl_err *err)
{
    if ((unsigned)id >= LIM_COUNT) return cl_err_set(err, CL_EINVAL, "no such limit");
    if (value < table[id].lo || value > table[id].hi) {
        char text[32];
        snprintf(text, sizeof text, "%lld", (long long)value);
        return out_of_range(id, table[id].name, text, err);
    }
    atomic_store_explicit(&current[id], value, memory_order_relaxed);
    return 0;
}

void lim_reset(void)
{
    for (int i = 0; i < LIM_COUNT; i++) atomic_store_explicit(&current[i], 0, memory_order_relaxed);
}

int lim_find(const char *name)
{
    for (int i = 0; i < LIM_COUNT; i++)
        if (!strcasecmp(name, table[i].name)) return i;
    return -1;
}

/* The multiplier of a suffix ("k", "M", "GiB", ...), or 0 if it is not one. */
static double suffix_scale(lim_unit unit, const char *s)
{
    static const char letters[] = "KMGT";
    if (!*s) return 1;
    const char *p = strchr(letters, toupper((unsigned char)s[0]));
    if (!p) return 0;
    const char *rest = s + 1;
    int bytes = unit == LIM_UNIT_BYTES;
    /* Byte limits may spell the unit out: K, KB, KiB all mean 1024. */
    if (bytes && (!strcasecmp(rest, "b") || !strcasecmp(rest, "ib"))) rest += strlen(rest);
    if (*rest) return 0;
    return pow(bytes ? 1024.0 : 1000.0, (double)(p - letters + 1));
}

static const char *unit_example(lim_unit unit)
{
    switch (unit) {
    case LIM_UNIT_BYTES:
        return "a number of bytes, e.g. 67108864, 64M or 1G";
    case LIM_UNIT_PIXELS:
        return "a number of pixels, e.g. 64000000 or 64M";
    default:
        return "a whole number, e.g. 1000 or 10k";
    }
}

static int parse_as(lim_id id, const char *who, const char *text, int64_t *out, cl_err *err)
{
    const lim_info *L = &table[id];
    const char *s = text;
    while (isspace((unsigned char)*s)) s++;
    char *end;
    double x = strtod(s, &end);
    if (isnan(x) || end == s) goto bad;
    while (isspace((unsigned char)*end)) end++;
    char suffix[8];
    size_t n = strlen(end);
    while (n && isspace((unsigned char)end[n - 1])) n--;
    if (n >= sizeof suffix) goto bad;
    memcpy(suffix, end, n);
    suffix[n] = '\0';
    double scale = suffix_scale(L->unit, suffix);
    if (scale == 0 || !isfinite(x)) goto bad;
    x *= scale;
    if (x != floor(x))
        return cl_err_set(err, CL_EINVAL, "%s \"%s\" is not a whole number (write %s)", who, text,
                          unit_example(L->unit));
    if (x < (double)L->lo || x > (double)L->hi) return out_of_range(id, who, text, err);
    *out = (int64_t)x;
    return 0;
bad:
    return cl_err_set(err, CL_EINVAL, "%s \"%s\" is not a valid limit (write %s)", who, text,
                      unit_example(L->unit));
}

int lim_parse(lim_id id, const char *text, int64_t *out, cl_err *err)
{
    if ((unsigned)id >= LIM_COUNT) return cl_err_set(err, CL_EINVAL, "no such limit");
    return parse_as(id, table[id].name, text, out, err);
}

static const char *env_value(char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = env; e && *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=') return *e + n + 1;
    return NULL;
}

/* A CNNLENS_MAX_ variable that names no limit is a misspelling, not a wish. */
static int check_unknown(char *const *env, cl_err *err)
{
    static const char prefix[] = "CNNLENS_MAX_";
    for (char *const *e = env; e && *e; e++) {
        if (strncmp(*e, prefix, sizeof prefix - 1)) continue;
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        int known = 0;
        for (int i = 0; i < LIM_COUNT && !known; i++)
            known = strlen(table[i].env) == len && !strncmp(*e, table[i].env, len);
        if (!known) {
            char list[512] = "";
            size_t k = 0;
            for (int i = 0; i < LIM_COUNT && k < sizeof list; i++)
                k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "",
                                      table[i].env);
            return cl_err_set(err, CL_EINVAL, "%.*s is not a limit (the limits are: %s)", (int)len,
                              *e, list);
        }
    }
    return 0;
}

int lim_load_env(char *const *env, cl_err *err)
{
    if (check_unknown(env, err)) return -1;
    int64_t v[LIM_COUNT] = {0};
    for (int i = 0; i < LIM_COUNT; i++) {
        const char *text = env_value(env, table[i].env);
        if (text && parse_as((lim_id)i, table[i].env, text, &v[i], err)) return -1;
    }
    for (int i = 0; i < LIM_COUNT; i++)
        if (v[i]) atomic_store_explicit(&current[i], v[i], memory_order_relaxed);
    return 0;
}

/* "64", "1.5", "95.37": at most two decimals, no trailing zeros. */
static void short_num(double x, char *buf, size_t n)
{
    snprintf(buf, n, "%.2f", x);
    char *dot = strchr(buf, '.');
    if (!dot) return;
    char *e = buf + strlen(buf);
    while (e > dot + 1 && e[-1] == '0') *--e = '\0';
    if (e == dot + 1) *dot = '\0';
}

void lim_format(lim_id id, double amount, char *buf, size_t n)
{
    lim_unit unit = (unsigned)id < LIM_COUNT ? table[id].unit : LIM_UNIT_COUNT;
    if (unit == LIM_UNIT_COUNT || !isfinite(amount)) {
        if (isfinite(amount) && fabs(amount) < 1e15 && amount == floor(amount))
            snprintf(buf, n, "%lld", (long long)amount);
        else
            snprintf(buf, n, "%g", amount);
        return;
    }
    static const char *const prefixes[] = {"", "k", "M", "G", "T", "P"};
    static const char *const binary[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi"};
    double base = unit == LIM_UNIT_BYTES ? 1024.0 : 1000.0, x = amount;
    int k = 0;
    while (fabs(x) >= base && k < 5) {
        x /= base;
        k++;
    }
    char num[48];
    short_num(x, num, sizeof num);
    if (unit == LIM_UNIT_PIXELS)
        snprintf(buf, n, "%s %spixels", num, prefixes[k]);
    else if (k == 0)
        snprintf(buf, n, "%s bytes", num);
    else
        snprintf(buf, n, "%s %sB", num, binary[k]);
}

/* amount is the text of `exact` (a pixel count may be "WxH = N" around it). */
static int fail(lim_id id, const char *what, const char *amount, double exact, int64_t limit,
                cl_err *err)
{
    char text[48], more[2][64] = {"", ""};
    lim_format(id, (double)limit, text, sizeof text);
    /* "1 MiB; the limit is 1 MiB" says nothing: then give both exactly. */
    char shown[48];
    lim_format(id, exact, shown, sizeof shown);
    if (!strcmp(shown, text) && table[id].unit != LIM_UNIT_COUNT) {
        const char *u = table[id].unit == LIM_UNIT_BYTES ? "bytes" : "pixels";
        snprintf(more[0], sizeof more[0], " (%.0f %s)", exact, u);
        snprintf(more[1], sizeof more[1], " (%lld %s)", (long long)limit, u);
    }
    return cl_err_set(err, CL_ELIMIT, "%s is %s%s; the limit is %s%s (set %s or `limits %s ...`)",
                      what, amount, more[0], text, more[1], table[id].env, table[id].name);
}

int lim_check(lim_id id, double amount, const char *what, cl_err *err)
{
    if ((unsigned)id >= LIM_COUNT) return 0;
    if (amount <= (double)lim_get(id)) return 0;
    char text[48];
    lim_format(id, amount, text, sizeof text);
    return fail(id, what, text, amount, lim_get(id), err);
}

int lim_refuse_pixels(double w, double h, int64_t limit, const char *what, cl_err *err)
{
    char total[48], text[128];
    lim_format(LIM_IMAGE_PIXELS, w * h, total, sizeof total);
    snprintf(text, sizeof text, "%.0fx%.0f = %s", w, h, total);
    return fail(LIM_IMAGE_PIXELS, what, text, w * h, limit, err);
}

int lim_check_pixels(double w, double h, const char *what, cl_err *err)
{
    int64_t limit = lim_get(LIM_IMAGE_PIXELS);
    return w * h <= (double)limit ? 0 : lim_refuse_pixels(w, h, limit, what, err);
}
