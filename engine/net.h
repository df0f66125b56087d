/* net — a model: named nodes in topological order (a DAG, for ResNet).
 *
 * CONTRACT HEADER: written first so that the language, vis and train modules
 * can be built against it while the engine is filled in.  Extend it; do not
 * change what is here without updating every user.
 *
 * Forward keeps every node's output.  Backward starts at any node with a given
 * gradient (e.g. one-hot on a logit) and stops at any node, computing only
 * input-side gradients unless weight gradients are asked for (training).
 * Node outputs and gradients are owned by the net and stay valid until the
 * next forward/backward or net_free; buffers are reused across passes, so a
 * repeated Grad-CAM allocates nothing after the first call.
 *
 * Ownership: net_* constructors return a net the caller frees with net_free.
 * Pointers returned by accessors are borrowed from the net.
 */
#ifndef CNNLENS_NET_H
#define CNNLENS_NET_H

#include "engine/err.h"
#include "engine/progress.h"
#include "engine/tensor.h"

typedef struct net net;
typedef struct wt_dict wt_dict; /* engine/io/weights.h */

typedef enum {
    NET_RELU_PLAIN = 0, /* grad * (x > 0) */
    NET_RELU_GUIDED,    /* grad * (x > 0) * (grad > 0) */
    NET_RELU_DECONV,    /* grad * (grad > 0) */
} net_relu_rule;

typedef struct net_node_info {
    const char *name; /* torchvision name, e.g. "features.11", "layer4", "fc" */
    const char *type; /* "conv2d", "relu", "maxpool2d", "linear", "block", ... */
    int ndim;         /* of the output, batch included */
    int64_t shape[4]; /* output shape for the net's input shape */
    int64_t params;   /* parameters owned by this node */
} net_node_info;

/* Number of nodes, and the i-th node's description (i in [0, count)). */
int net_node_count(const net *m);
int net_node_info_get(const net *m, int i, net_node_info *out);
/* Resolves "features.11", "features_11", "layer4", "layer4.1.conv2"; -1 and a
 * "did you mean" error when the name is unknown. */
int net_find(const net *m, const char *name, cl_err *err);

/* The architecture's name ("resnet18"), its input shape (C,H,W) and class count. */
const char *net_arch(const net *m);
void net_input_shape(const net *m, int64_t chw[3]);
int net_num_classes(const net *m);
int64_t net_param_count(const net *m);

/* Runs x (N,C,H,W) through the net, keeping every node's output. */
int net_forward(net *m, const tn_tensor *x, cl_err *err);
/* The same, stopping after node `last`: later nodes (and net_output) have no
 * output from this pass; backward from any node <= last works. */
int net_forward_upto(net *m, const tn_tensor *x, int last, cl_err *err);
/* Output of the last node (logits), borrowed. */
const tn_tensor *net_output(const net *m);
/* Output / gradient of node i after forward / backward (borrowed; NULL if none). */
const tn_tensor *net_node_output(const net *m, int i);
const tn_tensor *net_node_grad(const net *m, int i);
/* For a max-pool node after forward: per output element, the index of the
 * window's winner in its input plane (y * W + x) — the "switches" of a
 * deconvnet; NULL for other nodes.  Borrowed, numel of the node's output;
 * found on first use after a pass that did not need them (hence not const). */
const int32_t *net_node_argmax(net *m, int i);
/* Gradient w.r.t. the net's input after a backward that reached the input. */
const tn_tensor *net_input_grad(const net *m);

/* Backward from node `from` (seeded with `grad`, the shape of its output) down
 * to node `to` (its output's gradient is the last computed; to = -1 means down
 * to the input image).  Uses the given ReLU rule.  Weight gradients are
 * computed only when net_set_training(m, 1). */
int net_backward(net *m, int from, const tn_tensor *grad, int to, net_relu_rule rule, cl_err *err);
/* The same seeded with one-hot rows: 1 at classes[i] in row i of node
 * `from`'s output (N rows), 0 elsewhere — what every attribution method
 * starts from, without a seed tensor to allocate. */
int net_backward_onehot(net *m, int from, const int *classes, int to, net_relu_rule rule,
                        cl_err *err);

void net_set_training(net *m, int training);

/* Per-node timing, for benchmarks: while ms is not NULL every forward pass
 * adds node i's wall time (milliseconds) to ms[i] and every backward pass to
 * ms[count + i] (2 * net_node_count entries, the caller's).  NULL turns it off. */
void net_set_profile(net *m, double *ms);

/* ---- Incremental forward, for occlusion ----
 * net_keep_base snapshots every node's output after a net_forward of one
 * image (the base; the net owns the copy until net_drop_base, net_free or new
 * weights).  net_forward_rows then runs a batch of copies of that base which
 * differ from it only in input rows [r0, r1), recomputing in each node only
 * the rows those reach; net_output equals net_forward's to float rounding
 * (where it cannot save anything it runs net_forward).  After it, only
 * net_output is valid: node outputs and backward need a net_forward. */
int net_keep_base(net *m, cl_err *err);
int net_forward_rows(net *m, const tn_tensor *x, int64_t r0, int64_t r1, cl_err *err);
void net_drop_base(net *m);

/* Loads a state_dict (names and shapes checked, the first mismatch named in
 * the error; batch norm folded into the preceding conv for inference). */
int net_load_weights(net *m, const wt_dict *w, cl_err *err);
/* The same from a .pth or .safetensors file (wt_load, then net_load_weights). */
int net_load_weights_file(net *m, const char *path, cl_err *err);

void net_free(net *m);

/* ---- Parameters, for training ----
 * Conv and linear nodes own "NAME.weight" and "NAME.bias" (torchvision's
 * state_dict names).  With net_set_training(m, 1) every backward adds weight
 * gradients into the grads (summed over the batch and over calls, as PyTorch
 * does) until net_zero_grad. */
typedef struct net_param {
    const char *name; /* "dense1.weight" */
    tn_tensor *value; /* borrowed: a trainer updates it in place */
    tn_tensor *grad;  /* borrowed; NULL until net_set_training(m, 1) */
} net_param;

int net_param_tensors(const net *m);
int net_param_get(net *m, int i, net_param *out);
void net_zero_grad(net *m);
/* Re-initialises every weight as PyTorch's default does (uniform in
 * +-1/sqrt(fan_in)), from a seed, so a fresh model is reproducible. */
void net_init_params(net *m, uint64_t seed);

/* ---- Building a net (the zoo's interface) ----
 * Each net_add_* takes the index of its input node (NET_INPUT for the image)
 * and returns the new node's index.  The first failure is remembered and
 * returned by net_finish, so a builder checks once at the end.  Batch norm is
 * never a node of its own: net_add_bn folds it into a conv at load time and
 * makes its name an alias of that conv, so "layer4.1.bn2" and "layer4.1.conv2"
 * both name the conv+bn output. */
#define NET_INPUT (-1)

net *net_new(const char *arch, int c, int h, int w, int num_classes, cl_err *err);
int net_add_conv(net *m, const char *name, int in, int cin, int cout, int k, int stride, int pad,
                 int bias);
int net_add_bn(net *m, const char *name, int conv);
int net_add_relu(net *m, const char *name, int in);
int net_add_maxpool(net *m, const char *name, int in, int k, int stride, int pad);
int net_add_avgpool(net *m, const char *name, int in, int k, int stride, int pad);
int net_add_adaptive_avgpool(net *m, const char *name, int in, int oh, int ow);
int net_add_linear(net *m, const char *name, int in, int nin, int nout, int bias);
int net_add_dropout(net *m, const char *name, int in); /* p = 0.5, as torchvision */
/* Dropout with probability p: identity at inference; while training, each unit
 * is zeroed with probability p (masks drawn from the net's seed). */
int net_add_dropout_p(net *m, const char *name, int in, float p);
int net_add_flatten(net *m, const char *name, int in);
int net_add_add(net *m, const char *name, int a, int b);
int net_add_softmax(net *m, const char *name, int in, int log_softmax);
/* Another name for a node (e.g. "layer4" for "layer4.1"). */
int net_alias(net *m, const char *alias, int node);
/* Checks the shapes for the net's input shape; the weights are drawn from
 * `seed` (as net_init_params) at the first forward or net_param_get, unless
 * net_load_weights or net_init_params came first. */
int net_finish(net *m, uint64_t seed, cl_err *err);

#endif
