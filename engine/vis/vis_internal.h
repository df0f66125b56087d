/* vis_internal — helpers shared by the vis method files (not a public API). */
#ifndef CNNLENS_VIS_INTERNAL_H
#define CNNLENS_VIS_INTERNAL_H

#include "engine/vis/vis.h"

/* The net's last node (the logits). */
int vis_logits_node(const net *m);

/* Checks x is (N,C,H,W) for the net and, when one_image, that N = 1. */
int vis_check_input(const net *m, const tn_tensor *x, int one_image, const char *what, cl_err *err);

/* Runs x forward and picks each image's class: cls, or the argmax when cls < 0.
 * classes must hold N ints; also copied to cls_out when not NULL. */
int vis_forward_classes(net *m, const tn_tensor *x, int cls, int *classes, int *cls_out,
                        cl_err *err);

/* Backward from the logits, seeded one-hot at classes[n] for each image n,
 * down to node `to` (NET_INPUT for the image). */
int vis_backward_classes(net *m, const int *classes, int to, net_relu_rule rule, cl_err *err);

/* A borrowed view of the first b images of a batch tensor (b <= its N), so
 * a last, partial batch reuses the same buffer. */
tn_tensor vis_first(const tn_tensor *t, int64_t b);

/* How many copies of x to run per forward pass, at most `cap`: batching
 * helps small images (the lecture's 28x28) but only costs cache at 224x224,
 * where one convolution is already a large matrix product. */
int vis_batch_size(const tn_tensor *x, int cap);

/* Index of the largest of n values (the first on ties, as argmax does). */
int vis_argmax(const float *v, int n);

#endif
