/* vis/guided: input gradients under a ReLU rule (guided backprop, deconvnet)
 * and guided Grad-CAM. */
#include <stdlib.h>
#include <string.h>

#include "engine/render.h"
#include "engine/vis/vis_internal.h"

tn_tensor *vis_input_grad(net *m, const tn_tensor *x, int cls, net_relu_rule rule, int *cls_out,
                          cl_err *err)
{
    if (vis_check_input(m, x, 0, "input gradient", err)) return NULL;
    int *classes = malloc(sizeof(int) * x->shape[0]);
    if (!classes) {
        cl_err_set(err, CL_ENOMEM, "out of memory");
        return NULL;
    }
    tn_tensor *g = NULL;
    if (!vis_forward_classes(m, x, cls, classes, cls_out, err) &&
        !vis_backward_classes(m, classes, NET_INPUT, rule, err))
        g = tn_clone(net_input_grad(m), err);
    free(classes);
    return g;
}

tn_tensor *vis_guided_gradcam(net *m, const tn_tensor *x, int layer, int cls, int *cls_out,
                              cl_err *err)
{
    if (vis_check_input(m, x, 1, "guided Grad-CAM", err)) return NULL;
    int used;
    tn_tensor *cam = vis_cam(m, x, layer, cls, VIS_GRADCAM, NULL, &used, err);
    if (!cam) return NULL;
    if (cls_out) *cls_out = used;
    int64_t C = x->shape[1], H = x->shape[2], W = x->shape[3];
    tn_tensor *up = rd_cam_resize(cam, (int)H, (int)W, err);
    tn_free(cam);
    tn_tensor *g = up ? vis_input_grad(m, x, used, NET_RELU_GUIDED, NULL, err) : NULL;
    if (g) {
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < H * W; i++) g->data[c * H * W + i] *= up->data[i];
        int64_t chw[3] = {C, H, W};
        tn_reshape(g, 3, chw, NULL);
    }
    tn_free(up);
    return g;
}
