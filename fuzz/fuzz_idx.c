/* IDX files (engine/io/idx.c), plain and gzip: dimensions against the bytes
 * present; also the in-memory parser on the raw bytes. */
#include "engine/io/idx.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    idx_array a;
    cl_err err = {0};
    if (idx_load(fz_path(data, size), &a, &err) == 0) idx_free(&a);
    if (idx_parse(data, size, &a, &err) == 0) idx_free(&a);
    return 0;
}
