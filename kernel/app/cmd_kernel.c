#include <stdio.h>

#include "kernel/app/commands.h"

/* Replaced by the ZeroMQ server (issue 4). */
int app_kernel(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "cnnlens kernel: the Jupyter server is not built yet\n");
    return 1;
}
