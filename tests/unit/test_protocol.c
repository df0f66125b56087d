/* kernel/protocol without sockets: HMAC known answers, the constant-time
 * compare, base64, UUIDs and dates, the connection file, and wire frames in
 * both directions, including every way a message can be malformed. */
#include <criterion/criterion.h>
#include <string.h>

#include "kernel/protocol/protocol.h"

static kp_frame fr(const char *s)
{
    return (kp_frame){s, strlen(s)};
}

static void hmac_of(const void *key, size_t key_len, const kp_frame *parts, size_t n, char *hex)
{
    cl_err err = {0};
    kp_signer *s = kp_signer_new("hmac-sha256", key, key_len, &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_eq(kp_sign(s, parts, n, hex, &err), 0, "%s", err.msg);
    kp_signer_free(s);
}

/* RFC 4231 test cases 1, 2 and 6 (a key longer than SHA-256's block). */
Test(hmac, rfc4231_vectors)
{
    char hex[65];
    unsigned char k1[20];
    memset(k1, 0x0b, sizeof k1);
    kp_frame d1 = fr("Hi There");
    hmac_of(k1, sizeof k1, &d1, 1, hex);
    cr_assert_str_eq(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    kp_frame d2 = fr("what do ya want for nothing?");
    hmac_of("Jefe", 4, &d2, 1, hex);
    cr_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    unsigned char k6[131];
    memset(k6, 0xaa, sizeof k6);
    kp_frame d6 = fr("Test Using Larger Than Block-Size Key - Hash Key First");
    hmac_of(k6, sizeof k6, &d6, 1, hex);
    cr_assert_str_eq(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

Test(hmac, parts_are_concatenated)
{
    char whole[65], split[65];
    kp_frame one = fr("what do ya want for nothing?");
    kp_frame three[] = {fr("what do "), fr(""), fr("ya want for nothing?")};
    hmac_of("Jefe", 4, &one, 1, whole);
    hmac_of("Jefe", 4, three, 3, split);
    cr_assert_str_eq(whole, split);
}

/* The value Python's hmac module gives for a Jupyter message's four dicts. */
Test(hmac, jupyter_message_known_answer)
{
    char hex[65];
    kp_frame parts[] = {fr("{\"msg_id\":\"a\",\"msg_type\":\"kernel_info_request\"}"), fr("{}"),
                        fr("{}"), fr("{}")};
    hmac_of("secret-key", 10, parts, 4, hex);
    cr_assert_str_eq(hex, "e8daa688bf116b5407d8b00b4f8b7b759f68e988c8649d4f731f14236f8b7d7e");
}

Test(hmac, empty_key_means_unsigned)
{
    cl_err err = {0};
    kp_signer *s = kp_signer_new("hmac-sha256", "", 0, &err);
    cr_assert_not_null(s);
    cr_assert_eq(kp_signer_enabled(s), 0);
    char hex[65] = "x";
    kp_frame p = fr("data");
    cr_assert_eq(kp_sign(s, &p, 1, hex, &err), 0);
    cr_assert_str_eq(hex, "");
    kp_signer_free(s);
}

Test(hmac, other_schemes_are_refused)
{
    cl_err err = {0};
    cr_assert_null(kp_signer_new("hmac-md5", "k", 1, &err));
    cr_assert(strstr(err.msg, "hmac-md5"));
}

Test(ct_equal, compares_every_byte)
{
    cr_assert(kp_ct_equal("abcdef", "abcdef", 6));
    cr_assert_not(kp_ct_equal("abcdef", "xbcdef", 6));
    cr_assert_not(kp_ct_equal("abcdef", "abcdex", 6));
    cr_assert_not(kp_ct_equal("\x01", "\x81", 1));
    cr_assert(kp_ct_equal("a", "b", 0));
}

Test(codec, uuid4_format)
{
    char a[37], b[37];
    kp_uuid4(a);
    kp_uuid4(b);
    cr_assert_eq(strlen(a), 36);
    cr_assert(a[8] == '-' && a[13] == '-' && a[18] == '-' && a[23] == '-');
    cr_assert_eq(a[14], '4');
    cr_assert(strchr("89ab", a[19]));
    cr_assert_str_neq(a, b);
}

Test(codec, iso8601_has_a_timezone)
{
    char d[32];
    kp_now_iso8601(d);
    cr_assert_eq(strlen(d), 27, "%s", d);
    cr_assert(d[4] == '-' && d[10] == 'T' && d[19] == '.' && d[26] == 'Z', "%s", d);
}

Test(conn, tcp_and_ipc)
{
    kp_conn c;
    cl_err err = {0};
    const char *text = "{\"shell_port\": 5001, \"iopub_port\": 5002, \"stdin_port\": 5003,"
                       "\"control_port\": 5004, \"hb_port\": 5005, \"ip\": \"127.0.0.1\","
                       "\"key\": \"abc\", \"transport\": \"tcp\", \"signature_scheme\": "
                       "\"hmac-sha256\", \"kernel_name\": \"cnnlens\"}";
    cr_assert_eq(kp_conn_parse(text, &c, &err), 0, "%s", err.msg);
    char ep[128];
    cr_assert_eq(kp_conn_endpoint(&c, c.shell_port, ep, sizeof ep), 0);
    cr_assert_str_eq(ep, "tcp://127.0.0.1:5001");
    cr_assert_str_eq(c.key, "abc");
    cr_assert_eq(c.key_len, 3);
    cr_assert_eq(c.hb_port, 5005);
    kp_conn_clear(&c);

    const char *ipc = "{\"shell_port\": 1, \"iopub_port\": 2, \"stdin_port\": 3,"
                      "\"control_port\": 4, \"hb_port\": 5, \"ip\": \"/tmp/kernel-x\","
                      "\"key\": \"\", \"transport\": \"ipc\"}";
    cr_assert_eq(kp_conn_parse(ipc, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(kp_conn_endpoint(&c, c.iopub_port, ep, sizeof ep), 0);
    cr_assert_str_eq(ep, "ipc:///tmp/kernel-x-2");
    cr_assert_eq(c.key_len, 0);
    kp_conn_clear(&c);
}

Test(conn, errors_name_the_field)
{
    kp_conn c;
    cl_err err = {0};
    cr_assert_eq(kp_conn_parse("{\"shell_port\": \"x\"}", &c, &err), -1);
    cr_assert(strstr(err.msg, "shell_port"), "%s", err.msg);
    cr_assert_eq(kp_conn_parse("{\"transport\": \"udp\"}", &c, &err), -1);
    cr_assert(strstr(err.msg, "udp"), "%s", err.msg);
    cr_assert_eq(kp_conn_parse("not json", &c, &err), -1);
    cr_assert_eq(kp_conn_load("/nonexistent/kernel.json", &c, &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent/kernel.json"), "%s", err.msg);
}

/* ---- wire ------------------------------------------------------------------ */

static kp_signer *signer(void)
{
    cl_err err = {0};
    kp_signer *s = kp_signer_new("hmac-sha256", "secret-key", 10, &err);
    cr_assert_not_null(s);
    return s;
}

/* A request with two routing identities and two binary buffers. */
static void make_request(kp_msg *m)
{
    kp_msg parent = {0};
    static kp_buf ids[2] = {{(unsigned char *)"id-one", 6}, {(unsigned char *)"\0\x01id", 4}};
    parent.ids = ids;
    parent.n_ids = 2;
    parent.header = json_pack("{s:s,s:s,s:s}", "msg_id", "p1", "msg_type", "execute_request",
                              "username", "ada");
    cr_assert_eq(kp_msg_init(m, "execute_reply", &parent,
                             json_pack("{s:s,s:i}", "status", "ok", "execution_count", 3), "sess"),
                 0);
    json_decref(parent.header);
    m->buffers = calloc(2, sizeof *m->buffers);
    m->buffers[0].data = malloc(3), memcpy(m->buffers[0].data, "\0\1\2", 3), m->buffers[0].len = 3;
    m->buffers[1].data = malloc(1), m->buffers[1].len = 0;
    m->n_buffers = 2;
}

static kp_frame *as_frames(kp_buf *b, size_t n)
{
    kp_frame *f = calloc(n, sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = (kp_frame){b[i].data, b[i].len};
    return f;
}

Test(wire, round_trip_with_identities_and_buffers)
{
    kp_signer *s = signer();
    kp_msg m, back;
    make_request(&m);
    kp_buf *bufs;
    size_t n;
    cl_err err = {0};
    cr_assert_eq(kp_msg_serialize(&m, s, &bufs, &n, &err), 0);
    cr_assert_eq(n, 2 + 6 + 2);
    cr_assert_eq(bufs[2].len, 9);
    cr_assert_eq(memcmp(bufs[2].data, "<IDS|MSG>", 9), 0);
    cr_assert_eq(bufs[3].len, 64);
    kp_frame *f = as_frames(bufs, n);
    cr_assert_eq(kp_msg_parse(f, n, s, NULL, &back, &err), 0, "%s", err.msg);
    cr_assert_eq(back.n_ids, 2);
    cr_assert_eq(back.ids[1].len, 4);
    cr_assert_eq(memcmp(back.ids[1].data, "\0\x01id", 4), 0);
    cr_assert_eq(back.n_buffers, 2);
    cr_assert_eq(memcmp(back.buffers[0].data, "\0\1\2", 3), 0);
    cr_assert_eq(back.buffers[1].len, 0);
    cr_assert_str_eq(kp_msg_type(&back), "execute_reply");
    cr_assert_str_eq(kp_msg_id(&back), kp_msg_id(&m));
    cr_assert_str_eq(json_string_value(json_object_get(back.header, "version")), "5.3");
    cr_assert_str_eq(json_string_value(json_object_get(back.header, "username")), "ada");
    cr_assert_str_eq(json_string_value(json_object_get(back.parent_header, "msg_id")), "p1");
    cr_assert_eq(json_integer_value(json_object_get(back.content, "execution_count")), 3);
    kp_msg_clear(&back);
    kp_msg_clear(&m);
    kp_frames_free(bufs, n);
    free(f);
    kp_signer_free(s);
}

Test(wire, fresh_ids_every_message)
{
    kp_msg a, b;
    cr_assert_eq(kp_msg_init(&a, "status", NULL, NULL, "s"), 0);
    cr_assert_eq(kp_msg_init(&b, "status", NULL, NULL, "s"), 0);
    cr_assert_str_neq(kp_msg_id(&a), kp_msg_id(&b));
    cr_assert_eq(kp_msg_set_topic(&a, "kernel.s.status"), 0);
    cr_assert_eq(a.n_ids, 1);
    kp_msg_clear(&a);
    kp_msg_clear(&b);
}

/* Frames: [delim, sig, header, parent, metadata, content], signed or not. */
static int parse_dicts(const char *header, const char *content, const char *sig, cl_err *err)
{
    kp_signer *s = signer();
    kp_frame f[6] = {fr("<IDS|MSG>"), fr(""), fr(header), fr("{}"), fr("{}"), fr(content)};
    char hex[65];
    kp_sign(s, f + 2, 4, hex, err);
    f[1] = fr(sig ? sig : hex);
    kp_msg m;
    int rc = kp_msg_parse(f, 6, s, NULL, &m, err);
    kp_msg_clear(&m);
    kp_signer_free(s);
    return rc;
}

#define GOOD_HEADER "{\"msg_id\":\"a\",\"msg_type\":\"kernel_info_request\",\"session\":\"s\"}"

Test(wire, signature_checks)
{
    cl_err err = {0};
    cr_assert_eq(parse_dicts(GOOD_HEADER, "{}", NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(parse_dicts(GOOD_HEADER, "{}", "", &err), -1);
    cr_assert(strstr(err.msg, "signature has 0 bytes"), "%s", err.msg);
    char hex[65];
    kp_signer *s = signer();
    kp_frame parts[4] = {fr(GOOD_HEADER), fr("{}"), fr("{}"), fr("{}")};
    kp_sign(s, parts, 4, hex, &err);
    kp_signer_free(s);
    hex[63] = hex[63] == '0' ? '1' : '0'; /* differs only in the last byte */
    cr_assert_eq(parse_dicts(GOOD_HEADER, "{}", hex, &err), -1);
    cr_assert_str_eq(err.msg, "invalid signature");
    hex[63] = '\0'; /* one byte short */
    cr_assert_eq(parse_dicts(GOOD_HEADER, "{}", hex, &err), -1);
    cr_assert(strstr(err.msg, "63 bytes"), "%s", err.msg);
}

Test(wire, changed_content_fails_the_signature)
{
    cl_err err = {0};
    kp_signer *s = signer();
    kp_frame f[6] = {fr("<IDS|MSG>"), fr(""), fr(GOOD_HEADER), fr("{}"), fr("{}"), fr("{}")};
    char hex[65];
    kp_sign(s, f + 2, 4, hex, &err);
    f[1] = fr(hex);
    f[5] = fr("{\"code\": \"changed\"}");
    kp_msg m;
    cr_assert_eq(kp_msg_parse(f, 6, s, NULL, &m, &err), -1);
    cr_assert_str_eq(err.msg, "invalid signature");
    kp_signer_free(s);
}

Test(wire, unsigned_when_no_key)
{
    cl_err err = {0};
    kp_signer *s = kp_signer_new("", "", 0, &err);
    kp_frame f[6] = {fr("<IDS|MSG>"), fr(""), fr(GOOD_HEADER), fr("{}"), fr("{}"), fr("{}")};
    kp_msg m;
    cr_assert_eq(kp_msg_parse(f, 6, s, NULL, &m, &err), 0, "%s", err.msg);
    kp_msg_clear(&m);
    kp_signer_free(s);
}

Test(wire, replayed_signature_is_refused)
{
    kp_signer *s = signer();
    kp_sigset *seen = kp_sigset_new(16);
    kp_frame f[6] = {fr("<IDS|MSG>"), fr(""), fr(GOOD_HEADER), fr("{}"), fr("{}"), fr("{}")};
    char hex[65];
    cl_err err = {0};
    kp_sign(s, f + 2, 4, hex, &err);
    f[1] = fr(hex);
    kp_msg m;
    cr_assert_eq(kp_msg_parse(f, 6, s, seen, &m, &err), 0, "%s", err.msg);
    kp_msg_clear(&m);
    cr_assert_eq(kp_msg_parse(f, 6, s, seen, &m, &err), -1);
    cr_assert(strstr(err.msg, "duplicate signature"), "%s", err.msg);
    kp_sigset_free(seen);
    kp_signer_free(s);
}

Test(wire, sigset_remembers_at_least_n)
{
    kp_sigset *set = kp_sigset_new(100);
    char sig[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(sig, sizeof sig, "sig-%d", i);
        cr_assert_eq(kp_sigset_seen(set, sig, strlen(sig)), 0, "%s", sig);
    }
    for (int i = 900; i < 1000; i++) {
        snprintf(sig, sizeof sig, "sig-%d", i);
        cr_assert_eq(kp_sigset_seen(set, sig, strlen(sig)), 1, "%s forgotten", sig);
    }
    kp_sigset_free(set);
}

Test(wire, malformed_frames)
{
    cl_err err = {0};
    kp_signer *s = signer();
    kp_msg m;
    kp_frame nodelim[] = {fr("id"), fr("x"), fr("{}"), fr("{}"), fr("{}"), fr("{}")};
    cr_assert_eq(kp_msg_parse(nodelim, 6, s, NULL, &m, &err), -1);
    cr_assert(strstr(err.msg, "<IDS|MSG>"), "%s", err.msg);
    kp_frame few[] = {fr("<IDS|MSG>"), fr("x"), fr("{}"), fr("{}")};
    cr_assert_eq(kp_msg_parse(few, 4, s, NULL, &m, &err), -1);
    cr_assert(strstr(err.msg, "only 3 frames"), "%s", err.msg);
    cr_assert_eq(kp_msg_parse(NULL, 0, s, NULL, &m, &err), -1);
    static char big[16];
    kp_frame huge[] = {fr("<IDS|MSG>"), {big, (size_t)100 << 20}};
    cr_assert_eq(kp_msg_parse(huge, 2, s, NULL, &m, &err), -1);
    cr_assert(strstr(err.msg, "limit"), "%s", err.msg);
    kp_signer_free(s);
}

Test(wire, malformed_json)
{
    cl_err err = {0};
    cr_assert_eq(parse_dicts("{not json", "{}", NULL, &err), -1);
    cr_assert(strstr(err.msg, "header is not valid JSON"), "%s", err.msg);
    cr_assert_eq(parse_dicts("[1,2]", "{}", NULL, &err), -1);
    cr_assert(strstr(err.msg, "header is not a JSON object"), "%s", err.msg);
    cr_assert_eq(parse_dicts("{\"msg_id\":\"a\"}", "{}", NULL, &err), -1);
    cr_assert(strstr(err.msg, "msg_type"), "%s", err.msg);
    cr_assert_eq(parse_dicts("{\"msg_id\":1,\"msg_type\":\"x\"}", "{}", NULL, &err), -1);
    cr_assert_eq(parse_dicts(GOOD_HEADER, "[\"a list\"]", NULL, &err), -1);
    cr_assert(strstr(err.msg, "content is not a JSON object"), "%s", err.msg);
    cr_assert_eq(parse_dicts(GOOD_HEADER, "\"a string\"", NULL, &err), -1);
    cr_assert_eq(parse_dicts(GOOD_HEADER, "{\"code\": \"\xff\xfe\"}", NULL, &err), -1);
    cr_assert(strstr(err.msg, "content is not valid JSON"), "%s", err.msg);
    cr_assert_eq(parse_dicts(GOOD_HEADER, "{\"a\": 1, \"a\": 2}", NULL, &err), -1);
    cr_assert_eq(parse_dicts(GOOD_HEADER, "{\"code\": \"\\u0000\"}", NULL, &err), -1);
}
