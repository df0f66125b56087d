/* PNG decoding (engine/io/png.c over libpng): any bytes give pixels or a clean
 * error.  A pixel cap keeps one input from asking for gigabytes. */
#include <stdlib.h>

#include "engine/io/png.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    png_pixels px = {0};
    cl_err err = {0};
    if (png_decode_file(fz_path(data, size), (int64_t)4 << 20, &px, &err) == 0) free(px.data);
    return 0;
}
