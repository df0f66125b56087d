#include "kernel/app/grade_report.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A cell's source is a string or a list of strings (nbformat allows both). */
static char *cell_source(json_t *cell)
{
    json_t *src = json_object_get(cell, "source");
    if (json_is_string(src)) return strdup(json_string_value(src));
    size_t len = 0, i;
    json_t *part;
    json_array_foreach(src, i, part) len += json_string_length(part);
    char *out = malloc(len + 1);
    if (!out) return NULL;
    out[0] = '\0';
    size_t k = 0;
    json_array_foreach(src, i, part)
    {
        size_t n = json_string_length(part);
        memcpy(out + k, json_string_value(part), n);
        k += n;
    }
    out[k] = '\0';
    return out;
}

static int is_code(json_t *cell)
{
    const char *t = json_string_value(json_object_get(cell, "cell_type"));
    return t && !strcmp(t, "code");
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    return strndup(s, n);
}

static void add_expect(gr_row *r, int cell, int line, const char *text, size_t n)
{
    gr_expect *grown = realloc(r->expects, (size_t)(r->n_expects + 1) * sizeof *grown);
    if (!grown) return;
    r->expects = grown;
    gr_expect *e = &r->expects[r->n_expects++];
    memset(e, 0, sizeof *e);
    e->cell = cell;
    e->line = line;
    e->source = trim_dup(text, n);
}

static int starts_with_expect(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    return n >= 6 && !strncmp(s, "expect", 6) && (n == 6 || isspace((unsigned char)s[6]));
}

void gr_collect_expects(json_t *nb, gr_row *r)
{
    size_t i;
    json_t *cell;
    int code_no = 0;
    json_array_foreach(json_object_get(nb, "cells"), i, cell)
    {
        if (!is_code(cell)) continue;
        code_no++;
        char *src = cell_source(cell);
        if (!src) continue;
        int line = 1;
        for (char *p = src; *p;) {
            char *end = strchr(p, '\n');
            size_t n = end ? (size_t)(end - p) : strlen(p);
            if (starts_with_expect(p, n)) add_expect(r, code_no, line, p, n);
            p += n + (end ? 1 : 0);
            line++;
        }
        free(src);
    }
}

/* The line an error points at: the first "line N" in its evalue or traceback. */
static int error_line(json_t *out)
{
    const char *ev = json_string_value(json_object_get(out, "evalue"));
    const char *p = ev ? strstr(ev, "line ") : NULL;
    size_t i;
    json_t *tb;
    json_array_foreach(json_object_get(out, "traceback"), i, tb)
    {
        if (p) break;
        p = json_string_value(tb) ? strstr(json_string_value(tb), "line ") : NULL;
    }
    return p ? atoi(p + 5) : 0;
}

static json_t *find_error(json_t *cell)
{
    size_t i;
    json_t *out;
    json_array_foreach(json_object_get(cell, "outputs"), i, out)
    {
        const char *t = json_string_value(json_object_get(out, "output_type"));
        if (t && !strcmp(t, "error")) return out;
    }
    return NULL;
}

static void add_error(gr_row *r, int cell, int line, const char *ename, const char *evalue)
{
    char **grown = realloc(r->errors, (size_t)(r->n_errors + 1) * sizeof *grown);
    if (!grown) return;
    r->errors = grown;
    char buf[1024];
    snprintf(buf, sizeof buf, "cell %d, line %d: %s: %s", cell, line, ename ? ename : "Error",
             evalue ? evalue : "");
    r->errors[r->n_errors++] = strdup(buf);
}

static void score_cell(gr_row *r, int code_no, json_t *cell)
{
    int executed = !json_is_null(json_object_get(cell, "execution_count")) &&
                   json_object_get(cell, "execution_count");
    json_t *err = executed ? find_error(cell) : NULL;
    int line = err ? error_line(err) : 0;
    const char *ename = err ? json_string_value(json_object_get(err, "ename")) : NULL;
    const char *evalue = err ? json_string_value(json_object_get(err, "evalue")) : NULL;
    int expect_failed = ename && !strcmp(ename, "ExpectationFailed");
    for (int k = 0; k < r->n_expects; k++) {
        gr_expect *e = &r->expects[k];
        if (e->cell != code_no) continue;
        if (!executed) e->state = GR_NOTRUN;
        else if (!err || (line && e->line < line)) e->state = GR_PASS;
        else if (expect_failed && e->line == line) {
            e->state = GR_FAIL;
            e->message = strdup(evalue ? evalue : "");
        } else e->state = GR_NOTRUN;
    }
    if (err && !expect_failed) add_error(r, code_no, line, ename, evalue);
}

void gr_score(json_t *executed, gr_row *r)
{
    size_t i;
    json_t *cell;
    int code_no = 0;
    json_array_foreach(json_object_get(executed, "cells"), i, cell)
    {
        if (!is_code(cell)) continue;
        score_cell(r, ++code_no, cell);
    }
}

int gr_passed(const gr_row *r)
{
    int n = 0;
    for (int k = 0; k < r->n_expects; k++) n += r->expects[k].state == GR_PASS;
    return n;
}

const char *gr_outcome_name(gr_outcome o)
{
    switch (o) {
    case GR_OK: return "ok";
    case GR_FAILED: return "failed";
    case GR_TIMEOUT: return "timeout";
    case GR_CRASHED: return "crashed";
    case GR_INVALID: return "invalid";
    }
    return "?";
}

static const char *state_name(gr_state s)
{
    return s == GR_PASS ? "pass" : s == GR_FAIL ? "fail" : "not run";
}

/* RFC 4180: quote every field, double the quotes inside. */
static void csv_field(FILE *f, const char *s, int last)
{
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputc('"', f);
    fputc(last ? '\n' : ',', f);
}

static int max_expects(const gr_row *rows, int n)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (rows[i].n_expects > m) m = rows[i].n_expects;
    return m;
}

static int open_out(const char *dir, const char *name, FILE **f, char *path, size_t plen,
                    cl_err *err)
{
    snprintf(path, plen, "%s/%s", dir, name);
    *f = fopen(path, "w");
    if (!*f) return cl_err_set(err, CL_EIO, "cannot write '%s'", path);
    return 0;
}

int gr_write_csv(const char *dir, const gr_row *rows, int n, cl_err *err)
{
    char path[4352];
    FILE *f;
    if (open_out(dir, "gradebook.csv", &f, path, sizeof path, err)) return -1;
    int m = max_expects(rows, n);
    fputs("notebook,status,passed,checks,errors,seconds,note", f);
    for (int k = 0; k < m; k++) fprintf(f, ",check_%d", k + 1);
    fputc('\n', f);
    for (int i = 0; i < n; i++) {
        const gr_row *r = &rows[i];
        char num[64];
        csv_field(f, r->notebook, 0);
        csv_field(f, gr_outcome_name(r->outcome), 0);
        snprintf(num, sizeof num, "%d", gr_passed(r));
        csv_field(f, num, 0);
        snprintf(num, sizeof num, "%d", r->n_expects);
        csv_field(f, num, 0);
        snprintf(num, sizeof num, "%d", r->n_errors);
        csv_field(f, num, 0);
        snprintf(num, sizeof num, "%.2f", r->seconds);
        csv_field(f, num, 0);
        csv_field(f, r->note[0] ? r->note : (r->n_errors ? r->errors[0] : ""), m == 0);
        for (int k = 0; k < m; k++)
            csv_field(f, k < r->n_expects ? state_name(r->expects[k].state) : "", k == m - 1);
    }
    if (fclose(f)) return cl_err_set(err, CL_EIO, "cannot write '%s'", path);
    return 0;
}

static void html_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void html_row(FILE *f, const gr_row *r)
{
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>", f);
    html_text(f, r->notebook);
    fputs("</title><style>body{font-family:sans-serif;margin:2em}"
          "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}"
          ".pass{color:#080}.fail{color:#b00}.notrun{color:#888}code{background:#f4f4f4}"
          "</style></head><body>\n<h1>",
          f);
    html_text(f, r->notebook);
    fprintf(f, "</h1>\n<p>Status: <b>%s</b> &middot; %d of %d checks passed &middot; %.1f s</p>\n",
            gr_outcome_name(r->outcome), gr_passed(r), r->n_expects, r->seconds);
    if (r->note[0]) {
        fputs("<p class=\"fail\">", f);
        html_text(f, r->note);
        fputs("</p>\n", f);
    }
    fputs("<table><tr><th>#</th><th>cell</th><th>check</th><th>result</th></tr>\n", f);
    for (int k = 0; k < r->n_expects; k++) {
        const gr_expect *e = &r->expects[k];
        const char *cls = e->state == GR_PASS ? "pass" : e->state == GR_FAIL ? "fail" : "notrun";
        fprintf(f, "<tr><td>%d</td><td>%d, line %d</td><td><code>", k + 1, e->cell, e->line);
        html_text(f, e->source);
        fprintf(f, "</code></td><td class=\"%s\">%s", cls, state_name(e->state));
        if (e->message) {
            fputs(": ", f);
            html_text(f, e->message);
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    if (r->n_errors) {
        fputs("<h2>Errors</h2><ul>\n", f);
        for (int k = 0; k < r->n_errors; k++) {
            fputs("<li class=\"fail\">", f);
            html_text(f, r->errors[k]);
            fputs("</li>\n", f);
        }
        fputs("</ul>\n", f);
    }
    fputs("</body></html>\n", f);
}

int gr_write_html(const char *dir, const gr_row *rows, int n, cl_err *err)
{
    for (int i = 0; i < n; i++) {
        char name[300], path[4352];
        const char *nb = rows[i].notebook;
        size_t len = strlen(nb);
        snprintf(name, sizeof name, "%.*s.html", (int)(len > 6 ? len - 6 : len), nb);
        FILE *f;
        if (open_out(dir, name, &f, path, sizeof path, err)) return -1;
        html_row(f, &rows[i]);
        if (fclose(f)) return cl_err_set(err, CL_EIO, "cannot write '%s'", path);
    }
    return 0;
}

void gr_row_free(gr_row *r)
{
    for (int k = 0; k < r->n_expects; k++) {
        free(r->expects[k].source);
        free(r->expects[k].message);
    }
    free(r->expects);
    for (int k = 0; k < r->n_errors; k++) free(r->errors[k]);
    free(r->errors);
    r->expects = NULL;
    r->errors = NULL;
    r->n_expects = r->n_errors = 0;
}
