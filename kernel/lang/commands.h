/* commands — the command table: the one place where each verb's arguments,
 * options, types, defaults and help text are written.  The evaluator binds
 * arguments from it; `help`, inspect (Shift-Tab), completion and the "did you
 * mean" suggestions all read it.
 *
 * The table is split by topic (commands_core.c: the language itself and
 * matrices; further files for engine-backed verbs), each file exporting an
 * array that commands.c lists.  Adding a verb means adding one entry.
 *
 * Ownership: lc_find returns a pointer into static storage.  lc_help returns a
 * malloc'd string.  Values in an lc_call are borrowed from the call.
 */
#ifndef CNNLENS_LANG_COMMANDS_H
#define CNNLENS_LANG_COMMANDS_H

#include <stddef.h>

#include "engine/err.h"
#include "engine/limits.h"
#include "kernel/lang/session.h"
#include "kernel/lang/value.h"

/* Accepted kinds of an argument: a bit per lv_kind ... */
#define LA_NUM     (1u << LV_NUM)
#define LA_STR     (1u << LV_STR)
#define LA_RANGE   (1u << LV_RANGE)
#define LA_TENSOR  (1u << LV_TENSOR)
#define LA_IMAGE   (1u << LV_IMAGE)
#define LA_HEATMAP (1u << LV_HEATMAP)
#define LA_MODEL   (1u << LV_MODEL)
#define LA_TABLE   (1u << LV_TABLE)
#define LA_PICTURE (1u << LV_PICTURE)
#define LA_ARRAY   (LA_TENSOR | LA_IMAGE | LA_HEATMAP)
#define LA_ANY     (LA_NUM | LA_STR | LA_RANGE | LA_ARRAY | LA_MODEL | LA_TABLE | LA_PICTURE)
/* ... and how it is written or used: */
#define LA_WORD     (1u << 16) /* a bare name is taken as text (layer, dataset, topic) */
#define LA_INT      (1u << 17) /* a number must be a whole number */
#define LA_FLAG     (1u << 18) /* an option without a value (e.g. `step`) */
#define LA_NESTED   (1u << 19) /* a verb here starts a nested command: show gradcam x */
#define LA_EXPR     (1u << 20) /* parsed as a whole expression, operators included */
#define LA_PATH     (1u << 21) /* a file path (completion offers files) */
#define LA_LAYER    (1u << 22) /* a layer of the current model (completion) */
#define LA_CLASS    (1u << 23) /* a class index or label name (completion, lookup) */
#define LA_OPTIONAL (1u << 24) /* a positional argument that may be left out */
#define LA_VERB     (1u << 25) /* a verb name (completion after `help`) */
#define LA_CMP      (1u << 26) /* the kind bit for a comparison node (expect) */
#define LA_REST     (1u << 27) /* the last positional also takes any further ones (print) */
#define LA_LAZY     (1u << 28) /* not evaluated before the call: the handler does it (expect) */

#define LC_MAXREST 16

#define LC_MAXPOS 4
#define LC_MAXOPT 16
#define LC_MAXARG (LC_MAXPOS + LC_MAXOPT)

typedef struct lc_arg {
    const char *name;
    unsigned types;
    const char *def; /* default, as lens text ("1", "0.3", "imagenet"); NULL: none */
    const char *help;
} lc_arg;

typedef struct lc_call lc_call;
typedef int (*lc_fn)(lc_call *c, lv_value **out, cl_err *err);

typedef struct lc_verb {
    const char *name;
    const char *topic;   /* "language", "matrices", "models", ... (groups `help`) */
    const char *summary; /* one line */
    int npos, nopt;
    lc_arg pos[LC_MAXPOS];
    lc_arg opt[LC_MAXOPT];
    const char *details; /* a paragraph or two, or NULL */
    const char *example; /* lens lines, or NULL */
    lc_fn fn;
} lc_verb;

/* A bound call: values in table order (positionals, then options); NULL for
 * an absent argument without default. */
struct lc_call {
    const lc_verb *verb;
    lv_value *v[LC_MAXARG];
    int line[LC_MAXARG], col[LC_MAXARG]; /* where each argument was written (0: default) */
    int vline, vcol;                     /* where the verb was written */
    lv_value *rest[LC_MAXREST];          /* further positionals of an LA_REST verb */
    int nrest;
    ss_session *s;
    struct ps_node *node; /* the command's syntax (expect quotes its operands) */
    void *ev;             /* the evaluator (expect evaluates its operands) */
};

/* The verb named `name`, or NULL. */
const lc_verb *lc_find(const char *name);
int lc_count(void);
const lc_verb *lc_at(int i);
/* Index of option / positional `name` in c->v, or -1. */
int lc_arg_index(const lc_verb *v, const char *name);
const lc_arg *lc_arg_at(const lc_verb *v, int idx);

/* Typed access to a bound argument by name (defaults already applied). */
lv_value *lc_get(const lc_call *c, const char *name);
double lc_num(const lc_call *c, const char *name, double fallback);
int lc_flag(const lc_call *c, const char *name);
const char *lc_text(const lc_call *c, const char *name); /* string or word, or NULL */
/* Sets err with the position of argument `name` (for handlers' messages). */
int lc_arg_error(lc_call *c, const char *name, cl_err *err, cl_code code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* "an image or tensor", "a number", ... for type messages. */
void lc_types_text(unsigned types, char *buf, size_t n);
/* The usage line: "conv IMAGE FILTER [stride N] [pad N] [step] [delay SECONDS]". */
void lc_usage(const lc_verb *v, char *buf, size_t n);
/* Full help text of a verb (what `help VERB` pages and inspect shows). */
char *lc_help(const lc_verb *v);
/* The overview: every verb with its summary, grouped by topic. */
char *lc_help_all(void);

/* The candidate nearest to `word` (edit distance), or NULL when none is
 * close enough to be a likely misspelling. */
const char *lc_nearest(const char *word, const char *const *cands, int n);
/* Nearest verb name. */
const char *lc_nearest_verb(const char *word);

/* Topic tables (one per commands_*.c file). */
extern const lc_verb lc_core_verbs[];
extern const int lc_core_count;
/* `limits` (commands_limits.c). */
extern const lc_verb lc_limits_verbs[];
extern const int lc_limits_count;
/* 0 when amount is within limit id (engine/limits.h); otherwise -1 with a
 * LimitError about `what`, pointing at argument `name`. */
int lc_check_limit(lc_call *c, const char *name, lim_id id, double amount, const char *what,
                   cl_err *err);

#endif
