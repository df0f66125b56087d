#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "kernel/app/commands.h"
#include "kernel/app/mini_interp.h"
#include "kernel/lang/lens_interp.h"
#include "kernel/server/server.h"

static void kernel_usage(FILE *f)
{
    fprintf(f, "usage: cnnlens kernel -f CONNECTION_FILE\n"
               "  Runs as a Jupyter kernel; Jupyter starts it with the connection file it wrote.\n"
               "  To use cnnlens from Jupyter, run `cnnlens install --user` once.\n");
}

/* The interpreter is chosen here, not in the server: the server only knows
 * the kn_interp table. */
static kn_interp *new_interp(void)
{
    /* The lens language; CNNLENS_INTERP=mini selects the minimal interpreter
     * that the server's own unit test uses, for debugging the protocol alone. */
    const char *which = getenv("CNNLENS_INTERP");
    if (which && !strcmp(which, "mini")) return mi_new();
    return lens_interp_new();
}

int app_kernel(int argc, char **argv)
{
    const char *conn = NULL;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--connection-file")) && i + 1 < argc)
            conn = argv[++i];
        else if (!strncmp(argv[i], "--connection-file=", 18))
            conn = argv[i] + 18;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return kernel_usage(stdout), 0;
        else
            return kernel_usage(stderr), 2;
    }
    if (!conn) return kernel_usage(stderr), 2;
    /* glibc raises its mmap threshold (up to 32 MiB) whenever a big block is
     * freed, after which big images and PNGs come from the heap and, freed
     * under a live block, stay resident: a kernel left running for a course
     * would keep the high-water mark of its cells.  Pinning the threshold at
     * glibc's default keeps big blocks mmapped, handed back on free. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    kn_interp *interp = new_interp();
    if (!interp) {
        fprintf(stderr, "cnnlens kernel: out of memory\n");
        return 1;
    }
    cl_err err = {0};
    int rc = sv_run(conn, interp, &err);
    if (rc == 1) return APP_EXIT_NOW; /* a cell still runs on its thread: leave it be */
    interp->vt->destroy(interp);
    if (rc) fprintf(stderr, "cnnlens kernel: %s\n", err.msg);
    return rc ? 1 : 0;
}
