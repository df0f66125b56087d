/* execute_request: the cell's life on IOPub and the output callbacks. */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "engine/limits.h"
#include "kernel/server/sv_internal.h"

typedef struct exec_ctx {
    sv_server *s;
    const kp_msg *req;
    int allow_stdin;
} exec_ctx;

/* A new reference to v, or to a new empty object/array when v is NULL. */
static json_t *ref_or_object(json_t *v)
{
    return v ? json_incref(v) : json_object();
}

static json_t *ref_or_array(json_t *v)
{
    return v ? json_incref(v) : json_array();
}

static void out_stream(void *ctx, const char *name, const char *text)
{
    exec_ctx *c = ctx;
    sv_stream_write(c->s, name, text);
}

static void out_display(void *ctx, json_t *data, json_t *metadata, const char *display_id,
                        int update)
{
    exec_ctx *c = ctx;
    sv_stream_flush(c->s);
    json_t *content = json_pack("{s:o,s:o,s:{}}", "data", ref_or_object(data), "metadata",
                                ref_or_object(metadata), "transient");
    if (!content) return;
    if (display_id)
        json_object_set_new(json_object_get(content, "transient"), "display_id",
                            json_string(display_id));
    /* An update names the display it replaces; without an id it can only be new. */
    sv_publish(c->s, c->req, update && display_id ? "update_display_data" : "display_data",
               content);
}

static void out_clear(void *ctx, int wait)
{
    exec_ctx *c = ctx;
    sv_stream_flush(c->s);
    sv_publish(c->s, c->req, "clear_output", json_pack("{s:b}", "wait", wait));
}

/* Waits for the input_reply, giving up on interrupt or shutdown. */
static char *await_input(sv_server *s)
{
    zmq_pollitem_t item = {s->stdin_sock, 0, ZMQ_POLLIN, 0};
    while (!atomic_load(&s->interrupted) && !atomic_load(&s->quit)) {
        int rc = zmq_poll(&item, 1, 20);
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) return NULL;
        if (rc == 0) continue;
        kp_msg rep;
        rc = sv_recv(s, s->stdin_sock, "stdin", &rep);
        if (rc < 0) return NULL;
        if (rc == 0) continue;
        const char *value = json_string_value(json_object_get(rep.content, "value"));
        char *line = NULL;
        if (!strcmp(kp_msg_type(&rep), "input_reply") && value) line = strdup(value);
        kp_msg_clear(&rep);
        if (line) return line;
    }
    return NULL;
}

static char *out_input(void *ctx, const char *prompt, int password)
{
    exec_ctx *c = ctx;
    if (!c->allow_stdin) return NULL;
    sv_stream_flush(c->s);
    /* Drop replies to earlier, abandoned prompts. */
    kp_msg stale;
    zmq_pollitem_t item = {c->s->stdin_sock, 0, ZMQ_POLLIN, 0};
    while (zmq_poll(&item, 1, 0) > 0 && sv_recv(c->s, c->s->stdin_sock, "stdin", &stale) >= 0)
        kp_msg_clear(&stale);
    if (sv_send_reply(c->s, c->s->stdin_sock, c->req, "input_request",
                      json_pack("{s:s,s:b}", "prompt", prompt ? prompt : "", "password", password)))
        return NULL;
    return await_input(c->s);
}

static json_t *user_expressions(sv_server *s, const json_t *exprs)
{
    json_t *out = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)exprs, key, v)
    {
        json_t *r = NULL;
        if (json_is_string(v) && s->interp->vt->user_expression)
            r = s->interp->vt->user_expression(s->interp, json_string_value(v));
        if (!r)
            r = json_pack("{s:s,s:s,s:s,s:[]}", "status", "error", "ename", "TypeError", "evalue",
                          "a user expression must be a string", "traceback");
        json_object_set_new(out, key, r);
    }
    return out;
}

static int flag(const kp_msg *req, const char *key, int dflt, int *bad)
{
    json_t *v = json_object_get(req->content, key);
    if (!v) return dflt;
    if (!json_is_boolean(v)) *bad = 1;
    return json_is_true(v);
}

static void finish_ok(sv_server *s, void *sock, const kp_msg *req, kn_exec_result *res, int silent)
{
    if (res->result && !silent)
        sv_publish(s, req, "execute_result",
                   json_pack("{s:i,s:O,s:o}", "execution_count", s->execution_count, "data",
                             res->result, "metadata", ref_or_object(res->result_meta)));
    json_t *exprs = json_object_get(req->content, "user_expressions");
    sv_send_reply(s, sock, req, "execute_reply",
                  json_pack("{s:s,s:i,s:o,s:o}", "status", "ok", "execution_count",
                            s->execution_count, "payload", ref_or_array(res->payload),
                            "user_expressions",
                            json_is_object(exprs) ? user_expressions(s, exprs) : json_object()));
}

/* With stop_on_error, requests queued behind a failed cell are answered
 * "aborted" before the cell's own reply goes out: only what was sent before
 * the client could see the error is aborted, never a request made in answer
 * to it. */
static void finish_error(sv_server *s, void *sock, const kp_msg *req, kn_exec_result *res,
                         int stop_on_error)
{
    const char *ename = res->ename ? res->ename : "Error";
    const char *evalue = res->evalue ? res->evalue : "";
    json_t *tb = ref_or_array(json_is_array(res->traceback) ? res->traceback : NULL);
    sv_publish(s, req, "error",
               json_pack("{s:s,s:s,s:O}", "ename", ename, "evalue", evalue, "traceback", tb));
    if (stop_on_error) sv_abort_queued(s);
    sv_send_reply(s, sock, req, "execute_reply",
                  json_pack("{s:s,s:i,s:s,s:s,s:o,s:{}}", "status", "error", "execution_count",
                            s->execution_count, "ename", ename, "evalue", evalue, "traceback", tb,
                            "user_expressions"));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A cell that worked on many small buffers leaves their freed memory in
 * malloc's heaps (big blocks are mmapped: cmd_kernel.c pins the threshold),
 * so a kernel left running for a course would keep the high-water mark of
 * every cell.  Handing free pages back after any cell that ran a while costs
 * a fraction of that cell; quick cells (a millisecond) skip it. */
static void release_free_memory(double cell_seconds)
{
    if (cell_seconds >= 0.01) malloc_trim(0);
}

static char *result_text(const kn_exec_result *res)
{
    const char *t = json_string_value(json_object_get(res->result, "text/plain"));
    return t ? strdup(t) : NULL;
}

/* The sockets' frame cap was fixed when they were bound (server.c): a cell
 * that raises message_bytes past it is told that bigger cells still cannot
 * arrive, and how to get them. */
static void warn_frame_cap(sv_server *s, int64_t before)
{
    int64_t now = lim_get(LIM_MESSAGE_BYTES);
    if (now == before || now <= s->frame_cap) return;
    char cap[32], want[32], text[512];
    lim_format(LIM_MESSAGE_BYTES, (double)s->frame_cap, cap, sizeof cap);
    lim_format(LIM_MESSAGE_BYTES, (double)now, want, sizeof want);
    snprintf(text, sizeof text,
             "note: message_bytes is %s now, but this kernel's sockets close the connection "
             "of a client that sends a frame over %s (twice message_bytes when the kernel "
             "started); to receive bigger messages, start the kernel with "
             "CNNLENS_MAX_MESSAGE_BYTES=%lld\n",
             want, cap, (long long)now);
    sv_stream_write(s, "stderr", text);
    sv_log("%s", text);
}

void sv_execute(sv_server *s, void *sock, kp_msg *req)
{
    int bad = 0;
    json_t *code_v = json_object_get(req->content, "code");
    int silent = flag(req, "silent", 0, &bad);
    int store = flag(req, "store_history", !silent, &bad) && !silent;
    int allow_stdin = flag(req, "allow_stdin", 1, &bad);
    int stop_on_error = flag(req, "stop_on_error", 1, &bad);
    json_t *exprs = json_object_get(req->content, "user_expressions");
    if (!json_is_string(code_v) || bad || (exprs && !json_is_object(exprs))) {
        sv_log("bad execute_request: code must be a string and the flags booleans");
        sv_send_reply(s, sock, req, "execute_reply",
                      json_pack("{s:s,s:i,s:s,s:s,s:[]}", "status", "error", "execution_count",
                                s->execution_count, "ename", "BadRequest", "evalue",
                                "execute_request content has wrongly typed fields", "traceback"));
        return;
    }
    const char *code = json_string_value(code_v);
    if (store) s->execution_count++;
    sv_cell_begin(s); /* before execute_input: from then on a front end may interrupt */
    if (!silent)
        sv_publish(s, req, "execute_input",
                   json_pack("{s:s,s:i}", "code", code, "execution_count", s->execution_count));

    exec_ctx c = {.s = s, .req = req, .allow_stdin = allow_stdin};
    kn_output out = {&c, out_stream, out_display, out_clear, out_input};
    kn_exec_request ereq = {code, silent, store, allow_stdin, s->execution_count};
    kn_exec_result res = {0};
    sv_stream_begin(s, req);
    int64_t message_bytes = lim_get(LIM_MESSAGE_BYTES);
    double t0 = now_s();
    s->interp->vt->execute(s->interp, &ereq, &out, &res);
    double cell_seconds = now_s() - t0;
    sv_cell_end(s);
    warn_frame_cap(s, message_bytes);
    sv_stream_end(s);

    if (res.ok)
        finish_ok(s, sock, req, &res, silent);
    else
        finish_error(s, sock, req, &res, stop_on_error);
    if (store) {
        char *text = res.ok ? result_text(&res) : NULL;
        if (sv_hist_add(&s->hist, s->execution_count, code, text))
            sv_log("out of memory: the history misses cell %d", s->execution_count);
        free(text);
    }
    kn_exec_result_free(&res);
    release_free_memory(cell_seconds);
}

void kn_exec_result_free(kn_exec_result *r)
{
    if (!r) return;
    json_decref(r->result);
    json_decref(r->result_meta);
    free(r->ename);
    free(r->evalue);
    json_decref(r->traceback);
    json_decref(r->payload);
    memset(r, 0, sizeof *r);
}
