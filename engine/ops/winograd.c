/* winograd — 3x3 stride-1 convs by Winograd's F(2x2,3x3) (Lavin & Gray 2016):
 * a 2x2 output tile costs 16 multiplies per channel pair instead of 36.
 * Input tiles (4x4, overlapping by 2) and weights are transformed,
 * V = B^T d B and U = G g G^T; the sum over channels of U .* V becomes 16
 * independent sgemms, one per position in the tile; A^T M A gives the 2x2
 * outputs.  The points (0, 1, -1, inf) keep every transform exact in binary
 * except G's halves, so the result differs from im2col by a few ulps.
 *
 * The same U serves the backward to the input, a stride-1 3x3 correlation of
 * dy with the flipped, transposed kernel: flipping g permutes G's rows
 * (G J = P G, P swapping rows 0 and 3), so the flipped kernel's transform is
 * U with tile rows and columns 0 and 3 swapped, used transposed.
 *
 * Work is done in chunks of tiles (over all images of the batch) that fit the
 * workspace; each step is split over the engine's threads by channel or by
 * tile position, so every output is computed by one thread in a fixed order
 * and results do not depend on the thread count. */
/* The transforms are loops over contiguous floats that GCC vectorises at -O3
 * only (its -O2 cost model skips loops of unknown length). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif

#include "engine/ops/ops.h"

#include <string.h>

#include "engine/threads.h"

/* Workspace bound, in floats (8 MiB), as the im2col bands. */
#define WINO_BUDGET_FLOATS ((int64_t)2 << 20)

/* Tile position t = 4 i + j of the flipped kernel reads U at perm(i), perm(j). */
static const int flip_pos[16] = {15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0};

int op_wino_applies(const op_conv *c)
{
    return c->k == 3 && c->stride == 1 && c->pad >= 0 && c->pad <= 2;
}

size_t op_wino_weights_floats(const op_conv *c)
{
    return (size_t)16 * c->cout * c->cin;
}

/* One 3x3 kernel g (row-major) to its 4x4 transform, written with stride `ld`. */
static void transform_kernel(const float *g, float *u, size_t ld)
{
    float gg[4][3];
    for (int j = 0; j < 3; j++) {
        gg[0][j] = g[j];
        gg[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        gg[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        gg[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        u[(4 * i + 0) * ld] = gg[i][0];
        u[(4 * i + 1) * ld] = 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]);
        u[(4 * i + 2) * ld] = 0.5f * (gg[i][0] - gg[i][1] + gg[i][2]);
        u[(4 * i + 3) * ld] = gg[i][2];
    }
}

void op_wino_weights(const op_conv *c, const float *wt, float *u)
{
    size_t ld = (size_t)c->cout * c->cin;
    for (size_t p = 0; p < ld; p++) transform_kernel(wt + 9 * p, u + p, ld);
}

/* Tiles of 2x2 outputs for an output of ho x wo. */
static int64_t tiles_of(int64_t ho, int64_t wo)
{
    return ((ho + 1) / 2) * ((wo + 1) / 2);
}

/* Tiles per chunk: what the budget allows, but no more than 8 images' worth
 * (a small net's scratch stays small). */
static int64_t chunk_tiles(const op_conv *c, int64_t h, int64_t w)
{
    int64_t ho = op_conv_out(h, 3, 1, c->pad), wo = op_conv_out(w, 3, 1, c->pad);
    int64_t per_img = tiles_of(ho, wo) > tiles_of(h, w) ? tiles_of(ho, wo) : tiles_of(h, w);
    int64_t t = WINO_BUDGET_FLOATS / (16 * ((int64_t)c->cin + c->cout));
    if (t < 16) t = 16;
    return t < 8 * per_img ? t : 8 * per_img;
}

size_t op_wino_workspace(const op_conv *c, int64_t h, int64_t w)
{
    return (size_t)(16 * ((int64_t)c->cin + c->cout) * chunk_tiles(c, h, w));
}

/* One pass: `cin` planes of h x w in, `cout` planes of ho x wo out, padding
 * `pad`; forward or (flip) the backward to the input. */
typedef struct wino_job {
    int cin, cout, pad, flip, acc;
    int64_t h, w, ho, wo, tw, per_img;
    int64_t j0, nt, cap; /* this chunk's first tile and count; V and M row length */
    const float *x, *u, *bias;
    float *y, *v, *m;
} wino_job;

/* Tiles handled at once along a row (the vectorised loops' length). */
#define WINO_BLK 64

/* Row y of a plane, columns x0 + 2q (even) and x0 + 2q + 1 (odd) for q in
 * [0, cnt), zero outside the plane. */
static void load_row(const wino_job *jb, const float *plane, int64_t y, int64_t x0, int cnt,
                     float *ev, float *od)
{
    if (y < 0 || y >= jb->h) {
        memset(ev, 0, (size_t)cnt * sizeof *ev), memset(od, 0, (size_t)cnt * sizeof *od);
        return;
    }
    const float *row = plane + y * jb->w;
    if (x0 >= 0 && x0 + 2 * cnt <= jb->w) {
        for (int q = 0; q < cnt; q++) ev[q] = row[x0 + 2 * q], od[q] = row[x0 + 2 * q + 1];
        return;
    }
    for (int q = 0; q < cnt; q++) {
        int64_t a = x0 + 2 * q, b = a + 1;
        ev[q] = a >= 0 && a < jb->w ? row[a] : 0.0f;
        od[q] = b >= 0 && b < jb->w ? row[b] : 0.0f;
    }
}

/* V for `cnt` tiles of one tile row (tiles tx0.., chunk columns k..): the
 * rows of B^T d over whole rows, then d B along them, split into even and
 * odd columns so every loop runs over contiguous floats. */
static void input_tiles(const wino_job *jb, const float *plane, int64_t ty, int64_t tx0, int cnt,
                        float *v, int64_t stride_t)
{
    float ev[4][WINO_BLK + 1], od[4][WINO_BLK + 1], te[4][WINO_BLK + 1], to[4][WINO_BLK + 1];
    int64_t y0 = 2 * ty - jb->pad, x0 = 2 * tx0 - jb->pad;
    for (int r = 0; r < 4; r++) load_row(jb, plane, y0 + r, x0, cnt + 1, ev[r], od[r]);
    for (int q = 0; q <= cnt; q++) {
        te[0][q] = ev[0][q] - ev[2][q], to[0][q] = od[0][q] - od[2][q];
        te[1][q] = ev[1][q] + ev[2][q], to[1][q] = od[1][q] + od[2][q];
        te[2][q] = ev[2][q] - ev[1][q], to[2][q] = od[2][q] - od[1][q];
        te[3][q] = ev[1][q] - ev[3][q], to[3][q] = od[1][q] - od[3][q];
    }
    for (int i = 0; i < 4; i++) {
        float *v0 = v + (4 * i) * stride_t, *v1 = v0 + stride_t, *v2 = v1 + stride_t;
        float *v3 = v2 + stride_t;
        const float *e = te[i], *o = to[i];
        for (int q = 0; q < cnt; q++) {
            v0[q] = e[q] - e[q + 1];
            v1[q] = o[q] + e[q + 1];
            v2[q] = e[q + 1] - o[q];
            v3[q] = o[q] - o[q + 1];
        }
    }
}

/* The run of tiles at chunk offset k that stays in one tile row, at most
 * WINO_BLK long: its image, tile row and first tile column, and its length. */
static int64_t tile_run(const wino_job *jb, int64_t k, int64_t *img, int64_t *ty, int64_t *tx)
{
    int64_t j = jb->j0 + k, r = j % jb->per_img;
    *img = j / jb->per_img, *ty = r / jb->tw, *tx = r % jb->tw;
    int64_t cnt = jb->tw - *tx < jb->nt - k ? jb->tw - *tx : jb->nt - k;
    return cnt < WINO_BLK ? cnt : WINO_BLK;
}

/* V[t][c][k] = (B^T d B)[t] for input channels [c0, c1). */
static void input_part(void *ctx, int64_t c0, int64_t c1)
{
    const wino_job *jb = ctx;
    int64_t stride_t = (int64_t)jb->cin * jb->cap;
    for (int64_t c = c0; c < c1; c++) {
        for (int64_t k = 0, cnt, img, ty, tx; k < jb->nt; k += cnt) {
            cnt = tile_run(jb, k, &img, &ty, &tx);
            const float *plane = jb->x + (img * jb->cin + c) * jb->h * jb->w;
            input_tiles(jb, plane, ty, tx, (int)cnt, jb->v + c * jb->cap + k, stride_t);
        }
    }
}

/* Outputs of `cnt` tiles of one tile row from M (A^T M A), plus the bias or
 * what the output holds. */
static void output_tiles(const wino_job *jb, const float *mo, int64_t stride_t, float bias,
                         float *plane, int64_t ty, int64_t tx0, int cnt)
{
    float a[2][4][WINO_BLK], out[4][WINO_BLK];
    for (int s = 0; s < 4; s++) {
        const float *m0 = mo + s * stride_t, *m1 = m0 + 4 * stride_t, *m2 = m1 + 4 * stride_t;
        const float *m3 = m2 + 4 * stride_t;
        for (int q = 0; q < cnt; q++) {
            a[0][s][q] = m0[q] + m1[q] + m2[q];
            a[1][s][q] = m1[q] - m2[q] - m3[q];
        }
    }
    for (int i = 0; i < 2; i++)
        for (int q = 0; q < cnt; q++) {
            out[2 * i][q] = a[i][0][q] + a[i][1][q] + a[i][2][q];
            out[2 * i + 1][q] = a[i][1][q] - a[i][2][q] - a[i][3][q];
        }
    int64_t oy = 2 * ty, ox = 2 * tx0;
    for (int dy = 0; dy < 2 && oy + dy < jb->ho; dy++) {
        float *row = plane + (oy + dy) * jb->wo + ox;
        int full = ox + 2 * cnt <= jb->wo ? cnt : cnt - 1; /* an odd width cuts the last tile */
        const float *e = out[2 * dy], *o = out[2 * dy + 1];
        if (jb->acc)
            for (int q = 0; q < full; q++) row[2 * q] += e[q], row[2 * q + 1] += o[q];
        else
            for (int q = 0; q < full; q++) row[2 * q] = bias + e[q], row[2 * q + 1] = bias + o[q];
        if (full < cnt) row[2 * full] = (jb->acc ? row[2 * full] : bias) + e[full];
    }
}

/* Outputs of channels [o0, o1). */
static void output_part(void *ctx, int64_t o0, int64_t o1)
{
    const wino_job *jb = ctx;
    int64_t stride_t = (int64_t)jb->cout * jb->cap;
    for (int64_t o = o0; o < o1; o++) {
        float bias = jb->bias ? jb->bias[o] : 0.0f;
        for (int64_t k = 0, cnt, img, ty, tx; k < jb->nt; k += cnt) {
            cnt = tile_run(jb, k, &img, &ty, &tx);
            float *plane = jb->y + (img * jb->cout + o) * jb->ho * jb->wo;
            output_tiles(jb, jb->m + o * jb->cap + k, stride_t, bias, plane, ty, tx, (int)cnt);
        }
    }
}

/* Floats of input-channel data per thread below which splitting does not pay. */
#define WINO_GRAIN 16384

static void run_chunk(wino_job *jb)
{
    int64_t per_channel = 16 * jb->nt;
    th_parallel(jb->cin, WINO_GRAIN / per_channel + 1, input_part, jb);
    const float *a[16];
    size_t usize = (size_t)jb->cin * jb->cout;
    for (int t = 0; t < 16; t++) a[t] = jb->u + (size_t)(jb->flip ? flip_pos[t] : t) * usize;
    /* U is [16][conv cout][conv cin]: the forward reads it as is, the backward
     * (whose cout is the conv's cin) transposed. */
    if (jb->flip)
        op_sgemm_batch(16, CblasTrans, jb->cout, (int)jb->nt, jb->cin, a, jb->cout, jb->v,
                       (int64_t)jb->cin * jb->cap, (int)jb->cap, jb->m, (int64_t)jb->cout * jb->cap,
                       (int)jb->cap);
    else
        op_sgemm_batch(16, CblasNoTrans, jb->cout, (int)jb->nt, jb->cin, a, jb->cin, jb->v,
                       (int64_t)jb->cin * jb->cap, (int)jb->cap, jb->m, (int64_t)jb->cout * jb->cap,
                       (int)jb->cap);
    th_parallel(jb->cout, WINO_GRAIN / per_channel + 1, output_part, jb);
}

static void run(wino_job *jb, int64_t n, int64_t cap)
{
    jb->ho = op_conv_out(jb->h, 3, 1, jb->pad), jb->wo = op_conv_out(jb->w, 3, 1, jb->pad);
    if (jb->ho <= 0 || jb->wo <= 0) return;
    jb->tw = (jb->wo + 1) / 2, jb->per_img = tiles_of(jb->ho, jb->wo), jb->cap = cap;
    jb->m = jb->v + 16 * (int64_t)jb->cin * cap;
    int64_t total = n * jb->per_img;
    for (jb->j0 = 0; jb->j0 < total; jb->j0 += cap) {
        jb->nt = total - jb->j0 < cap ? total - jb->j0 : cap;
        run_chunk(jb);
    }
}

void op_wino_forward(const op_conv *c, int64_t n, int64_t h, int64_t w, const float *x,
                     const float *u, const float *b, float *y, float *ws)
{
    wino_job jb = {.cin = c->cin,
                   .cout = c->cout,
                   .pad = c->pad,
                   .h = h,
                   .w = w,
                   .x = x,
                   .u = u,
                   .bias = b,
                   .y = y,
                   .v = ws};
    run(&jb, n, chunk_tiles(c, h, w));
}

void op_wino_backward_input(const op_conv *c, int64_t n, int64_t h, int64_t w, const float *u,
                            const float *dy, float *dx, int acc, float *ws)
{
    int64_t ho = op_conv_out(h, 3, 1, c->pad), wo = op_conv_out(w, 3, 1, c->pad);
    if (ho <= 0 || wo <= 0) {
        if (!acc) memset(dx, 0, (size_t)(n * c->cin * h * w) * sizeof *dx);
        return;
    }
    wino_job jb = {.cin = c->cout,
                   .cout = c->cin,
                   .pad = 2 - c->pad,
                   .flip = 1,
                   .acc = acc,
                   .h = ho,
                   .w = wo,
                   .x = dy,
                   .u = u,
                   .y = dx,
                   .v = ws};
    run(&jb, n, chunk_tiles(c, h, w));
}
