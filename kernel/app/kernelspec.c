#include "kernel/app/kernelspec.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/io/atomic_file.h"
#include "engine/io/png.h"

static int mkdirs(const char *path, cl_err *err)
{
    char buf[4096];
    if (strlen(path) >= sizeof buf) return cl_err_set(err, CL_EINVAL, "path too long: %s", path);
    strcpy(buf, path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) && errno != EEXIST)
            return cl_err_set(err, CL_EIO, "cannot create folder '%s': %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST)
        return cl_err_set(err, CL_EIO, "cannot create folder '%s': %s", buf, strerror(errno));
    return 0;
}

/* A jet-coloured 3x3 filter seen through a round lens: the course in one picture. */
uint8_t *ks_draw_logo(int size)
{
    static const uint8_t cells[9][3] = {{0, 0, 143},   {0, 112, 255}, {0, 0, 255},
                                        {0, 255, 255}, {255, 255, 0}, {0, 207, 255},
                                        {143, 255, 111}, {255, 80, 0}, {128, 0, 0}};
    uint8_t *pix = calloc((size_t)size * (size_t)size, 4);
    if (!pix) return NULL;
    double c = (size - 1) / 2.0, r = size * 0.46, ring = size * 0.07;
    for (int y = 0; y < size; y++) {
        for (int x = 0; x < size; x++) {
            uint8_t *p = pix + ((size_t)y * (size_t)size + (size_t)x) * 4;
            double d = hypot(x - c, y - c);
            if (d > r) continue;
            if (d > r - ring) { /* the lens rim */
                p[0] = 40, p[1] = 44, p[2] = 52, p[3] = 255;
                continue;
            }
            double inner = r - ring, u = (x - (c - inner)) / (2 * inner),
                   v = (y - (c - inner)) / (2 * inner);
            int cx = (int)(u * 3), cy = (int)(v * 3);
            cx = cx < 0 ? 0 : cx > 2 ? 2 : cx;
            cy = cy < 0 ? 0 : cy > 2 ? 2 : cy;
            double fx = u * 3 - cx, fy = v * 3 - cy, gap = 0.06;
            int grid = fx < gap || fx > 1 - gap || fy < gap || fy > 1 - gap;
            const uint8_t *col = cells[cy * 3 + cx];
            p[0] = grid ? 250 : col[0];
            p[1] = grid ? 250 : col[1];
            p[2] = grid ? 250 : col[2];
            p[3] = 255;
        }
    }
    return pix;
}

static int write_logo(const char *dir, int size, cl_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/logo-%dx%d.png", dir, size, size);
    uint8_t *pix = ks_draw_logo(size);
    if (!pix) return cl_err_set(err, CL_ENOMEM, "out of memory drawing the logo");
    int rc = png_write_file(path, pix, size, size, 4, err);
    free(pix);
    return rc;
}

static int write_kernel_json(const char *dir, const char *binary, cl_err *err)
{
    json_t *spec = json_pack("{s:[s,s,s,s],s:s,s:s,s:s,s:{s:s}}", "argv", binary, "kernel", "-f",
                             "{connection_file}", "display_name", "CNN Lens", "language", "lens",
                             "interrupt_mode", "message", "metadata", "debugger", "false");
    if (!spec) return cl_err_set(err, CL_ENOMEM, "out of memory");
    json_object_set_new(json_object_get(spec, "metadata"), "debugger", json_false());
    char *text = json_dumps(spec, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(spec);
    if (!text) return cl_err_set(err, CL_ENOMEM, "out of memory");
    char path[4200];
    snprintf(path, sizeof path, "%s/kernel.json", dir);
    int rc = atomic_write_file(path, text, strlen(text), err);
    free(text);
    return rc;
}

int ks_install(const char *prefix, const char *binary, char *out_dir, size_t out_len, cl_err *err)
{
    char dir[4096];
    if ((size_t)snprintf(dir, sizeof dir, "%s/share/jupyter/kernels/cnnlens", prefix) >= sizeof dir)
        return cl_err_set(err, CL_EINVAL, "install prefix too long");
    if (mkdirs(dir, err)) return -1;
    if (write_kernel_json(dir, binary, err)) return -1;
    if (write_logo(dir, 32, err) || write_logo(dir, 64, err)) return -1;
    if (out_dir) snprintf(out_dir, out_len, "%s", dir);
    return 0;
}
