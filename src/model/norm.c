// norm.c — batch normalization and layer normalization of x (m, C), with the learned
// per-column scale gamma and shift beta (PyTorch's BatchNorm2d / LayerNorm weight and bias):
//   y = gamma * xh + beta,   xh = (x - mu) r,   r = 1 / sqrt(var + eps),   eps = 1e-5,
// mu and var the mean and biased variance of a group:
//   batch norm  a group is a column (a channel) over all m rows (examples x pixels)
//   layer norm  a group is a row (a token) over its C columns
// With means over the group written <.>, the four passes are (Ioffe & Szegedy 2015; the
// tangents follow by differentiating each line):
//   forward    xh, r as above
//   rforward   a = r <xh Rx>,  R{xh} = r (Rx - <Rx>) - a xh  (= R{(x - mu) r}, R{r} = -a r),
//              Ry = gamma R{xh} + Vgamma xh + Vbeta
//   backward   gxh = gamma gy,  gx = r (gxh - <gxh> - xh <gxh xh>),
//              ggamma += sum_rows gy xh,  gbeta += sum_rows gy
//   rbackward  R{gxh} = Vgamma gy + gamma R{gy},
//              R{gx} = -a gx + r (R{gxh} - <R{gxh}> - R{xh} <gxh xh> - xh <R{gxh} xh + gxh R{xh}>),
//              hgamma += sum_rows (R{gy} xh + gy R{xh}),  hbeta += sum_rows R{gy}
// The forward pass saves xh (m*C) and r (one per group); the tangent pass saves R{xh} and a.
// A constant group has var = 0 and r = 1/sqrt(eps): finite, and the formulas hold.
// Evaluation mode (batch norm only; PyTorch's eval() with running_mean = mu and running_var
// = var set to a training batch's statistics): y = gamma (x - mu) r + beta with mu and r
// fixed, taken by a forward pass over that batch (its `stats` output). Forward only.
#include <math.h>
#include "layers.h"

#define NORM_EPS 1e-5

// Element t of group g is at g*gstep + t*stride; there are `groups` groups of `len`.
typedef struct {
    long groups, len, gstep, stride;
} walk;

static walk walk_of(ns_norm_kind k, long m, int c) {
    if (k == NS_NORM_BATCH) return (walk){.groups = c, .len = m, .gstep = 1, .stride = c};
    return (walk){.groups = m, .len = c, .gstep = c, .stride = 1};
}

long ns_norm_groups(ns_norm_kind k, long m, int c) { return walk_of(k, m, c).groups; }

// The column (the index of gamma and beta) of element t of group g.
#define COL(i) (k == NS_NORM_BATCH ? g : t)

void ns_norm_forward(ns_norm_kind k, real *y, real *xh, real *r, double *stats, const real *x,
                     const real *gamma, const real *beta, long m, int c) {
    walk wk = walk_of(k, m, c);
    for (long g = 0; g < wk.groups; g++) {
        long i0 = g * wk.gstep;
        double s = 0, ss = 0;
        for (long t = 0; t < wk.len; t++) s += x[i0 + t * wk.stride];
        double mu = s / (double)wk.len;
        for (long t = 0; t < wk.len; t++) {
            double d = x[i0 + t * wk.stride] - mu;
            ss += d * d;
        }
        double rg = 1.0 / sqrt(ss / (double)wk.len + NORM_EPS);
        r[g] = (real)rg;
        if (stats) stats[g] = mu, stats[wk.groups + g] = rg;
        for (long t = 0; t < wk.len; t++) {
            long i = i0 + t * wk.stride;
            xh[i] = (real)((x[i] - mu) * rg);
            y[i] = gamma[COL(i)] * xh[i] + beta[COL(i)];
        }
    }
}

void ns_norm_forward_fixed(real *y, const real *x, const double *stats, const real *gamma,
                           const real *beta, long m, int c) {
    for (long i = 0; i < m; i++)
        for (int j = 0; j < c; j++) {
            // the very expression of ns_norm_forward, so that the training batch itself gets
            // the same bits in both modes
            real xh = (real)((x[i * c + j] - stats[j]) * stats[c + j]);
            y[i * c + j] = gamma[j] * xh + beta[j];
        }
}

void ns_norm_rforward(ns_norm_kind k, real *ry, real *rxh, real *a, const real *rx,
                      const real *xh, const real *r, const real *gamma, const real *vgamma,
                      const real *vbeta, long m, int c) {
    walk wk = walk_of(k, m, c);
    for (long g = 0; g < wk.groups; g++) {
        long i0 = g * wk.gstep;
        double s = 0, sx = 0;
        for (long t = 0; t < wk.len; t++) {
            long i = i0 + t * wk.stride;
            s += rx[i];
            sx += (double)xh[i] * rx[i];
        }
        double mr = s / (double)wk.len, ag = r[g] * sx / (double)wk.len;
        a[g] = (real)ag;
        for (long t = 0; t < wk.len; t++) {
            long i = i0 + t * wk.stride;
            rxh[i] = (real)(r[g] * (rx[i] - mr) - ag * xh[i]);
            ry[i] = gamma[COL(i)] * rxh[i] + vgamma[COL(i)] * xh[i] + vbeta[COL(i)];
        }
    }
}

// gg += sum_rows (a1 b1 + a2 b2), gb += sum_rows a1, per column, summed in double
// (a2, b2 may be NULL).
static void affine_sums(real *gg, real *gb, const real *a1, const real *b1, const real *a2,
                        const real *b2, long m, int c) {
    enum { BLOCK = 128 };
    double sg[BLOCK], sb[BLOCK];
    for (int j0 = 0; j0 < c; j0 += BLOCK) {
        int nj = c - j0 < BLOCK ? c - j0 : BLOCK;
        for (int j = 0; j < nj; j++) sg[j] = sb[j] = 0;
        for (long i = 0; i < m; i++) {
            long o = i * c + j0;
            for (int j = 0; j < nj; j++) {
                sg[j] += (double)a1[o + j] * b1[o + j] + (a2 ? (double)a2[o + j] * b2[o + j] : 0);
                sb[j] += a1[o + j];
            }
        }
        for (int j = 0; j < nj; j++) {
            if (gg) gg[j0 + j] += (real)sg[j];
            if (gb) gb[j0 + j] += (real)sb[j];
        }
    }
}

void ns_norm_backward(ns_norm_kind k, real *gx, real *ggamma, real *gbeta, const real *gy,
                      const real *xh, const real *r, const real *gamma, long m, int c) {
    affine_sums(ggamma, gbeta, gy, xh, NULL, NULL, m, c);
    if (!gx) return;
    walk wk = walk_of(k, m, c);
    for (long g = 0; g < wk.groups; g++) {
        long i0 = g * wk.gstep;
        double s1 = 0, s2 = 0;
        for (long t = 0; t < wk.len; t++) {
            long i = i0 + t * wk.stride;
            double gxh = (double)gamma[COL(i)] * gy[i];
            s1 += gxh;
            s2 += gxh * xh[i];
        }
        double m1 = s1 / (double)wk.len, m2 = s2 / (double)wk.len;
        for (long t = 0; t < wk.len; t++) {
            long i = i0 + t * wk.stride;
            gx[i] = (real)(r[g] * ((double)gamma[COL(i)] * gy[i] - m1 - xh[i] * m2));
        }
    }
}

void ns_norm_rbackward(ns_norm_kind k, real *gx, real *rgx, real *hgamma, real *hbeta,
                       const real *gy, const real *rgy, const real *xh, const real *r,
                       const real *rxh, const real *a, const real *gamma, const real *vgamma,
                       long m, int c) {
    affine_sums(hgamma, hbeta, rgy, xh, gy, rxh, m, c);
    if (!gx && !rgx) return;
    walk wk = walk_of(k, m, c);
    for (long g = 0; g < wk.groups; g++) {
        long i0 = g * wk.gstep;
        double s1 = 0, s2 = 0, n1 = 0, n2 = 0;
        for (long t = 0; t < wk.len; t++) {
            long i = i0 + t * wk.stride;
            double gxh = (double)gamma[COL(i)] * gy[i];
            double rgxh = (double)vgamma[COL(i)] * gy[i] + (double)gamma[COL(i)] * rgy[i];
            s1 += gxh;
            s2 += gxh * xh[i];
            n1 += rgxh;
            n2 += rgxh * xh[i] + gxh * rxh[i];
        }
        double len = (double)wk.len, m1 = s1 / len, m2 = s2 / len, q1 = n1 / len, q2 = n2 / len;
        for (long t = 0; t < wk.len; t++) {
            long i = i0 + t * wk.stride;
            double gxh = (double)gamma[COL(i)] * gy[i];
            double rgxh = (double)vgamma[COL(i)] * gy[i] + (double)gamma[COL(i)] * rgy[i];
            double gxi = r[g] * (gxh - m1 - xh[i] * m2);
            if (rgx) rgx[i] = (real)(-a[g] * gxi + r[g] * (rgxh - q1 - rxh[i] * m2 - xh[i] * q2));
            if (gx) gx[i] = (real)gxi;
        }
    }
}
