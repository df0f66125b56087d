/* Wire frames and their HMAC check (kernel/protocol/wire.c, sign.c).
 *
 * Input: one mode byte, then the frames of a message separated by 0x1e (a
 * byte no JSON text may hold raw).  Modes:
 *   0  no key: nothing is signed, every frame is decoded;
 *   1  keyed: the signature frame is checked as it is (a fuzzer cannot forge
 *      one, so this fuzzes the length and constant-time checks);
 *   2  keyed, and the harness signs the frames first, so mutated JSON gets
 *      past the check.  A message that parses must then serialize and parse
 *      back, and the same frames sent again must be refused as a replay.
 * The seeds (fuzz/corpus/wire) are signed with FZ_KEY. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/protocol/protocol.h"

#define FZ_KEY     "cnnlens-fuzz-key"
#define FZ_SEP     0x1e
#define FZ_MAX_FRM 64

static kp_signer *plain, *keyed;
static kp_sigset *seen;

static void setup(void)
{
    if (keyed) return;
    plain = kp_signer_new("", "", 0, NULL);
    keyed = kp_signer_new("hmac-sha256", FZ_KEY, strlen(FZ_KEY), NULL);
    seen = kp_sigset_new(1024);
    if (!plain || !keyed || !seen) abort(); /* the harness cannot run */
}

static size_t split(const uint8_t *data, size_t size, kp_frame *f)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < FZ_MAX_FRM; i++) {
        if (i == size || data[i] == FZ_SEP) {
            f[n++] = (kp_frame){data + start, i - start};
            start = i + 1;
        }
    }
    return n;
}

/* Puts a valid signature in place of the one after the delimiter. */
static void sign_in_place(kp_frame *f, size_t n, char hex[KP_DIGEST_HEX + 1])
{
    for (size_t d = 0; d < n; d++) {
        if (f[d].len != strlen(KP_DELIM) || memcmp(f[d].data, KP_DELIM, f[d].len)) continue;
        if (n - d - 1 < 5) return;
        if (kp_sign(keyed, f + d + 2, 4, hex, NULL) == 0) f[d + 1] = (kp_frame){hex, KP_DIGEST_HEX};
        return;
    }
}

static void roundtrip(const kp_msg *m)
{
    kp_buf *out = NULL;
    size_t n = 0;
    cl_err err = {0};
    if (kp_msg_serialize(m, keyed, &out, &n, &err)) abort();
    kp_frame f[FZ_MAX_FRM + 8];
    if (n > sizeof f / sizeof *f) abort();
    for (size_t i = 0; i < n; i++) f[i] = (kp_frame){out[i].data, out[i].len};
    kp_msg back;
    if (kp_msg_parse(f, n, keyed, NULL, &back, &err)) abort(); /* our own output must parse */
    if (strcmp(kp_msg_type(&back), kp_msg_type(m)) || strcmp(kp_msg_id(&back), kp_msg_id(m)))
        abort();
    kp_msg_clear(&back);
    kp_frames_free(out, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1) return 0;
    int mode = data[0] % 3;
    kp_frame f[FZ_MAX_FRM];
    size_t n = split(data + 1, size - 1, f);
    char hex[KP_DIGEST_HEX + 1];
    if (mode == 2) sign_in_place(f, n, hex);
    kp_msg m;
    cl_err err = {0};
    const kp_signer *s = mode == 0 ? plain : keyed;
    if (kp_msg_parse(f, n, s, mode ? seen : NULL, &m, &err)) return 0;
    if (!*kp_msg_type(&m)) abort(); /* a parsed message always has a type */
    roundtrip(&m);
    kp_msg_clear(&m);
    if (mode && kp_msg_parse(f, n, s, seen, &m, &err) == 0) abort(); /* a replay got through */
    return 0;
}
