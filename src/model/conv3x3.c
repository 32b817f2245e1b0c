// conv3x3.c — 3x3 convolution, stride 1, zero padding 1 (PyTorch's Conv2d(c, co, 3,
// padding=1)), as a dense layer on image patches:
//   cols = im2col(x)                 rows (example, y, x), columns (ky, kx, ci): (n*h*w, 9*c)
//   y    = wmul * cols W'^T + b      y is (n, h, w, co)
// where W' (co, 3, 3, c) is PyTorch's weight W (co, c, 3, 3) with its axes reordered, so
// that each tap of a channels-last input is one contiguous copy of c values. Every pass is
// then the dense layer's pass on cols: im2col for inputs, its transpose col2im (a
// scatter-add) for input gradients, and the reordering for weights and their gradients.
// Examples go through in groups whose patches fit in the workspace; one patch buffer serves
// all the products of a pass in turn.
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

static size_t weight_size(const ns_conv_shape *s) { return (size_t)s->co * s->c * 9; }
static size_t patch_size(const ns_conv_shape *s) { return (size_t)s->h * s->w * s->c * 9; }

size_t ns_conv3x3_workspace(const ns_conv_shape *s, long examples) {
    return patch_size(s) * (size_t)(examples > 0 ? examples : 1) + 3 * weight_size(s);
}

// The workspace: patches of a group of examples, then room for W', V' and a gradient
// accumulator in the reordered layout.
typedef struct {
    real *cols, *wp, *vp, *gp;
    long group;  // examples per group
} work;

static work split(real *ws, size_t cap, const ns_conv_shape *s) {
    work k;
    size_t wsz = weight_size(s), patches = cap - 3 * wsz;  // cap >= workspace(s, 1)
    k.cols = ws;
    k.wp = ws + patches;
    k.vp = k.wp + wsz;
    k.gp = k.vp + wsz;
    k.group = (long)(patches / patch_size(s));
    return k;
}

// wp (co, 3,3, c) := w (co, c, 3,3)
static void to_taps(real *wp, const real *w, const ns_conv_shape *s) {
    for (int o = 0; o < s->co; o++)
        for (int ci = 0; ci < s->c; ci++)
            for (int q = 0; q < 9; q++)
                wp[((size_t)o * 9 + q) * s->c + ci] = w[((size_t)o * s->c + ci) * 9 + q];
}

// gw (co, c, 3,3) += gp (co, 3,3, c)
static void add_from_taps(real *gw, const real *gp, const ns_conv_shape *s) {
    for (int o = 0; o < s->co; o++)
        for (int ci = 0; ci < s->c; ci++)
            for (int q = 0; q < 9; q++)
                gw[((size_t)o * s->c + ci) * 9 + q] += gp[((size_t)o * 9 + q) * s->c + ci];
}

// Offsets of the 9 taps (ky, kx) from the centre pixel.
static void tap_offsets(long off[9], const strides *t) {
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++) off[ky * 3 + kx] = (ky - 1) * t->sy + (kx - 1) * t->sx;
}

// Bit q of the result is set if tap q of pixel (yy, xx) falls inside the image.
static inline unsigned taps_inside(const ns_conv_shape *s, int yy, int xx) {
    if (yy > 0 && yy < s->h - 1 && xx > 0 && xx < s->w - 1) return 0x1ff;  // interior
    unsigned m = 0;
    for (int q = 0; q < 9; q++) {
        int iy = yy + q / 3 - 1, ix = xx + q % 3 - 1;
        if (iy >= 0 && iy < s->h && ix >= 0 && ix < s->w) m |= 1u << q;
    }
    return m;
}

// Between the patch matrix cols (nb*h*w, 9*c) and the nb images at x, tap by tap:
//   GATHER   cols := im2col(x)   (out-of-image taps are 0; x is only read)
//   SCATTER  x += col2im(cols)   (its transpose: out-of-image taps are dropped; cols is only read)
typedef enum { GATHER, SCATTER } patch_dir;

static void patches(real *cols, real *x, long nb, const ns_conv_shape *s, patch_dir dir) {
    strides t = input_strides(s);
    long off[9];
    tap_offsets(off, &t);
    int c = s->c;
    for (long e = 0; e < nb; e++)
        for (int yy = 0; yy < s->h; yy++)
            for (int xx = 0; xx < s->w; xx++) {
                real *row = cols + ((e * s->h + yy) * s->w + xx) * 9 * c;
                real *centre = x + e * t.d + yy * t.sy + xx * t.sx;
                unsigned inside = taps_inside(s, yy, xx);
                for (int q = 0; q < 9; q++) {
                    real *r = row + q * c;
                    if (!(inside >> q & 1)) {
                        if (dir == GATHER) memset(r, 0, sizeof *r * (size_t)c);
                        continue;
                    }
                    real *p = centre + off[q];
                    if (dir == SCATTER)
                        for (int ci = 0; ci < c; ci++) p[ci * t.sc] += r[ci];
                    else if (t.sc == 1)
                        memcpy(r, p, sizeof *r * (size_t)c);
                    else
                        for (int ci = 0; ci < c; ci++) r[ci] = p[ci * t.sc];
                }
            }
}

// cols (nb*h*w, 9*c) := patches of the nb examples at x
static void im2col(real *cols, const real *x, long nb, const ns_conv_shape *s) {
    patches(cols, (real *)x, nb, s, GATHER);
}

// gx (nb examples) += col2im(gcols): the transpose of im2col
static void col2im_add(real *gx, const real *gcols, long nb, const ns_conv_shape *s) {
    patches((real *)gcols, gx, nb, s, SCATTER);
}

// Groups of examples, in order: [e0, e0 + nb), nb*h*w patch rows, starting at value xo of
// the input and yo of the output. Usage: for (group g = {0}; next_group(&g, ...);) {...}
typedef struct {
    long e0, nb, rows, xo, yo;
} group;

static int next_group(group *g, long n, const ns_conv_shape *s, long most) {
    g->e0 += g->nb;
    if (g->e0 >= n) return 0;
    g->nb = n - g->e0 < most ? n - g->e0 : most;
    g->rows = g->nb * s->h * s->w;
    g->xo = g->e0 * (long)s->c * s->h * s->w;
    g->yo = g->e0 * (long)s->co * s->h * s->w;
    return 1;
}

// x is (n, c,h,w) or (n, h,w,c), w is (co, c,3,3), y is (n, h,w,co)
void ns_conv3x3_forward(real *y, const real *x, const real *w, const real *b, real wmul,
                        long n, const ns_conv_shape *s, real *ws, size_t ws_cap) {
    work k = split(ws, ws_cap, s);
    int kk = s->c * 9;
    to_taps(k.wp, w, s);
    for (group g = {0}; next_group(&g, n, s, k.group);) {
        im2col(k.cols, x + g.xo, g.nb, s);
        ns_dense_forward(y + g.yo, k.cols, k.wp, b, wmul, g.rows, kk, s->co);
    }
}

// gW += wmul gy^T cols, gb += colsum gy, gx = col2im(wmul gy W)
void ns_conv3x3_backward(real *gx, real *gw, real *gb, const real *gy, const real *x,
                         const real *w, real wmul, long n, const ns_conv_shape *s,
                         real *ws, size_t ws_cap) {
    work k = split(ws, ws_cap, s);
    int kk = s->c * 9;
    to_taps(k.wp, w, s);
    if (gw) memset(k.gp, 0, sizeof *k.gp * weight_size(s));
    if (gx) memset(gx, 0, sizeof *gx * (size_t)n * s->c * s->h * s->w);
    for (group g = {0}; next_group(&g, n, s, k.group);) {
        if (gw || gb) {
            im2col(k.cols, x + g.xo, g.nb, s);
            ns_dense_backward(NULL, gw ? k.gp : NULL, gb, gy + g.yo, k.cols, k.wp, wmul, g.rows,
                              kk, s->co);
        }
        if (gx) {
            ns_dense_backward(k.cols, NULL, NULL, gy + g.yo, NULL, k.wp, wmul, g.rows, kk, s->co);
            col2im_add(gx + g.xo, k.cols, g.nb, s);
        }
    }
    if (gw) add_from_taps(gw, k.gp, s);
}

// Ry = wmul (im2col(Rx) W^T + im2col(x) V^T) + vb
void ns_conv3x3_rforward(real *ry, const real *x, const real *rx, const real *w,
                         const real *vw, const real *vb, real wmul, long n,
                         const ns_conv_shape *s, real *ws, size_t ws_cap) {
    work k = split(ws, ws_cap, s);
    int kk = s->c * 9;
    to_taps(k.wp, w, s);
    to_taps(k.vp, vw, s);
    for (group g = {0}; next_group(&g, n, s, k.group);) {
        im2col(k.cols, x + g.xo, g.nb, s);
        ns_dense_rforward(ry + g.yo, k.cols, NULL, k.wp, k.vp, vb, wmul, g.rows, kk, s->co);
        if (rx) {
            im2col(k.cols, rx + g.xo, g.nb, s);
            NS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g.rows, s->co, kk, wmul,
                    k.cols, kk, k.wp, kk, 1, ry + g.yo, s->co);
        }
    }
}

// hW += wmul (Rgy^T im2col(x) + gy^T im2col(Rx)), hb += colsum Rgy,
// gx = col2im(wmul gy W), Rgx = col2im(wmul (Rgy W + gy V))
void ns_conv3x3_rbackward(real *gx, real *rgx, real *hw, real *hb, const real *gy,
                          const real *rgy, const real *x, const real *rx, const real *w,
                          const real *vw, real wmul, long n, const ns_conv_shape *s,
                          real *ws, size_t ws_cap) {
    work k = split(ws, ws_cap, s);
    int kk = s->c * 9;
    size_t din = (size_t)n * s->c * s->h * s->w;
    to_taps(k.wp, w, s);
    to_taps(k.vp, vw, s);
    memset(k.gp, 0, sizeof *k.gp * weight_size(s));
    if (gx) memset(gx, 0, sizeof *gx * din);
    if (rgx) memset(rgx, 0, sizeof *rgx * din);
    for (group g = {0}; next_group(&g, n, s, k.group);) {
        im2col(k.cols, x + g.xo, g.nb, s);
        real *gp = hw ? k.gp : NULL;
        ns_dense_backward(NULL, gp, hb, rgy + g.yo, k.cols, k.wp, wmul, g.rows, kk, s->co);
        if (rx && gp) {
            im2col(k.cols, rx + g.xo, g.nb, s);
            ns_dense_backward(NULL, gp, NULL, gy + g.yo, k.cols, k.wp, wmul, g.rows, kk, s->co);
        }
        if (gx) {
            ns_dense_backward(k.cols, NULL, NULL, gy + g.yo, NULL, k.wp, wmul, g.rows, kk, s->co);
            col2im_add(gx + g.xo, k.cols, g.nb, s);
        }
        if (rgx) {
            ns_dense_rbackward(NULL, k.cols, NULL, NULL, gy + g.yo, rgy + g.yo, NULL, NULL, k.wp,
                               k.vp, wmul, g.rows, kk, s->co);
            col2im_add(rgx + g.xo, k.cols, g.nb, s);
        }
    }
    if (hw) add_from_taps(hw, k.gp, s);
}
