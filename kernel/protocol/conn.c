#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/protocol/protocol.h"

void kp_conn_clear(kp_conn *c)
{
    free(c->key);
    memset(c, 0, sizeof *c);
}

static int get_port(json_t *root, const char *name, int *port, cl_err *err)
{
    json_t *v = json_object_get(root, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 65535)
        return cl_err_set(err, CL_EFORMAT, "connection file: '%s' must be a port number", name);
    *port = (int)json_integer_value(v);
    return 0;
}

static int get_str(json_t *root, const char *name, const char *dflt, char *dst, size_t n,
                   cl_err *err)
{
    json_t *v = json_object_get(root, name);
    const char *s = v ? json_string_value(v) : dflt;
    if (!s) return cl_err_set(err, CL_EFORMAT, "connection file: '%s' must be a string", name);
    if (strlen(s) >= n)
        return cl_err_set(err, CL_EFORMAT, "connection file: '%s' is too long", name);
    strcpy(dst, s);
    return 0;
}

static int parse_root(json_t *root, kp_conn *c, cl_err *err)
{
    if (!json_is_object(root))
        return cl_err_set(err, CL_EFORMAT, "connection file: not a JSON object");
    if (get_str(root, "transport", "tcp", c->transport, sizeof c->transport, err) ||
        get_str(root, "ip", "127.0.0.1", c->ip, sizeof c->ip, err) ||
        get_str(root, "signature_scheme", "hmac-sha256", c->scheme, sizeof c->scheme, err))
        return -1;
    if (strcmp(c->transport, "tcp") && strcmp(c->transport, "ipc"))
        return cl_err_set(err, CL_EFORMAT, "connection file: transport '%s' is not tcp or ipc",
                          c->transport);
    if (get_port(root, "shell_port", &c->shell_port, err) ||
        get_port(root, "iopub_port", &c->iopub_port, err) ||
        get_port(root, "stdin_port", &c->stdin_port, err) ||
        get_port(root, "control_port", &c->control_port, err) ||
        get_port(root, "hb_port", &c->hb_port, err))
        return -1;
    json_t *key = json_object_get(root, "key");
    if (key && !json_is_string(key))
        return cl_err_set(err, CL_EFORMAT, "connection file: 'key' must be a string");
    c->key_len = key ? json_string_length(key) : 0;
    c->key = malloc(c->key_len + 1);
    if (!c->key) return cl_err_set(err, CL_ENOMEM, "out of memory");
    memcpy(c->key, key ? json_string_value(key) : "", c->key_len + 1);
    return 0;
}

int kp_conn_parse(const char *text, kp_conn *c, cl_err *err)
{
    memset(c, 0, sizeof *c);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root)
        return cl_err_set(err, CL_EFORMAT, "connection file is not JSON (line %d: %s)", jerr.line,
                          jerr.text);
    int rc = parse_root(root, c, err);
    json_decref(root);
    if (rc) kp_conn_clear(c);
    return rc;
}

int kp_conn_load(const char *path, kp_conn *c, cl_err *err)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f)
        return cl_err_set(err, CL_EIO, "cannot open connection file '%s': %s", path,
                          strerror(errno));
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int too_big = !feof(f);
    fclose(f);
    if (too_big) return cl_err_set(err, CL_EFORMAT, "connection file '%s' is too large", path);
    buf[n] = '\0';
    if (kp_conn_parse(buf, c, err)) return cl_err_prefix(err, "%s", path);
    return 0;
}

int kp_conn_endpoint(const kp_conn *c, int port, char *buf, size_t n)
{
    int len = strcmp(c->transport, "ipc") ? snprintf(buf, n, "tcp://%s:%d", c->ip, port)
                                          : snprintf(buf, n, "ipc://%s-%d", c->ip, port);
    return len < 0 || (size_t)len >= n ? -1 : 0;
}
