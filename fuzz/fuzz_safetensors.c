/* safetensors (engine/io/safetensors.c): the JSON header, dtypes, shapes and
 * data offsets against the file's size. */
#include "engine/io/filemap.h"
#include "engine/io/safetensors.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fm_map m;
    cl_err err = {0};
    if (fm_open(&m, fz_path(data, size), &err)) return 0;
    wt_dict *d = wt_new(&err);
    if (d) {
        (void)st_looks_like(&m);
        (void)st_load(&m, d, &err);
        wt_free(d);
    }
    fm_close(&m);
    return 0;
}
