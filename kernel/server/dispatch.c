/* The one table of message handlers (as xeus has), shared by shell and control. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "cnnlens_version.h"
#include "kernel/server/sv_internal.h"

/* A handler answers one request; it returns 1 when the kernel must stop
 * after the request's `idle` has gone out. */
typedef int (*sv_handler)(sv_server *s, void *sock, kp_msg *req);

static const char *content_str(const kp_msg *req, const char *key, int *bad)
{
    json_t *v = json_object_get(req->content, key);
    if (!json_is_string(v)) {
        *bad = 1;
        return "";
    }
    return json_string_value(v);
}

static int content_int(const kp_msg *req, const char *key, int dflt, int *bad)
{
    json_t *v = json_object_get(req->content, key);
    if (!v || json_is_null(v)) return dflt;
    if (!json_is_integer(v)) {
        *bad = 1;
        return dflt;
    }
    return (int)json_integer_value(v);
}

/* A request whose content has the wrong types gets an error reply, so the
 * front end is not left waiting, and nothing runs. */
static void reply_bad_request(sv_server *s, void *sock, kp_msg *req)
{
    const char *type = kp_msg_type(req);
    char reply_type[128];
    size_t n = strlen(type);
    if (n > 8 && !strcmp(type + n - 8, "_request")) n -= 8;
    snprintf(reply_type, sizeof reply_type, "%.*s_reply", (int)n, type);
    sv_log("bad %s: its content has missing or wrongly typed fields", type);
    sv_send_reply(s, sock, req, reply_type,
                  json_pack("{s:s,s:s,s:s,s:[]}", "status", "error", "ename", "BadRequest",
                            "evalue", "the request's content has missing or wrongly typed fields",
                            "traceback"));
}

static json_t *kernel_info(sv_server *s)
{
    kn_interp *in = s->interp;
    json_t *li = in->vt->language_info ? in->vt->language_info(in) : NULL;
    const char *banner = in->vt->banner ? in->vt->banner(in) : "";
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:b,s:[]}", "status", "ok", "protocol_version",
                     KP_PROTOCOL_VERSION, "implementation", "cnnlens", "implementation_version",
                     CNNLENS_VERSION, "language_info", li ? li : json_object(), "banner",
                     banner ? banner : "", "debugger", 0, "help_links");
}

static int h_kernel_info(sv_server *s, void *sock, kp_msg *req)
{
    sv_send_reply(s, sock, req, "kernel_info_reply", kernel_info(s));
    return 0;
}

static int h_execute(sv_server *s, void *sock, kp_msg *req)
{
    sv_execute(s, sock, req);
    return 0;
}

static json_t *with_ok(json_t *v)
{
    if (!json_is_object(v)) {
        json_decref(v);
        v = json_object();
    }
    json_object_set_new(v, "status", json_string("ok"));
    return v;
}

static int h_complete(sv_server *s, void *sock, kp_msg *req)
{
    int bad = 0;
    const char *code = content_str(req, "code", &bad);
    int pos = content_int(req, "cursor_pos", -1, &bad);
    if (bad) {
        reply_bad_request(s, sock, req);
        return 0;
    }
    json_t *r = s->interp->vt->complete(s->interp, code, pos);
    sv_send_reply(s, sock, req, "complete_reply", with_ok(r));
    return 0;
}

static int h_inspect(sv_server *s, void *sock, kp_msg *req)
{
    int bad = 0;
    const char *code = content_str(req, "code", &bad);
    int pos = content_int(req, "cursor_pos", -1, &bad);
    int detail = content_int(req, "detail_level", 0, &bad);
    if (bad) {
        reply_bad_request(s, sock, req);
        return 0;
    }
    json_t *r = s->interp->vt->inspect(s->interp, code, pos, detail);
    sv_send_reply(s, sock, req, "inspect_reply", with_ok(r));
    return 0;
}

static int h_is_complete(sv_server *s, void *sock, kp_msg *req)
{
    int bad = 0;
    const char *code = content_str(req, "code", &bad);
    if (bad) {
        reply_bad_request(s, sock, req);
        return 0;
    }
    json_t *r = s->interp->vt->is_complete(s->interp, code);
    if (!json_is_object(r)) {
        json_decref(r);
        r = json_pack("{s:s}", "status", "unknown");
    }
    sv_send_reply(s, sock, req, "is_complete_reply", r);
    return 0;
}

static int h_history(sv_server *s, void *sock, kp_msg *req)
{
    json_t *hist = sv_hist_query(&s->hist, req->content);
    if (!hist) {
        reply_bad_request(s, sock, req);
        return 0;
    }
    sv_send_reply(s, sock, req, "history_reply",
                  json_pack("{s:s,s:o}", "status", "ok", "history", hist));
    return 0;
}

static int h_comm_info(sv_server *s, void *sock, kp_msg *req)
{
    sv_send_reply(s, sock, req, "comm_info_reply",
                  json_pack("{s:s,s:{}}", "status", "ok", "comms"));
    return 0;
}

/* No comm targets exist: say so by closing the comm the front end opened. */
static int h_comm_open(sv_server *s, void *sock, kp_msg *req)
{
    (void)sock;
    int bad = 0;
    const char *id = content_str(req, "comm_id", &bad);
    if (!bad) sv_publish(s, req, "comm_close", json_pack("{s:s,s:{}}", "comm_id", id, "data"));
    return 0;
}

static int h_ignore(sv_server *s, void *sock, kp_msg *req)
{
    (void)s, (void)sock, (void)req;
    return 0;
}

static int h_shutdown(sv_server *s, void *sock, kp_msg *req)
{
    json_t *r = json_object_get(req->content, "restart");
    int restart = json_is_true(r);
    json_t *content = json_pack("{s:s,s:b}", "status", "ok", "restart", restart);
    /* Clients that lost the shell reply learn of the shutdown on IOPub (as
     * ipykernel does). */
    sv_publish(s, req, "shutdown_reply", json_deep_copy(content));
    sv_send_reply(s, sock, req, "shutdown_reply", content);
    atomic_store(&s->restart, restart);
    return 1;
}

static int h_interrupt(sv_server *s, void *sock, kp_msg *req)
{
    sv_interrupt(s);
    sv_send_reply(s, sock, req, "interrupt_reply", json_pack("{s:s}", "status", "ok"));
    return 0;
}

static const struct {
    const char *type;
    int channels;
    sv_handler fn;
} handlers[] = {
    {"kernel_info_request", SV_SHELL | SV_CONTROL, h_kernel_info},
    {"execute_request", SV_SHELL, h_execute},
    {"complete_request", SV_SHELL, h_complete},
    {"inspect_request", SV_SHELL, h_inspect},
    {"is_complete_request", SV_SHELL, h_is_complete},
    {"history_request", SV_SHELL, h_history},
    {"comm_info_request", SV_SHELL, h_comm_info},
    {"comm_open", SV_SHELL, h_comm_open},
    {"comm_msg", SV_SHELL, h_ignore},
    {"comm_close", SV_SHELL, h_ignore},
    {"shutdown_request", SV_SHELL | SV_CONTROL, h_shutdown},
    {"interrupt_request", SV_CONTROL, h_interrupt},
};

void sv_dispatch(sv_server *s, void *sock, int channel, kp_msg *req)
{
    const char *type = kp_msg_type(req);
    sv_handler fn = NULL;
    for (size_t i = 0; i < sizeof handlers / sizeof *handlers && !fn; i++)
        if (!strcmp(handlers[i].type, type) && (handlers[i].channels & channel))
            fn = handlers[i].fn;
    if (!fn) {
        sv_log("ignored unknown message type '%s' on %s", type,
               channel == SV_SHELL ? "shell" : "control");
        return;
    }
    sv_publish_status(s, req, "busy");
    int quit = fn(s, sock, req);
    sv_publish_status(s, req, "idle");
    if (quit) sv_request_quit(s, atomic_load(&s->restart));
}

/* Requests already queued when a cell fails were written expecting it to
 * succeed: answer them "aborted" instead of running them (stop_on_error).
 * Only what is queued now counts (as ipykernel's default of no grace period). */
void sv_abort_queued(sv_server *s)
{
    zmq_pollitem_t item = {s->shell, 0, ZMQ_POLLIN, 0};
    for (;;) {
        int rc = zmq_poll(&item, 1, 0);
        if (rc < 0 && errno == EINTR) continue;
        if (rc <= 0) return;
        kp_msg req;
        rc = sv_recv(s, s->shell, "shell", &req);
        if (rc < 0) return;
        if (rc == 0) continue;
        if (!strcmp(kp_msg_type(&req), "execute_request")) {
            sv_publish_status(s, &req, "busy");
            sv_send_reply(s, s->shell, &req, "execute_reply",
                          json_pack("{s:s}", "status", "aborted"));
            sv_publish_status(s, &req, "idle");
        } else {
            sv_dispatch(s, s->shell, SV_SHELL, &req);
        }
        kp_msg_clear(&req);
    }
}
