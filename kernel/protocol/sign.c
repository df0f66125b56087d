#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/protocol/protocol.h"

struct kp_signer {
    EVP_MAC *mac; /* fetched once; EVP_MAC objects are safe to share between threads */
    unsigned char *key;
    size_t key_len;
};

kp_signer *kp_signer_new(const char *scheme, const void *key, size_t key_len, cl_err *err)
{
    if (scheme && *scheme && strcmp(scheme, "hmac-sha256")) {
        cl_err_set(err, CL_EINVAL,
                   "signature scheme '%s' is not supported (cnnlens signs with hmac-sha256)",
                   scheme);
        return NULL;
    }
    kp_signer *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    if (key_len) {
        s->key = malloc(key_len);
        s->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        if (!s->key || !s->mac) goto oom;
        memcpy(s->key, key, key_len);
        s->key_len = key_len;
    }
    return s;
oom:
    kp_signer_free(s);
    cl_err_set(err, CL_ENOMEM, "cannot set up HMAC-SHA256 (out of memory or no OpenSSL HMAC)");
    return NULL;
}

void kp_signer_free(kp_signer *s)
{
    if (!s) return;
    EVP_MAC_free(s->mac);
    if (s->key) OPENSSL_cleanse(s->key, s->key_len);
    free(s->key);
    free(s);
}

int kp_signer_enabled(const kp_signer *s)
{
    return s && s->key_len > 0;
}

int kp_sign(const kp_signer *s, const kp_frame *parts, size_t n, char hex[KP_DIGEST_HEX + 1],
            cl_err *err)
{
    hex[0] = '\0';
    if (!kp_signer_enabled(s)) return 0;
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(s->mac);
    unsigned char md[32];
    size_t md_len = 0;
    int ok = ctx && EVP_MAC_init(ctx, s->key, s->key_len, params);
    for (size_t i = 0; ok && i < n; i++) ok = EVP_MAC_update(ctx, parts[i].data, parts[i].len);
    ok = ok && EVP_MAC_final(ctx, md, &md_len, sizeof md) && md_len == sizeof md;
    EVP_MAC_CTX_free(ctx);
    if (!ok) return cl_err_set(err, CL_ENOMEM, "HMAC-SHA256 failed inside OpenSSL");
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof md; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[KP_DIGEST_HEX] = '\0';
    return 0;
}

int kp_ct_equal(const void *a, const void *b, size_t n)
{
    /* Accumulate every difference so the time taken does not reveal the
     * first mismatching byte (a timing oracle for forging signatures). */
    const volatile unsigned char *x = a, *y = b;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(x[i] ^ y[i]);
    return diff == 0;
}

/* Two generations of open-addressing sets: when the young one is full the old
 * one is dropped, so memory stays bounded and the last `remember` signatures
 * are always known. */
typedef struct sig_gen {
    unsigned char (*keys)[32];
    unsigned char *used;
    size_t count;
} sig_gen;

struct kp_sigset {
    pthread_mutex_t lock;
    size_t remember, slots;
    sig_gen gen[2]; /* gen[0] young, gen[1] old */
};

static int gen_alloc(sig_gen *g, size_t slots)
{
    g->keys = calloc(slots, sizeof *g->keys);
    g->used = calloc(slots, 1);
    g->count = 0;
    return g->keys && g->used ? 0 : -1;
}

static void gen_free(sig_gen *g)
{
    free(g->keys);
    free(g->used);
    g->keys = NULL, g->used = NULL;
}

kp_sigset *kp_sigset_new(size_t remember)
{
    kp_sigset *set = calloc(1, sizeof *set);
    if (!set) return NULL;
    set->remember = remember ? remember : 1;
    set->slots = 16;
    while (set->slots < 2 * set->remember) set->slots *= 2;
    if (gen_alloc(&set->gen[0], set->slots) || gen_alloc(&set->gen[1], set->slots)) {
        kp_sigset_free(set);
        return NULL;
    }
    pthread_mutex_init(&set->lock, NULL);
    return set;
}

void kp_sigset_free(kp_sigset *set)
{
    if (!set) return;
    if (set->gen[0].keys && set->gen[1].keys) pthread_mutex_destroy(&set->lock);
    gen_free(&set->gen[0]);
    gen_free(&set->gen[1]);
    free(set);
}

static void sig_key(const char *sig, size_t len, unsigned char key[32])
{
    /* A digest of the signature text: fixed size, and distinct texts never share a key. */
    unsigned int n = 32;
    if (!EVP_Digest(sig, len, key, &n, EVP_sha256(), NULL)) memset(key, 0, 32);
}

static size_t key_hash(const unsigned char key[32], size_t slots)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 32; i++) h = (h ^ key[i]) * 1099511628211ull;
    return (size_t)h & (slots - 1);
}

static int gen_find(const sig_gen *g, const unsigned char key[32], size_t slots, size_t *slot)
{
    size_t i = key_hash(key, slots);
    while (g->used[i]) {
        if (!memcmp(g->keys[i], key, 32)) return 1;
        i = (i + 1) & (slots - 1);
    }
    *slot = i;
    return 0;
}

int kp_sigset_seen(kp_sigset *set, const char *sig, size_t len)
{
    unsigned char key[32];
    sig_key(sig, len, key);
    pthread_mutex_lock(&set->lock);
    size_t slot = 0, dummy;
    int seen = gen_find(&set->gen[1], key, set->slots, &dummy) ||
               gen_find(&set->gen[0], key, set->slots, &slot);
    if (!seen) {
        if (set->gen[0].count >= set->remember) {
            sig_gen old = set->gen[1];
            set->gen[1] = set->gen[0];
            set->gen[0] = old;
            memset(set->gen[0].used, 0, set->slots);
            set->gen[0].count = 0;
            gen_find(&set->gen[0], key, set->slots, &slot);
        }
        memcpy(set->gen[0].keys[slot], key, 32);
        set->gen[0].used[slot] = 1;
        set->gen[0].count++;
    }
    pthread_mutex_unlock(&set->lock);
    return seen;
}
