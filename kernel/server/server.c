#include "kernel/server/server.h"

#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "engine/io/atomic_file.h"
#include "engine/limits.h"
#include "engine/progress.h"
#include "kernel/server/sv_internal.h"

/* Parts beyond this are read and discarded: no front end sends more than a
 * handful, and the cap bounds what a broken peer makes us hold. */
#define SV_MAX_PARTS 256

void sv_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cnnlens kernel: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int recv_parts(void *sock, zmq_msg_t *parts, size_t *n)
{
    *n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            if (errno == EINTR && *n) continue; /* finish the message we started */
            for (size_t i = 0; i < *n; i++) zmq_msg_close(&parts[i]);
            return errno == EINTR ? 1 : -1;
        }
        more = zmq_msg_more(&m);
        if (*n < SV_MAX_PARTS)
            parts[(*n)++] = m;
        else
            zmq_msg_close(&m);
    }
    return 0;
}

/* Every dropped message is logged up to SV_LOG_DROPS, then every
 * SV_LOG_DROPS-th: a neighbour flooding the ports with unsigned messages must
 * not fill the disk that Jupyter's log is on. */
#define SV_LOG_DROPS 100

static void log_dropped(sv_server *s, const char *channel, const char *why)
{
    long n = atomic_fetch_add(&s->dropped, 1) + 1;
    if (n <= SV_LOG_DROPS)
        sv_log("dropped a message on %s: %s", channel, why);
    else if (n % SV_LOG_DROPS == 0)
        sv_log("dropped a message on %s: %s (%ld dropped so far; only every %dth is logged)",
               channel, why, n, SV_LOG_DROPS);
}

int sv_recv(sv_server *s, void *sock, const char *channel, kp_msg *out)
{
    zmq_msg_t parts[SV_MAX_PARTS];
    kp_frame frames[SV_MAX_PARTS];
    size_t n;
    int rc = recv_parts(sock, parts, &n);
    if (rc < 0) return -1;
    if (rc > 0) return 0;
    for (size_t i = 0; i < n; i++)
        frames[i] = (kp_frame){zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i])};
    cl_err err = {0};
    int ok = kp_msg_parse(frames, n, s->signer, s->seen, out, &err) == 0;
    for (size_t i = 0; i < n; i++) zmq_msg_close(&parts[i]);
    if (!ok) log_dropped(s, channel, err.msg);
    return ok;
}

static int send_msg(sv_server *s, void *sock, const kp_msg *m)
{
    kp_buf *frames;
    size_t n;
    cl_err err = {0};
    if (kp_msg_serialize(m, s->signer, &frames, &n, &err)) {
        sv_log("cannot send %s: %s", kp_msg_type(m), err.msg);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int flags = i + 1 < n ? ZMQ_SNDMORE : 0;
        while (zmq_send(sock, frames[i].data, frames[i].len, flags) < 0) {
            if (errno == EINTR) continue;
            /* A ROUTER cannot reach a peer that left; nothing to do but say so. */
            if (errno != ETERM) sv_log("cannot send %s: %s", kp_msg_type(m), zmq_strerror(errno));
            rc = -1;
            break;
        }
    }
    kp_frames_free(frames, n);
    return rc;
}

int sv_send_reply(sv_server *s, void *sock, const kp_msg *parent, const char *msg_type,
                  json_t *content)
{
    kp_msg m;
    if (kp_msg_init(&m, msg_type, parent, content, s->session)) {
        sv_log("out of memory building %s", msg_type);
        return -1;
    }
    int rc = send_msg(s, sock, &m);
    kp_msg_clear(&m);
    return rc;
}

/* ---- IOPub subscribers ------------------------------------------------------
 *
 * A client connects its IOPub SUB and its shell DEALER separately, and when
 * the kernel was not listening yet each retries after ZeroMQ's 100 ms
 * reconnect interval, on its own clock.  So the shell can connect first: the
 * kernel then answers the first requests and publishes their status and
 * output to no one (PUB drops what no subscriber wants), and a front end that
 * waits for that output waits forever.  jupyter_client's wait_for_ready
 * repeats kernel_info until IOPub answers, but jupyter console sends one and
 * then its first cell, whose "idle" it never saw (it hung at In [1]: for 1 in
 * 10 runs of test_kernel_clients; 19 of 40 when the kernel started 0-90 ms
 * late; ipykernel 6.17 the same, 6 of 15).  IOPub is an XPUB, which hands the
 * kernel each subscription, and the shell thread holds a request until a
 * subscriber is there. */

/* The longest a request waits for a subscriber: several reconnect intervals,
 * with room for a slow machine.  A client that never subscribes (a script
 * that only wants replies) pays it once, not on every request. */
#define SV_SUBSCRIBER_WAIT_MS 1000

/* Reads what XPUB has queued from subscribers: subscriptions (1 byte, 1
 * subscribe or 0 unsubscribe, then the topic), and anything else a peer sends
 * upstream, which is dropped.  XPUB keeps those in an unbounded queue, filled
 * from the connection (at most its high-water mark at a time) whenever the
 * socket is used; reading them at every publish and every request keeps the
 * queue short, and the cap per call keeps a flooding peer from holding the
 * lock.  Caller holds iopub_lock. */
static void read_subscriptions(sv_server *s)
{
    unsigned char buf[256];
    int n;
    for (int i = 0; i < 4096 && (n = zmq_recv(s->iopub, buf, sizeof buf, ZMQ_DONTWAIT)) >= 0; i++) {
        int first = !s->iopub_more, more = 0;
        size_t len = sizeof more;
        zmq_getsockopt(s->iopub, ZMQ_RCVMORE, &more, &len);
        s->iopub_more = more;
        if (!first || n < 1) continue; /* (as for XPUB itself, only a first part subscribes) */
        if (buf[0] == 1) {
            s->subscribers++;
            s->waited_in_vain = 0;
        } else if (buf[0] == 0 && s->subscribers > 0) {
            s->subscribers--;
        }
    }
}

void sv_await_subscriber(sv_server *s)
{
    double t0 = cl_progress_now();
    const struct timespec tick = {0, 2000000L};
    for (;;) {
        pthread_mutex_lock(&s->iopub_lock);
        read_subscriptions(s);
        int done = s->subscribers > 0 || s->waited_in_vain || atomic_load(&s->quit);
        if (!done && cl_progress_now() - t0 >= SV_SUBSCRIBER_WAIT_MS / 1000.0)
            done = s->waited_in_vain = 1;
        pthread_mutex_unlock(&s->iopub_lock);
        if (done) return;
        /* Short naps, not a poll on the socket: other threads publish on it. */
        nanosleep(&tick, NULL);
    }
}

int sv_publish(sv_server *s, const kp_msg *parent, const char *msg_type, json_t *content)
{
    kp_msg m;
    char topic[128];
    snprintf(topic, sizeof topic, "kernel.%s.%s", s->session, msg_type);
    if (kp_msg_init(&m, msg_type, parent, content, s->session) || kp_msg_set_topic(&m, topic)) {
        kp_msg_clear(&m);
        sv_log("out of memory building %s", msg_type);
        return -1;
    }
    pthread_mutex_lock(&s->iopub_lock);
    int rc = send_msg(s, s->iopub, &m);
    read_subscriptions(s); /* so they do not pile up while nothing waits for them */
    pthread_mutex_unlock(&s->iopub_lock);
    kp_msg_clear(&m);
    return rc;
}

void sv_publish_status(sv_server *s, const kp_msg *parent, const char *state)
{
    sv_publish(s, parent, "status", json_pack("{s:s}", "execution_state", state));
}

void sv_interrupt(sv_server *s)
{
    atomic_store(&s->interrupt_seq, atomic_load(&s->cell_seq));
    atomic_store(&s->interrupted, 1);
    if (s->interp && s->interp->vt->interrupt) s->interp->vt->interrupt(s->interp);
    sem_post(&s->interrupt_sem);
}

void sv_cell_begin(sv_server *s)
{
    pthread_mutex_lock(&s->cell_lock);
    atomic_fetch_add(&s->cell_seq, 1);
    atomic_store(&s->interrupted, 0);
    atomic_store(&s->in_cell, 1);
    pthread_mutex_unlock(&s->cell_lock);
}

void sv_cell_end(sv_server *s)
{
    pthread_mutex_lock(&s->cell_lock);
    atomic_store(&s->in_cell, 0);
    pthread_mutex_unlock(&s->cell_lock);
}

/* Repeats the interrupt to the cell it was meant for; 0 when that cell is
 * over (or the kernel is stopping). */
static int repeat_interrupt(sv_server *s, unsigned seq)
{
    pthread_mutex_lock(&s->cell_lock);
    int live =
        atomic_load(&s->in_cell) && atomic_load(&s->cell_seq) == seq && !atomic_load(&s->quit);
    if (live && s->interp->vt->interrupt) s->interp->vt->interrupt(s->interp);
    pthread_mutex_unlock(&s->cell_lock);
    return live;
}

/* The interpreter clears its stop flag as a cell starts, after execute_input
 * has gone out; an interrupt sent on seeing execute_input could land before
 * that and be lost (the soak test saw it on a loaded machine).  So while the
 * cell an interrupt was meant for still runs, this thread repeats it every
 * 10 ms (for at most 5 s: a cell that ignores interrupts is not helped by more). */
static void *relay_main(void *arg)
{
    sv_server *s = arg;
    const struct timespec tick = {0, 10000000L};
    while (!atomic_load(&s->quit)) {
        if (sem_wait(&s->interrupt_sem)) continue; /* EINTR */
        unsigned seq = atomic_load(&s->interrupt_seq);
        for (int i = 0; i < 500 && repeat_interrupt(s, seq); i++) nanosleep(&tick, NULL);
    }
    return NULL;
}

/* Async-signal-safe (SIGTERM's handler calls it): atomics and sem_post only. */
void sv_request_quit(sv_server *s, int restart)
{
    atomic_store(&s->restart, restart);
    sv_interrupt(s);
    atomic_store(&s->quit, 1);
    sem_post(&s->quit_sem);
    sem_post(&s->interrupt_sem); /* the relay sees `quit` and ends */
}

/* ---- threads --------------------------------------------------------------- */

static void *heartbeat_main(void *arg)
{
    sv_server *s = arg;
    /* A ROUTER proxied onto itself echoes each ping to its sender (as ipykernel
     * does); the proxy returns when the context is shut down. */
    while (zmq_proxy(s->hb, s->hb, NULL) < 0 && errno == EINTR) {
    }
    zmq_close(s->hb);
    return NULL;
}

static int poll_one(void *sock, long timeout_ms)
{
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    for (;;) {
        int rc = zmq_poll(&item, 1, timeout_ms);
        if (rc >= 0) return rc;
        if (errno != EINTR) return -1; /* ETERM: shutting down */
    }
}

static void serve(sv_server *s, void *sock, int channel, const char *name)
{
    while (!atomic_load(&s->quit)) {
        if (poll_one(sock, -1) < 0) return;
        kp_msg req;
        int rc = sv_recv(s, sock, name, &req);
        if (rc < 0) return;
        if (rc == 0) continue;
        if (channel == SV_SHELL) sv_await_subscriber(s);
        sv_dispatch(s, sock, channel, &req);
        kp_msg_clear(&req);
    }
}

static void *control_main(void *arg)
{
    sv_server *s = arg;
    serve(s, s->control, SV_CONTROL, "control");
    return NULL;
}

static void *shell_main(void *arg)
{
    sv_server *s = arg;
    serve(s, s->shell, SV_SHELL, "shell");
    return NULL;
}

/* ---- signals ---------------------------------------------------------------- */

static sv_server *volatile signal_target;

/* SIGINT interrupts the running cell, as an interrupt_request does. */
static void on_sigint(int sig)
{
    (void)sig;
    sv_server *s = signal_target;
    if (s) sv_interrupt(s);
}

/* SIGTERM and SIGHUP (what a process manager or a closed terminal sends) shut
 * the kernel down as a shutdown_request does: the cell is interrupted, the
 * threads stop, temporary files go, and the exit status is 0. */
static void on_quit_signal(int sig)
{
    sv_server *s = signal_target;
    if (!s) return;
    atomic_store(&s->quit_signal, sig);
    sv_request_quit(s, 0);
}

static void install_signals(sv_server *s, int on)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    signal_target = on ? s : NULL;
    sa.sa_handler = on ? on_sigint : SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on ? on_quit_signal : SIG_DFL;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* ---- set-up and tear-down -------------------------------------------------- */

static const char *bind_hint(int e)
{
    if (e == EADDRINUSE)
        return "another program holds the port: start the kernel again so that Jupyter picks "
               "free ports";
    if (e == EADDRNOTAVAIL) return "the connection file's ip is not an address of this machine";
    return "check the connection file";
}

/* ZeroMQ buffers a whole frame before the kernel sees it, so message_bytes
 * alone (checked in kp_msg_parse) would let a peer make the kernel hold a
 * frame of any size.  ZMQ_MAXMSGSIZE makes ZeroMQ read each frame's length
 * first and close the connection, without allocating, when it is over the
 * cap.  The cap on shell, control and stdin is twice message_bytes: no frame
 * over message_bytes can belong to an acceptable message, and the margin lets
 * a cell somewhat over the limit through to kp_msg_parse, which logs it with
 * the limit's name and how to raise it (ZeroMQ closes the connection
 * silently: its monitor reports a disconnect like any other, without the
 * reason).  ZeroMQ copies the options when the socket binds and gives that
 * copy to every connection it accepts later, so the cap is fixed at start;
 * re-binding to follow `limits message_bytes` would cut every connected
 * client and lose what was in flight (measured), so sv_execute warns instead
 * when the limit is raised past the cap. */
#define SV_FRAME_CAP_FACTOR 2
/* Heartbeat pings (a few bytes) and IOPub subscriptions (a topic) are small. */
#define SV_SMALL_FRAME_CAP ((int64_t)64 * 1024)

/* IOPub's send high-water mark, in messages per subscriber; past it PUB
 * drops messages for that subscriber alone.  Unbounded (as it was), a
 * subscriber that never reads makes the kernel queue all it ever outputs.
 * Too low, and a real client that is slow to read loses output: with
 * ZeroMQ's default of 1000, a jupyter_client that reads IOPub only after the
 * reply lost part of a cell of 5,000 `show` lines, and its final `idle`
 * (measured).  Stream output is batched (stream.c: a message per 64 KiB or
 * 50 ms) and live pictures come at most every 0.3 s, so only cells with
 * thousands of display lines come near 10,000; a subscriber that never
 * reads costs the kernel its last 10,000 messages (8-9 MiB of small
 * displays, test_network). */
#define SV_IOPUB_HWM 10000

/* `name` is the port's key in the connection file at `path`, for the message;
 * frames over `max_frame` bytes close the peer's connection. */
static void *open_socket(sv_server *s, int type, int port, const char *name, const char *path,
                         int64_t max_frame, cl_err *err)
{
    char ep[600];
    if (kp_conn_endpoint(&s->conn, port, ep, sizeof ep)) {
        cl_err_set(err, CL_EINVAL, "connection file: address too long");
        return NULL;
    }
    void *sock = zmq_socket(s->zctx, type);
    if (!sock) {
        cl_err_set(err, CL_EIO, "cannot create a socket: %s", zmq_strerror(errno));
        return NULL;
    }
    int linger = 1000, hwm = SV_IOPUB_HWM;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame);
    if (type == ZMQ_XPUB) {
        /* Every subscription and unsubscription, one per client, reaches
         * read_subscriptions (not just a topic's first and last). */
        int verboser = 1;
        zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(sock, ZMQ_XPUB_VERBOSER, &verboser, sizeof verboser);
    }
    if (zmq_bind(sock, ep) < 0) {
        int e = errno;
        cl_err_set(err, CL_EIO, "cannot listen on %s (%s %d in '%s'): %s; %s", ep, name, port, path,
                   zmq_strerror(e), bind_hint(e));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

static int open_sockets(sv_server *s, const char *path, cl_err *err)
{
    kp_conn *c = &s->conn;
    int64_t cap = s->frame_cap = SV_FRAME_CAP_FACTOR * lim_get(LIM_MESSAGE_BYTES);
    int64_t small = SV_SMALL_FRAME_CAP;
    if (!(s->shell = open_socket(s, ZMQ_ROUTER, c->shell_port, "shell_port", path, cap, err)) ||
        !(s->control =
              open_socket(s, ZMQ_ROUTER, c->control_port, "control_port", path, cap, err)) ||
        !(s->stdin_sock =
              open_socket(s, ZMQ_ROUTER, c->stdin_port, "stdin_port", path, cap, err)) ||
        !(s->iopub = open_socket(s, ZMQ_XPUB, c->iopub_port, "iopub_port", path, small, err)) ||
        !(s->hb = open_socket(s, ZMQ_ROUTER, c->hb_port, "hb_port", path, small, err)))
        return -1;
    return 0;
}

static void close_sockets(sv_server *s)
{
    void **socks[] = {&s->shell, &s->control, &s->stdin_sock, &s->iopub, &s->hb};
    for (size_t i = 0; i < sizeof socks / sizeof *socks; i++) {
        if (*socks[i]) zmq_close(*socks[i]);
        *socks[i] = NULL;
    }
}

static int server_init(sv_server *s, const char *path, kn_interp *interp, cl_err *err)
{
    memset(s, 0, sizeof *s);
    s->interp = interp;
    pthread_mutex_init(&s->iopub_lock, NULL);
    sem_init(&s->quit_sem, 0, 0);
    sem_init(&s->interrupt_sem, 0, 0);
    pthread_mutex_init(&s->cell_lock, NULL);
    sv_hist_init(&s->hist);
    kp_uuid4(s->session);
    if (kp_conn_load(path, &s->conn, err)) return -1;
    if (!(s->signer = kp_signer_new(s->conn.scheme, s->conn.key, s->conn.key_len, err))) return -1;
    if (!(s->seen = kp_sigset_new(4096))) return cl_err_set(err, CL_ENOMEM, "out of memory");
    if (!(s->zctx = zmq_ctx_new()))
        return cl_err_set(err, CL_EIO, "cannot start ZeroMQ: %s", zmq_strerror(errno));
    return open_sockets(s, path, err);
}

static void server_free(sv_server *s)
{
    close_sockets(s);
    if (s->zctx) zmq_ctx_term(s->zctx);
    kp_signer_free(s->signer);
    kp_sigset_free(s->seen);
    kp_conn_clear(&s->conn);
    sv_hist_clear(&s->hist);
    sem_destroy(&s->quit_sem);
    sem_destroy(&s->interrupt_sem);
    pthread_mutex_destroy(&s->cell_lock);
    pthread_mutex_destroy(&s->iopub_lock);
}

static void wait_for_quit(sv_server *s)
{
    while (!atomic_load(&s->quit))
        if (sem_wait(&s->quit_sem) && errno != EINTR) break;
}

/* The shell thread may be deep inside a cell that ignores interrupts; give it
 * a moment, then leave without it (main() exiting ends the process). */
static int join_within(pthread_t t, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return pthread_timedjoin_np(t, NULL, &ts) == 0;
}

int sv_run(const char *connection_file, kn_interp *interp, cl_err *err)
{
    sv_server *s = calloc(1, sizeof *s);
    if (!s) return cl_err_set(err, CL_ENOMEM, "out of memory");
    if (server_init(s, connection_file, interp, err)) {
        server_free(s);
        free(s);
        return -1;
    }
    if (sv_stream_start(s)) {
        server_free(s);
        free(s);
        return cl_err_set(err, CL_ENOMEM, "cannot start a thread");
    }
    install_signals(s, 1);
    sv_publish_status(s, NULL, "starting");
    void *(*mains[4])(void *) = {heartbeat_main, control_main, shell_main, relay_main};
    pthread_t th[4];
    int started[4] = {0}, failed = 0;
    for (int i = 0; i < 4 && !failed; i++)
        failed = !(started[i] = !pthread_create(&th[i], NULL, mains[i], s));
    if (failed) sv_request_quit(s, 0);
    wait_for_quit(s);
    int sig = atomic_load(&s->quit_signal);
    if (sig) sv_log("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGHUP");
    /* Blocking calls in every thread return ETERM from here on.  Under the
     * IOPub lock, so no message is cut in half by ETERM: libzmq then loses
     * the frames already queued (valgrind saw a topic frame definitely lost
     * when SIGTERM came during a publish). */
    pthread_mutex_lock(&s->iopub_lock);
    zmq_ctx_shutdown(s->zctx);
    pthread_mutex_unlock(&s->iopub_lock);
    if (started[0]) {
        pthread_join(th[0], NULL);
        s->hb = NULL; /* closed by its thread */
    }
    if (started[1]) pthread_join(th[1], NULL);
    if (started[3]) pthread_join(th[3], NULL);
    int shell_done = !started[2] || join_within(th[2], 80);
    install_signals(s, 0);
    if (!shell_done) {
        sv_log("the running cell did not stop; exiting without it");
        atomic_file_remove_partial(); /* a save it was writing must not leave a temp file */
        return 1;                     /* the process ends now; its memory goes with it */
    }
    if (interp->vt->shutdown) interp->vt->shutdown(interp, atomic_load(&s->restart));
    sv_stream_stop(s);
    server_free(s);
    free(s);
    return failed ? cl_err_set(err, CL_ENOMEM, "cannot start the kernel's threads") : 0;
}
