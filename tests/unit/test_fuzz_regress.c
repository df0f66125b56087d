/* Replays every input the fuzzers (fuzz/) ever crashed or hung on, from
 * tests/data/fuzz-regress/<target>/, through the same reader the fuzzer
 * calls.  A file named *.err must be refused with a message a student can
 * read; *.ok must be accepted.  Runs under ASan/UBSan in tests/run.sh, so
 * "no crash, no leak, no undefined behaviour" is checked too. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/filemap.h"
#include "engine/io/idx.h"
#include "engine/io/jpeg.h"
#include "engine/io/npy.h"
#include "engine/io/pickle.h"
#include "engine/io/png.h"
#include "engine/io/pth.h"
#include "engine/io/safetensors.h"
#include "engine/limits.h"
#include "fuzz/fuzz_util.h"
#include "kernel/lang/lens_interp.h"
#include "kernel/protocol/protocol.h"

#define REGRESS_DIR CNNLENS_SOURCE_DIR "/tests/data/fuzz-regress"
#ifndef CNNLENS_TEST_TIMEOUT_SCALE /* set by CMake; larger for valgrind builds */
#define CNNLENS_TEST_TIMEOUT_SCALE 1
#endif

typedef int (*replay_fn)(const uint8_t *data, size_t size, cl_err *err);

static int replay_png(const uint8_t *data, size_t size, cl_err *err)
{
    png_pixels px = {0};
    int rc = png_decode_file(fz_path(data, size), (int64_t)4 << 20, &px, err);
    if (rc == 0) free(px.data);
    return rc;
}

static int replay_jpeg(const uint8_t *data, size_t size, cl_err *err)
{
    uint8_t *pix = NULL;
    int w, h, c;
    int rc = jpg_decode_file(fz_path(data, size), (int64_t)4 << 20, &pix, &w, &h, &c, err);
    if (rc == 0) free(pix);
    return rc;
}

static int replay_npy(const uint8_t *data, size_t size, cl_err *err)
{
    tn_tensor *t = npy_read(fz_path(data, size), err);
    tn_free(t);
    return t ? 0 : -1;
}

static int replay_idx(const uint8_t *data, size_t size, cl_err *err)
{
    idx_array a;
    if (idx_load(fz_path(data, size), &a, err)) return -1;
    idx_free(&a);
    return 0;
}

/* Loads the bytes as a weight file with `load` (st_load, pth_load_zip or
 * pth_load_legacy, as the fuzzers choose). */
static int replay_weights(const uint8_t *data, size_t size, cl_err *err,
                          int (*load)(const fm_map *, wt_dict *, cl_err *))
{
    fm_map m;
    if (fm_open(&m, fz_path(data, size), err)) return -1;
    wt_dict *d = wt_new(err);
    int rc = d ? load(&m, d, err) : -1;
    wt_free(d);
    fm_close(&m);
    return rc;
}

static int replay_safetensors(const uint8_t *data, size_t size, cl_err *err)
{
    return replay_weights(data, size, err, st_load);
}

static int replay_pth(const uint8_t *data, size_t size, cl_err *err)
{
    int zip = size >= 2 && data[0] == 'P' && data[1] == 'K';
    return replay_weights(data, size, err, zip ? pth_load_zip : pth_load_legacy);
}

/* Every pickle of the stream must load. */
static int replay_pickle(const uint8_t *data, size_t size, cl_err *err)
{
    pk_reader *r = pk_new(err);
    if (!r) return -1;
    size_t off = 0, used = 0;
    int rc = 0;
    while (rc == 0 && off < size) {
        if (!pk_load(r, data + off, size - off, &used, err)) rc = -1;
        off += used;
    }
    pk_free(r);
    return rc;
}

/* fuzz_wire's format: a mode byte (0: no key, else keyed with the fuzz key),
 * then frames separated by 0x1e. */
static int replay_wire(const uint8_t *data, size_t size, cl_err *err)
{
    cr_assert_gt(size, 0);
    kp_frame f[64];
    size_t n = 0, start = 1;
    for (size_t i = 1; i <= size && n < 64; i++)
        if (i == size || data[i] == 0x1e) {
            f[n++] = (kp_frame){data + start, i - start};
            start = i + 1;
        }
    const char *key = data[0] % 3 ? "cnnlens-fuzz-key" : "";
    kp_signer *s = kp_signer_new("hmac-sha256", key, strlen(key), err);
    cr_assert_not_null(s);
    kp_msg m;
    int rc = kp_msg_parse(f, n, s, NULL, &m, err);
    if (rc == 0) kp_msg_clear(&m);
    kp_signer_free(s);
    return rc;
}

/* fuzz_msg's format: header JSON, 0x1e, content JSON. */
static int replay_msg(const uint8_t *data, size_t size, cl_err *err)
{
    const uint8_t *sep = memchr(data, 0x1e, size);
    cr_assert_not_null(sep, "a msg regression input holds header 0x1e content");
    kp_frame f[] = {{KP_DELIM, strlen(KP_DELIM)},
                    {"", 0},
                    {data, (size_t)(sep - data)},
                    {"{}", 2},
                    {"{}", 2},
                    {sep + 1, size - (size_t)(sep - data) - 1}};
    kp_msg m;
    if (kp_msg_parse(f, 6, NULL, NULL, &m, err)) return -1;
    kn_interp *it = lens_interp_new();
    cr_assert_not_null(it);
    const char *code = json_string_value(json_object_get(m.content, "code"));
    json_t *pos = json_object_get(m.content, "cursor_pos");
    if (code) {
        int p = json_is_integer(pos) ? (int)json_integer_value(pos) : -1;
        json_decref(it->vt->complete(it, code, p));
        json_decref(it->vt->inspect(it, code, p, 0));
        json_decref(it->vt->is_complete(it, code));
    }
    it->vt->destroy(it);
    kp_msg_clear(&m);
    return 0;
}

/* Every rgb(...) colour in an HTML rendering is three bytes (a matrix
 * holding inf once shaded its cells with (int)NaN). */
static void check_html_colours(const json_t *bundle)
{
    const char *html = json_string_value(json_object_get(bundle, "text/html"));
    for (const char *p = html; p && (p = strstr(p, "rgb(")); p += 4) {
        int r, g, b;
        cr_assert_eq(sscanf(p, "rgb(%d,%d,%d)", &r, &g, &b), 3);
        cr_assert(r >= 0 && r <= 255 && g >= 0 && g <= 255 && b >= 0 && b <= 255,
                  "bad colour in %.40s", p);
    }
}

/* A lens cell: it must finish (no hang) with an error or a result. */
static int replay_lens(const uint8_t *data, size_t size, cl_err *err)
{
    char *code = strndup((const char *)data, size);
    cr_assert_not_null(code);
    kn_interp *it = lens_interp_new();
    cr_assert_not_null(it);
    lens_interp_set_delay(it, 0);
    kn_exec_request req = {code, 0, 1, 0, 1};
    kn_output out = {0};
    kn_exec_result res;
    it->vt->execute(it, &req, &out, &res);
    int rc = res.ok ? 0 : -1;
    if (res.result) check_html_colours(res.result);
    if (!res.ok) cl_err_set(err, CL_EINVAL, "%s", res.evalue ? res.evalue : "");
    kn_exec_result_free(&res);
    json_decref(it->vt->complete(it, code, (int)strlen(code)));
    json_decref(it->vt->is_complete(it, code));
    it->vt->destroy(it);
    lim_reset(); /* a cell's `limits` must not carry over to the next file */
    free(code);
    return rc;
}

static const struct {
    const char *target;
    replay_fn fn;
} targets[] = {
    {"png", replay_png},
    {"jpeg", replay_jpeg},
    {"npy", replay_npy},
    {"idx", replay_idx},
    {"safetensors", replay_safetensors},
    {"pth", replay_pth},
    {"pickle", replay_pickle},
    {"wire", replay_wire},
    {"msg", replay_msg},
    {"lens", replay_lens},
};

static uint8_t *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Replays the files of one target's folder; returns how many there were. */
static int replay_dir(const char *target, replay_fn fn)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", REGRESS_DIR, target);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int want_ok = ends_with(e->d_name, ".ok");
        cr_assert(want_ok || ends_with(e->d_name, ".err"), "%s/%s: name it *.ok or *.err", target,
                  e->d_name);
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t size;
        uint8_t *data = read_all(path, &size);
        cl_err err = {0};
        int rc = fn(data, size, &err);
        if (want_ok) {
            cr_assert_eq(rc, 0, "%s/%s should be accepted: %s", target, e->d_name, err.msg);
        } else {
            cr_assert_eq(rc, -1, "%s/%s should be refused", target, e->d_name);
            cr_assert_gt(strlen(err.msg), 10, "%s/%s: refused without a message", target,
                         e->d_name);
        }
        free(data);
        count++;
    }
    closedir(d);
    return count;
}

Test(fuzz_regress, every_input_that_crashed_a_fuzzer_now_gets_a_clean_answer,
     .timeout = 120 * CNNLENS_TEST_TIMEOUT_SCALE)
{
    int total = 0;
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++)
        total += replay_dir(targets[i].target, targets[i].fn);
    cr_assert_gt(total, 0, "no regression inputs found in %s", REGRESS_DIR);
}

Test(fuzz_regress, every_regression_folder_names_a_fuzz_target)
{
    DIR *d = opendir(REGRESS_DIR);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int known = 0;
        for (size_t i = 0; i < sizeof targets / sizeof *targets; i++)
            known |= !strcmp(targets[i].target, e->d_name);
        cr_assert(known, "tests/data/fuzz-regress/%s is not a fuzz target", e->d_name);
    }
    closedir(d);
}
