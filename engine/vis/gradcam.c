/* vis/gradcam: Grad-CAM and its relatives, following pytorch-grad-cam's
 * get_cam_weights / get_cam_image for each method. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/vis/vis_internal.h"

static const char *const kind_names[] = {"gradcam", "gradcam++", "scorecam", "layercam",
                                         "hirescam"};
#define NKINDS ((int)(sizeof kind_names / sizeof *kind_names))

const char *vis_cam_kind_name(vis_cam_kind k)
{
    return (int)k >= 0 && (int)k < NKINDS ? kind_names[k] : "?";
}

int vis_cam_kind_parse(const char *name, vis_cam_kind *out, cl_err *err)
{
    for (int i = 0; i < NKINDS; i++)
        if (!strcmp(name, kind_names[i])) {
            *out = (vis_cam_kind)i;
            return 0;
        }
    if (!strcmp(name, "gradcampp")) {
        *out = VIS_GRADCAMPP;
        return 0;
    }
    return cl_err_set(err, CL_ENAME,
                      "unknown CAM method '%s' (known: gradcam, gradcam++, scorecam, layercam, "
                      "hirescam)",
                      name);
}

/* Per-channel weights of one image, for the methods whose map is
 * ReLU(sum_k w_k A^k). */
static void weights_gradcam(const float *g, int64_t K, int64_t hw, float *w)
{
    for (int64_t k = 0; k < K; k++) {
        double s = 0.0;
        for (int64_t i = 0; i < hw; i++) s += g[k * hw + i];
        w[k] = (float)(s / (double)hw);
    }
}

static void weights_gradcampp(const float *a, const float *g, int64_t K, int64_t hw, float *w)
{
    for (int64_t k = 0; k < K; k++) {
        const float *ak = a + k * hw, *gk = g + k * hw;
        double sa = 0.0;
        for (int64_t i = 0; i < hw; i++) sa += ak[i];
        float sum_a = (float)sa;
        double s = 0.0;
        for (int64_t i = 0; i < hw; i++) {
            float g2 = gk[i] * gk[i], g3 = g2 * gk[i];
            float aij = g2 / (2.0f * g2 + sum_a * g3 + 1e-6f);
            if (gk[i] > 0.0f) s += (double)gk[i] * aij; /* ReLU(g) * aij, aij = 0 where g = 0 */
        }
        w[k] = (float)s;
    }
}

/* cam = ReLU(sum_k w_k A^k) */
static void weighted_sum(const float *a, const float *w, int64_t K, int64_t hw, float *cam)
{
    for (int64_t i = 0; i < hw; i++) cam[i] = 0.0f;
    for (int64_t k = 0; k < K; k++)
        for (int64_t i = 0; i < hw; i++) cam[i] += w[k] * a[k * hw + i];
    for (int64_t i = 0; i < hw; i++) cam[i] = cam[i] > 0.0f ? cam[i] : 0.0f;
}

/* cam = ReLU(sum_k f(g^k) * A^k), elementwise: Layer-CAM (f = ReLU), HiResCAM (f = id). */
static void elementwise_sum(const float *a, const float *g, int64_t K, int64_t hw, int relu_g,
                            float *cam)
{
    for (int64_t i = 0; i < hw; i++) cam[i] = 0.0f;
    for (int64_t k = 0; k < K; k++)
        for (int64_t i = 0; i < hw; i++) {
            float gi = g[k * hw + i];
            if (relu_g && gi < 0.0f) gi = 0.0f;
            cam[i] += gi * a[k * hw + i];
        }
    for (int64_t i = 0; i < hw; i++) cam[i] = cam[i] > 0.0f ? cam[i] : 0.0f;
}

/* torch.nn.UpsamplingBilinear2d (align_corners=True), as Score-CAM uses it:
 * src = dst * (in - 1) / (out - 1). */
static void upsample_align_corners(const float *a, int64_t h, int64_t w, float *out, int64_t H,
                                   int64_t W)
{
    float sy = H > 1 ? (float)(h - 1) / (float)(H - 1) : 0.0f;
    float sx = W > 1 ? (float)(w - 1) / (float)(W - 1) : 0.0f;
    for (int64_t y = 0; y < H; y++) {
        float fy = sy * (float)y;
        int64_t y0 = (int64_t)fy, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
        float ly = fy - (float)y0;
        for (int64_t x = 0; x < W; x++) {
            float fx = sx * (float)x;
            int64_t x0 = (int64_t)fx, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            float lx = fx - (float)x0;
            out[y * W + x] = (1.0f - ly) * ((1.0f - lx) * a[y0 * w + x0] + lx * a[y0 * w + x1]) +
                             ly * ((1.0f - lx) * a[y1 * w + x0] + lx * a[y1 * w + x1]);
        }
    }
}

/* The Score-CAM mask of channel k: upsampled, min-max normalised with 1e-8. */
static void scorecam_mask(const float *a, int64_t h, int64_t w, float *mask, int64_t H, int64_t W)
{
    upsample_align_corners(a, h, w, mask, H, W);
    float lo = mask[0], hi = mask[0];
    for (int64_t i = 1; i < H * W; i++) {
        lo = mask[i] < lo ? mask[i] : lo;
        hi = mask[i] > hi ? mask[i] : hi;
    }
    float d = hi - lo + 1e-8f;
    for (int64_t i = 0; i < H * W; i++) mask[i] = (mask[i] - lo) / d;
}

/* Score-CAM weights of image n: softmax over k of logit[cls](x_n * mask_k),
 * the masked copies run through the net a batch at a time. */
static int weights_scorecam(net *m, const tn_tensor *x, int64_t n, const float *acts, int64_t K,
                            int64_t h, int64_t w, int cls, const cl_progress *p, float *wts,
                            cl_err *err)
{
    int64_t C = x->shape[1], H = x->shape[2], W = x->shape[3], HW = H * W;
    const float *xn = x->data + n * C * HW;
    int B = vis_batch_size(x, 16);
    tn_tensor *batch = tn_new4(B, C, H, W, err);
    float *mask = batch ? malloc(sizeof(float) * HW) : NULL;
    int rc = -1;
    if (!mask) {
        if (batch) cl_err_set(err, CL_ENOMEM, "scorecam: out of memory");
        goto done;
    }
    for (int64_t k0 = 0; k0 < K; k0 += B) {
        int64_t b = K - k0 < B ? K - k0 : B;
        if (cl_progress_step(p, (long)k0, (long)K, "scorecam", err)) goto done;
        for (int64_t j = 0; j < b; j++) {
            scorecam_mask(acts + (k0 + j) * h * w, h, w, mask, H, W);
            float *dst = batch->data + j * C * HW;
            for (int64_t c = 0; c < C; c++)
                for (int64_t i = 0; i < HW; i++) dst[c * HW + i] = xn[c * HW + i] * mask[i];
        }
        tn_tensor first = vis_first(batch, b);
        if (net_forward(m, &first, err)) goto done;
        const tn_tensor *y = net_output(m);
        for (int64_t j = 0; j < b; j++) wts[k0 + j] = y->data[j * y->shape[1] + cls];
    }
    float top = wts[0];
    for (int64_t k = 1; k < K; k++) top = wts[k] > top ? wts[k] : top;
    double s = 0.0;
    for (int64_t k = 0; k < K; k++) s += exp((double)(wts[k] - top));
    for (int64_t k = 0; k < K; k++) wts[k] = (float)(exp((double)(wts[k] - top)) / s);
    rc = 0;
done:
    free(mask);
    tn_free(batch);
    return rc;
}

static int layer_maps(const net *m, int layer, int64_t *K, int64_t *h, int64_t *w, cl_err *err)
{
    net_node_info info;
    if (layer < 0 || layer >= net_node_count(m) || net_node_info_get(m, layer, &info))
        return cl_err_set(err, CL_EINVAL, "CAM: no layer number %d in %s", layer, net_arch(m));
    if (info.ndim != 4)
        return cl_err_set(err, CL_EINVAL,
                          "CAM needs a layer with feature maps (C,H,W); '%s' (%s) gives vectors: "
                          "pick a conv, ReLU or pooling layer",
                          info.name, info.type);
    *K = info.shape[1];
    *h = info.shape[2];
    *w = info.shape[3];
    return 0;
}

tn_tensor *vis_cam(net *m, const tn_tensor *x, int layer, int cls, vis_cam_kind kind,
                   const cl_progress *p, int *cls_out, cl_err *err)
{
    int64_t K = 0, h = 0, w = 0;
    if (vis_check_input(m, x, 0, vis_cam_kind_name(kind), err) ||
        layer_maps(m, layer, &K, &h, &w, err))
        return NULL;
    int64_t N = x->shape[0];
    int *classes = malloc(sizeof(int) * N);
    float *wts = malloc(sizeof(float) * K);
    float *acts = NULL;
    tn_tensor *cam = NULL;
    if (!classes || !wts) {
        cl_err_set(err, CL_ENOMEM, "CAM: out of memory");
        goto fail;
    }
    if (vis_forward_classes(m, x, cls, classes, cls_out, err)) goto fail;
    const tn_tensor *a = net_node_output(m, layer);
    /* The layer's shape depends on the input size: take it from the pass. */
    K = a->shape[1], h = a->shape[2], w = a->shape[3];
    int64_t hw = h * w;
    if (!(cam = tn_new(3, (int64_t[]){N, h, w}, err))) goto fail;
    if (kind == VIS_SCORECAM) {
        /* The masked passes overwrite the activations: keep a copy. */
        if (!(acts = malloc(sizeof(float) * N * K * hw))) {
            cl_err_set(err, CL_ENOMEM, "scorecam: out of memory");
            goto fail;
        }
        memcpy(acts, a->data, sizeof(float) * N * K * hw);
        for (int64_t n = 0; n < N; n++) {
            const float *an = acts + n * K * hw;
            if (weights_scorecam(m, x, n, an, K, h, w, classes[n], p, wts, err)) goto fail;
            weighted_sum(an, wts, K, hw, cam->data + n * hw);
        }
        free(acts);
        free(wts);
        free(classes);
        return cam;
    }
    if (vis_backward_classes(m, classes, layer, NET_RELU_PLAIN, err)) goto fail;
    a = net_node_output(m, layer);
    const tn_tensor *g = net_node_grad(m, layer);
    for (int64_t n = 0; n < N; n++) {
        const float *an = a->data + n * K * hw, *gn = g->data + n * K * hw;
        float *cn = cam->data + n * hw;
        switch (kind) {
        case VIS_GRADCAM:
            weights_gradcam(gn, K, hw, wts);
            weighted_sum(an, wts, K, hw, cn);
            break;
        case VIS_GRADCAMPP:
            weights_gradcampp(an, gn, K, hw, wts);
            weighted_sum(an, wts, K, hw, cn);
            break;
        case VIS_LAYERCAM:
            elementwise_sum(an, gn, K, hw, 1, cn);
            break;
        default:
            elementwise_sum(an, gn, K, hw, 0, cn);
            break;
        }
    }
    free(wts);
    free(classes);
    return cam;
fail:
    free(acts);
    free(wts);
    free(classes);
    tn_free(cam);
    return NULL;
}
