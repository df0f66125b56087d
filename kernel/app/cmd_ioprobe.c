/* cmd_ioprobe — `cnnlens io-probe`, a hidden subcommand that drives the file
 * readers and the image pipeline from tests (tests/py/test_io*.py,
 * test_image*.py), so they can compare cnnlens with PyTorch, NumPy and OpenCV.
 *
 *   cnnlens io-probe weights IN [OUT.safetensors] [--list] [--mem]
 *       reads a .pth (zip or legacy) or .safetensors; --list prints
 *       "name<TAB>[shape]<TAB>sum" lines; --mem prints the peak resident size
 *       before and after loading ("rss_kb BEFORE AFTER") and the file size
 *   cnnlens io-probe npy IN OUT.npy
 *   cnnlens io-probe image IN OUT.npy [STEP]...
 *       STEP: resize H W | resize-short S | crop H W | normalize imagenet|half|none
 *             | preprocess imagenet|half
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/image.h"
#include "engine/io/npy.h"
#include "engine/io/weights.h"
#include "kernel/app/commands.h"

/* The peak resident size (VmHWM); unlike getrusage's ru_maxrss it starts
 * afresh at exec, so a parent's size does not leak into the measurement. */
static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static int fail(const cl_err *err)
{
    fprintf(stderr, "error: %s\n", err->msg);
    return 1;
}

static void list_weights(const wt_dict *d)
{
    char shape[128];
    for (size_t i = 0; i < d->count; i++) {
        const tn_tensor *t = d->items[i].t;
        double sum = 0;
        for (int64_t k = 0; k < tn_numel(t); k++) sum += t->data[k];
        printf("%s\t%s\t%.9g\n", d->items[i].name, tn_shape_str(t, shape, sizeof shape), sum);
    }
}

static int probe_weights(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    int list = 0, mem = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--list"))
            list = 1;
        else if (!strcmp(argv[i], "--mem"))
            mem = 1;
        else if (!in)
            in = argv[i];
        else
            out = argv[i];
    }
    if (!in) {
        fprintf(stderr, "usage: cnnlens io-probe weights IN [OUT.safetensors] [--list] [--mem]\n");
        return 2;
    }
    cl_err err = {0};
    long before = peak_rss_kb();
    wt_dict *d = wt_load(in, &err);
    long after = peak_rss_kb();
    if (!d) return fail(&err);
    if (mem) {
        struct stat st;
        stat(in, &st);
        printf("rss_kb %ld %ld\nfile_bytes %lld\n", before, after, (long long)st.st_size);
    }
    if (list) list_weights(d);
    int rc = out && wt_save_safetensors(d, out, &err) ? fail(&err) : 0;
    wt_free(d);
    return rc;
}

static int probe_npy(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: cnnlens io-probe npy IN OUT.npy\n");
        return 2;
    }
    cl_err err = {0};
    tn_tensor *t = npy_read(argv[0], &err);
    if (!t) return fail(&err);
    int rc = npy_write(argv[1], t, &err) ? fail(&err) : 0;
    tn_free(t);
    return rc;
}

static int parse_norm(const char *s, img_norm *n)
{
    if (!strcmp(s, "imagenet"))
        *n = IMG_NORM_IMAGENET;
    else if (!strcmp(s, "half"))
        *n = IMG_NORM_HALF;
    else if (!strcmp(s, "none"))
        *n = IMG_NORM_NONE;
    else
        return -1;
    return 0;
}

/* Applies one pipeline step at argv[*i]; replaces *x. */
static int image_step(tn_tensor **x, int argc, char **argv, int *i, cl_err *err)
{
    const char *op = argv[*i];
    int nargs = !strcmp(op, "resize") || !strcmp(op, "crop") ? 2 : 1;
    if (*i + nargs >= argc) return cl_err_set(err, CL_EINVAL, "step '%s' lacks arguments", op);
    const char *a = argv[*i + 1], *b = nargs == 2 ? argv[*i + 2] : NULL;
    *i += nargs + 1;
    tn_tensor *y = NULL;
    if (!strcmp(op, "resize")) {
        y = img_resize(*x, atoi(a), atoi(b), err);
    } else if (!strcmp(op, "resize-short")) {
        y = img_resize_short(*x, atoi(a), err);
    } else if (!strcmp(op, "crop")) {
        y = img_center_crop(*x, atoi(a), atoi(b), err);
    } else if (!strcmp(op, "preprocess")) {
        y = img_preprocess(*x, a, err);
    } else if (!strcmp(op, "normalize")) {
        img_norm n;
        if (parse_norm(a, &n)) return cl_err_set(err, CL_EINVAL, "unknown normalisation '%s'", a);
        return img_normalize(*x, n, err);
    } else {
        return cl_err_set(err, CL_EINVAL, "unknown step '%s'", op);
    }
    if (!y) return -1;
    tn_free(*x);
    *x = y;
    return 0;
}

static int probe_image(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cnnlens io-probe image IN OUT.npy [STEP]...\n");
        return 2;
    }
    cl_err err = {0};
    tn_tensor *x = img_load(argv[0], &err);
    if (!x) return fail(&err);
    int rc = 0;
    for (int i = 2; !rc && i < argc;) rc = image_step(&x, argc, argv, &i, &err);
    if (!rc) rc = npy_write(argv[1], x, &err);
    tn_free(x);
    return rc ? fail(&err) : 0;
}

int app_ioprobe(int argc, char **argv)
{
    if (argc >= 1 && !strcmp(argv[0], "weights")) return probe_weights(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "npy")) return probe_npy(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "image")) return probe_image(argc - 1, argv + 1);
    fprintf(stderr, "usage: cnnlens io-probe weights|npy|image ...\n");
    return 2;
}
