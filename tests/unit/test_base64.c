/* io/base64: RFC 4648 vectors both ways, binary bytes, notebook line
 * wrapping, a prefix of a long text (the PNG header reader), bad input. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/base64.h"

static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

Test(base64, rfc4648_vectors_encode)
{
    cl_err err = {0};
    for (int i = 0; i < 7; i++) {
        char *b = b64_encode(plain[i], strlen(plain[i]), &err);
        cr_assert_not_null(b, "%s", err.msg);
        cr_assert_str_eq(b, coded[i]);
        free(b);
    }
    unsigned char bin[] = {0x00, 0xff, 0xfe, 0x80};
    char *b = b64_encode(bin, sizeof bin, &err);
    cr_assert_str_eq(b, "AP/+gA==");
    free(b);
}

Test(base64, rfc4648_vectors_decode)
{
    cl_err err = {0};
    for (int i = 0; i < 7; i++) {
        size_t n = 99;
        uint8_t *d = b64_decode(coded[i], (size_t)-1, &n, &err);
        cr_assert_not_null(d, "%s", err.msg);
        cr_assert_eq(n, strlen(plain[i]));
        cr_assert(!memcmp(d, plain[i], n));
        free(d);
    }
}

Test(base64, round_trip_of_every_byte_with_wrapped_lines)
{
    cl_err err = {0};
    uint8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    char *b = b64_encode(all, sizeof all, &err);
    size_t len = strlen(b);
    char *wrapped = malloc(len + len / 76 * 2 + 2), *w = wrapped;
    for (size_t i = 0; i < len; i++) {
        if (i && i % 76 == 0) *w++ = '\r', *w++ = '\n';
        *w++ = b[i];
    }
    *w++ = '\n', *w = '\0';
    size_t n = 0;
    uint8_t *d = b64_decode(wrapped, (size_t)-1, &n, &err);
    cr_assert_not_null(d, "%s", err.msg);
    cr_assert_eq(n, sizeof all);
    cr_assert(!memcmp(d, all, n));
    free(d), free(wrapped), free(b);
}

Test(base64, a_prefix_decodes_alone)
{
    cl_err err = {0};
    size_t n = 0;
    uint8_t *d = b64_decode("Zm9vYmFy", 4, &n, &err);
    cr_assert_eq(n, 3);
    cr_assert(!memcmp(d, "foo", 3));
    free(d);
}

Test(base64, a_foreign_character_is_an_error)
{
    cl_err err = {0};
    size_t n = 0;
    cr_assert_null(b64_decode("Zm9v*mFy", (size_t)-1, &n, &err));
    cr_assert(strstr(err.msg, "'*' at character 5") != NULL, "%s", err.msg);
}
