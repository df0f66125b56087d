/* dataset — labelled image sets in MNIST's IDX format: Fashion-MNIST (found
 * without configuration), MNIST, or any folder holding the four IDX files.
 *
 * A sample is an image (1, 28, 28) scaled to [0, 1] with its label.  Datasets
 * are read once and cached: opening "fashion" "test" again (e.g. for every
 * `sample fashion test 17`) costs nothing.  The images stay bytes in memory
 * (47 MB for Fashion-MNIST's train split) and become floats one batch at a
 * time.
 *
 * Names: "fashion" (or "fashion-mnist") is Debian's dataset-fashion-mnist in
 * /usr/share/datasets/fashion-mnist (CNNLENS_FASHION_DIR overrides it);
 * "mnist" looks in /usr/share/datasets/mnist (CNNLENS_MNIST_DIR); anything
 * else is a folder with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte
 * [.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] ("-idx" or
 * ".idx" both accepted; "test-" may replace "t10k-").  Splits: "train", "test".
 *
 * Ownership: ds_open returns a dataset the caller releases with ds_close
 * (datasets are shared and read-only, so one may be used from several threads).
 * ds_sample returns a tensor the caller frees.  Strings are borrowed.
 */
#ifndef CNNLENS_DATA_DATASET_H
#define CNNLENS_DATA_DATASET_H

#include <stdint.h>

#include "engine/err.h"
#include "engine/tensor.h"

#define DS_MAX_CLASSES 256

typedef struct ds_dataset ds_dataset;

ds_dataset *ds_open(const char *name, const char *split, cl_err *err);
/* A dataset from an images file and a labels file (IDX, gzip or not). */
ds_dataset *ds_open_files(const char *images, const char *labels, cl_err *err);
void ds_close(ds_dataset *d);
/* Frees the cached datasets nobody holds (tests call it to stay leak-free). */
void ds_cache_clear(void);

/* "fashion test", or the folder and split. */
const char *ds_name(const ds_dataset *d);
int64_t ds_count(const ds_dataset *d);
/* Image shape (C, H, W): (1, 28, 28) for MNIST-style sets. */
void ds_image_shape(const ds_dataset *d, int64_t chw[3]);
/* Number of classes: 10 for Fashion-MNIST and MNIST, else 1 + the largest label. */
int ds_num_classes(const ds_dataset *d);
/* "Trouser" for Fashion-MNIST's 1, "7" for MNIST's 7; NULL out of range. */
const char *ds_class_name(const ds_dataset *d, int label);
/* The built-in Fashion-MNIST names, 10 of them. */
const char *const *ds_fashion_classes(void);

/* Label of image i; -1 when i is out of range. */
int ds_label(const ds_dataset *d, int64_t i);
/* Raw bytes of image i (H*W*C, row-major), borrowed; NULL when out of range. */
const uint8_t *ds_pixels(const ds_dataset *d, int64_t i);
/* Image i as a new (1, C, H, W) tensor in [0, 1]; its label in *label (may be NULL). */
tn_tensor *ds_sample(const ds_dataset *d, int64_t i, int *label, cl_err *err);
/* Images idx[0..n) into x, resized to (n, C, H, W), and their labels (may be NULL). */
int ds_batch(const ds_dataset *d, const int64_t *idx, int64_t n, tn_tensor *x, int *labels,
             cl_err *err);

/* perm[i] = i, then a Fisher-Yates shuffle from `seed` (the same seed gives
 * the same order on every machine). */
void ds_permutation(int64_t *perm, int64_t n, uint64_t seed);

#endif
