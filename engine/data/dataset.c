/* dataset — IDX image/label pairs, cached per file pair and shared by reference. */
#include "engine/data/dataset.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/io/idx.h"
#include "engine/rng.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define MNIST_DIR   "/usr/share/datasets/mnist"
#define CACHE_SLOTS 6

struct ds_dataset {
    char *images_path, *labels_path; /* the cache key */
    char name[256];
    int refs; /* guarded by cache_lock */
    int64_t count, chw[3];
    size_t image_bytes;
    uint8_t *pixels, *labels;
    int classes;
    int fashion; /* class names */
};

static const char *const fashion_names[] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

static const char *const digit_names[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static ds_dataset *cache[CACHE_SLOTS];

const char *const *ds_fashion_classes(void)
{
    return fashion_names;
}

static void free_dataset(ds_dataset *d)
{
    if (!d) return;
    free(d->images_path), free(d->labels_path), free(d->pixels), free(d->labels);
    free(d);
}

/* ---- reading ---- */

static int check_pair(const idx_array *im, const idx_array *lb, cl_err *err)
{
    if (im->ndim != 3 && im->ndim != 4)
        return cl_err_set(err, CL_EFORMAT,
                          "the images file has %d dimensions; an MNIST-style images file has 3 "
                          "(count, rows, columns)",
                          im->ndim);
    if (lb->ndim != 1)
        return cl_err_set(err, CL_EFORMAT,
                          "the labels file has %d dimensions; an MNIST-style labels file has 1 "
                          "(is it an images file?)",
                          lb->ndim);
    if (im->dims[0] != lb->dims[0])
        return cl_err_set(err, CL_EFORMAT, "%lld images but %lld labels: the files do not match",
                          (long long)im->dims[0], (long long)lb->dims[0]);
    if (im->dims[0] == 0) return cl_err_set(err, CL_EFORMAT, "the dataset has no images");
    for (int d = 1; d < im->ndim; d++)
        if (im->dims[d] == 0) return cl_err_set(err, CL_EFORMAT, "the images are empty (0 pixels)");
    if (im->ndim == 4 && im->dims[3] != 1 && im->dims[3] != 3)
        return cl_err_set(err, CL_EFORMAT, "images with %lld channels are not supported (1 or 3)",
                          (long long)im->dims[3]);
    return 0;
}

static int fill(ds_dataset *d, idx_array *im, idx_array *lb, cl_err *err)
{
    if (check_pair(im, lb, err)) return -1;
    d->count = im->dims[0];
    d->chw[0] = im->ndim == 4 ? im->dims[3] : 1;
    d->chw[1] = im->dims[1], d->chw[2] = im->dims[2];
    d->image_bytes = (size_t)(d->chw[0] * d->chw[1] * d->chw[2]);
    int maxl = 0;
    for (int64_t i = 0; i < d->count; i++)
        if (lb->data[i] > maxl) maxl = lb->data[i];
    d->classes = maxl + 1;
    if (d->fashion || maxl < 10) d->classes = d->classes < 10 ? 10 : d->classes;
    if (d->fashion && maxl >= 10)
        return cl_err_set(err, CL_EFORMAT,
                          "label %d found, but Fashion-MNIST has 10 classes (0..9): corrupt file?",
                          maxl);
    d->pixels = im->data, d->labels = lb->data;
    im->data = lb->data = NULL;
    return 0;
}

static ds_dataset *read_pair(const char *images, const char *labels, int fashion, cl_err *err)
{
    ds_dataset *d = calloc(1, sizeof *d);
    if (!d || !(d->images_path = strdup(images)) || !(d->labels_path = strdup(labels))) {
        free_dataset(d);
        cl_err_set(err, CL_ENOMEM, "out of memory opening a dataset");
        return NULL;
    }
    d->fashion = fashion;
    idx_array im = {0}, lb = {0};
    int rc = idx_load(images, &im, err);
    if (!rc) rc = idx_load(labels, &lb, err);
    if (!rc && fill(d, &im, &lb, err)) rc = cl_err_prefix(err, "%s", images);
    idx_free(&im), idx_free(&lb);
    if (rc) {
        free_dataset(d);
        return NULL;
    }
    snprintf(d->name, sizeof d->name, "%s", images);
    return d;
}

/* ---- the cache ---- */

static ds_dataset *cache_find(const char *images, const char *labels)
{
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i] && !strcmp(cache[i]->images_path, images) &&
            !strcmp(cache[i]->labels_path, labels))
            return cache[i];
    return NULL;
}

/* Puts d in a free slot, or in place of an unused one; if every slot is held,
 * d simply stays uncached (refs counts it, ds_close frees it). */
static void cache_put(ds_dataset *d)
{
    int slot = -1;
    for (int i = 0; i < CACHE_SLOTS && slot < 0; i++)
        if (!cache[i]) slot = i;
    for (int i = 0; i < CACHE_SLOTS && slot < 0; i++)
        if (!cache[i]->refs) slot = i;
    if (slot < 0) return;
    free_dataset(cache[slot]);
    cache[slot] = d;
}

static int is_cached(const ds_dataset *d)
{
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i] == d) return 1;
    return 0;
}

static ds_dataset *open_pair(const char *images, const char *labels, int fashion, const char *name,
                             cl_err *err)
{
    pthread_mutex_lock(&cache_lock);
    ds_dataset *d = cache_find(images, labels);
    if (d) {
        d->refs++;
        pthread_mutex_unlock(&cache_lock);
        return d;
    }
    pthread_mutex_unlock(&cache_lock);
    /* Read outside the lock: Fashion-MNIST's train split takes a moment. */
    d = read_pair(images, labels, fashion, err);
    if (!d) return NULL;
    if (name) snprintf(d->name, sizeof d->name, "%s", name);
    pthread_mutex_lock(&cache_lock);
    ds_dataset *other = cache_find(images, labels);
    if (other) { /* another thread read it meanwhile */
        free_dataset(d);
        d = other;
    } else {
        cache_put(d);
    }
    d->refs++;
    pthread_mutex_unlock(&cache_lock);
    return d;
}

void ds_close(ds_dataset *d)
{
    if (!d) return;
    pthread_mutex_lock(&cache_lock);
    d->refs--;
    if (d->refs == 0 && !is_cached(d)) free_dataset(d);
    pthread_mutex_unlock(&cache_lock);
}

void ds_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i] && !cache[i]->refs) {
            free_dataset(cache[i]);
            cache[i] = NULL;
        }
    pthread_mutex_unlock(&cache_lock);
}

/* ---- finding the files ---- */

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* dir/PREFIX-KIND-idxN-ubyte with the spelling variants of MNIST mirrors. */
static int find_file(const char *dir, const char *split, const char *kind, int nd, char *out,
                     size_t n)
{
    const char *prefixes[2] = {!strcmp(split, "train") ? "train" : "t10k",
                               !strcmp(split, "train") ? "train" : "test"};
    static const char *const seps[] = {"-", "."};
    static const char *const exts[] = {".gz", ""};
    for (int p = 0; p < 2; p++)
        for (int s = 0; s < 2; s++)
            for (int e = 0; e < 2; e++) {
                snprintf(out, n, "%s/%s-%s%sidx%d-ubyte%s", dir, prefixes[p], kind, seps[s], nd,
                         exts[e]);
                if (is_file(out)) return 0;
            }
    return -1;
}

static const char *env_or(const char *var, const char *dflt)
{
    const char *v = getenv(var);
    return v && *v ? v : dflt;
}

ds_dataset *ds_open(const char *name, const char *split, cl_err *err)
{
    if (strcmp(split, "train") && strcmp(split, "test")) {
        cl_err_set(err, CL_EINVAL, "unknown split '%s': use train or test", split);
        return NULL;
    }
    int fashion = !strcmp(name, "fashion") || !strcmp(name, "fashion-mnist") ||
                  !strcmp(name, "fashion_mnist");
    int mnist = !strcmp(name, "mnist");
    const char *dir = fashion ? env_or("CNNLENS_FASHION_DIR", FASHION_DIR)
                      : mnist ? env_or("CNNLENS_MNIST_DIR", MNIST_DIR)
                              : name;
    if (!is_dir(dir)) {
        if (fashion)
            cl_err_set(err, CL_EIO,
                       "Fashion-MNIST is not installed: %s is missing (sudo apt install "
                       "dataset-fashion-mnist, or set CNNLENS_FASHION_DIR)",
                       dir);
        else if (mnist)
            cl_err_set(err, CL_EIO,
                       "MNIST is not installed: %s is missing (set CNNLENS_MNIST_DIR, or name "
                       "the folder holding its IDX files)",
                       dir);
        else
            cl_err_set(err, CL_EIO,
                       "no dataset '%s': give 'fashion', 'mnist' or a folder holding MNIST-style "
                       "IDX files",
                       name);
        return NULL;
    }
    if (!fashion && strstr(dir, "fashion")) fashion = 1;
    char images[4096], labels[4096];
    if (find_file(dir, split, "images", 3, images, sizeof images) ||
        find_file(dir, split, "labels", 1, labels, sizeof labels)) {
        cl_err_set(err, CL_EIO,
                   "%s has no %s split: expected %s-images-idx3-ubyte[.gz] and "
                   "%s-labels-idx1-ubyte[.gz]",
                   dir, split, !strcmp(split, "train") ? "train" : "t10k",
                   !strcmp(split, "train") ? "train" : "t10k");
        return NULL;
    }
    char title[256];
    snprintf(title, sizeof title, "%s %s", fashion && dir != name ? "fashion" : name, split);
    return open_pair(images, labels, fashion, title, err);
}

ds_dataset *ds_open_files(const char *images, const char *labels, cl_err *err)
{
    return open_pair(images, labels, strstr(images, "fashion") != NULL, NULL, err);
}

/* ---- access ---- */

const char *ds_name(const ds_dataset *d)
{
    return d->name;
}

int64_t ds_count(const ds_dataset *d)
{
    return d->count;
}

void ds_image_shape(const ds_dataset *d, int64_t chw[3])
{
    for (int i = 0; i < 3; i++) chw[i] = d->chw[i];
}

int ds_num_classes(const ds_dataset *d)
{
    return d->classes;
}

const char *ds_class_name(const ds_dataset *d, int label)
{
    if (label < 0 || label >= d->classes) return NULL;
    if (label >= 10) return NULL;
    return d->fashion ? fashion_names[label] : digit_names[label];
}

int ds_label(const ds_dataset *d, int64_t i)
{
    return i >= 0 && i < d->count ? d->labels[i] : -1;
}

const uint8_t *ds_pixels(const ds_dataset *d, int64_t i)
{
    return i >= 0 && i < d->count ? d->pixels + (size_t)i * d->image_bytes : NULL;
}

/* IDX stores HWC for colour images; tensors are CHW. */
static void to_float(const ds_dataset *d, const uint8_t *src, float *dst)
{
    const float s = 1.0f / 255.0f;
    int64_t c = d->chw[0], hw = d->chw[1] * d->chw[2];
    for (int64_t j = 0; j < hw; j++)
        for (int64_t k = 0; k < c; k++) dst[k * hw + j] = (float)src[j * c + k] * s;
}

int ds_batch(const ds_dataset *d, const int64_t *idx, int64_t n, tn_tensor *x, int *labels,
             cl_err *err)
{
    int64_t shape[4] = {n, d->chw[0], d->chw[1], d->chw[2]};
    if (n < 1) return cl_err_set(err, CL_EINVAL, "a batch needs at least one image");
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= d->count)
            return cl_err_set(err, CL_EINVAL, "image %lld is out of range: %s has %lld (0..%lld)",
                              (long long)idx[i], d->name, (long long)d->count,
                              (long long)d->count - 1);
    if (tn_resize(x, 4, shape, err)) return -1;
    for (int64_t i = 0; i < n; i++) {
        to_float(d, ds_pixels(d, idx[i]), x->data + (size_t)i * d->image_bytes);
        if (labels) labels[i] = d->labels[idx[i]];
    }
    return 0;
}

tn_tensor *ds_sample(const ds_dataset *d, int64_t i, int *label, cl_err *err)
{
    tn_tensor *x = tn_new4(1, d->chw[0], d->chw[1], d->chw[2], err);
    if (!x) return NULL;
    if (ds_batch(d, &i, 1, x, label, err)) {
        tn_free(x);
        return NULL;
    }
    return x;
}


void ds_permutation(int64_t *perm, int64_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        /* Lemire's multiply-shift: unbiased enough for n < 2^32. */
        int64_t j = (int64_t)(((rng_splitmix64(&s) >> 32) * (uint64_t)(i + 1)) >> 32);
        int64_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}
