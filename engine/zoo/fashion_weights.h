/* fashion_weights — the trained lecture CNN, built into the binary.
 *
 * models/fashion.safetensors (made by `cnnlens train-builtin`, see
 * models/README.md) is embedded at compile time (.incbin into .rodata), so
 * `model fashion` reads no file at run time.
 *
 * Ownership: fw_bytes returns static bytes; fw_dict returns a dict the caller
 * frees with wt_free; fw_model a net the caller frees with net_free.
 */
#ifndef CNNLENS_ZOO_FASHION_WEIGHTS_H
#define CNNLENS_ZOO_FASHION_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/io/weights.h"
#include "engine/net.h"

/* The embedded safetensors file; NULL (and *len 0) in a build made without it. */
const uint8_t *fw_bytes(size_t *len);
/* Parses safetensors bytes held in memory.  The reader may drop whole pages
 * it has converted (madvise), so pass file-backed memory (like the embedded
 * bytes) or a buffer whose contents are not needed afterwards. */
wt_dict *fw_parse(const uint8_t *bytes, size_t len, cl_err *err);
/* The embedded weights as a state_dict. */
wt_dict *fw_dict(cl_err *err);
/* zoo "fashion" with the trained weights loaded. */
net *fw_model(cl_err *err);

#endif
