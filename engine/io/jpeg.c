#include "engine/io/jpeg.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "engine/limits.h"

typedef struct jpg_errmgr {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
} jpg_errmgr;

static void on_error(j_common_ptr cinfo)
{
    jpg_errmgr *e = (jpg_errmgr *)cinfo->err;
    e->pub.format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Warnings are ignored except "premature end of data": a truncated file. */
static void on_message(j_common_ptr cinfo, int level)
{
    jpg_errmgr *e = (jpg_errmgr *)cinfo->err;
    if (level < 0 && e->pub.msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}

typedef struct jpg_state {
    struct jpeg_decompress_struct cinfo;
    jpg_errmgr jerr;
    uint8_t *pix, *row;
} jpg_state;

/* Adobe writes CMYK inverted; OpenCV's conversion is then R = C * K / 255. */
static void cmyk_to_rgb(const uint8_t *in, uint8_t *out, int w)
{
    for (int x = 0; x < w; x++) {
        unsigned c = in[4 * x], m = in[4 * x + 1], y = in[4 * x + 2], k = in[4 * x + 3];
        out[3 * x] = (uint8_t)(c * k / 255);
        out[3 * x + 1] = (uint8_t)(m * k / 255);
        out[3 * x + 2] = (uint8_t)(y * k / 255);
    }
}

static int decode(FILE *f, int64_t max_pixels, jpg_state *s, int *channels, cl_err *err)
{
    struct jpeg_decompress_struct *ci = &s->cinfo;
    if (setjmp(s->jerr.jump)) return cl_err_set(err, CL_EFORMAT, "corrupt JPEG (%s)", s->jerr.msg);
    jpeg_create_decompress(ci);
    jpeg_stdio_src(ci, f);
    jpeg_read_header(ci, TRUE);
    if ((int64_t)ci->image_width * ci->image_height > max_pixels)
        return lim_refuse_pixels(ci->image_width, ci->image_height, max_pixels, "the JPEG", err);
    int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
    ci->out_color_space = cmyk ? JCS_CMYK : ci->num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(ci);
    *channels = cmyk ? 3 : ci->output_components;
    size_t w = ci->output_width, stride = w * (size_t)*channels;
    s->pix = malloc(stride * ci->output_height);
    s->row = malloc(w * (size_t)ci->output_components);
    if (!s->pix || !s->row) return cl_err_set(err, CL_ENOMEM, "out of memory decoding a JPEG");
    while (ci->output_scanline < ci->output_height) {
        uint8_t *dst = s->pix + (size_t)ci->output_scanline * stride;
        JSAMPROW row = cmyk ? s->row : dst;
        jpeg_read_scanlines(ci, &row, 1);
        if (cmyk) cmyk_to_rgb(s->row, dst, (int)w);
    }
    jpeg_finish_decompress(ci);
    if (s->jerr.truncated) return cl_err_set(err, CL_EFORMAT, "the JPEG is truncated");
    return 0;
}

int jpg_decode_file(const char *path, int64_t max_pixels, uint8_t **pix, int *w, int *h,
                    int *channels, cl_err *err)
{
    *pix = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return cl_err_set(err, CL_EIO, "cannot open '%s': %s", path, strerror(errno));
    jpg_state *s = calloc(1, sizeof *s);
    if (!s) {
        fclose(f);
        return cl_err_set(err, CL_ENOMEM, "out of memory");
    }
    s->cinfo.err = jpeg_std_error(&s->jerr.pub);
    s->jerr.pub.error_exit = on_error;
    s->jerr.pub.emit_message = on_message;
    int rc = decode(f, max_pixels, s, channels, err);
    if (!rc) {
        *pix = s->pix;
        *w = (int)s->cinfo.output_width;
        *h = (int)s->cinfo.output_height;
        s->pix = NULL;
    }
    jpeg_destroy_decompress(&s->cinfo);
    free(s->pix);
    free(s->row);
    free(s);
    fclose(f);
    return rc ? cl_err_prefix(err, "'%s'", path) : 0;
}
