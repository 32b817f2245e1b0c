// conv3x3.c — 3x3 convolution, stride 1, zero padding 1 (PyTorch's Conv2d(c, co, 3,
// padding=1)), as a dense layer on image patches:
//   cols = im2col(x)                 rows (example, y, x), columns (ky, kx, ci): (n*h*w, 9*c)
//   y    = wmul * cols W'^T + b      y is (n, h, w, co)
// where W' (co, 3, 3, c) is PyTorch's weight W (co, c, 3, 3) with its axes reordered, so
// that each tap of a channels-last input is one contiguous copy of c values. Every pass is
// then the dense layer's pass on cols: im2col for inputs, its transpose col2im (a
// scatter-add) for input gradients, and the reordering for weights and their gradients.
// The caller forms the patch matrices of x and Rx once (ns_conv3x3_im2col) and keeps them
// from the forward pass to the backward pass, which then reuses their memory for the
// gradients' patches: one gather per input and pass, one GEMM per product over all the
// examples of the pass.
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

size_t ns_conv3x3_patch_size(const ns_conv_shape *s) { return patch_size(s); }
size_t ns_conv3x3_workspace(const ns_conv_shape *s) { return 3 * weight_size(s); }

// The workspace: W', V' and a gradient accumulator in the reordered layout.
typedef struct {
    real *wp, *vp, *gp;
} work;

static work split(real *ws, const ns_conv_shape *s) {
    size_t wsz = weight_size(s);
    return (work){.wp = ws, .vp = ws + wsz, .gp = ws + 2 * wsz};
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

// cols (n*h*w, 9*c) := im2col(x) of the n examples at x; out-of-image taps are 0.
void ns_conv3x3_im2col(real *cols, const real *x, long n, const ns_conv_shape *s) {
    strides t = input_strides(s);
    long off[9];
    tap_offsets(off, &t);
    int c = s->c;
    for (long e = 0; e < n; e++)
        for (int yy = 0; yy < s->h; yy++)
            for (int xx = 0; xx < s->w; xx++) {
                real *row = cols + ((e * s->h + yy) * s->w + xx) * 9 * c;
                const real *centre = x + e * t.d + yy * t.sy + xx * t.sx;
                unsigned inside = taps_inside(s, yy, xx);
                if (inside == 0x1ff && t.sc == 1 && t.sx == c) {  // interior, channels last:
                    for (int ky = 0; ky < 3; ky++)                 // three runs of 3c values
                        memcpy(row + ky * 3 * c, centre + off[ky * 3], sizeof *row * 3 * (size_t)c);
                    continue;
                }
                for (int q = 0; q < 9; q++) {
                    real *r = row + q * c;
                    const real *p = centre + off[q];
                    if (!(inside >> q & 1))
                        memset(r, 0, sizeof *r * (size_t)c);
                    else
                        for (int ci = 0; ci < c; ci++) r[ci] = p[ci * t.sc];
                }
            }
}

// gx (n examples) := col2im(gcols), the transpose of im2col: a scatter-add of the patch rows,
// read in order (a gather that writes each value once measured 8x slower: it reads the
// patches out of order). Channels-last inputs add c contiguous values per tap, a vector loop.
static void col2im(real *gx, const real *gcols, long n, const ns_conv_shape *s) {
    strides t = input_strides(s);
    long off[9];
    tap_offsets(off, &t);
    int c = s->c;
    memset(gx, 0, sizeof *gx * (size_t)n * (size_t)t.d);
    for (long e = 0; e < n; e++)
        for (int yy = 0; yy < s->h; yy++)
            for (int xx = 0; xx < s->w; xx++) {
                const real *row = gcols + ((e * s->h + yy) * s->w + xx) * 9 * c;
                real *centre = gx + e * t.d + yy * t.sy + xx * t.sx;
                unsigned inside = taps_inside(s, yy, xx);
                for (int q = 0; q < 9; q++) {
                    if (!(inside >> q & 1)) continue;  // out-of-image taps are dropped
                    const real *r = row + q * c;
                    real *p = centre + off[q];
                    if (t.sc == 1)
                        for (int ci = 0; ci < c; ci++) p[ci] += r[ci];
                    else
                        for (int ci = 0; ci < c; ci++) p[ci * t.sc] += r[ci];
                }
            }
}

// cols is im2col(x) (n*h*w, 9c), w is (co, c,3,3), y is (n, h,w,co)
void ns_conv3x3_forward(real *y, const real *cols, const real *w, const real *b, real wmul,
                        long n, const ns_conv_shape *s, real *ws) {
    work k = split(ws, s);
    to_taps(k.wp, w, s);
    ns_dense_forward(y, cols, k.wp, b, wmul, n * s->h * s->w, s->c * 9, s->co);
}

// gW += wmul gy^T cols, gb += colsum gy, gx = col2im(wmul gy W); cols then holds gy W.
void ns_conv3x3_backward(real *gx, real *gw, real *gb, const real *gy, real *cols,
                         const real *w, real wmul, long n, const ns_conv_shape *s, real *ws) {
    work k = split(ws, s);
    int kk = s->c * 9;
    long rows = n * s->h * s->w;
    to_taps(k.wp, w, s);
    if (gw) memset(k.gp, 0, sizeof *k.gp * weight_size(s));
    ns_dense_backward(NULL, gw ? k.gp : NULL, gb, gy, cols, k.wp, wmul, rows, kk, s->co);
    if (gx) {
        ns_dense_backward(cols, NULL, NULL, gy, NULL, k.wp, wmul, rows, kk, s->co);
        col2im(gx, cols, n, s);
    }
    if (gw) add_from_taps(gw, k.gp, s);
}

// Ry = wmul (im2col(Rx) W^T + im2col(x) V^T) + vb; rcols = im2col(Rx), NULL if Rx is.
void ns_conv3x3_rforward(real *ry, const real *cols, const real *rcols, const real *w,
                         const real *vw, const real *vb, real wmul, long n,
                         const ns_conv_shape *s, real *ws) {
    work k = split(ws, s);
    int kk = s->c * 9;
    long rows = n * s->h * s->w;
    to_taps(k.wp, w, s);
    to_taps(k.vp, vw, s);
    ns_dense_rforward(ry, cols, NULL, k.wp, k.vp, vb, wmul, rows, kk, s->co);
    if (rcols)
        NS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, s->co, kk, wmul, rcols, kk,
                k.wp, kk, 1, ry, s->co);
}

// hW += wmul (Rgy^T im2col(x) + gy^T im2col(Rx)), hb += colsum Rgy,
// gx = col2im(wmul gy W), Rgx = col2im(wmul (Rgy W + gy V)). cols = im2col(x) and
// rcols = im2col(Rx) (NULL if Rx is) are overwritten when gx, resp. Rgx, is asked for.
void ns_conv3x3_rbackward(real *gx, real *rgx, real *hw, real *hb, const real *gy,
                          const real *rgy, real *cols, real *rcols, const real *w,
                          const real *vw, real wmul, long n, const ns_conv_shape *s,
                          real *ws) {
    work k = split(ws, s);
    int kk = s->c * 9;
    long rows = n * s->h * s->w;
    to_taps(k.wp, w, s);
    to_taps(k.vp, vw, s);
    memset(k.gp, 0, sizeof *k.gp * weight_size(s));
    real *gp = hw ? k.gp : NULL;
    ns_dense_backward(NULL, gp, hb, rgy, cols, k.wp, wmul, rows, kk, s->co);
    if (rcols && gp) ns_dense_backward(NULL, gp, NULL, gy, rcols, k.wp, wmul, rows, kk, s->co);
    if (gx) {
        ns_dense_backward(cols, NULL, NULL, gy, NULL, k.wp, wmul, rows, kk, s->co);
        col2im(gx, cols, n, s);
    }
    if (rgx && rcols) {  // Rx is NULL only for the data, whose layer needs no Rgx
        ns_dense_rbackward(NULL, rcols, NULL, NULL, gy, rgy, NULL, NULL, k.wp, k.vp, wmul, rows,
                           kk, s->co);
        col2im(rgx, rcols, n, s);
    }
    if (hw) add_from_taps(hw, k.gp, s);
}
