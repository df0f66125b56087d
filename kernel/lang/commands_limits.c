/* The `limits` verb: shows and changes the limits of engine/limits.h from a
 * cell.  Its table is the engine's own, so a new limit shows up here without
 * touching this file. */
#include <stdio.h>
#include <string.h>

#include "engine/limits.h"
#include "kernel/lang/commands.h"

static int oom(cl_err *err)
{
    return cl_err_set(err, CL_ENOMEM, "out of memory");
}

static int add_row(lv_table *t, lim_id id)
{
    const lim_info *L = lim_info_of(id);
    char value[48], def[48];
    lim_format(id, (double)lim_get(id), value, sizeof value);
    lim_format(id, (double)L->def, def, sizeof def);
    const char *cells[5] = {L->name, value, def, L->env, L->guards};
    return lv_table_add(t, cells, NULL);
}

/* All limits (only < 0) or just one. */
static int limits_table(int only, lv_value **out, cl_err *err)
{
    static const char *head[] = {"name", "value", "default", "environment variable",
                                 "what it guards"};
    lv_table *t = lv_table_new(5, head);
    if (!t) return oom(err);
    for (int i = 0; i < LIM_COUNT; i++) {
        if ((only >= 0 && i != only) || add_row(t, (lim_id)i) >= 0) continue;
        lv_table_free(t);
        return oom(err);
    }
    return (*out = lv_table_value(t)) ? 0 : oom(err);
}

static int unknown_limit(lc_call *c, const char *name, cl_err *err)
{
    const char *names[LIM_COUNT];
    for (int i = 0; i < LIM_COUNT; i++) names[i] = lim_info_of((lim_id)i)->name;
    const char *near = lc_nearest(name, names, LIM_COUNT);
    if (near)
        return lc_arg_error(c, "name", err, CL_ENAME,
                            "unknown limit '%s' \xe2\x80\x94 did you mean '%s'?", name, near);
    return lc_arg_error(c, "name", err, CL_ENAME, "unknown limit '%s' (type `limits` to list them)",
                        name);
}

/* A number or a text such as "64M" or "default" as a value for limit id. */
static int value_of(lc_call *c, lim_id id, const lv_value *v, int64_t *out, cl_err *err)
{
    char text[64];
    if (v->kind == LV_STR && !strcmp(v->str, "default")) {
        *out = lim_info_of(id)->def;
        return 0;
    }
    /* Through the same parser as the environment: one set of checks. */
    if (v->kind == LV_NUM) snprintf(text, sizeof text, "%.17g", v->num);
    const char *s = v->kind == LV_STR ? v->str : text;
    if (lim_parse(id, s, out, err) < 0)
        return lc_arg_error(c, "value", err, err->code, "%s", err->msg);
    return 0;
}

static int do_limits(lc_call *c, lv_value **out, cl_err *err)
{
    const char *name = lc_text(c, "name");
    lv_value *v = lc_get(c, "value");
    if (!name) return limits_table(-1, out, err);
    int id = lim_find(name);
    if (id < 0) return unknown_limit(c, name, err);
    if (v) {
        int64_t x;
        if (value_of(c, (lim_id)id, v, &x, err) < 0) return -1;
        if (lim_set((lim_id)id, x, err) < 0)
            return lc_arg_error(c, "value", err, err->code, "%s", err->msg);
    }
    return limits_table(id, out, err);
}

int lc_check_limit(lc_call *c, const char *name, lim_id id, double amount, const char *what,
                   cl_err *err)
{
    if (!lim_check(id, amount, what, err)) return 0;
    return lc_arg_error(c, name, err, err->code, "%s", err->msg);
}

const lc_verb lc_limits_verbs[] = {
    {"limits",
     "language",
     "Shows the limits on sizes, depth and steps, or changes one.",
     2,
     0,
     {{"name", LA_STR | LA_WORD | LA_OPTIONAL, NULL,
       "a limit: image_pixels, tensor_bytes, model_bytes, matrix_elements, string_bytes, depth, "
       "steps, message_bytes"},
      {"value", LA_NUM | LA_STR | LA_WORD | LA_OPTIONAL, NULL,
       "the new value: a number, a text with a unit such as \"4G\", or default"}},
     {{0}},
     "Limits turn what would exhaust the machine (a huge image, a tensor of 40 GB, brackets "
     "nested a million deep, a million steps) into an error that names the limit. `limits` "
     "lists them with their values and defaults; `limits NAME` shows one; `limits NAME VALUE` "
     "changes it for this session (the kernel keeps it until it restarts). Byte limits take "
     "K, M, G (powers of 1024), other limits k, M, G (powers of 1000); write a unit in quotes: "
     "limits tensor_bytes \"4G\". `limits NAME default` restores the default. Each limit can "
     "also be set before the kernel starts with the environment variable CNNLENS_MAX_<NAME>, "
     "e.g. CNNLENS_MAX_IMAGE_PIXELS=100M.",
     "limits\nlimits image_pixels \"100M\"\nlimits steps 500000\nlimits depth default",
     do_limits},
};

const int lc_limits_count = sizeof lc_limits_verbs / sizeof *lc_limits_verbs;
