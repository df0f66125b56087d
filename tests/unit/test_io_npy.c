#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/io/npy.h"
#include "tests/unit/tmpdir.h"

static void make_dir(void)
{
    tmp_make("npy");
}

TestSuite(npy, .init = make_dir, .fini = tmp_drop);

/* A .npy file with the given header dict and payload. */
static void write_npy(const char *path, const char *dict, const void *data, size_t n)
{
    char head[256];
    size_t dl = strlen(dict);
    size_t total = (10 + dl + 1 + 63) / 64 * 64;
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (char)((total - 10) & 0xff);
    head[9] = (char)((total - 10) >> 8);
    memcpy(head + 10, dict, dl);
    memset(head + 10 + dl, ' ', total - 10 - dl - 1);
    head[total - 1] = '\n';
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(head, 1, total, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

Test(npy, write_read_round_trip)
{
    cl_err err = {0};
    int64_t shape[3] = {2, 3, 4};
    tn_tensor *t = tn_new(3, shape, &err);
    for (int i = 0; i < 24; i++) t->data[i] = (float)i * 0.25f - 3.0f;
    cr_assert_eq(npy_write(tmp_path("a.npy"), t, &err), 0, "%s", err.msg);
    tn_tensor *r = npy_read(tmp_path("a.npy"), &err);
    cr_assert_not_null(r, "%s", err.msg);
    cr_assert(tn_same_shape(t, r));
    cr_assert_eq(memcmp(t->data, r->data, 24 * sizeof(float)), 0);
    tn_free(t);
    tn_free(r);
}

Test(npy, one_dim_and_scalar)
{
    cl_err err = {0};
    tn_tensor *t = tn_new1(5, &err);
    cr_assert_eq(npy_write(tmp_path("v.npy"), t, &err), 0, "%s", err.msg);
    FILE *f = fopen(tmp_path("v.npy"), "rb");
    char head[128] = {0};
    cr_assert_eq(fread(head, 1, 128, f), 128);
    fclose(f);
    cr_assert(strstr(head + 10, "'shape': (5,)") != NULL, "%s", head + 10);
    cr_assert_eq((int)head[8] + 10, 128, "data must start 64-byte aligned");
    tn_free(t);
    tn_tensor *s = tn_new(0, NULL, &err);
    s->data[0] = 7.5f;
    cr_assert_eq(npy_write(tmp_path("s.npy"), s, &err), 0, "%s", err.msg);
    tn_tensor *r = npy_read(tmp_path("s.npy"), &err);
    cr_assert_not_null(r, "%s", err.msg);
    cr_assert_eq(r->ndim, 0);
    cr_assert_eq(r->data[0], 7.5f);
    tn_free(s);
    tn_free(r);
}

Test(npy, reads_other_dtypes)
{
    cl_err err = {0};
    double d[3] = {1.5, -2.25, 1e10};
    write_npy(tmp_path("d.npy"), "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", d,
              sizeof d);
    tn_tensor *t = npy_read(tmp_path("d.npy"), &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_eq(t->data[0], 1.5f);
    cr_assert_eq(t->data[1], -2.25f);
    cr_assert_eq(t->data[2], 1e10f);
    tn_free(t);

    uint8_t u[4] = {0, 1, 128, 255};
    write_npy(tmp_path("u.npy"), "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", u,
              4);
    t = npy_read(tmp_path("u.npy"), &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_eq(t->shape[0], 2);
    cr_assert_eq(t->data[3], 255.0f);
    tn_free(t);

    int64_t l[2] = {-5, 1234567};
    write_npy(tmp_path("l.npy"), "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }", l,
              sizeof l);
    t = npy_read(tmp_path("l.npy"), &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_eq(t->data[0], -5.0f);
    cr_assert_eq(t->data[1], 1234567.0f);
    tn_free(t);

    uint8_t be[8] = {0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0}; /* 1.0f, -2.0f big-endian */
    write_npy(tmp_path("b.npy"), "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", be,
              8);
    t = npy_read(tmp_path("b.npy"), &err);
    cr_assert_not_null(t, "%s", err.msg);
    cr_assert_eq(t->data[0], 1.0f);
    cr_assert_eq(t->data[1], -2.0f);
    tn_free(t);
}

static void expect_fail(const char *name, const char *needle)
{
    cl_err err = {0};
    tn_tensor *t = npy_read(tmp_path(name), &err);
    cr_assert_null(t, "%s should be rejected", name);
    cr_assert_neq(err.code, CL_OK);
    cr_assert(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
}

Test(npy, rejects_bad_files)
{
    float f[6] = {0};
    write_npy(tmp_path("fortran.npy"), "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
              f, sizeof f);
    expect_fail("fortran.npy", "Fortran order");
    write_npy(tmp_path("short.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
              f, 20);
    expect_fail("short.npy", "truncated");
    write_npy(tmp_path("huge.npy"),
              "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", f,
              4);
    expect_fail("huge.npy", "limit");
    write_npy(tmp_path("ovf.npy"),
              "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, "
              "4294967296), }",
              f, 4);
    expect_fail("ovf.npy", "limit");
    write_npy(tmp_path("7d.npy"),
              "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1), }", f, 4);
    expect_fail("7d.npy", "dimensions");
    write_npy(tmp_path("obj.npy"), "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", f,
              8);
    expect_fail("obj.npy", "not supported");
    write_npy(tmp_path("rec.npy"),
              "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", f, 4);
    expect_fail("rec.npy", "structured");
    tmp_write("magic.npy", "hello world, not numpy", 22);
    expect_fail("magic.npy", "magic");
    tmp_write("hdr.npy", "\x93NUMPY\x01\x00\xff\xff{'descr'", 17);
    expect_fail("hdr.npy", "truncated");
    tmp_write("empty.npy", "", 0);
    expect_fail("empty.npy", "empty");
    expect_fail("missing.npy", "cannot open");
}

Test(npy, every_truncation_refused_and_bit_flips_survived)
{
    cl_err err = {0};
    tn_tensor *t = tn_new2(3, 7, &err);
    cr_assert_eq(npy_write(tmp_path("full.npy"), t, &err), 0);
    tn_free(t);
    FILE *f = fopen(tmp_path("full.npy"), "rb");
    uint8_t buf[512];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t cut = 0; cut < n; cut++) {
        tmp_write("cut.npy", buf, cut);
        tn_tensor *r = npy_read(tmp_path("cut.npy"), &err);
        cr_assert_null(r, "a file cut to %zu of %zu bytes was accepted", cut, n);
    }
    for (size_t i = 0; i < 128; i++) { /* the header; flips in the data are just values */
        uint8_t keep = buf[i];
        buf[i] ^= 0x5a;
        tmp_write("flip.npy", buf, n);
        tn_free(npy_read(tmp_path("flip.npy"), &err));
        buf[i] = keep;
    }
}
