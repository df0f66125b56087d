/* PyTorch checkpoints (engine/io/pth.c, zip.c, pickle.c): a zip archive goes to
 * the zip reader, anything else to the legacy reader, as wt_load decides. */
#include "engine/io/filemap.h"
#include "engine/io/pth.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fm_map m;
    cl_err err = {0};
    if (fm_open(&m, fz_path(data, size), &err)) return 0;
    wt_dict *d = wt_new(&err);
    if (d) {
        if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
            (void)pth_load_zip(&m, d, &err);
        } else {
            (void)pth_is_legacy(&m);
            (void)pth_load_legacy(&m, d, &err);
        }
        wt_free(d);
    }
    fm_close(&m);
    return 0;
}
