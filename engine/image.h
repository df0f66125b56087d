/* image — photos in and out: decode PNG/JPEG to float tensors, resize the way
 * OpenCV's INTER_LINEAR does, centre-crop, normalise.
 *
 * CONTRACT HEADER (see engine/net.h).
 *
 * Images are tensors of shape (C,H,W), float32, values in [0,1] unless
 * normalised.  Functions returning tn_tensor * give ownership to the caller.
 */
#ifndef CNNLENS_IMAGE_H
#define CNNLENS_IMAGE_H

#include "engine/err.h"
#include "engine/tensor.h"

typedef enum {
    IMG_NORM_NONE = 0,
    IMG_NORM_IMAGENET, /* mean (0.485,0.456,0.406), std (0.229,0.224,0.225) */
    IMG_NORM_HALF,     /* mean 0.5, std 0.5 (the course notebook) */
} img_norm;

/* Decodes a PNG or JPEG file (by magic) into (C,H,W) in [0,1]; C is 1 or 3
 * (alpha dropped, palette expanded, 16-bit scaled).  Images, resizes and crops
 * over the image_pixels limit (engine/limits.h) are refused before decoding
 * or allocating. */
tn_tensor *img_load(const char *path, cl_err *err);

/* Bilinear resize of a (C,H,W) or (H,W) tensor, cv2.INTER_LINEAR semantics on
 * float32: src = (dst + 0.5) * in/out - 0.5, clamped to the edge. */
tn_tensor *img_resize(const tn_tensor *x, int out_h, int out_w, cl_err *err);
/* Resizes the shorter side to `size` (aspect kept, as torchvision Resize(int)). */
tn_tensor *img_resize_short(const tn_tensor *x, int size, cl_err *err);
tn_tensor *img_center_crop(const tn_tensor *x, int out_h, int out_w, cl_err *err);
/* In place: (x - mean[c]) / std[c]. */
int img_normalize(tn_tensor *x, img_norm norm, cl_err *err);
/* Presets: "imagenet" (resize the shorter side to 256, centre-crop 224,
 * ImageNet mean/std), "half" (shorter side 224, crop 224, mean/std 0.5), "none"
 * (a copy).  A grey image is first repeated to 3 channels, as PIL's
 * convert("RGB") does. */
tn_tensor *img_preprocess(const tn_tensor *x, const char *preset, cl_err *err);

/* (C,H,W) in [0,1] from 8-bit interleaved pixels (h rows of w * channels). */
tn_tensor *img_from_u8(const uint8_t *pix, int w, int h, int channels, cl_err *err);

#endif
