/* JPEG decoding (engine/io/jpeg.c over libjpeg-turbo): any bytes give pixels or
 * a clean error, including cut-short and CMYK files. */
#include <stdlib.h>

#include "engine/io/jpeg.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *pix = NULL;
    int w, h, c;
    cl_err err = {0};
    if (jpg_decode_file(fz_path(data, size), (int64_t)4 << 20, &pix, &w, &h, &c, &err) == 0)
        free(pix);
    return 0;
}
