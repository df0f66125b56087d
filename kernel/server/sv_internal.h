/* sv_internal — what the files of kernel/server share; not for other modules.
 *
 * Threads and ownership: each ZeroMQ socket is used by one thread (shell and
 * stdin: the shell thread; control: the control thread; heartbeat: its own),
 * except IOPub, which any thread may publish on, and read subscriptions from,
 * under iopub_lock.  The history and the execution count belong to the shell
 * thread.
 */
#ifndef CNNLENS_SV_INTERNAL_H
#define CNNLENS_SV_INTERNAL_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/interp.h"
#include "kernel/protocol/protocol.h"

/* ---- history (shell thread) --------------------------------------------- */

typedef struct sv_hist_entry {
    int line;
    char *input;
    char *output; /* text/plain of the execute_result, or NULL */
} sv_hist_entry;

/* The text the history keeps at most: past it the oldest cells are forgotten
 * (a course-long session of pasted 16 MiB cells would otherwise grow without
 * end; a lecture's history is a few hundred kB). */
#define SV_HIST_MAX_BYTES ((size_t)64 << 20)

typedef struct sv_history {
    sv_hist_entry *items;
    size_t n, cap;
    size_t bytes, max_bytes; /* text held; SV_HIST_MAX_BYTES unless a test sets it */
    int session;             /* the number this kernel's session is reported under */
} sv_history;

void sv_hist_init(sv_history *h);
void sv_hist_clear(sv_history *h);
/* Copies input and output (may be NULL), then forgets the oldest cells while
 * the text held passes max_bytes (the newest cell always stays).  Returns 0,
 * or -1 out of memory. */
int sv_hist_add(sv_history *h, int line, const char *input, const char *output);
/* Answers a history_request's content: a new array of [session, line, input]
 * (or [session, line, [input, output]] when "output" is true). */
json_t *sv_hist_query(const sv_history *h, const json_t *request);

/* ---- stream batching -------------------------------------------------------- */

typedef struct sv_stream {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* wakes the flusher when a batch begins */
    pthread_t thread;
    int running, stop;
    char *buf;
    size_t len, cap;
    char name[8];         /* "stdout" or "stderr" */
    struct timespec due;  /* when the batch must go (CLOCK_MONOTONIC) */
    const kp_msg *parent; /* the running execute_request, or NULL */
} sv_stream;

/* ---- the server ----------------------------------------------------------- */

typedef struct sv_server {
    void *zctx;
    void *shell, *control, *stdin_sock, *iopub, *hb;
    kp_conn conn;
    kp_signer *signer;
    kp_sigset *seen;
    char session[37];
    kn_interp *interp;
    int64_t frame_cap; /* ZMQ_MAXMSGSIZE of shell, control and stdin (fixed at bind) */

    pthread_mutex_t iopub_lock;
    sem_t quit_sem;         /* posted with `quit` (a semaphore: signal handlers post it) */
    atomic_int quit;        /* a shutdown was answered: stop serving */
    atomic_int quit_signal; /* ... or SIGTERM/SIGHUP arrived: its number */
    atomic_int restart;     /* ... and it asked for a restart */
    atomic_int interrupted; /* an interrupt arrived since the cell started */
    /* The cell in progress: cell_seq counts cells, in_cell is set while one
     * runs; both change under cell_lock, which the interrupt relay holds while
     * it repeats an interrupt, so a repeat never reaches the next cell. */
    pthread_mutex_t cell_lock;
    atomic_uint cell_seq;
    atomic_int in_cell;
    atomic_uint interrupt_seq; /* the cell an interrupt was meant for */
    sem_t interrupt_sem;       /* wakes the relay (posted from signal handlers too) */
    atomic_long dropped;       /* messages dropped (bad signature, malformed, ...) */
    /* IOPub subscriptions minus unsubscriptions (under iopub_lock), and
     * whether the shell thread already waited in vain for one since the
     * count was last above 0 (sv_await_subscriber). */
    long subscribers;
    int waited_in_vain;
    int iopub_more; /* the last part read from IOPub had more parts after it */

    sv_stream stream;    /* written by the shell thread, flushed by either */
    int execution_count; /* shell thread */
    sv_history hist;     /* shell thread */
} sv_server;

enum { SV_SHELL = 1, SV_CONTROL = 2 };

/* Reads one multipart message from `sock` and checks it; returns 1 with *out
 * filled, 0 when the message was dropped (logged), -1 when the socket is
 * closed (context terminated). */
int sv_recv(sv_server *s, void *sock, const char *channel, kp_msg *out);
/* Sends `msg_type` with `content` (stolen) as an answer to `parent` on
 * `sock` (a ROUTER: the parent's identities route it). */
int sv_send_reply(sv_server *s, void *sock, const kp_msg *parent, const char *msg_type,
                  json_t *content);
/* Publishes on IOPub (any thread). `content` is stolen; parent may be NULL. */
int sv_publish(sv_server *s, const kp_msg *parent, const char *msg_type, json_t *content);
void sv_publish_status(sv_server *s, const kp_msg *parent, const char *state);
/* Waits (at most SV_SUBSCRIBER_WAIT_MS) until some client subscribes to
 * IOPub, unless one is subscribed or the last wait went unanswered (shell
 * thread, before it handles a request). */
void sv_await_subscriber(sv_server *s);

/* Handles one request from `channel` (SV_SHELL or SV_CONTROL): busy, the
 * handler from the dispatch table, idle; after a shutdown_request's idle it
 * calls sv_request_quit. */
void sv_dispatch(sv_server *s, void *sock, int channel, kp_msg *req);
/* After an error with stop_on_error: answers queued execute_requests "aborted". */
void sv_abort_queued(sv_server *s);

/* Stream batching (stream.c).  begin/end bracket an execute_request; write
 * and flush come from the interpreter's output callbacks; a flusher thread
 * sends a batch that has waited long enough. */
int sv_stream_start(sv_server *s);
void sv_stream_stop(sv_server *s);
void sv_stream_begin(sv_server *s, const kp_msg *parent);
void sv_stream_write(sv_server *s, const char *name, const char *text);
void sv_stream_flush(sv_server *s);
void sv_stream_end(sv_server *s);

/* Runs an execute_request (shell thread). */
void sv_execute(sv_server *s, void *sock, kp_msg *req);
/* Brackets a cell (shell thread): from sv_cell_begin on, an interrupt stops it. */
void sv_cell_begin(sv_server *s);
void sv_cell_end(sv_server *s);

/* Asks the running cell to stop (control thread, SIGINT handler): only
 * touches atomics, the interpreter's own interrupt hook and sem_post. */
void sv_interrupt(sv_server *s);
/* Records that a shutdown was answered (or SIGTERM came); the main thread
 * wakes and stops.  Async-signal-safe. */
void sv_request_quit(sv_server *s, int restart);

void sv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
