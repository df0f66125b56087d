/* What the kernel does with a message's JSON, without sockets: the checks of
 * kernel/protocol (header, parent_header, metadata, content), then what the
 * server's handlers read from a parsed request: complete/inspect/is_complete
 * with the content's code and cursor_pos (kernel/lang/lens_interp.c),
 * history_request against a small history (kernel/server/history.c), the
 * reply built from the request as parent (kp_msg_init, kp_msg_serialize), and
 * the connection-file parser on the same text.
 *
 * Input: the header frame, a 0x1e byte, the content frame (JSON texts); with
 * no 0x1e the whole input is the content of a complete_request.  Cells are
 * never executed here (fuzz_lens does that). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/lang/lens_interp.h"
#include "kernel/protocol/protocol.h"
#include "kernel/server/sv_internal.h"

static kp_signer *signer;
static kn_interp *interp;
static sv_history hist;

static void setup(void)
{
    if (signer) return;
    signer = kp_signer_new("hmac-sha256", "k", 1, NULL);
    interp = lens_interp_new();
    if (!signer || !interp) abort(); /* the harness cannot run */
    sv_hist_init(&hist);
    sv_hist_add(&hist, 1, "x = [1 2; 3 4]", NULL);
    sv_hist_add(&hist, 2, "x", "[1 2; 3 4]");
    sv_hist_add(&hist, 3, "print x", NULL);
}

/* The string/int typing of dispatch.c's content_str and content_int. */
static const char *code_of(const kp_msg *m, int *bad)
{
    json_t *v = json_object_get(m->content, "code");
    if (!json_is_string(v)) *bad = 1;
    return json_is_string(v) ? json_string_value(v) : "";
}

static int int_of(const kp_msg *m, const char *key, int dflt, int *bad)
{
    json_t *v = json_object_get(m->content, key);
    if (!v || json_is_null(v)) return dflt;
    if (!json_is_integer(v)) *bad = 1;
    return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

static void handle(const kp_msg *m)
{
    const char *type = kp_msg_type(m);
    int bad = 0;
    const char *code = code_of(m, &bad);
    int pos = int_of(m, "cursor_pos", -1, &bad);
    int detail = int_of(m, "detail_level", 0, &bad);
    json_t *r = NULL;
    if (!strcmp(type, "history_request")) {
        r = sv_hist_query(&hist, m->content);
    } else if (bad) {
        return;
    } else if (!strcmp(type, "inspect_request")) {
        r = interp->vt->inspect(interp, code, pos, detail);
    } else if (!strcmp(type, "is_complete_request")) {
        r = interp->vt->is_complete(interp, code);
    } else {
        r = interp->vt->complete(interp, code, pos);
    }
    json_decref(r);
}

static void reply(const kp_msg *req)
{
    kp_msg m;
    if (kp_msg_init(&m, "complete_reply", req, json_deep_copy(req->content), "fuzz-session"))
        return;
    kp_buf *f = NULL;
    size_t n = 0;
    if (kp_msg_serialize(&m, signer, &f, &n, NULL) == 0) kp_frames_free(f, n);
    kp_msg_clear(&m);
}

static void connection_file(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return;
    memcpy(text, data, size);
    text[size] = '\0';
    kp_conn c;
    if (kp_conn_parse(text, &c, NULL) == 0) {
        char ep[600];
        (void)kp_conn_endpoint(&c, c.shell_port, ep, sizeof ep);
        kp_conn_clear(&c);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    static const char dflt_header[] = "{\"msg_id\":\"1\",\"msg_type\":\"complete_request\"}";
    const uint8_t *sep = memchr(data, 0x1e, size);
    kp_frame header = {dflt_header, strlen(dflt_header)}, content = {data, size};
    if (sep) {
        header = (kp_frame){data, (size_t)(sep - data)};
        content = (kp_frame){sep + 1, size - (size_t)(sep - data) - 1};
    }
    kp_frame f[] = {{"id", 2}, {KP_DELIM, strlen(KP_DELIM)}, {"", 0}, header, {"{}", 2}, {"{}", 2},
                    content};
    kp_msg m;
    cl_err err = {0};
    if (kp_msg_parse(f, sizeof f / sizeof *f, NULL, NULL, &m, &err) == 0) {
        handle(&m);
        reply(&m);
        kp_msg_clear(&m);
    }
    connection_file(content.data, content.len);
    return 0;
}
