#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/app/kernelspec.h"

Test(kernelspec, writes_kernel_json_and_logos)
{
    char tmpl[] = "/tmp/cnnlens-ks-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    cl_err err = {0};
    char dir[4096];
    cr_assert_eq(ks_install(tmpl, "/opt/bin/cnnlens", dir, sizeof dir, &err), 0, "%s", err.msg);

    char path[4200];
    snprintf(path, sizeof path, "%s/kernel.json", dir);
    json_error_t jerr;
    json_t *spec = json_load_file(path, 0, &jerr);
    cr_assert_not_null(spec, "%s", jerr.text);
    json_t *argv = json_object_get(spec, "argv");
    cr_assert_eq(json_array_size(argv), 4);
    cr_assert_str_eq(json_string_value(json_array_get(argv, 0)), "/opt/bin/cnnlens");
    cr_assert_str_eq(json_string_value(json_array_get(argv, 3)), "{connection_file}");
    cr_assert_str_eq(json_string_value(json_object_get(spec, "display_name")), "CNN Lens");
    cr_assert_str_eq(json_string_value(json_object_get(spec, "language")), "lens");
    cr_assert_str_eq(json_string_value(json_object_get(spec, "interrupt_mode")), "message");
    json_decref(spec);

    static const unsigned char magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    for (int size = 32; size <= 64; size += 32) {
        snprintf(path, sizeof path, "%s/logo-%dx%d.png", dir, size, size);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "missing %s", path);
        unsigned char head[24];
        cr_assert_eq(fread(head, 1, 24, f), 24);
        fclose(f);
        cr_assert_eq(memcmp(head, magic, 8), 0);
        /* IHDR width and height, big-endian */
        cr_assert_eq(head[19], size);
        cr_assert_eq(head[23], size);
    }
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpl);
    cr_assert_eq(system(cmd), 0);
}

Test(kernelspec, unwritable_prefix_is_a_clear_error)
{
    cl_err err = {0};
    cr_assert_eq(ks_install("/proc/nonexistent", "/x", NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, "cannot create folder") != NULL, "%s", err.msg);
}
