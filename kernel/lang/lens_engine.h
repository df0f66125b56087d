/* lens_engine — what the engine-backed verbs (commands_model.c,
 * commands_vis.c) share: the current model, resolving layer and class
 * options, handing an image to the net, live progress displays.
 *
 * Ownership: le_model returns the session's net (borrowed).  le_input fills a
 * view that borrows the value's data.
 */
#ifndef CNNLENS_LANG_LENS_ENGINE_H
#define CNNLENS_LANG_LENS_ENGINE_H

#include <stdint.h>

#include "engine/net.h"
#include "engine/progress.h"
#include "kernel/lang/commands.h"

/* The net of the current model, or an error telling how to load one. */
net *le_model(lc_call *c, cl_err *err);
/* The range a pixel of the model's input may take: [0, 1] for the grey
 * lecture models, the ImageNet-normalised range of [0, 1] for colour ones. */
void le_valid_range(const net *m, float *lo, float *hi);
/* The node named by option `opt` (a layer name), or the default layer for
 * class activation maps when absent: the last layer with feature maps that is
 * not a pooling layer (conv2 of the lecture CNN, features.11 of AlexNet,
 * layer4 of ResNet).  -1 with a positioned error. */
int le_layer(lc_call *c, net *m, const char *opt, cl_err *err);
int le_default_layer(const net *m);
/* Class from option `opt`: a number or a label name; -1 when absent. */
int le_class(lc_call *c, net *m, const char *opt, int *cls, cl_err *err);
/* Label of a class ("tabby, tabby cat"), or NULL. */
const char *le_label(const ss_session *s, int cls);
/* A (1,C,H,W) view of image/tensor argument `arg` checked against the
 * net's input shape. */
int le_input(lc_call *c, net *m, const char *arg, tn_tensor *view, cl_err *err);
/* Runs the net on the input and returns the logits (borrowed from the net). */
const tn_tensor *le_forward(lc_call *c, net *m, const char *arg, cl_err *err);

/* A live display for long work: updated at most every 0.1 s with a progress
 * bar, stopped by the session's interrupt flag. */
typedef struct le_live {
    lc_call *c;
    char id[64];
    const char *verb;
    double last;
    int shown;
    int pictured; /* it shows a picture (le_live_picture): progress text no longer replaces it */
} le_live;
cl_progress le_live_start(le_live *L, lc_call *c);
/* Replaces the live display with a final text (or leaves it if never shown).
 * A display showing a picture keeps it until the statement's next display
 * replaces it; only if none does is it replaced by the text when the statement
 * ends well (ss_live_end), so an interrupted run leaves its last picture. */
void le_live_finish(le_live *L, const char *text);
/* Whether live pictures are worth their cost: someone watches (a notebook),
 * not `cnnlens run` (which sets no delay for step-by-step displays). */
int le_live_watched(const lc_call *c);
/* Shows a PNG (borrowed) with a text in the live display. */
void le_live_picture(le_live *L, const uint8_t *png, size_t len, const char *text);

/* Names for completion of a model's layers (copied into the value). */
void le_set_layer_names(lv_value *model, const net *m);

/* Unit list from a number or a range argument: malloc'd array, *n entries. */
int *le_units(lc_call *c, const char *arg, int limit, int *n, cl_err *err);

extern const lc_verb lc_model_verbs[];
extern const int lc_model_count;
extern const lc_verb lc_vis_verbs[];
extern const int lc_vis_count;

#endif
