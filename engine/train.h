/* train — teaching a net: cross-entropy, SGD with momentum and Adam, learning
 * rate schedules, the training loop, evaluation, and small user-defined CNNs.
 *
 * Everything follows PyTorch so that numbers can be compared with it:
 * cross-entropy is log-softmax + NLL averaged over the batch; SGD is
 * torch.optim.SGD (buf = momentum*buf + g, the first buf = g; p -= lr*buf);
 * Adam is torch.optim.Adam (bias-corrected, eps added to sqrt(v)/sqrt(1-b2^t));
 * weight decay adds wd*p to the gradient (L2, as both do); a fresh net is
 * initialised as PyTorch's default (net_init_params).
 *
 * The loop reports through cl_progress after every batch: done/total are the
 * batches so far / of the whole run, and the text reads
 * "epoch 2/3  batch 120/469  loss 0.3121  acc 88.9%  5400 img/s".
 * The cancel flag is checked between batches, so an interrupted run stops
 * within one batch (milliseconds) with CL_EINTERRUPT and the net keeps the
 * weights of the last finished batch — a usable model.
 *
 * Ownership: trn_build_sequential returns a net the caller frees with
 * net_free; trn_optim_new an optimiser freed with trn_optim_free.  The net and
 * dataset passed to trn_fit/trn_evaluate are borrowed.
 */
#ifndef CNNLENS_TRAIN_H
#define CNNLENS_TRAIN_H

#include <stdint.h>

#include "engine/data/dataset.h"
#include "engine/err.h"
#include "engine/net.h"
#include "engine/progress.h"
#include "engine/tensor.h"

typedef enum { TRN_ADAM = 0, TRN_SGD } trn_optimizer;
typedef enum { TRN_LR_CONSTANT = 0, TRN_LR_STEP, TRN_LR_COSINE } trn_schedule;

typedef struct trn_options {
    trn_optimizer optimizer; /* default Adam */
    float lr;                /* default 1e-3 (Adam); use ~0.01-0.1 for SGD */
    float momentum;          /* SGD, default 0.9 */
    float beta1, beta2, eps; /* Adam, defaults 0.9, 0.999, 1e-8 */
    float weight_decay;      /* default 0 */
    int epochs;              /* default 1 */
    int batch;               /* default 64; the last batch of an epoch may be smaller */
    uint64_t seed;           /* shuffling; default 0 */
    int shuffle;             /* default 1 */
    /* STEP: lr * gamma^(epoch / step_epochs); COSINE: lr * (1 + cos(pi t/T)) / 2
     * with t the batches done and T all batches of the run (per batch, so a
     * one-epoch run anneals too).  Default COSINE. */
    trn_schedule schedule;
    int step_epochs; /* default 1 */
    float gamma;     /* default 0.1 */
    int64_t limit;   /* train on the first `limit` images only; 0 = all */
} trn_options;

/* Fills the defaults listed above. */
void trn_options_default(trn_options *o);

/* Learning rate before batch `t` (0-based) of `total`, in epoch `epoch` (0-based). */
float trn_lr_at(const trn_options *o, long t, long total, int epoch);

typedef struct trn_stats {
    int epochs_done;   /* epochs finished completely */
    long batches_done; /* optimiser steps taken in this run */
    int64_t images;    /* images trained on */
    double loss;       /* mean loss over the last (possibly partial) epoch */
    double accuracy;   /* training accuracy over the same images, in [0, 1] */
    double seconds;
    double images_per_s;
} trn_stats;

/* Trains m on `train` (its images must fit m's input; labels < m's classes).
 * Returns -1 with CL_EINTERRUPT when cancelled: *stats (may be NULL) still
 * describes the work done, and m keeps the weights of the last finished batch.
 * Leaves m in inference mode. */
int trn_fit(net *m, const ds_dataset *train, const trn_options *o, const cl_progress *p,
            trn_stats *stats, cl_err *err);

/* ---- pieces of the loop, usable on their own ---- */

/* Mean cross-entropy of logits [n, k] against labels, as torch's
 * F.cross_entropy; if dlogits is not NULL it is resized to [n, k] and gets
 * d(loss)/d(logits) = (softmax - onehot) / n.  *correct (may be NULL) counts
 * argmax hits.  Returns 0 or -1 (a label out of range). */
int trn_cross_entropy(const tn_tensor *logits, const int *labels, tn_tensor *dlogits, double *loss,
                      int *correct, cl_err *err);

/* One forward + backward on a batch: zeroes the gradients, then leaves the
 * batch's (mean-loss) gradients in the net's params, as loss.backward() does.
 * Puts m in training mode. */
int trn_compute_grads(net *m, const tn_tensor *x, const int *labels, double *loss, int *correct,
                      cl_err *err);

typedef struct trn_optim trn_optim;
trn_optim *trn_optim_new(net *m, const trn_options *o, cl_err *err);
/* Applies the gradients now in m's params with learning rate lr. */
void trn_optim_step(trn_optim *opt, float lr);
void trn_optim_free(trn_optim *opt);

/* ---- evaluation ---- */

#define TRN_MAX_CLASSES 32

typedef struct trn_eval {
    int64_t count, correct;
    double accuracy; /* correct / count */
    double loss;     /* mean cross-entropy */
    int classes;
    /* confusion[t * classes + p]: images of true class t predicted as p */
    int64_t confusion[TRN_MAX_CLASSES * TRN_MAX_CLASSES];
} trn_eval;

/* Runs m over the first `limit` images of d (0 = all) in batches of `batch`
 * (0 = 256).  Interruptible: CL_EINTERRUPT, with *out covering what was done. */
int trn_evaluate(net *m, const ds_dataset *d, int batch, int64_t limit, const cl_progress *p,
                 trn_eval *out, cl_err *err);

/* ---- small CNNs of the user's own: `sequential [conv 25 3; maxpool 2; ...]` ---- */

typedef enum {
    TRN_CONV,    /* conv C K: C filters KxK, stride 1, no padding */
    TRN_MAXPOOL, /* maxpool K: window K, stride K */
    TRN_FLATTEN,
    TRN_DENSE, /* dense N (a flatten is implied after a conv or pool) */
    TRN_RELU,
    TRN_DROPOUT, /* dropout P: see the note at trn_build_sequential */
} trn_layer_kind;

typedef struct trn_layer {
    trn_layer_kind kind;
    int n;   /* conv: filters; dense: outputs */
    int k;   /* conv and maxpool: window */
    float p; /* dropout probability */
} trn_layer;

/* Builds a net for (c, h, w) images from layer specs.  Layers are named as a
 * student would: conv1, conv2, pool1, relu1, dense1, dropout1, flatten; the
 * last layer must be a dense giving the class scores.  Errors name the layer
 * that does not fit ("conv3 needs at least 3x3 pixels but gets 2x2").
 * Dropout is the identity here: the engine's nets have no training-time
 * dropout yet, so `dropout P` is accepted (and checked, 0 <= P < 1) but
 * changes nothing. */
net *trn_build_sequential(const char *arch, const trn_layer *layers, int count, int c, int h, int w,
                          uint64_t seed, cl_err *err);

/* Re-draws every weight and bias as PyTorch's default initialisation does
 * (uniform in +-1/sqrt(fan_in), fan_in = the weight's numel / its first
 * dimension), from this module's own generator (splitmix64, 53-bit uniforms,
 * parameters in net_param order, each weight then its bias).  The trainer owns
 * this stream so that `cnnlens train-builtin` stays reproducible whatever
 * net_init_params draws. */
void trn_init_params(net *m, uint64_t seed);

/* Writes m's parameters (names as its state_dict) to a safetensors file. */
int trn_save(net *m, const char *path, cl_err *err);

#endif
