/* IDX reading and datasets: real Fashion-MNIST, and hand-made files that are
 * gzip or not, corrupt, truncated or of the wrong shape. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/data/dataset.h"
#include "engine/io/idx.h"

static char tmpdir[64];

static void make_dir(void)
{
    strcpy(tmpdir, "/tmp/cnnlens-idx-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void drop_dir(void)
{
    char cmd[128];
    ds_cache_clear();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(idx, .init = make_dir, .fini = drop_dir);

static const char *path_of(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *data, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(gzwrite(f, data, (unsigned)n), (int)n);
        cr_assert_eq(gzclose(f), Z_OK);
        return;
    }
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* An IDX u8 file of the given dims whose byte i is (i * 7) % 256. */
static size_t make_idx(uint8_t *buf, int ndim, const uint32_t *dims)
{
    size_t n = 1, off = 4 + 4 * (size_t)ndim;
    buf[0] = buf[1] = 0, buf[2] = 8, buf[3] = (uint8_t)ndim;
    for (int d = 0; d < ndim; d++) {
        uint8_t *p = buf + 4 + 4 * d;
        p[0] = (uint8_t)(dims[d] >> 24), p[1] = (uint8_t)(dims[d] >> 16);
        p[2] = (uint8_t)(dims[d] >> 8), p[3] = (uint8_t)dims[d];
        n *= dims[d];
    }
    for (size_t i = 0; i < n; i++) buf[off + i] = (uint8_t)((i * 7) % 256);
    return off + n;
}

static uint8_t buf[1 << 16];

Test(idx, reads_plain_and_gzip_alike)
{
    uint32_t dims[3] = {5, 4, 3};
    size_t n = make_idx(buf, 3, dims);
    write_bytes(path_of("a.idx"), buf, n, 0);
    write_bytes(path_of("a.idx.gz"), buf, n, 1);
    idx_array a, b;
    cl_err err = {0};
    cr_assert_eq(idx_load(path_of("a.idx"), &a, &err), 0, "%s", err.msg);
    cr_assert_eq(idx_load(path_of("a.idx.gz"), &b, &err), 0, "%s", err.msg);
    cr_assert_eq(a.ndim, 3);
    cr_assert_eq(a.dims[0], 5);
    cr_assert_eq(a.dims[2], 3);
    cr_assert_eq(a.size, 60);
    cr_assert_eq(b.size, 60);
    cr_assert_eq(memcmp(a.data, b.data, 60), 0);
    cr_assert_eq(a.data[59], (59 * 7) % 256);
    idx_free(&a), idx_free(&b);
}

static void expect_error(const char *path, const char *needle)
{
    idx_array a;
    cl_err err = {0};
    cr_assert_eq(idx_load(path, &a, &err), -1);
    cr_assert_eq(err.code == CL_EFORMAT || err.code == CL_EIO, 1);
    cr_assert_not_null(strstr(err.msg, needle), "message: %s", err.msg);
    cr_assert_null(a.data);
}

Test(idx, rejects_truncated_and_padded_data)
{
    uint32_t dims[3] = {5, 4, 3};
    size_t n = make_idx(buf, 3, dims);
    write_bytes(path_of("short"), buf, n - 1, 0);
    expect_error(path_of("short"), "promises 60 bytes of data but the file has 59");
    write_bytes(path_of("long.gz"), buf, n + 1, 1);
    expect_error(path_of("long.gz"), "promises 60 bytes of data but the file has 61");
    write_bytes(path_of("hdr"), buf, 9, 0);
    expect_error(path_of("hdr"), "header is truncated");
}

Test(idx, rejects_bad_magic_type_and_dims)
{
    uint32_t dims[1] = {4};
    size_t n = make_idx(buf, 1, dims);
    buf[0] = 0x1f;
    write_bytes(path_of("magic"), buf, n, 0);
    expect_error(path_of("magic"), "not an IDX file");
    buf[0] = 0, buf[2] = 0x0D; /* float32 */
    write_bytes(path_of("type"), buf, n, 0);
    expect_error(path_of("type"), "only unsigned bytes");
    buf[2] = 8, buf[3] = 9;
    write_bytes(path_of("ndim"), buf, n, 0);
    expect_error(path_of("ndim"), "9 dimensions");
    /* Dimensions whose product overflows any sane size. */
    uint8_t huge[16] = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 9};
    write_bytes(path_of("huge"), huge, sizeof huge, 0);
    expect_error(path_of("huge"), "corrupt");
}

Test(idx, rejects_corrupt_gzip)
{
    uint32_t dims[3] = {50, 28, 28};
    size_t n = make_idx(buf, 3, dims);
    write_bytes(path_of("c.gz"), buf, n, 1);
    FILE *f = fopen(path_of("c.gz"), "rb");
    uint8_t z[1 << 16];
    size_t zn = fread(z, 1, sizeof z, f);
    fclose(f);
    write_bytes(path_of("cut.gz"), z, zn / 2, 0);
    expect_error(path_of("cut.gz"), "gzip");
    for (size_t i = 20; i < zn - 8; i += 7) z[i] ^= 0x5a;
    write_bytes(path_of("bad.gz"), z, zn, 0);
    expect_error(path_of("bad.gz"), "gzip");
    expect_error(path_of("missing.gz"), "cannot open");
}

static void write_pair(const char *dir_images, const char *dir_labels, uint32_t n, uint32_t rows,
                       uint32_t labels_n, int label_ndim)
{
    uint32_t di[3] = {n, rows, 28};
    write_bytes(dir_images, buf, make_idx(buf, 3, di), 1);
    uint32_t dl[2] = {labels_n, 1};
    size_t ln = make_idx(buf, label_ndim, dl);
    for (size_t i = 0; i < labels_n; i++) buf[4 + 4 * label_ndim + i] = (uint8_t)(i % 10);
    write_bytes(dir_labels, buf, ln, 0);
}

Test(idx, wrong_shaped_dataset_files_give_clear_errors)
{
    cl_err err = {0};
    write_pair(path_of("i1"), path_of("l1"), 6, 28, 5, 1);
    cr_assert_null(ds_open_files(path_of("i1"), path_of("l1"), &err));
    cr_assert_not_null(strstr(err.msg, "6 images but 5 labels"), "%s", err.msg);
    write_pair(path_of("i2"), path_of("l2"), 6, 28, 6, 2);
    cr_assert_null(ds_open_files(path_of("i2"), path_of("l2"), &err));
    cr_assert_not_null(strstr(err.msg, "labels file has 2 dimensions"), "%s", err.msg);
    /* Labels given as images. */
    cr_assert_null(ds_open_files(path_of("l1"), path_of("i1"), &err));
    cr_assert_not_null(strstr(err.msg, "dimensions"), "%s", err.msg);
}

Test(idx, a_user_folder_works_and_samples_are_scaled)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/digits", tmpdir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    char im[300], lb[300];
    snprintf(im, sizeof im, "%s/train-images.idx3-ubyte.gz", dir);
    snprintf(lb, sizeof lb, "%s/train-labels.idx1-ubyte", dir);
    write_pair(im, lb, 12, 28, 12, 1);
    cl_err err = {0};
    ds_dataset *d = ds_open(dir, "train", &err);
    cr_assert_not_null(d, "%s", err.msg);
    cr_assert_eq(ds_count(d), 12);
    cr_assert_eq(ds_num_classes(d), 10);
    cr_assert_str_eq(ds_class_name(d, 7), "7");
    cr_assert_eq(ds_label(d, 11), 1);
    int label;
    tn_tensor *x = ds_sample(d, 3, &label, &err);
    cr_assert_not_null(x);
    cr_assert_eq(label, 3);
    cr_assert_eq(x->shape[1], 1);
    cr_assert_eq(x->shape[2], 28);
    size_t first = 3 * 784;
    cr_assert_float_eq(x->data[0], (float)((first * 7) % 256) / 255.0f, 1e-7);
    cr_assert_float_eq(x->data[783], (float)(((first + 783) * 7) % 256) / 255.0f, 1e-7);
    tn_free(x);
    cr_assert_null(ds_sample(d, 12, NULL, &err));
    cr_assert_not_null(strstr(err.msg, "out of range"), "%s", err.msg);
    ds_close(d);
    cr_assert_null(ds_open(dir, "test", &err));
    cr_assert_not_null(strstr(err.msg, "no test split"), "%s", err.msg);
    cr_assert_null(ds_open("/nonexistent/folder", "train", &err));
    cr_assert_not_null(strstr(err.msg, "no dataset"), "%s", err.msg);
}

Test(idx, fashion_mnist_is_found_without_configuration)
{
    cl_err err = {0};
    ds_dataset *t = ds_open("fashion", "test", &err);
    cr_assert_not_null(t, "%s", err.msg);
    ds_dataset *again = ds_open("fashion", "test", &err);
    cr_assert_eq(t, again, "the second open should come from the cache");
    ds_close(again);
    cr_assert_eq(ds_count(t), 10000);
    cr_assert_str_eq(ds_name(t), "fashion test");
    cr_assert_str_eq(ds_class_name(t, 0), "T-shirt/top");
    cr_assert_str_eq(ds_class_name(t, 9), "Ankle boot");
    /* The first test image of Fashion-MNIST is an ankle boot, the second a pullover. */
    cr_assert_eq(ds_label(t, 0), 9);
    cr_assert_eq(ds_label(t, 1), 2);
    int64_t counts[10] = {0};
    for (int64_t i = 0; i < ds_count(t); i++) counts[ds_label(t, i)]++;
    for (int c = 0; c < 10; c++) cr_assert_eq(counts[c], 1000);
    ds_close(t);
}

Test(idx, permutation_is_a_seeded_shuffle)
{
    int64_t a[1000], b[1000], c[1000];
    ds_permutation(a, 1000, 7);
    ds_permutation(b, 1000, 7);
    ds_permutation(c, 1000, 8);
    cr_assert_eq(memcmp(a, b, sizeof a), 0);
    cr_assert_neq(memcmp(a, c, sizeof a), 0);
    int seen[1000] = {0}, fixed = 0;
    for (int i = 0; i < 1000; i++) seen[a[i]]++, fixed += a[i] == i;
    for (int i = 0; i < 1000; i++) cr_assert_eq(seen[i], 1);
    cr_assert_lt(fixed, 10);
}
