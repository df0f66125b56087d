/* cnnlens — a Jupyter kernel for "what does a CNN learn".  main() only
 * dispatches to the subcommands of kernel/app; it is the one place that exits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnlens_version.h"
#include "engine/limits.h"
#include "kernel/app/commands.h"

extern char **environ;

typedef struct subcommand {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} subcommand;

static const subcommand subcommands[] = {
    {"kernel", app_kernel, "kernel -f CONNECTION_FILE   run as a Jupyter kernel"},
    {"run", app_run, "run FILE.lens | NOTEBOOK.ipynb [-o OUT.ipynb]   run lens code headless"},
    {"install", app_install, "install [--user | --prefix DIR]   install the Jupyter kernelspec"},
    {"grade", app_grade, "grade SUBMISSIONS_DIR [--timeout S]   gradebook of student notebooks"},
    {"train-builtin", app_train_builtin,
     "train-builtin --out FILE [--seed N] [--epochs E]   retrain the built-in fashion model"},
    {"probe", app_probe, NULL}, /* hidden: engine debugging, driven by tests/py/test_parity*.py */
    {"io-probe", app_ioprobe, NULL}, /* hidden: file readers and images, for tests/py/test_io*.py */
    {"vis-probe", app_visprobe, NULL}, /* hidden: vis methods, rendering (tests/py/test_vis*) */
};

static void usage(FILE *f)
{
    fprintf(f,
            "cnnlens %s - a Jupyter kernel that shows what a CNN learns\n\n"
            "usage: cnnlens COMMAND [ARGS]\n\ncommands:\n",
            CNNLENS_VERSION);
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
        if (subcommands[i].help) fprintf(f, "  %s\n", subcommands[i].help);
    fprintf(f, "\n  --help      this text\n  --version   print the version\n\n"
               "Each command takes --help.  In a notebook, type `help` in a cell.\n");
}

int main(int argc, char **argv)
{
    app_set_argv0(argv[0]);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        printf("cnnlens %s\n", CNNLENS_VERSION);
        return 0;
    }
    /* Once, before any work: a mistyped limit stops here, not halfway through a lecture. */
    cl_err err = {0};
    if (lim_load_env(environ, &err) < 0) {
        fprintf(stderr, "cnnlens: %s\n", err.msg);
        return 2;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++) {
        if (strcmp(argv[1], subcommands[i].name)) continue;
        int rc = subcommands[i].fn(argc - 2, argv + 2);
        if (rc == APP_EXIT_NOW) _Exit(0); /* see commands.h */
        return rc;
    }
    fprintf(stderr, "cnnlens: unknown command '%s' (try cnnlens --help)\n", argv[1]);
    return 2;
}
