/* server — the Jupyter kernel's sockets and threads (ZeroMQ).
 *
 * sv_run() binds the five sockets of a connection file and serves them until
 * a shutdown_request: the shell thread runs the interpreter, the control
 * thread answers kernel_info, interrupt and shutdown while a cell runs, a
 * heartbeat thread echoes pings, and IOPub messages from any thread are sent
 * one at a time.  SIGINT interrupts the running cell; SIGTERM and SIGHUP shut
 * the kernel down as a shutdown_request does.  The server does not
 * know which interpreter it runs: it only calls the kn_interp table.
 *
 * Ownership: the interpreter stays the caller's; sv_run calls its shutdown
 * hook but never destroys it.
 */
#ifndef CNNLENS_SERVER_H
#define CNNLENS_SERVER_H

#include "engine/err.h"
#include "kernel/interp.h"

/* Serves until shutdown.  Returns 0 after a clean shutdown (restart or not),
 * -1 with err set when the connection file or the sockets cannot be set up,
 * and 1 when a running cell ignored the interrupt at shutdown: the
 * interpreter is then still in use on another thread, so the caller must not
 * destroy it and should end the process at once (_Exit: exit handlers would
 * tear down libraries under that thread). */
int sv_run(const char *connection_file, kn_interp *interp, cl_err *err);

#endif
