/* A private folder per test for the unit tests that write files.  Criterion
 * runs each test in a process of its own and calls the suite's .init there,
 * so every test starts with an empty folder of its own.  Header-only (static
 * inline), so no build rule names it:
 *
 *     #include "tests/unit/tmpdir.h"
 *     static void make_dir(void) { tmp_make("pth"); }
 *     TestSuite(pth, .init = make_dir, .fini = tmp_drop);
 */
#ifndef CNNLENS_TESTS_UNIT_TMPDIR_H
#define CNNLENS_TESTS_UNIT_TMPDIR_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char tmp_dir[64];

/* cnnlens-TAG-XXXXXX (TAG says whose a leftover is), in /dev/shm when there
 * is one: thousands of small rewrites stay off the disk. */
static inline void tmp_make(const char *tag)
{
    snprintf(tmp_dir, sizeof tmp_dir, "%s/cnnlens-%s-XXXXXX",
             access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", tag);
    cr_assert_not_null(mkdtemp(tmp_dir));
}

static inline void tmp_drop(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    cr_assert_eq(system(cmd), 0);
}

/* The path of `name` in the folder, in a static buffer: good until the next call. */
static inline const char *tmp_path(const char *name)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", tmp_dir, name);
    return buf;
}

/* `name` in the folder, holding the n bytes at d. */
static inline void tmp_write(const char *name, const void *d, size_t n)
{
    FILE *f = fopen(tmp_path(name), "wb");
    cr_assert_not_null(f, "cannot write %s", tmp_path(name));
    cr_assert_eq(fwrite(d, 1, n, f), n);
    fclose(f);
}

#endif
