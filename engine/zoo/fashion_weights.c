/* fashion_weights — models/fashion.safetensors embedded with .incbin; CMake
 * passes its path as CNNLENS_FASHION_WEIGHTS (and rebuilds this file when the
 * weights change). */
#include "engine/zoo/fashion_weights.h"

#include "engine/io/filemap.h"
#include "engine/io/safetensors.h"
#include "engine/zoo/zoo.h"

#ifdef CNNLENS_FASHION_WEIGHTS
/* Page-aligned, so that the safetensors reader's page releases (madvise on
 * whole pages of the range it has converted) only touch these bytes, which
 * the kernel re-reads from the executable if needed. */
__asm__(".pushsection .rodata.cnnlens_fashion,\"a\",@progbits\n"
        ".balign 4096\n"
        ".globl cnnlens_fashion_begin\n"
        ".hidden cnnlens_fashion_begin\n"
        "cnnlens_fashion_begin:\n"
        ".incbin \"" CNNLENS_FASHION_WEIGHTS "\"\n"
        ".globl cnnlens_fashion_end\n"
        ".hidden cnnlens_fashion_end\n"
        "cnnlens_fashion_end:\n"
        ".balign 4096\n"
        ".popsection\n");
extern const uint8_t cnnlens_fashion_begin[], cnnlens_fashion_end[];

const uint8_t *fw_bytes(size_t *len)
{
    *len = (size_t)(cnnlens_fashion_end - cnnlens_fashion_begin);
    return cnnlens_fashion_begin;
}
#else
const uint8_t *fw_bytes(size_t *len)
{
    *len = 0;
    return NULL;
}
#endif

wt_dict *fw_parse(const uint8_t *bytes, size_t len, cl_err *err)
{
    wt_dict *d = wt_new(err);
    if (!d) return NULL;
    fm_map map = {.data = bytes, .size = len};
    if (st_load(&map, d, err)) {
        wt_free(d);
        return NULL;
    }
    return d;
}

wt_dict *fw_dict(cl_err *err)
{
    size_t len;
    const uint8_t *b = fw_bytes(&len);
    if (!b || !len) {
        cl_err_set(err, CL_EIO,
                   "this cnnlens was built without the trained fashion model "
                   "(models/fashion.safetensors was missing at build time)");
        return NULL;
    }
    return fw_parse(b, len, err);
}

net *fw_model(cl_err *err)
{
    wt_dict *w = fw_dict(err);
    if (!w) return NULL;
    net *m = zoo_build("fashion", err);
    if (m && net_load_weights(m, w, err)) {
        net_free(m);
        m = NULL;
    }
    wt_free(w);
    return m;
}
