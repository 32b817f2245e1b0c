// conv3x3.c — 3x3 convolution, stride 1, zero padding 1 (PyTorch's Conv2d(c, co, 3,
// padding=1)), as a dense layer on image patches:
//   cols = im2col(x)                 rows (example, y, x), columns (ci, ky, kx): (n*h*w, c*9)
//   y    = wmul * cols W^T + b       W (co, c, 3, 3) is a (co, c*9) matrix: y is (n, h, w, co)
// so every pass is the dense layer's pass on cols, with im2col for inputs and its transpose
// col2im (a scatter-add) for input gradients. Examples go through in groups whose patches
// fit in the workspace `cols`; one buffer serves all the products of a pass in turn.
#include <string.h>
#include "layers.h"

// Strides (in values) of channel, row and column within one example.
typedef struct {
    long sc, sy, sx, d;  // d: values per example
} strides;

static strides input_strides(const ns_conv_shape *s) {
    strides t;
    t.d = (long)s->c * s->h * s->w;
    if (s->nchw) {
        t.sc = (long)s->h * s->w, t.sy = s->w, t.sx = 1;
    } else {
        t.sc = 1, t.sy = (long)s->w * s->c, t.sx = s->c;
    }
    return t;
}

// Examples per group: as many as the workspace holds (at least one).
static long group_size(const ns_conv_shape *s, size_t cols_cap) {
    size_t per = (size_t)s->h * s->w * s->c * 9;
    size_t g = cols_cap / per;
    return g < 1 ? 1 : (long)g;
}

// cols (nb*h*w, c*9) := patches of the nb examples at x (out-of-image taps are 0)
static void im2col(real *cols, const real *x, long nb, const ns_conv_shape *s) {
    strides t = input_strides(s);
    int k = s->c * 9;
    for (long e = 0; e < nb; e++)
        for (int yy = 0; yy < s->h; yy++)
            for (int xx = 0; xx < s->w; xx++) {
                real *row = cols + ((e * s->h + yy) * s->w + xx) * k;
                for (int ci = 0; ci < s->c; ci++)
                    for (int ky = 0; ky < 3; ky++) {
                        int iy = yy + ky - 1;
                        for (int kx = 0; kx < 3; kx++) {
                            int ix = xx + kx - 1;
                            int inside = iy >= 0 && iy < s->h && ix >= 0 && ix < s->w;
                            row[(ci * 3 + ky) * 3 + kx] =
                                inside ? x[e * t.d + ci * t.sc + iy * t.sy + ix * t.sx] : 0;
                        }
                    }
            }
}

// gx (nb examples) += col2im(gcols): the transpose of im2col
static void col2im_add(real *gx, const real *gcols, long nb, const ns_conv_shape *s) {
    strides t = input_strides(s);
    int k = s->c * 9;
    for (long e = 0; e < nb; e++)
        for (int yy = 0; yy < s->h; yy++)
            for (int xx = 0; xx < s->w; xx++) {
                const real *row = gcols + ((e * s->h + yy) * s->w + xx) * k;
                for (int ci = 0; ci < s->c; ci++)
                    for (int ky = 0; ky < 3; ky++) {
                        int iy = yy + ky - 1;
                        if (iy < 0 || iy >= s->h) continue;
                        for (int kx = 0; kx < 3; kx++) {
                            int ix = xx + kx - 1;
                            if (ix < 0 || ix >= s->w) continue;
                            gx[e * t.d + ci * t.sc + iy * t.sy + ix * t.sx] +=
                                row[(ci * 3 + ky) * 3 + kx];
                        }
                    }
            }
}

// Groups of examples, in order: [e0, e0 + nb), nb*h*w patch rows, starting at value xo of
// the input and yo of the output. Usage: for (group g = {0}; next_group(&g, ...);) {...}
typedef struct {
    long e0, nb, rows, xo, yo;
} group;

static int next_group(group *g, long n, const ns_conv_shape *s, size_t cols_cap) {
    g->e0 += g->nb;
    if (g->e0 >= n) return 0;
    long most = group_size(s, cols_cap);
    g->nb = n - g->e0 < most ? n - g->e0 : most;
    g->rows = g->nb * s->h * s->w;
    g->xo = g->e0 * (long)s->c * s->h * s->w;
    g->yo = g->e0 * (long)s->co * s->h * s->w;
    return 1;
}

// x is (n, c,h,w) or (n, h,w,c), w is (co, c,3,3), y is (n, h,w,co)
void ns_conv3x3_forward(real *y, const real *x, const real *w, const real *b, real wmul,
                        long n, const ns_conv_shape *s, real *cols, size_t cols_cap) {
    int k = s->c * 9;
    for (group g = {0}; next_group(&g, n, s, cols_cap);) {
        im2col(cols, x + g.xo, g.nb, s);
        ns_dense_forward(y + g.yo, cols, w, b, wmul, g.rows, k, s->co);
    }
}

// gW += wmul gy^T cols, gb += colsum gy, gx = col2im(wmul gy W)
void ns_conv3x3_backward(real *gx, real *gw, real *gb, const real *gy, const real *x,
                         const real *w, real wmul, long n, const ns_conv_shape *s,
                         real *cols, size_t cols_cap) {
    int k = s->c * 9;
    if (gx) memset(gx, 0, sizeof *gx * (size_t)n * s->c * s->h * s->w);
    for (group g = {0}; next_group(&g, n, s, cols_cap);) {
        if (gw || gb) {
            im2col(cols, x + g.xo, g.nb, s);
            ns_dense_backward(NULL, gw, gb, gy + g.yo, cols, w, wmul, g.rows, k, s->co);
        }
        if (gx) {
            ns_dense_backward(cols, NULL, NULL, gy + g.yo, NULL, w, wmul, g.rows, k, s->co);
            col2im_add(gx + g.xo, cols, g.nb, s);
        }
    }
}

// Ry = wmul (im2col(Rx) W^T + im2col(x) V^T) + vb
void ns_conv3x3_rforward(real *ry, const real *x, const real *rx, const real *w,
                         const real *vw, const real *vb, real wmul, long n,
                         const ns_conv_shape *s, real *cols, size_t cols_cap) {
    int k = s->c * 9;
    for (group g = {0}; next_group(&g, n, s, cols_cap);) {
        im2col(cols, x + g.xo, g.nb, s);
        ns_dense_rforward(ry + g.yo, cols, NULL, w, vw, vb, wmul, g.rows, k, s->co);
        if (rx) {
            im2col(cols, rx + g.xo, g.nb, s);
            NS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g.rows, s->co, k, wmul, cols, k,
                    w, k, 1, ry + g.yo, s->co);
        }
    }
}

// hW += wmul (Rgy^T im2col(x) + gy^T im2col(Rx)), hb += colsum Rgy,
// gx = col2im(wmul gy W), Rgx = col2im(wmul (Rgy W + gy V))
void ns_conv3x3_rbackward(real *gx, real *rgx, real *hw, real *hb, const real *gy,
                          const real *rgy, const real *x, const real *rx, const real *w,
                          const real *vw, real wmul, long n, const ns_conv_shape *s,
                          real *cols, size_t cols_cap) {
    int k = s->c * 9;
    size_t din = (size_t)n * s->c * s->h * s->w;
    if (gx) memset(gx, 0, sizeof *gx * din);
    if (rgx) memset(rgx, 0, sizeof *rgx * din);
    for (group g = {0}; next_group(&g, n, s, cols_cap);) {
        im2col(cols, x + g.xo, g.nb, s);
        ns_dense_backward(NULL, hw, hb, rgy + g.yo, cols, w, wmul, g.rows, k, s->co);
        if (rx) {
            im2col(cols, rx + g.xo, g.nb, s);
            ns_dense_backward(NULL, hw, NULL, gy + g.yo, cols, w, wmul, g.rows, k, s->co);
        }
        if (gx) {
            ns_dense_backward(cols, NULL, NULL, gy + g.yo, NULL, w, wmul, g.rows, k, s->co);
            col2im_add(gx + g.xo, cols, g.nb, s);
        }
        if (rgx) {
            ns_dense_rbackward(NULL, cols, NULL, NULL, gy + g.yo, rgy + g.yo, NULL, NULL, w, vw,
                               wmul, g.rows, k, s->co);
            col2im_add(rgx + g.xo, cols, g.nb, s);
        }
    }
}
