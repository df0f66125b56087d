#include <stdio.h>

#include "kernel/app/commands.h"

/* Replaced by the lens runner (issue 5). */
int app_run(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "cnnlens run: the lens language is not built yet\n");
    return 1;
}
