/* vis — what a CNN looks at: class activation maps (Grad-CAM, Grad-CAM++,
 * Score-CAM, Layer-CAM, HiResCAM as pytorch-grad-cam computes them), input
 * gradients (vanilla saliency, SmoothGrad, Integrated Gradients, guided
 * backprop, deconvnet, guided Grad-CAM), occlusion maps (as Captum's
 * Occlusion), activation maximisation and fooling images.
 *
 * Common rules:
 * - `x` is a batch (N,C,H,W) in the net's input space (already normalised);
 *   methods marked "one image" want N = 1.
 * - `layer` is a node index (net_find); `cls` a class index, or -1 for the
 *   predicted class of each image.  When `cls_out` is not NULL it receives the
 *   class used for each of the N images.
 * - The target of every gradient is the raw logit (the net's last node), never
 *   the softmax, except for vis_fool which pushes the probability.
 * - Long loops report through `p` (may be NULL) and stop with CL_EINTERRUPT
 *   when it is cancelled.
 * - The net's node outputs and gradients are overwritten.
 *
 * Ownership: every tn_tensor * returned is new and the caller frees it with
 * tn_free; inputs are only read.
 */
#ifndef CNNLENS_VIS_H
#define CNNLENS_VIS_H

#include <stdint.h>

#include "engine/err.h"
#include "engine/net.h"
#include "engine/progress.h"
#include "engine/tensor.h"

/* ---- class activation maps (gradcam.c) -------------------------------- */

typedef enum {
    VIS_GRADCAM = 0, /* alpha_k = mean_ij dy/dA^k_ij; cam = ReLU(sum_k alpha_k A^k) */
    VIS_GRADCAMPP,   /* Grad-CAM++ weights (pytorch-grad-cam's closed form) */
    VIS_SCORECAM,    /* softmax over k of logit(x * norm(up(A^k))), no gradients */
    VIS_LAYERCAM,    /* ReLU(sum_k ReLU(dy/dA^k) * A^k) */
    VIS_HIRESCAM,    /* ReLU(sum_k dy/dA^k * A^k) */
} vis_cam_kind;

/* Name <-> kind ("gradcam", "gradcam++", "scorecam", "layercam", "hirescam");
 * vis_cam_kind_parse returns -1 with a "did you mean" error when unknown. */
const char *vis_cam_kind_name(vis_cam_kind k);
int vis_cam_kind_parse(const char *name, vis_cam_kind *out, cl_err *err);

/* The raw maps (N,h,w) at the layer's resolution: after the final ReLU,
 * before any normalisation (pytorch-grad-cam's `cam` before scale_cam_image).
 * The layer must have feature maps (N,K,h,w).  Use rd_cam_resize for the
 * normalised, upsampled map pytorch-grad-cam returns. */
tn_tensor *vis_cam(net *m, const tn_tensor *x, int layer, int cls, vis_cam_kind kind,
                   const cl_progress *p, int *cls_out, cl_err *err);

/* ---- input gradients (saliency.c, guided.c) --------------------------- */

/* d logit[cls] / d x with the given ReLU rule: NET_RELU_PLAIN (the gradient),
 * NET_RELU_GUIDED (guided backprop), NET_RELU_DECONV (deconvnet).  (N,C,H,W). */
tn_tensor *vis_input_grad(net *m, const tn_tensor *x, int cls, net_relu_rule rule, int *cls_out,
                          cl_err *err);

/* Guided Grad-CAM, one image: the Grad-CAM map normalised and upsampled to
 * the input (rd_cam_resize), times the guided-backprop gradient, per channel:
 * (C,H,W), raw (display with rd_guided_display). */
tn_tensor *vis_guided_gradcam(net *m, const tn_tensor *x, int layer, int cls, int *cls_out,
                              cl_err *err);

/* Vanilla saliency (Simonyan 2013): max over channels of |d logit / d x|: (N,H,W). */
tn_tensor *vis_saliency(net *m, const tn_tensor *x, int cls, int *cls_out, cl_err *err);

/* SmoothGrad (Smilkov 2017), one image: the mean over `samples` noisy copies
 * x + N(0, (noise * (max x - min x))^2) of |d logit / d x| (as Captum's
 * NoiseTunnel over Saliency), then the max over channels: (1,H,W).  The class
 * is fixed from the clean image.  Noise drawn from `seed` (xoshiro256**). */
tn_tensor *vis_smoothgrad(net *m, const tn_tensor *x, int cls, int samples, float noise,
                          uint64_t seed, const cl_progress *p, int *cls_out, cl_err *err);

/* Integrated Gradients (Sundararajan 2017) as Captum computes it by default
 * (Gauss-Legendre with `steps` points), one image: (x - b) * sum_i w_i
 * grad(b + a_i (x - b)); baseline b (1,C,H,W) or NULL for zeros.  (1,C,H,W). */
tn_tensor *vis_integrated_gradients(net *m, const tn_tensor *x, int cls, const tn_tensor *baseline,
                                    int steps, const cl_progress *p, int *cls_out, cl_err *err);

/* ---- occlusion (occlusion.c) ------------------------------------------ */

typedef struct vis_occlusion_opts {
    int window_h, window_w; /* the patch (all channels); 0 = 16 */
    int stride_h, stride_w; /* 0 = 8 */
    float baseline;         /* value of the occluded pixels, in the input space (0) */
    int batch; /* occluded copies per forward pass; 0 = a whole row of windows, at most 16
                  copies and 16 MiB of input */
} vis_occlusion_opts;

/* Captum's Occlusion, one image: windows start at k*stride on each axis,
 * ceil((D - w)/s) + 1 of them, the last cropped at the edge; each scores
 * logit(x) - logit(occluded); a pixel's value is the mean over the windows
 * covering it.  Returns (1,H,W) (Captum repeats it over the C channels). */
tn_tensor *vis_occlusion(net *m, const tn_tensor *x, int cls, const vis_occlusion_opts *o,
                         const cl_progress *p, int *cls_out, cl_err *err);

/* ---- activation maximisation (maximize.c) ----------------------------- */

typedef enum { VIS_INIT_NOISE = 0, VIS_INIT_ZEROS, VIS_INIT_IMAGE } vis_init;

typedef struct vis_max_opts {
    int steps;              /* 0 = 200 */
    float lr;               /* 0 = 0.05 */
    int plain;              /* 1: plain gradient ascent x += lr * g; 0: Adam */
    float l1, l2;           /* penalties l1 * sum|x| and l2 * sum x^2 */
    float tv;               /* penalty tv * sum |x(i+1,j) - x(i,j)| + |x(i,j+1) - x(i,j)| */
    int jitter;             /* random shift of up to this many pixels per step */
    int blur_every;         /* Gaussian blur of the image every N steps (0 = never) */
    float blur;             /* its sigma in pixels (0 = 0.5) */
    float lo, hi;           /* clamp to [lo, hi] after each step (lo >= hi: no clamp) */
    vis_init init;          /* start from noise N(0, noise^2), zeros or `image` */
    float noise;            /* 0 = 0.1 */
    const tn_tensor *image; /* (1,C,H,W) or (C,H,W) for VIS_INIT_IMAGE */
    uint64_t seed;
} vis_max_opts;

/* Finds inputs that maximise units[0..n) of node `layer`, one image per unit,
 * optimised together as a batch: for a layer with feature maps the sum of
 * channel k over its HxW (the slide's a^k = sum_ij a^k_ij), for a vector layer
 * (dense, output) the k-th value.  The objective is that minus the penalties.
 * Returns (n,C,H,W); `objective` (n floats, may be NULL) receives the unit's
 * final value (without penalties); `first` (may be NULL) the value at the start. */
tn_tensor *vis_maximize(net *m, int layer, const int *units, int n, const vis_max_opts *o,
                        const cl_progress *p, float *objective, float *first, cl_err *err);

/* ---- fooling images (fool.c) ------------------------------------------ */

typedef struct vis_fool_opts {
    int cls;          /* the class to fake */
    float confidence; /* stop once p >= this (0 = 0.99) */
    int max_steps;    /* 0 = 2000 */
    float lo, hi;     /* the valid input range (lo >= hi: no clip) */
    uint64_t seed;
} vis_fool_opts;

typedef struct vis_fool_result {
    tn_tensor *image;  /* (1,C,H,W), owned by the caller */
    float prob;        /* softmax probability of cls at the end */
    int steps;         /* steps taken */
    int first_past[3]; /* first step with p > 0.99, 0.999, 0.9999 (-1: never) */
} vis_fool_result;

/* Nguyen et al. 2015's gradient ascent from N(0,1) noise on the softmax
 * probability: x += lr g; x *= 0.99; clip; lr = min(0.03, 0.1 (1-p)) / ||g||^2. */
int vis_fool(net *m, const vis_fool_opts *o, const cl_progress *p, vis_fool_result *out,
             cl_err *err);

/* ---- seeded randomness (rng.c) ---------------------------------------- */

/* xoshiro256** seeded through splitmix64; normals by Box-Muller. */
typedef struct vis_rng {
    uint64_t s[4];
    int has_spare;
    float spare;
} vis_rng;

void vis_rng_seed(vis_rng *r, uint64_t seed);
uint64_t vis_rng_next(vis_rng *r);
double vis_rng_uniform(vis_rng *r); /* [0,1) with 53 bits */
float vis_rng_normal(vis_rng *r);   /* N(0,1) */

#endif
