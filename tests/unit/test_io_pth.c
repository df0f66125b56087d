/* .pth readers against hostile input: hand-built legacy pickles (a call to
 * os.system, strides past the data, lying sizes, bad opcodes), and the
 * torch.save fixtures of tests/data cut, corrupted and bit-flipped.  Run under
 * ASan by tests/run.sh, so "rejected without a crash or a leak" is checked. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/io/weights.h"
#include "tests/unit/tmpdir.h"

static void make_dir(void)
{
    tmp_make("pth");
}

TestSuite(pth, .init = make_dir, .fini = tmp_drop);

/* ---- a byte builder for pickles ---- */

typedef struct bb {
    uint8_t d[4096];
    size_t n;
} bb;

static void put(bb *b, const void *p, size_t n)
{
    cr_assert_leq(b->n + n, sizeof b->d);
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void op(bb *b, uint8_t c)
{
    put(b, &c, 1);
}

static void u32le(bb *b, uint32_t v)
{
    for (int i = 0; i < 4; i++) op(b, (uint8_t)(v >> (8 * i)));
}

static void u64le(bb *b, uint64_t v)
{
    for (int i = 0; i < 8; i++) op(b, (uint8_t)(v >> (8 * i)));
}

static void str(bb *b, const char *s)
{
    op(b, 'X');
    u32le(b, (uint32_t)strlen(s));
    put(b, s, strlen(s));
}

static void global(bb *b, const char *mod, const char *name)
{
    op(b, 'c');
    put(b, mod, strlen(mod));
    op(b, '\n');
    put(b, name, strlen(name));
    op(b, '\n');
}

static void integer(bb *b, int64_t v)
{
    op(b, 0x8a);
    op(b, 8);
    u64le(b, (uint64_t)v);
}

typedef struct spec {
    const char *mod, *fn; /* the rebuild function */
    const char *st_type;  /* storage class */
    int64_t pid_numel;    /* numel in the persistent id */
    int64_t file_numel;   /* element count written before the data */
    int64_t data_numel;   /* floats actually written */
    int64_t offset;
    int ndim;
    int64_t shape[8], stride[8];
    const uint8_t *raw_obj; /* if set: the object pickle's body, verbatim */
    size_t raw_len;
} spec;

static spec good(void)
{
    return (spec){"torch._utils",
                  "_rebuild_tensor_v2",
                  "FloatStorage",
                  12,
                  12,
                  12,
                  1,
                  2,
                  {2, 3},
                  {1, 2},
                  NULL,
                  0};
}

/* A legacy torch.save stream holding OrderedDict({"w": tensor}). */
static void write_legacy(const char *name, const spec *s)
{
    bb b = {0};
    static const uint8_t magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                    0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    put(&b, magic, sizeof magic);
    put(&b, "\x80\x02M\xe9\x03.", 6);
    put(&b, "\x80\x02}.", 4);
    op(&b, 0x80), op(&b, 2);
    if (s->raw_obj) {
        put(&b, s->raw_obj, s->raw_len);
    } else {
        global(&b, "collections", "OrderedDict");
        op(&b, ')'), op(&b, 'R'), op(&b, '(');
        str(&b, "w");
        global(&b, s->mod, s->fn);
        op(&b, '(');
        op(&b, '(');
        str(&b, "storage");
        global(&b, "torch", s->st_type);
        str(&b, "0");
        str(&b, "cpu");
        integer(&b, s->pid_numel);
        op(&b, 'N');
        op(&b, 't');
        op(&b, 'Q');
        integer(&b, s->offset);
        op(&b, '(');
        for (int i = 0; i < s->ndim; i++) integer(&b, s->shape[i]);
        op(&b, 't');
        op(&b, '(');
        for (int i = 0; i < s->ndim; i++) integer(&b, s->stride[i]);
        op(&b, 't');
        op(&b, 0x89);
        global(&b, "collections", "OrderedDict");
        op(&b, ')'), op(&b, 'R');
        op(&b, 't');
        op(&b, 'R');
        op(&b, 'u');
    }
    op(&b, '.');
    if (s->raw_obj) { /* no storages */
        put(&b, "\x80\x02].", 4);
        goto done;
    }
    put(&b,
        "\x80\x02](X\x01\x00\x00\x00\x30"
        "e.",
        12);
    u64le(&b, (uint64_t)s->file_numel);
    for (int64_t i = 0; i < s->data_numel; i++) {
        float f = (float)i;
        put(&b, &f, 4);
    }
done:;
    tmp_write(name, b.d, b.n);
}

static void expect_fail(const char *name, const char *needle)
{
    cl_err err = {0};
    wt_dict *d = wt_load(tmp_path(name), &err);
    cr_assert_null(d, "%s should be rejected", name);
    cr_assert_neq(err.code, CL_OK);
    cr_assert(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", name, err.msg,
              needle);
}

Test(pth, legacy_view_with_offset_and_strides)
{
    spec s = good();
    write_legacy("good.pth", &s);
    cl_err err = {0};
    wt_dict *d = wt_load(tmp_path("good.pth"), &err);
    cr_assert_not_null(d, "%s", err.msg);
    const tn_tensor *t = wt_get(d, "w");
    cr_assert_not_null(t);
    cr_assert_eq(t->ndim, 2);
    float want[6] = {1, 3, 5, 2, 4, 6}; /* storage 0..11, offset 1, strides (1, 2) */
    for (int i = 0; i < 6; i++) cr_assert_eq(t->data[i], want[i], "element %d", i);
    wt_free(d);
}

Test(pth, legacy_other_storage_types)
{
    spec s = good();
    s.st_type = "DoubleStorage"; /* same bytes, read as 6 doubles */
    s.pid_numel = 6, s.file_numel = 6, s.offset = 0, s.ndim = 1, s.shape[0] = 6, s.stride[0] = 1;
    write_legacy("double.pth", &s);
    cl_err err = {0};
    wt_dict *d = wt_load(tmp_path("double.pth"), &err);
    cr_assert_not_null(d, "%s", err.msg);
    cr_assert_eq(wt_get(d, "w")->shape[0], 6);
    wt_free(d);
}

Test(pth, pickle_asking_for_os_system_is_refused)
{
    spec s = good();
    s.mod = "posix", s.fn = "system";
    write_legacy("system.pth", &s);
    expect_fail("system.pth", "posix.system");
    expect_fail("system.pth", "runs no code");
    s = good();
    s.mod = "builtins", s.fn = "eval";
    write_legacy("eval.pth", &s);
    expect_fail("eval.pth", "builtins.eval");
    s = good();
    s.st_type = "os"; /* a storage type that is not one */
    write_legacy("type.pth", &s);
    expect_fail("type.pth", "torch.os");
}

Test(pth, stride_or_offset_past_the_data_is_refused)
{
    spec s = good();
    s.stride[1] = 6; /* reaches element 1 + 1 + 12 */
    write_legacy("stride.pth", &s);
    expect_fail("stride.pth", "past its storage");
    s = good();
    s.offset = 7;
    write_legacy("offset.pth", &s);
    expect_fail("offset.pth", "past its storage");
    s = good();
    s.offset = INT64_MAX - 2;
    write_legacy("offset2.pth", &s);
    expect_fail("offset2.pth", "past its storage");
    s = good();
    s.stride[0] = INT64_MAX / 2;
    write_legacy("ovf.pth", &s);
    expect_fail("ovf.pth", "past its storage");
    s = good();
    s.offset = -1;
    write_legacy("neg.pth", &s);
    expect_fail("neg.pth", "negative");
    s = good();
    s.shape[0] = -2;
    write_legacy("negdim.pth", &s);
    expect_fail("negdim.pth", "negative");
}

Test(pth, lying_sizes_are_refused)
{
    spec s = good();
    s.file_numel = (int64_t)1 << 40; /* claims 4 TB of floats */
    write_legacy("claim.pth", &s);
    expect_fail("claim.pth", "claims");
    s = good();
    s.pid_numel = 100;
    s.file_numel = 12;
    write_legacy("pid.pth", &s);
    expect_fail("pid.pth", "should hold");
    s = good();
    s.data_numel = 11;
    write_legacy("short.pth", &s);
    expect_fail("short.pth", "truncated");
    s = good();
    s.ndim = 4, s.offset = 0;
    for (int i = 0; i < 4; i++) s.shape[i] = 1 << 20, s.stride[i] = 0;
    write_legacy("huge.pth", &s);
    expect_fail("huge.pth", "limit");
    s = good();
    s.ndim = 7;
    for (int i = 0; i < 7; i++) s.shape[i] = 1, s.stride[i] = 1;
    write_legacy("dims.pth", &s);
    expect_fail("dims.pth", "dimensions");
}

Test(pth, malformed_pickles_are_refused)
{
    static const struct {
        const char *name, *body, *needle;
        size_t len;
    } cases[] = {
        {"inst.pth", "(ios\nsystem\n", "not allowed", 12},
        {"under.pth", "R", "underflow", 1},
        {"memo.pth", "h\x05", "before it is set", 2},
        {"memo2.pth",
         "N"
         "r\xff\xff\xff\x7f",
         "out of range", 6},
        {"nomark.pth", "Nt", "MARK", 2},
        {"setitem.pth", "]NNs", "not a dict", 4},
        {"append.pth", "}Na", "not a list", 3},
        {"reduce.pth", "N)R", "allowed callable", 3},
        {"long.pth",
         "\x8a\x0c"
         "abcdefghijkl",
         "too large", 14},
        {"str.pth",
         "X\xff\xff\xff\x7f"
         "abc",
         "truncated", 8},
        {"global.pth", "ctorch\nFloatStor", "truncated", 16},
        {"notdict.pth", "K\x05", "not a state_dict", 2},
        {"empty.pth", "}", "no tensors", 1},
        {"proto.pth", "\x80\x05}", "protocol 5", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        spec s = good();
        s.raw_obj = (const uint8_t *)cases[i].body;
        s.raw_len = cases[i].len;
        write_legacy(cases[i].name, &s);
        expect_fail(cases[i].name, cases[i].needle);
    }
}

static uint8_t *read_fixture(const char *name, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/data/%s", CNNLENS_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "missing fixture %s", path);
    static uint8_t buf[1 << 16];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint8_t *copy = malloc(*n);
    memcpy(copy, buf, *n);
    return copy;
}

static void check_tiny(const wt_dict *d)
{
    cr_assert_eq(d->count, 4);
    cr_assert_str_eq(d->items[0].name, "w");
    cr_assert_str_eq(d->items[1].name, "t");
    const tn_tensor *t = wt_get(d, "t");
    /* arange(12).view(3,4).t()[1:, :] */
    float want[9] = {1, 5, 9, 2, 6, 10, 3, 7, 11};
    for (int i = 0; i < 9; i++) cr_assert_eq(t->data[i], want[i]);
    cr_assert_eq(wt_get(d, "h")->data[1], -2.0f);
    cr_assert_eq(wt_get(d, "n")->data[0], 7.0f);
    cr_assert_eq(wt_get(d, "w")->data[5], 5.0f);
}

/* tests/data's torch.save files of the same state_dict (see check_tiny). */
static const char *const tiny_files[3] = {"tiny.pth", "tiny_legacy.pth", "tiny_deflated.pth"};

/* The n bytes at d, written as `name` and loaded. */
static wt_dict *load_bytes(const char *name, const void *d, size_t n, cl_err *err)
{
    tmp_write(name, d, n);
    return wt_load(tmp_path(name), err);
}

Test(pth, torch_save_fixtures_load)
{
    for (int k = 0; k < 3; k++) {
        size_t n;
        uint8_t *d = read_fixture(tiny_files[k], &n);
        cl_err err = {0};
        wt_dict *w = load_bytes(tiny_files[k], d, n, &err);
        free(d);
        cr_assert_not_null(w, "%s: %s", tiny_files[k], err.msg);
        check_tiny(w);
        wt_free(w);
    }
}

Test(pth, every_truncation_is_refused)
{
    for (int k = 0; k < 3; k++) {
        size_t n;
        uint8_t *d = read_fixture(tiny_files[k], &n);
        for (size_t cut = 0; cut < n; cut++) {
            cl_err err = {0};
            wt_dict *w = load_bytes("cut.pth", d, cut, &err);
            cr_assert_null(w, "%s cut to %zu of %zu bytes was accepted", tiny_files[k], cut, n);
            cr_assert_neq(err.msg[0], '\0');
        }
        free(d);
    }
}

/* Offsets of the central-directory entries ("PK\1\2") and of the end record. */
static size_t find_sig(const uint8_t *d, size_t n, const char *sig, size_t from)
{
    for (size_t i = from; i + 4 <= n; i++)
        if (!memcmp(d + i, sig, 4)) return i;
    return (size_t)-1;
}

static void set_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

Test(pth, zip_offsets_outside_the_file_are_refused)
{
    size_t n;
    uint8_t *orig = read_fixture("tiny.pth", &n), *d = malloc(n);
    size_t cd = find_sig(orig, n, "PK\x01\x02", 0);
    cr_assert_neq(cd, (size_t)-1);
    /* Every entry's local-header offset in turn points past the end. */
    for (size_t at = cd; at != (size_t)-1; at = find_sig(orig, n, "PK\x01\x02", at + 4)) {
        memcpy(d, orig, n);
        set_u32(d + at + 42, 0x7ffffff0u);
        tmp_write("off.pth", d, n);
        expect_fail("off.pth", "outside the file");
        memcpy(d, orig, n);
        set_u32(d + at + 20, 0x7ffffff0u); /* compressed size */
        set_u32(d + at + 24, 0x7ffffff0u);
        cl_err err = {0};
        cr_assert_null(load_bytes("size.pth", d, n, &err));
    }
    size_t eocd = find_sig(orig, n, "PK\x05\x06", 0);
    cr_assert_neq(eocd, (size_t)-1);
    memcpy(d, orig, n);
    set_u32(d + eocd + 16, 0x7ffffff0u); /* directory offset */
    tmp_write("cd.pth", d, n);
    expect_fail("cd.pth", "outside the file");
    memcpy(d, orig, n);
    d[eocd + 10] = 0xff, d[eocd + 11] = 0x7f; /* entry count */
    d[eocd + 8] = 0xff, d[eocd + 9] = 0x7f;
    cl_err err = {0};
    cr_assert_null(load_bytes("count.pth", d, n, &err));
    free(d);
    free(orig);
}

/* Flips each byte of each fixture: the reader may accept or refuse, but must
 * neither crash nor leak (checked by ASan in tests/run.sh). */
Test(pth, bit_flips_never_crash)
{
    for (int k = 0; k < 3; k++) {
        size_t n;
        uint8_t *d = read_fixture(tiny_files[k], &n);
        for (size_t i = 0; i < n; i++) {
            uint8_t keep = d[i];
            d[i] ^= (uint8_t)(0x5a + i);
            cl_err err = {0};
            wt_dict *w = load_bytes("flip.pth", d, n, &err);
            if (w)
                wt_free(w);
            else
                cr_assert_neq(err.msg[0], '\0');
            d[i] = keep;
        }
        free(d);
    }
}

/* torch's archives carry zip64 end records; a writer that saturates the
 * classic record's fields makes the reader use them. */
Test(pth, zip64_end_record_is_used_when_the_classic_one_is_saturated)
{
    size_t n;
    uint8_t *d = read_fixture("tiny.pth", &n);
    size_t eocd = find_sig(d, n, "PK\x05\x06", 0);
    cr_assert_neq(eocd, (size_t)-1);
    cr_assert_neq(find_sig(d, n, "PK\x06\x06", 0), (size_t)-1, "fixture lacks a zip64 record");
    memset(d + eocd + 8, 0xff, 4);  /* entry counts */
    memset(d + eocd + 12, 0xff, 8); /* directory size and offset */
    cl_err err = {0};
    wt_dict *w = load_bytes("z64.pth", d, n, &err);
    cr_assert_not_null(w, "%s", err.msg);
    check_tiny(w);
    wt_free(w);
    /* ... and a zip64 record pointing outside the file is refused. */
    size_t loc = find_sig(d, n, "PK\x06\x07", 0);
    set_u32(d + loc + 8, 0x7ffffff0u);
    tmp_write("z64bad.pth", d, n);
    expect_fail("z64bad.pth", "outside the file");
    free(d);
}

/* Python 2 era legacy files: str keys as SHORT_BINSTRING, OrderedDict built
 * from a list of [key, value] lists, and _rebuild_tensor (v1). */
Test(pth, python2_style_legacy_pickle)
{
    bb b = {0};
    global(&b, "collections", "OrderedDict");
    op(&b, ']');
    op(&b, '(');
    op(&b, ']');
    op(&b, '(');
    op(&b, 'U'), op(&b, 6), put(&b, "conv.w", 6);
    global(&b, "torch._utils", "_rebuild_tensor");
    op(&b, '(');
    op(&b, '(');
    op(&b, 'U'), op(&b, 7), put(&b, "storage", 7);
    global(&b, "torch", "FloatStorage");
    op(&b, 'U'), op(&b, 1), put(&b, "0", 1);
    op(&b, 'U'), op(&b, 3), put(&b, "cpu", 3);
    op(&b, 'K'), op(&b, 12);
    op(&b, 'N');
    op(&b, 't');
    op(&b, 'Q');
    op(&b, 'K'), op(&b, 0);
    op(&b, 'K'), op(&b, 3), op(&b, 'K'), op(&b, 4), op(&b, 0x86); /* TUPLE2 */
    op(&b, 'K'), op(&b, 4), op(&b, 'K'), op(&b, 1), op(&b, 0x86);
    op(&b, 't');
    op(&b, 'R');
    op(&b, 'e');  /* APPENDS: [key, tensor] */
    op(&b, 'e');  /* APPENDS: the pair into the outer list */
    op(&b, 0x85); /* TUPLE1: (list,) */
    op(&b, 'R');
    /* The object pickle is followed by the real storage list and data. */
    bb full = {0};
    static const uint8_t magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                    0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    put(&full, magic, sizeof magic);
    put(&full, "\x80\x02M\xe9\x03.", 6);
    put(&full, "\x80\x02}.", 4);
    op(&full, 0x80), op(&full, 2);
    put(&full, b.d, b.n);
    op(&full, '.');
    put(&full,
        "\x80\x02](U\x01"
        "0e.",
        9);
    u64le(&full, 12);
    for (int i = 0; i < 12; i++) {
        float f = (float)i * 0.5f;
        put(&full, &f, 4);
    }
    cl_err err = {0};
    wt_dict *w = load_bytes("py2.pth", full.d, full.n, &err);
    cr_assert_not_null(w, "%s", err.msg);
    const tn_tensor *t = wt_get(w, "conv.w");
    cr_assert_not_null(t);
    cr_assert_eq(t->shape[0], 3);
    cr_assert_eq(t->shape[1], 4);
    cr_assert_eq(t->data[11], 5.5f);
    wt_free(w);
}

/* A deflated entry claiming far more than deflate can produce is refused
 * before anything is allocated for it. */
Test(pth, deflate_bomb_claims_are_refused)
{
    size_t n;
    uint8_t *d = read_fixture("tiny_deflated.pth", &n);
    size_t cd = find_sig(d, n, "PK\x01\x02", 0);
    cr_assert_neq(cd, (size_t)-1);
    cr_assert_eq(d[cd + 10], 8, "the first entry should be deflated");
    set_u32(d + cd + 24, 0x3ffffff0u); /* 1 GiB for a tiny data.pkl */
    tmp_write("bomb.pth", d, n);
    expect_fail("bomb.pth", "impossible");
    free(d);
}
