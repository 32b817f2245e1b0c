// attention.c — multi-head self-attention over tokens x (n, t, d), heads of dh = d / heads,
// with PyTorch's nn.MultiheadAttention parameters, contiguous in this order:
//   in_proj_weight (3d, d), in_proj_bias (3d), out_proj.weight (d, d), out_proj.bias (d)
//   [q k v] = wmul x Win^T + bin                 rows of qkv (n*t, 3d): q | k | v
//   S_h = scale Q_h K_h^T,  P_h = softmax_rows(S_h),  O_h = P_h V_h   per example and head
//   y = wmul O Wout^T + bout                      O (n*t, d), head h in columns h*dh..
// (Vaswani et al. 2017). scale is 1/sqrt(dh), or 1/dh under muP (Yang et al. 2021).
// With the softmax's Jacobian dP = P o (dS - rowsum(P o dS)), the passes per head are
//   rforward   RS = scale (RQ K^T + Q RK^T),  RP = P o (RS - rowsum(P o RS)),
//              RO = RP V + P RV
//   backward   gP = gO V^T,  gV = P^T gO,  gS = P o (gP - c), c = rowsum(gP o P),
//              gQ = scale gS K,  gK = scale gS^T Q
//   rbackward  RgP = RgO V^T + gO RV^T,  RgV = RP^T gO + P^T RgO,
//              Rc = rowsum(RgP o P + gP o RP),  RgS = RP o (gP - c) + P o (RgP - Rc),
//              RgQ = scale (RgS K + gS RK),  RgK = scale (RgS^T Q + gS^T RQ)
// and the projections are dense layers (dense.c) on all n*t rows. Every product is a GEMM.
// The forward pass saves qkv (n*t*3d), then P (n*heads*t*t), then O (n*t*d):
// ns_attention_saved values per example; the tangent pass saves their tangents likewise.
#include <math.h>
#include <string.h>
#include "layers.h"

// The saved values of a pass over n examples.
typedef struct {
    real *qkv, *p, *o;
} saved;

static size_t per_example(const ns_attn_shape *s) {
    return 4 * (size_t)s->t * s->d + (size_t)s->heads * s->t * s->t;
}

static saved saved_at(const real *base, long n, const ns_attn_shape *s) {
    saved v;
    v.qkv = (real *)base;
    v.p = v.qkv + 3 * (size_t)n * s->t * s->d;
    v.o = v.p + (size_t)n * s->heads * s->t * s->t;
    return v;
}

size_t ns_attention_saved(const ns_attn_shape *s) { return per_example(s); }

// gO, RgO (n*t*d each), gqkv, Rgqkv (n*t*3d each), gP and RgP (t*t each).
size_t ns_attention_scratch(const ns_attn_shape *s, long n) {
    return (size_t)n * s->t * s->d * 8 + 2 * (size_t)s->t * s->t;
}

// Parameter blocks within p.
typedef struct {
    const real *win, *bin, *wout, *bout;
} params;

static params split(const real *p, int d) {
    params q;
    q.win = p;
    q.bin = p + 3 * (size_t)d * d;
    q.wout = q.bin + 3 * (size_t)d;
    q.bout = q.wout + (size_t)d * d;
    return q;
}

// C (t,t) := alpha A B^T + beta C, A and B (t, dh) with leading dimension lda/ldb.
static void gemm_nt(int t, int dh, real alpha, const real *a, int lda, const real *b, int ldb,
                    real beta, real *c, int ldc, int rows_c) {
    NS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, rows_c, t, dh, alpha, a, lda, b, ldb, beta,
            c, ldc);
}

// C (t,dh) := alpha op(A) B + beta C with A (t,t), B (t,dh) of leading dimension ldb.
static void gemm_pn(int trans, int t, int dh, real alpha, const real *a, const real *b, int ldb,
                    real beta, real *c, int ldc) {
    NS_GEMM(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, CblasNoTrans, t, dh, t, alpha, a,
            t, b, ldb, beta, c, ldc);
}

// rows of A (t,t): A := P o (A - rowsum(P o A)), the softmax Jacobian (transpose) applied.
static void softmax_jacobian(real *a, const real *p, int t) {
    for (int i = 0; i < t; i++) {
        double c = 0;
        for (int j = 0; j < t; j++) c += (double)p[i * t + j] * a[i * t + j];
        for (int j = 0; j < t; j++) a[i * t + j] = p[i * t + j] * (a[i * t + j] - (real)c);
    }
}

// Per example e and head h: the (t, t) block of P, and the offsets of Q_h, K_h, V_h in qkv.
#define P_BLOCK(base, e, h) ((base) + ((size_t)(e) * s->heads + (h)) * (size_t)s->t * s->t)

void ns_attention_forward(real *y, real *save, const real *x, const real *p, real wmul, long n,
                          const ns_attn_shape *s) {
    int t = s->t, d = s->d, dh = d / s->heads, d3 = 3 * d;
    long td = (long)t * d;
    saved sv = saved_at(save, n, s);
    params q = split(p, d);
    ns_dense_forward(sv.qkv, x, q.win, q.bin, wmul, n * t, d, d3);
    for (long e = 0; e < n; e++) {
        const real *qkv = sv.qkv + 3 * e * td;
        for (int h = 0; h < s->heads; h++) {
            real *ph = P_BLOCK(sv.p, e, h);
            gemm_nt(t, dh, s->scale, qkv + h * dh, d3, qkv + d + h * dh, d3, 0, ph, t, t);
            for (int i = 0; i < t; i++) {
                real *row = ph + (long)i * t, mx = row[0];
                for (int j = 1; j < t; j++) mx = row[j] > mx ? row[j] : mx;
                double z = 0;
                for (int j = 0; j < t; j++) z += (row[j] = (real)exp((double)(row[j] - mx)));
                for (int j = 0; j < t; j++) row[j] = (real)(row[j] / z);
            }
            gemm_pn(0, t, dh, 1, ph, qkv + 2 * d + h * dh, d3, 0, sv.o + e * td + h * dh, d);
        }
    }
    ns_dense_forward(y, sv.o, q.wout, q.bout, wmul, n * t, d, d);
}

void ns_attention_rforward(real *ry, real *rsave, const real *x, const real *rx,
                           const real *save, const real *p, const real *v, real wmul, long n,
                           const ns_attn_shape *s) {
    int t = s->t, d = s->d, dh = d / s->heads, d3 = 3 * d;
    long td = (long)t * d;
    saved sv = saved_at(save, n, s), rv = saved_at(rsave, n, s);
    params q = split(p, d), vq = split(v, d);
    ns_dense_rforward(rv.qkv, x, rx, q.win, vq.win, vq.bin, wmul, n * t, d, d3);
    for (long e = 0; e < n; e++) {
        const real *qkv = sv.qkv + 3 * e * td, *rqkv = rv.qkv + 3 * e * td;
        for (int h = 0; h < s->heads; h++) {
            const real *ph = P_BLOCK(sv.p, e, h);
            real *rph = P_BLOCK(rv.p, e, h), *ro = rv.o + e * td + h * dh;
            int oq = h * dh, ok = d + h * dh, ov = 2 * d + h * dh;
            gemm_nt(t, dh, s->scale, rqkv + oq, d3, qkv + ok, d3, 0, rph, t, t);
            gemm_nt(t, dh, s->scale, qkv + oq, d3, rqkv + ok, d3, 1, rph, t, t);
            softmax_jacobian(rph, ph, t);
            gemm_pn(0, t, dh, 1, rph, qkv + ov, d3, 0, ro, d);
            gemm_pn(0, t, dh, 1, ph, rqkv + ov, d3, 1, ro, d);
        }
    }
    ns_dense_rforward(ry, sv.o, rv.o, q.wout, vq.wout, vq.bout, wmul, n * t, d, d);
}

// gqkv (t, 3d) of example e from its gO (t, d); with the tangents too if rgqkv != NULL.
// gp, rgp: (t, t) scratch.
static void heads_backward(real *gqkv, real *rgqkv, real *gp, real *rgp, const real *go,
                           const real *rgo, const saved *sv, const saved *rv, long e,
                           const ns_attn_shape *s) {
    int t = s->t, d = s->d, dh = d / s->heads, d3 = 3 * d;
    long td = (long)t * d;
    const real *qkv = sv->qkv + 3 * e * td, *rqkv = rgqkv ? rv->qkv + 3 * e * td : NULL;
    for (int h = 0; h < s->heads; h++) {
        const real *ph = P_BLOCK(sv->p, e, h), *rph = rgqkv ? P_BLOCK(rv->p, e, h) : NULL;
        int oq = h * dh, ok = d + h * dh, ov = 2 * d + h * dh;
        const real *goh = go + h * dh, *rgoh = rgqkv ? rgo + h * dh : NULL;
        gemm_nt(t, dh, 1, goh, d, qkv + ov, d3, 0, gp, t, t);          // gP = gO V^T
        gemm_pn(1, t, dh, 1, ph, goh, d, 0, gqkv + ov, d3);             // gV = P^T gO
        if (rgqkv) {
            gemm_nt(t, dh, 1, rgoh, d, qkv + ov, d3, 0, rgp, t, t);     // RgP = RgO V^T
            gemm_nt(t, dh, 1, goh, d, rqkv + ov, d3, 1, rgp, t, t);     //     + gO RV^T
            gemm_pn(1, t, dh, 1, rph, goh, d, 0, rgqkv + ov, d3);       // RgV = RP^T gO
            gemm_pn(1, t, dh, 1, ph, rgoh, d, 1, rgqkv + ov, d3);       //     + P^T RgO
            // RgS = RP o (gP - c) + P o (RgP - Rc), while gP is still unchanged
            for (int i = 0; i < t; i++) {
                double c = 0, rc = 0;
                for (int j = 0; j < t; j++) {
                    long k = (long)i * t + j;
                    c += (double)gp[k] * ph[k];
                    rc += (double)rgp[k] * ph[k] + (double)gp[k] * rph[k];
                }
                for (int j = 0; j < t; j++) {
                    long k = (long)i * t + j;
                    rgp[k] = (real)(rph[k] * (gp[k] - c) + ph[k] * (rgp[k] - rc));
                }
            }
        }
        softmax_jacobian(gp, ph, t);                                      // gS
        gemm_pn(0, t, dh, s->scale, gp, qkv + ok, d3, 0, gqkv + oq, d3);   // gQ = s gS K
        gemm_pn(1, t, dh, s->scale, gp, qkv + oq, d3, 0, gqkv + ok, d3);   // gK = s gS^T Q
        if (rgqkv) {
            gemm_pn(0, t, dh, s->scale, rgp, qkv + ok, d3, 0, rgqkv + oq, d3);
            gemm_pn(0, t, dh, s->scale, gp, rqkv + ok, d3, 1, rgqkv + oq, d3);
            gemm_pn(1, t, dh, s->scale, rgp, qkv + oq, d3, 0, rgqkv + ok, d3);
            gemm_pn(1, t, dh, s->scale, gp, rqkv + oq, d3, 1, rgqkv + ok, d3);
        }
    }
}

// The four gradient blocks of the parameters (NULL if gp is NULL).
typedef struct {
    real *win, *bin, *wout, *bout;
} grads;

static grads grads_at(real *gp, int d) {
    grads g = {0};
    if (!gp) return g;
    g.win = gp;
    g.bin = gp + 3 * (size_t)d * d;
    g.wout = g.bin + 3 * (size_t)d;
    g.bout = g.wout + (size_t)d * d;
    return g;
}

// ws: at least ns_attention_scratch(s, n) values.
void ns_attention_backward(real *gx, real *gp, const real *gy, const real *x, const real *save,
                           const real *p, real wmul, long n, const ns_attn_shape *s, real *ws) {
    int t = s->t, d = s->d;
    long td = (long)t * d;
    saved sv = saved_at(save, n, s);
    params q = split(p, d);
    grads g = grads_at(gp, d);
    real *go = ws, *gqkv = go + n * td, *gpp = gqkv + 3 * n * td;
    ns_dense_backward(go, g.wout, g.bout, gy, sv.o, q.wout, wmul, n * t, d, d);
    for (long e = 0; e < n; e++)
        heads_backward(gqkv + 3 * e * td, NULL, gpp, NULL, go + e * td, NULL, &sv, NULL, e, s);
    ns_dense_backward(gx, g.win, g.bin, gqkv, x, q.win, wmul, n * t, d, 3 * d);
}

void ns_attention_rbackward(real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                            const real *x, const real *rx, const real *save, const real *rsave,
                            const real *p, const real *v, real wmul, long n,
                            const ns_attn_shape *s, real *ws) {
    int t = s->t, d = s->d;
    long td = (long)t * d;
    saved sv = saved_at(save, n, s), rv = saved_at(rsave, n, s);
    params q = split(p, d), vq = split(v, d);
    grads h = grads_at(hp, d);
    real *go = ws, *rgo = go + n * td, *gqkv = rgo + n * td, *rgqkv = gqkv + 3 * n * td;
    real *gpp = rgqkv + 3 * n * td, *rgpp = gpp + (size_t)t * t;
    ns_dense_rbackward(go, rgo, h.wout, h.bout, gy, rgy, sv.o, rv.o, q.wout, vq.wout, wmul,
                       n * t, d, d);
    for (long e = 0; e < n; e++)
        heads_backward(gqkv + 3 * e * td, rgqkv + 3 * e * td, gpp, rgpp, go + e * td,
                       rgo + e * td, &sv, &rv, e, s);
    ns_dense_rbackward(gx, rgx, h.win, h.bin, gqkv, rgqkv, x, rx, q.win, vq.win, wmul, n * t, d,
                       3 * d);
}
