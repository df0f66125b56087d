/* NumPy .npy reading (engine/io/npy.c): header dict, dtypes, shapes, sizes. */
#include "engine/io/npy.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_err err = {0};
    tn_free(npy_read(fz_path(data, size), &err));
    return 0;
}
