// patch.c — the ViT's patch embedding with learned position embeddings (Dosovitskiy et al.
// 2021): images x (n, c, h, w) (the dataset's layout) are cut into t = (h/P)(w/P)
// non-overlapping P x P patches, row by row, and
//   y[e][k] = wmul W vec(patch_k(x_e)) + b + pos[k]             y (n, t, d)
// with W (d, c, P, P), b (d) PyTorch's Conv2d(c, d, P, stride=P) weight and bias and vec()
// in W's (channel, row, column) order, and pos (1, t, d) the position embedding. The
// parameters are contiguous in theta in the order pos, W, b (the state_dict order of the
// module in docs/ARCHITECTURES.md). Cutting into patches is a permutation of x, so this is
// the dense layer on the (n*t, c*P*P) patch matrix plus a per-token bias: every pass is
// dense.c's pass on patches (and the permutation's inverse for input gradients), and
// pos gets the sum over examples of gy (backward) or of R{gy} (rbackward).
#include <string.h>
#include "layers.h"

// cols (n*t, c*P*P) := the patches of x (n, c, h, w); or, if x is NULL, xout := the
// image whose patches are cols (the inverse permutation).
static void permute(real *cols, real *xout, const real *x, long n, const ns_patch_shape *s) {
    int P = s->p, gh = s->h / P, gw = s->w / P;
    long cpp = (long)s->c * P * P, t = (long)gh * gw;
    for (long e = 0; e < n; e++)
        for (int ch = 0; ch < s->c; ch++)
            for (int yy = 0; yy < gh * P; yy++)
                for (int xx = 0; xx < gw * P; xx++) {
                    long k = (long)(yy / P) * gw + xx / P;
                    long col = ((long)ch * P + yy % P) * P + xx % P;
                    long i = ((e * s->c + ch) * s->h + yy) * (long)s->w + xx;
                    if (x)
                        cols[(e * t + k) * cpp + col] = x[i];
                    else
                        xout[i] = cols[(e * t + k) * cpp + col];
                }
}

static long tokens(const ns_patch_shape *s) { return (long)(s->h / s->p) * (s->w / s->p); }
static int cols_per_token(const ns_patch_shape *s) { return s->c * s->p * s->p; }

size_t ns_patch_scratch(const ns_patch_shape *s, long n) {
    return 4 * (size_t)n * (size_t)tokens(s) * (size_t)cols_per_token(s);
}

// The parameter block: pos (t*d), W (d*cpp), b (d).
typedef struct {
    const real *pos, *w, *b;
} params;

static params split(const real *p, const ns_patch_shape *s) {
    params q;
    q.pos = p;
    q.w = p + (size_t)tokens(s) * s->d;
    q.b = q.w + (size_t)s->d * cols_per_token(s);
    return q;
}

// y (n, t, d) += pos, broadcast over examples.
static void add_pos(real *y, const real *pos, long n, long td) {
    for (long e = 0; e < n; e++)
        for (long i = 0; i < td; i++) y[e * td + i] += pos[i];
}

// ws: ns_patch_scratch(s, n) values.
void ns_patch_forward(real *y, const real *x, const real *p, real wmul, long n,
                      const ns_patch_shape *s, real *ws) {
    long t = tokens(s);
    params q = split(p, s);
    permute(ws, NULL, x, n, s);
    ns_dense_forward(y, ws, q.w, q.b, wmul, n * t, cols_per_token(s), s->d);
    add_pos(y, q.pos, n, t * s->d);
}

void ns_patch_rforward(real *ry, const real *x, const real *rx, const real *p, const real *v,
                       real wmul, long n, const ns_patch_shape *s, real *ws) {
    long t = tokens(s), len = n * t * cols_per_token(s);
    params q = split(p, s), vq = split(v, s);
    permute(ws, NULL, x, n, s);
    if (rx) permute(ws + len, NULL, rx, n, s);
    ns_dense_rforward(ry, ws, rx ? ws + len : NULL, q.w, vq.w, vq.b, wmul, n * t,
                      cols_per_token(s), s->d);
    add_pos(ry, vq.pos, n, t * s->d);
}

// gp: the gradient block (pos, W, b), accumulated; gx (if not NULL) overwritten.
void ns_patch_backward(real *gx, real *gp, const real *gy, const real *x, const real *p,
                       real wmul, long n, const ns_patch_shape *s, real *ws) {
    long t = tokens(s), len = n * t * cols_per_token(s);
    params q = split(p, s);
    real *gcols = gx ? ws + len : NULL;
    permute(ws, NULL, x, n, s);
    if (gp) ns_colsum_add(gp, gy, n, (int)(t * s->d));
    ns_dense_backward(gcols, gp ? gp + t * s->d : NULL,
                      gp ? gp + t * s->d + (long)s->d * cols_per_token(s) : NULL, gy, ws, q.w,
                      wmul, n * t, cols_per_token(s), s->d);
    if (gx) permute(gcols, gx, NULL, n, s);
}

void ns_patch_rbackward(real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                        const real *x, const real *rx, const real *p, const real *v, real wmul,
                        long n, const ns_patch_shape *s, real *ws) {
    long t = tokens(s), len = n * t * cols_per_token(s);
    params q = split(p, s), vq = split(v, s);
    real *cols = ws, *rcols = rx ? ws + len : NULL;
    real *gcols = gx ? ws + 2 * len : NULL, *rgcols = rgx ? ws + 3 * len : NULL;
    permute(cols, NULL, x, n, s);
    if (rx) permute(rcols, NULL, rx, n, s);
    if (hp) ns_colsum_add(hp, rgy, n, (int)(t * s->d));
    ns_dense_rbackward(gcols, rgcols, hp ? hp + t * s->d : NULL,
                       hp ? hp + t * s->d + (long)s->d * cols_per_token(s) : NULL, gy, rgy,
                       cols, rcols, q.w, vq.w, wmul, n * t, cols_per_token(s), s->d);
    if (gx) permute(gcols, gx, NULL, n, s);
    if (rgx) permute(rgcols, rgx, NULL, n, s);
}
