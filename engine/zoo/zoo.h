/* zoo — the built-in architectures, with torchvision's layer names.
 *
 * "fashion" is the lecture CNN (1x28x28 in, 10 classes): conv1, pool1, conv2,
 * pool2, flatten, dense1, relu, output — the convs stay linear as in the
 * original code, `dense1` is the linear layer before its ReLU and `output`
 * gives the logits.  alexnet, vgg11/13/16/19(_bn) and resnet18/34/50 take
 * 3x224x224 and give 1000 logits; their nodes are named as in torchvision
 * ("features.11", "classifier.6", "layer4.1.conv2", "fc").  Batch norm is
 * folded into its conv, so "layer4.1.bn2" names the same node as
 * "layer4.1.conv2" (the conv+bn output).  A ResNet block's final ReLU is the
 * node named after the block ("layer4.1"); "layer4" and "layer4.1.relu" are
 * aliases of the last block's output, the inner ReLUs are "relu1" ("relu2").
 *
 * Ownership: zoo_build returns a net the caller frees with net_free; its
 * weights are PyTorch-style random until net_load_weights.
 */
#ifndef CNNLENS_ZOO_H
#define CNNLENS_ZOO_H

#include "engine/net.h"

/* Builds an architecture by name; an error with the nearest name if unknown. */
net *zoo_build(const char *arch, cl_err *err);
/* Same, with the random initial weights drawn from `seed`. */
net *zoo_build_seeded(const char *arch, uint64_t seed, cl_err *err);
/* The known architectures, NULL-terminated. */
const char *const *zoo_archs(void);

#endif
