#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/io/weights.h"
#include "tests/unit/tmpdir.h"

static void make_dir(void)
{
    tmp_make("st");
}

TestSuite(safetensors, .init = make_dir, .fini = tmp_drop);

/* A safetensors file: header length, header JSON, then `data`. */
static void write_st(const char *name, const char *json, const void *data, size_t n)
{
    FILE *f = fopen(tmp_path(name), "wb");
    cr_assert_not_null(f);
    uint64_t len = strlen(json);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(len >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(json, 1, len, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void expect_fail(const char *name, const char *needle)
{
    cl_err err = {0};
    wt_dict *d = wt_load(tmp_path(name), &err);
    cr_assert_null(d, "%s should be rejected", name);
    cr_assert_neq(err.code, CL_OK);
    cr_assert(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
}

Test(safetensors, write_read_round_trip_keeps_order)
{
    cl_err err = {0};
    wt_dict *d = wt_new(&err);
    const char *names[3] = {"z.weight", "a.bias", "odd \"name\"\\ \x01 é"};
    for (int k = 0; k < 3; k++) {
        tn_tensor *t = k == 0 ? tn_new4(2, 3, 2, 2, &err) : tn_new1(k * 5, &err);
        for (int64_t i = 0; i < tn_numel(t); i++) t->data[i] = (float)(i * 31 % 17) - 0.5f * k;
        cr_assert_eq(wt_add(d, names[k], t, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(wt_save_safetensors(d, tmp_path("w.safetensors"), &err), 0, "%s", err.msg);
    wt_dict *r = wt_load(tmp_path("w.safetensors"), &err);
    cr_assert_not_null(r, "%s", err.msg);
    cr_assert_eq(r->count, 3);
    for (int k = 0; k < 3; k++) {
        cr_assert_str_eq(r->items[k].name, names[k]);
        const tn_tensor *a = d->items[k].t, *b = r->items[k].t;
        cr_assert(tn_same_shape(a, b));
        cr_assert_eq(memcmp(a->data, b->data, (size_t)tn_numel(a) * 4), 0);
    }
    /* The data starts 8-byte aligned. */
    FILE *f = fopen(tmp_path("w.safetensors"), "rb");
    uint8_t le[8];
    cr_assert_eq(fread(le, 1, 8, f), 8);
    fclose(f);
    cr_assert_eq(le[0] % 8, 0);
    wt_free(d);
    wt_free(r);
}

Test(safetensors, duplicate_add_is_an_error)
{
    cl_err err = {0};
    wt_dict *d = wt_new(&err);
    cr_assert_eq(wt_add(d, "a", tn_new1(1, &err), &err), 0);
    cr_assert_eq(wt_add(d, "a", tn_new1(1, &err), &err), -1);
    cr_assert(strstr(err.msg, "already") != NULL, "%s", err.msg);
    cr_assert_eq(d->count, 1);
    wt_free(d);
}

Test(safetensors, reads_other_dtypes_and_metadata)
{
    uint8_t data[2 + 16 + 8 + 2];
    uint16_t h = 0x3c00; /* 1.0 in float16 */
    double dv[2] = {0.5, -3.0};
    int64_t iv = 42;
    uint16_t bf = 0xc040; /* -3.0 in bfloat16 */
    memcpy(data, &h, 2);
    memcpy(data + 2, dv, 16);
    memcpy(data + 18, &iv, 8);
    memcpy(data + 26, &bf, 2);
    write_st("d.safetensors",
             "{\"__metadata__\":{\"format\":\"pt\"},"
             "\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},"
             "\"d\":{\"shape\":[2,1],\"dtype\":\"F64\",\"data_offsets\":[2,18]},"
             "\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[18,26]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[26,28]}}",
             data, sizeof data);
    cl_err err = {0};
    wt_dict *d = wt_load(tmp_path("d.safetensors"), &err);
    cr_assert_not_null(d, "%s", err.msg);
    cr_assert_eq(wt_get(d, "h")->data[0], 1.0f);
    cr_assert_eq(wt_get(d, "d")->data[1], -3.0f);
    cr_assert_eq(wt_get(d, "d")->ndim, 2);
    cr_assert_eq(wt_get(d, "n")->ndim, 0);
    cr_assert_eq(wt_get(d, "n")->data[0], 42.0f);
    cr_assert_eq(wt_get(d, "b")->data[0], -3.0f);
    wt_free(d);
}

Test(safetensors, rejects_hostile_files)
{
    float f[4] = {1, 2, 3, 4};
    /* A header that claims 100 GB. */
    FILE *fp = fopen(tmp_path("huge.safetensors"), "wb");
    uint8_t le[8] = {0, 0, 0, 0, 0x17, 0, 0, 0};
    fwrite(le, 1, 8, fp);
    fwrite("{}", 1, 2, fp);
    fclose(fp);
    expect_fail("huge.safetensors", "header claims");
    write_st("trunc.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", f, 8);
    expect_fail("trunc.safetensors", "truncated");
    write_st("size.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", f, 16);
    expect_fail("size.safetensors", "do not hold");
    write_st("gap.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
             f, 16);
    expect_fail("gap.safetensors", "gap");
    write_st("overlap.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             f, 12);
    expect_fail("overlap.safetensors", "overlap");
    write_st("extra.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", f, 16);
    expect_fail("extra.safetensors", "cover");
    write_st("dup.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
             f, 16);
    expect_fail("dup.safetensors", "twice");
    write_st("big.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,"
             "16]}}",
             f, 16);
    expect_fail("big.safetensors", "limit");
    write_st("dtype.safetensors",
             "{\"a\":{\"dtype\":\"C64\",\"shape\":[2],\"data_offsets\":[0,16]}}", f, 16);
    expect_fail("dtype.safetensors", "not supported");
    write_st("json.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]",
             f, 16);
    expect_fail("json.safetensors", "header");
    write_st("field.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],\"x\":1}}", f, 16);
    expect_fail("field.safetensors", "unexpected");
    write_st("neg.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", f, 16);
    expect_fail("neg.safetensors", "non-negative");
    write_st("esc.safetensors",
             "{\"a\\q\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", f, 16);
    expect_fail("esc.safetensors", "escape");
    write_st("trail.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}} x", f, 16);
    expect_fail("trail.safetensors", "after");
    write_st("nul.safetensors",
             "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", f, 16);
    expect_fail("nul.safetensors", "escape");
    tmp_write("junk.bin", "0123456789abcdef", 16);
    expect_fail("junk.bin", "not a weights file");
}

/* d saved as full.safetensors (d is freed), and the file's bytes. */
static size_t saved_bytes(wt_dict *d, uint8_t *buf, size_t cap)
{
    cl_err err = {0};
    cr_assert_eq(wt_save_safetensors(d, tmp_path("full.safetensors"), &err), 0, "%s", err.msg);
    wt_free(d);
    FILE *f = fopen(tmp_path("full.safetensors"), "rb");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

Test(safetensors, every_truncation_is_rejected)
{
    cl_err err = {0};
    wt_dict *d = wt_new(&err);
    tn_tensor *t = tn_new2(3, 5, &err);
    cr_assert_eq(wt_add(d, "w", t, &err), 0);
    cr_assert_eq(wt_add(d, "b", tn_new1(5, &err), &err), 0);
    uint8_t buf[1024];
    size_t n = saved_bytes(d, buf, sizeof buf);
    for (size_t k = 1; k < n; k++) {
        tmp_write("cut.safetensors", buf, k);
        wt_dict *r = wt_load(tmp_path("cut.safetensors"), &err);
        cr_assert_null(r, "a file cut at %zu of %zu bytes must be rejected", k, n);
    }
}

/* Each byte flipped in turn: accepted or refused, never a crash or a leak
 * (ASan in tests/run.sh). */
Test(safetensors, bit_flips_never_crash)
{
    cl_err err = {0};
    wt_dict *d = wt_new(&err);
    cr_assert_eq(wt_add(d, "conv.weight", tn_new4(2, 1, 3, 3, &err), &err), 0);
    cr_assert_eq(wt_add(d, "conv.bias", tn_new1(2, &err), &err), 0);
    uint8_t buf[1024];
    size_t n = saved_bytes(d, buf, sizeof buf);
    for (size_t i = 0; i < n; i++) {
        uint8_t keep = buf[i];
        for (int k = 0; k < 2; k++) {
            buf[i] = k ? (uint8_t)(keep ^ 0x80) : (uint8_t)(keep + 1);
            tmp_write("flip.safetensors", buf, n);
            wt_dict *r = wt_load(tmp_path("flip.safetensors"), &err);
            if (r)
                wt_free(r);
            else
                cr_assert_neq(err.msg[0], '\0');
        }
        buf[i] = keep;
    }
}
