/* kernelspec — `cnnlens install`: the Jupyter kernelspec folder.
 *
 * Writes DIR/share/jupyter/kernels/cnnlens/{kernel.json, logo-32x32.png,
 * logo-64x64.png}; the logos are drawn here, not shipped.
 */
#ifndef CNNLENS_APP_KERNELSPEC_H
#define CNNLENS_APP_KERNELSPEC_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

/* prefix: the folder that gets share/jupyter/kernels/cnnlens (e.g. ~/.local
 * or /usr/local).  binary: absolute path written into argv.  The folder path
 * written is copied to out_dir (if not NULL). */
int ks_install(const char *prefix, const char *binary, char *out_dir, size_t out_len, cl_err *err);

/* Draws the logo: size x size RGBA, into a malloc'd buffer the caller frees. */
uint8_t *ks_draw_logo(int size);

#endif
