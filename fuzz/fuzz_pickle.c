/* The pickle machine alone (engine/io/pickle.c): every opcode and the
 * allow-list of globals, on a stream of several pickles in a row as the
 * legacy .pth format has. */
#include <stdint.h>
#include <stdlib.h>

#include "engine/io/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_err err = {0};
    pk_reader *r = pk_new(&err);
    if (!r) return 0;
    size_t off = 0, used = 0;
    while (off < size && pk_load(r, data + off, size - off, &used, &err) && used > 0) {
        off += used;
        size_t n = 0;
        free(pk_storages(r, &n, &err));
    }
    pk_free(r);
    return 0;
}
