/* commands — the subcommands of the `cnnlens` binary, one file each in kernel/app.
 * Each takes the arguments after the subcommand name and returns the exit status. */
#ifndef CNNLENS_APP_COMMANDS_H
#define CNNLENS_APP_COMMANDS_H

int app_kernel(int argc, char **argv);  /* cnnlens kernel -f CONNECTION_FILE */
int app_install(int argc, char **argv); /* cnnlens install [--user | --prefix DIR] */
int app_run(int argc, char **argv);     /* cnnlens run FILE.lens | NOTEBOOK.ipynb [-o OUT] */
int app_grade(int argc, char **argv);   /* cnnlens grade SUBMISSIONS_DIR [--timeout S] */
int app_train_builtin(int argc, char **argv); /* cnnlens train-builtin --out FILE ... */
int app_probe(int argc, char **argv);   /* cnnlens probe ... (hidden, for engine tests) */

int app_ioprobe(int argc, char **argv); /* cnnlens io-probe ... (hidden, for io tests) */
int app_visprobe(int argc, char **argv); /* cnnlens vis-probe ... (hidden, for vis tests) */

/* Returned by a subcommand when a thread it could not stop still runs (the
 * kernel's cell at shutdown): main ends the process at once with status 0,
 * without exit handlers, which would tear down libraries (OpenSSL, ...) under
 * that thread and crash it.  Not a valid exit status, so never one by mistake. */
#define APP_EXIT_NOW 1000

/* Absolute path of the running binary (from /proc/self/exe), or argv0. */
const char *app_self_path(void);
void app_set_argv0(const char *argv0);

#endif
