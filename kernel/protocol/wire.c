#include <stdlib.h>
#include <string.h>

#include "engine/limits.h"
#include "kernel/protocol/protocol.h"

static int buf_copy(kp_buf *dst, const void *data, size_t len)
{
    dst->data = malloc(len ? len : 1);
    if (!dst->data) return -1;
    if (len) memcpy(dst->data, data, len);
    dst->len = len;
    return 0;
}

static void bufs_free(kp_buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++) free(b[i].data);
    free(b);
}

void kp_frames_free(kp_buf *frames, size_t n)
{
    bufs_free(frames, n);
}

void kp_msg_clear(kp_msg *m)
{
    if (!m) return;
    bufs_free(m->ids, m->n_ids);
    bufs_free(m->buffers, m->n_buffers);
    json_decref(m->header);
    json_decref(m->parent_header);
    json_decref(m->metadata);
    json_decref(m->content);
    memset(m, 0, sizeof *m);
}

static int copy_frames(const kp_frame *src, size_t n, kp_buf **out)
{
    *out = NULL;
    if (!n) return 0;
    kp_buf *b = calloc(n, sizeof *b);
    if (!b) return -1;
    for (size_t i = 0; i < n; i++) {
        if (buf_copy(&b[i], src[i].data, src[i].len)) {
            bufs_free(b, i);
            return -1;
        }
    }
    *out = b;
    return 0;
}

static json_t *load_dict(const kp_frame *f, const char *what, cl_err *err)
{
    json_error_t jerr;
    /* Jansson refuses invalid UTF-8 and NUL bytes inside strings here. */
    json_t *v = json_loadb(f->data, f->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        cl_err_set(err, CL_EFORMAT, "%s is not valid JSON: %s", what, jerr.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        cl_err_set(err, CL_EFORMAT, "%s is not a JSON object", what);
        return NULL;
    }
    return v;
}

static int check_header(const json_t *h, cl_err *err)
{
    const json_t *id = json_object_get(h, "msg_id"), *type = json_object_get(h, "msg_type");
    if (!json_is_string(id) || !json_is_string(type) || !json_string_length(type))
        return cl_err_set(err, CL_EFORMAT, "header lacks a string msg_id and msg_type");
    const json_t *session = json_object_get(h, "session");
    if (session && !json_is_string(session))
        return cl_err_set(err, CL_EFORMAT, "header session is not a string");
    return 0;
}

static size_t find_delim(const kp_frame *frames, size_t n)
{
    size_t dl = strlen(KP_DELIM);
    for (size_t i = 0; i < n; i++)
        if (frames[i].len == dl && !memcmp(frames[i].data, KP_DELIM, dl)) return i;
    return n;
}

static int verify(const kp_frame *f, const kp_signer *s, kp_sigset *seen, cl_err *err)
{
    const kp_frame *sig = &f[0];
    if (!kp_signer_enabled(s)) return 0;
    if (sig->len != KP_DIGEST_HEX)
        return cl_err_set(err, CL_EFORMAT, "signature has %zu bytes, expected %d", sig->len,
                          KP_DIGEST_HEX);
    char want[KP_DIGEST_HEX + 1];
    if (kp_sign(s, f + 1, 4, want, err)) return -1;
    if (!kp_ct_equal(want, sig->data, KP_DIGEST_HEX))
        return cl_err_set(err, CL_EFORMAT, "invalid signature");
    if (seen && kp_sigset_seen(seen, sig->data, sig->len))
        return cl_err_set(err, CL_EFORMAT, "duplicate signature (replayed message)");
    return 0;
}

int kp_msg_parse(const kp_frame *frames, size_t n, const kp_signer *s, kp_sigset *seen, kp_msg *out,
                 cl_err *err)
{
    memset(out, 0, sizeof *out);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += frames[i].len;
    if (lim_check(LIM_MESSAGE_BYTES, (double)total, "its size", err))
        return cl_err_prefix(err, "the message of %zu bytes exceeds the size limit", total);
    size_t d = find_delim(frames, n);
    if (d == n) return cl_err_set(err, CL_EFORMAT, "no <IDS|MSG> delimiter frame");
    if (n - d - 1 < 5)
        return cl_err_set(err, CL_EFORMAT, "only %zu frames after the delimiter, need 5",
                          n - d - 1);
    const kp_frame *f = frames + d + 1;
    if (verify(f, s, seen, err)) return -1;
    static const char *what[] = {"header", "parent_header", "metadata", "content"};
    json_t **dst[] = {&out->header, &out->parent_header, &out->metadata, &out->content};
    for (int i = 0; i < 4; i++) {
        if (!(*dst[i] = load_dict(&f[1 + i], what[i], err))) goto fail;
    }
    if (check_header(out->header, err)) goto fail;
    if (copy_frames(frames, d, &out->ids)) goto oom;
    out->n_ids = d;
    if (copy_frames(f + 5, n - d - 6, &out->buffers)) goto oom;
    out->n_buffers = n - d - 6;
    return 0;
oom:
    cl_err_set(err, CL_ENOMEM, "out of memory reading a message");
fail:
    kp_msg_clear(out);
    return -1;
}

static int dump_dict(const json_t *v, kp_buf *dst)
{
    char *text = json_dumps(v ? v : json_object(), JSON_COMPACT);
    if (!text) return -1;
    dst->data = (unsigned char *)text;
    dst->len = strlen(text);
    return 0;
}

int kp_msg_serialize(const kp_msg *m, const kp_signer *s, kp_buf **frames, size_t *n, cl_err *err)
{
    size_t count = m->n_ids + 6 + m->n_buffers, k = 0;
    kp_buf *f = calloc(count, sizeof *f);
    if (!f) goto oom;
    for (; k < m->n_ids; k++)
        if (buf_copy(&f[k], m->ids[k].data, m->ids[k].len)) goto oom;
    if (buf_copy(&f[k++], KP_DELIM, strlen(KP_DELIM))) goto oom;
    size_t sig = k++;
    const json_t *dicts[] = {m->header, m->parent_header, m->metadata, m->content};
    for (int i = 0; i < 4; i++, k++)
        if (dump_dict(dicts[i], &f[k])) goto oom;
    for (size_t i = 0; i < m->n_buffers; i++, k++)
        if (buf_copy(&f[k], m->buffers[i].data, m->buffers[i].len)) goto oom;
    kp_frame parts[4];
    for (int i = 0; i < 4; i++) parts[i] = (kp_frame){f[sig + 1 + i].data, f[sig + 1 + i].len};
    char hex[KP_DIGEST_HEX + 1];
    if (kp_sign(s, parts, 4, hex, err)) {
        bufs_free(f, k);
        return -1;
    }
    if (buf_copy(&f[sig], hex, strlen(hex))) goto oom;
    *frames = f;
    *n = count;
    return 0;
oom:
    bufs_free(f, f ? count : 0);
    return cl_err_set(err, CL_ENOMEM, "out of memory writing a message");
}

static json_t *header_new(const char *msg_type, const char *session, const char *username)
{
    char id[37], date[32];
    kp_uuid4(id);
    kp_now_iso8601(date);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "msg_id", id, "session", session, "username",
                     username, "date", date, "msg_type", msg_type, "version", KP_PROTOCOL_VERSION);
}

int kp_msg_init(kp_msg *m, const char *msg_type, const kp_msg *parent, json_t *content,
                const char *session)
{
    memset(m, 0, sizeof *m);
    const char *user = "cnnlens";
    const json_t *pu = parent ? json_object_get(parent->header, "username") : NULL;
    if (json_is_string(pu)) user = json_string_value(pu);
    m->header = header_new(msg_type, session, user);
    m->parent_header = parent && parent->header ? json_deep_copy(parent->header) : json_object();
    m->metadata = json_object();
    m->content = content ? content : json_object();
    if (!m->header || !m->parent_header || !m->metadata || !m->content) goto oom;
    if (parent && parent->n_ids) {
        kp_frame *ids = calloc(parent->n_ids, sizeof *ids);
        if (!ids) goto oom;
        for (size_t i = 0; i < parent->n_ids; i++)
            ids[i] = (kp_frame){parent->ids[i].data, parent->ids[i].len};
        int rc = copy_frames(ids, parent->n_ids, &m->ids);
        free(ids);
        if (rc) goto oom;
        m->n_ids = parent->n_ids;
    }
    return 0;
oom:
    kp_msg_clear(m);
    return -1;
}

int kp_msg_set_topic(kp_msg *m, const char *topic)
{
    kp_buf b;
    if (buf_copy(&b, topic, strlen(topic))) return -1;
    bufs_free(m->ids, m->n_ids);
    m->ids = malloc(sizeof *m->ids);
    if (!m->ids) {
        free(b.data);
        m->n_ids = 0;
        return -1;
    }
    m->ids[0] = b;
    m->n_ids = 1;
    return 0;
}

static const char *header_str(const kp_msg *m, const char *key)
{
    const char *s = json_string_value(json_object_get(m->header, key));
    return s ? s : "";
}

const char *kp_msg_type(const kp_msg *m)
{
    return header_str(m, "msg_type");
}

const char *kp_msg_id(const kp_msg *m)
{
    return header_str(m, "msg_id");
}
