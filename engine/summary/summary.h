/* summary — a model summary as text: one row per node (name, type, output
 * shape for the net's input shape, parameters) and the total, like
 * torchinfo/Keras summaries.
 *
 * Ownership: sm_table returns a malloc'd string the caller frees with free().
 */
#ifndef CNNLENS_SUMMARY_H
#define CNNLENS_SUMMARY_H

#include "engine/net.h"

char *sm_table(const net *m, cl_err *err);

#endif
