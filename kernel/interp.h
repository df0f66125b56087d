/* interp — the table of functions through which a language plugs into the
 * kernel server (as xeus's xinterpreter does).
 *
 * The server owns sockets and threads; an interpreter owns the session.  The
 * server calls these hooks on its shell thread, except `interrupt`, which the
 * control thread or a SIGINT handler may call at any time (it must only set a
 * flag).  Output goes back through the kn_output callbacks while `execute`
 * runs, so displays stream to IOPub before the reply.
 *
 * Ownership: JSON values passed *to* callbacks are borrowed (the callee
 * increfs what it keeps).  JSON values *returned* by hooks are new references
 * owned by the caller (the server).
 */
#ifndef CNNLENS_INTERP_H
#define CNNLENS_INTERP_H

#include <jansson.h>

typedef struct kn_output {
    void *ctx;
    /* name is "stdout" or "stderr". */
    void (*stream)(void *ctx, const char *name, const char *text);
    /* A display_data (update == 0) or update_display_data (update == 1);
     * display_id may be NULL for a plain display. data is a MIME bundle. */
    void (*display)(void *ctx, json_t *data, json_t *metadata, const char *display_id, int update);
    void (*clear)(void *ctx, int wait);
    /* Asks the front end for a line of input (stdin channel).  Returns a
     * malloc'd string the caller frees, or NULL if the front end does not allow
     * stdin or the request was interrupted. */
    char *(*input)(void *ctx, const char *prompt, int password);
} kn_output;

typedef struct kn_exec_request {
    const char *code;
    int silent;
    int store_history;
    int allow_stdin;
    int execution_count; /* the count this execute will be reported under */
} kn_exec_request;

typedef struct kn_exec_result {
    int ok;              /* 1: status "ok"; 0: status "error" */
    json_t *result;      /* MIME bundle for execute_result, or NULL */
    json_t *result_meta; /* its metadata, or NULL */
    char *ename;         /* on error (malloc'd) */
    char *evalue;
    json_t *traceback; /* on error: array of strings */
    json_t *payload;   /* array, e.g. a pager payload; may be NULL */
} kn_exec_result;

void kn_exec_result_free(kn_exec_result *r);

typedef struct kn_interp kn_interp;

typedef struct kn_interp_vtbl {
    /* Runs a cell, streaming output through `out`, filling `res`. */
    void (*execute)(kn_interp *self, const kn_exec_request *req, kn_output *out,
                    kn_exec_result *res);
    /* {matches, cursor_start, cursor_end, metadata}; cursor_pos in code points. */
    json_t *(*complete)(kn_interp *self, const char *code, int cursor_pos);
    /* {found, data, metadata}. */
    json_t *(*inspect)(kn_interp *self, const char *code, int cursor_pos, int detail_level);
    /* {status: complete|incomplete|invalid|unknown, indent}. */
    json_t *(*is_complete)(kn_interp *self, const char *code);
    /* Evaluates one user_expression: {status, data, metadata} or an error dict. */
    json_t *(*user_expression)(kn_interp *self, const char *expr);
    /* Async: sets a flag; the running cell stops soon with an interrupt error. */
    void (*interrupt)(kn_interp *self);
    /* Clears the session (restart) or frees everything (restart == 0). */
    void (*shutdown)(kn_interp *self, int restart);
    void (*destroy)(kn_interp *self);
    /* language_info object for kernel_info_reply; banner text. */
    json_t *(*language_info)(kn_interp *self);
    const char *(*banner)(kn_interp *self);
} kn_interp_vtbl;

struct kn_interp {
    const kn_interp_vtbl *vt;
};

#endif
