#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/app/commands.h"
#include "kernel/app/kernelspec.h"

static const char *argv0_saved = "cnnlens";
static char self_path[PATH_MAX];

void app_set_argv0(const char *argv0)
{
    argv0_saved = argv0;
}

const char *app_self_path(void)
{
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (n > 0) {
        self_path[n] = '\0';
        return self_path;
    }
    if (realpath(argv0_saved, self_path)) return self_path;
    return argv0_saved;
}

static void install_usage(FILE *f)
{
    fprintf(f, "usage: cnnlens install [--user | --prefix DIR]\n"
               "  Writes the Jupyter kernelspec 'cnnlens' (kernel.json and logos).\n"
               "  --user        into ~/.local/share/jupyter/kernels/cnnlens (default when not root)\n"
               "  --prefix DIR  into DIR/share/jupyter/kernels/cnnlens\n"
               "  (as root, with neither: /usr/local/share/jupyter/kernels/cnnlens)\n");
}

int app_install(int argc, char **argv)
{
    char prefix[PATH_MAX] = "";
    int user = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--user")) {
            user = 1;
        } else if (!strcmp(argv[i], "--prefix") && i + 1 < argc) {
            snprintf(prefix, sizeof prefix, "%s", argv[++i]);
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            install_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "cnnlens install: unknown argument '%s'\n", argv[i]);
            install_usage(stderr);
            return 2;
        }
    }
    if (user && prefix[0]) {
        fprintf(stderr, "cnnlens install: give --user or --prefix, not both\n");
        return 2;
    }
    if (!prefix[0]) {
        const char *home = getenv("HOME");
        if (user || geteuid() != 0) {
            if (!home) {
                fprintf(stderr, "cnnlens install: HOME is not set; use --prefix DIR\n");
                return 1;
            }
            snprintf(prefix, sizeof prefix, "%s/.local", home);
        } else {
            snprintf(prefix, sizeof prefix, "/usr/local");
        }
    }
    char dir[PATH_MAX + 64];
    cl_err err = {0};
    if (ks_install(prefix, app_self_path(), dir, sizeof dir, &err)) {
        fprintf(stderr, "cnnlens install: %s\n", err.msg);
        return 1;
    }
    printf("Installed kernelspec cnnlens in %s\n", dir);
    return 0;
}
