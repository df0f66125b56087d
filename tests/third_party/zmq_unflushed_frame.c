/* The libzmq leak that tests/valgrind.supp and tests/lsan.supp suppress,
 * reproduced without cnnlens: tests/run.sh runs this under valgrind to show
 * that the suppression matches it (and says so when libzmq stops leaking).
 *
 * libzmq 4.3.4 (Debian 12) writes each frame of a multipart message into the
 * pipe as it is sent and makes the message readable only with its last frame.
 * When the receiver leaves between two frames (a Jupyter client closing its
 * IOPub socket while the kernel publishes, test_network under valgrind), the
 * socket handles the peer's termination inside the next zmq_send and drops
 * the pipe; its reader frees only the readable messages, so the frames
 * already written are never freed: one frame of over 33 bytes (the topic,
 * 90 bytes with libzmq's header) is "definitely lost".  zmq_send copies the
 * caller's buffer, so the caller never owns that memory and cannot free it.
 *
 * Exit status 0 once the message is sent; the leak is for valgrind to see. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int fail(const char *what)
{
    fprintf(stderr, "zmq_unflushed_frame: %s: %s\n", what, zmq_strerror(zmq_errno()));
    return 1;
}

int main(void)
{
    void *pub_ctx = zmq_ctx_new(), *sub_ctx = zmq_ctx_new();
    void *pub = zmq_socket(pub_ctx, ZMQ_PUB), *sub = zmq_socket(sub_ctx, ZMQ_SUB);
    char endpoint[256];
    size_t len = sizeof endpoint;
    int zero = 0;
    if (!pub || !sub) return fail("socket");
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_bind(pub, "tcp://127.0.0.1:*") ||
        zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, endpoint, &len))
        return fail("bind");
    if (zmq_connect(sub, endpoint)) return fail("connect");
    pause_ms(300); /* the subscription reaches the publisher */

    char topic[50], body[100];
    memset(topic, 't', sizeof topic);
    memset(body, 'b', sizeof body);
    if (zmq_send(pub, topic, sizeof topic, ZMQ_SNDMORE) < 0) return fail("send the first frame");
    zmq_close(sub); /* the subscriber leaves in the middle of the message */
    zmq_ctx_term(sub_ctx);
    pause_ms(300);
    if (zmq_send(pub, body, sizeof body, 0) < 0) return fail("send the last frame");

    zmq_close(pub);
    zmq_ctx_term(pub_ctx);
    return 0;
}
