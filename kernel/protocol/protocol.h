/* protocol — the Jupyter messaging protocol (version 5.3) without sockets.
 *
 * Wire frames <-> messages, HMAC-SHA256 signatures (OpenSSL), message JSON
 * (Jansson), the connection file, base64, UUIDs and ISO-8601 dates.  The
 * server (kernel/server) moves the frames; this module only turns bytes into
 * checked messages and back, so every rule about what a valid message is lives
 * here and is unit-tested without ZeroMQ.
 *
 * Ownership:
 * - kp_frame is a borrowed view of bytes; kp_buf owns its bytes (free()).
 * - A kp_msg owns its identities, buffers and JSON references; kp_msg_clear()
 *   releases them.  Functions taking `json_t *content` steal that reference.
 * - Returned char * are malloc'd and freed by the caller, unless said otherwise.
 * - kp_signer and kp_sigset are opaque and freed with their _free functions;
 *   both are safe to share between threads.
 */
#ifndef CNNLENS_PROTOCOL_H
#define CNNLENS_PROTOCOL_H

#include <jansson.h>
#include <stddef.h>

#include "engine/err.h"

#define KP_PROTOCOL_VERSION "5.3"
#define KP_DELIM            "<IDS|MSG>"
/* A message larger than the message_bytes limit (engine/limits.h, default
 * 16 MiB, all frames) is dropped: nothing a notebook front end sends comes
 * close, and it bounds what a hostile peer makes us keep. */
#define KP_DIGEST_HEX    64

typedef struct kp_frame {
    const void *data;
    size_t len;
} kp_frame;

typedef struct kp_buf {
    unsigned char *data;
    size_t len;
} kp_buf;

/* ---- signing ----------------------------------------------------------- */

typedef struct kp_signer kp_signer;

/* scheme must be "hmac-sha256" (or empty, meaning the same); an empty key
 * means messages are neither signed nor checked. */
kp_signer *kp_signer_new(const char *scheme, const void *key, size_t key_len, cl_err *err);
void kp_signer_free(kp_signer *s);
int kp_signer_enabled(const kp_signer *s);
/* Lower-case hex HMAC of the parts, in order, into hex[65] (NUL-terminated). */
int kp_sign(const kp_signer *s, const kp_frame *parts, size_t n, char hex[KP_DIGEST_HEX + 1],
            cl_err *err);
/* Compares n bytes in time independent of where they differ: 1 if equal. */
int kp_ct_equal(const void *a, const void *b, size_t n);

/* Remembers recently seen signatures to refuse replayed messages.  Keeps at
 * least the last `remember` ones (memory: about 140 bytes per remembered one). */
typedef struct kp_sigset kp_sigset;
kp_sigset *kp_sigset_new(size_t remember);
void kp_sigset_free(kp_sigset *set);
/* Returns 1 if `sig` was seen before, else records it and returns 0. */
int kp_sigset_seen(kp_sigset *set, const char *sig, size_t len);

/* ---- messages ---------------------------------------------------------- */

typedef struct kp_msg {
    kp_buf *ids; /* routing identities (or the IOPub topic) */
    size_t n_ids;
    json_t *header, *parent_header, *metadata, *content;
    kp_buf *buffers;
    size_t n_buffers;
} kp_msg;

/* Checks and decodes the frames of one message: identities, <IDS|MSG>,
 * signature, header, parent_header, metadata, content, buffers.  The signature
 * is verified (length, then constant time) when the signer has a key, and a
 * signature already in `seen` (may be NULL) is refused.  Header, parent
 * header, metadata and content must be JSON objects, the header with string
 * msg_id and msg_type.  On failure `out` is left empty and err says why. */
int kp_msg_parse(const kp_frame *frames, size_t n, const kp_signer *s, kp_sigset *seen, kp_msg *out,
                 cl_err *err);

/* The frames of `m`, signed: identities, delimiter, signature, the four JSON
 * dicts (compact), buffers.  *frames is malloc'd; free with kp_frames_free. */
int kp_msg_serialize(const kp_msg *m, const kp_signer *s, kp_buf **frames, size_t *n, cl_err *err);
void kp_frames_free(kp_buf *frames, size_t n);

/* A new message of `msg_type` answering `parent` (may be NULL): the header
 * gets a fresh UUID, the date and the version, the parent's header becomes
 * the parent_header, and the parent's identities are copied (a reply goes
 * back to who asked).  `content` is stolen (NULL means {}).  `session` is the
 * kernel's session id.  Returns 0, or -1 when out of memory. */
int kp_msg_init(kp_msg *m, const char *msg_type, const kp_msg *parent, json_t *content,
                const char *session);
/* Replaces the identities with one topic frame (for IOPub). */
int kp_msg_set_topic(kp_msg *m, const char *topic);
void kp_msg_clear(kp_msg *m);
/* Borrowed strings from the header ("" when absent). */
const char *kp_msg_type(const kp_msg *m);
const char *kp_msg_id(const kp_msg *m);

/* ---- connection file --------------------------------------------------- */

typedef struct kp_conn {
    char transport[8]; /* "tcp" or "ipc" */
    char ip[512];
    int shell_port, iopub_port, stdin_port, control_port, hb_port;
    char scheme[32];
    char *key; /* malloc'd, NUL-terminated */
    size_t key_len;
} kp_conn;

int kp_conn_load(const char *path, kp_conn *c, cl_err *err);
int kp_conn_parse(const char *text, kp_conn *c, cl_err *err);
void kp_conn_clear(kp_conn *c);
/* "tcp://IP:PORT" or "ipc://IP-PORT" (as jupyter_client names ipc files). */
int kp_conn_endpoint(const kp_conn *c, int port, char *buf, size_t n);

/* ---- small codecs ------------------------------------------------------ */

/* A random (version 4) UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx". */
void kp_uuid4(char out[37]);
/* The current UTC time, "2026-11-27T21:05:00.123456Z". */
void kp_now_iso8601(char out[32]);

#endif
