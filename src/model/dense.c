// dense.c — fully connected layer y = wmul * x W^T + b, and its tangent passes.
// All products are single row-major GEMMs over the n examples of the pass.
#include "layers.h"

// Also compiled for AVX2: the columns' sums are independent, so the vectors change no order.
// (A static function: clang makes no ifunc of an exported one with target_clones.)
// Columns [j_lo, j_hi) of it.
NS_VECTOR_CLONES static void colsum_add(real *gb, const real *g, long n, int width, int j_lo,
                                        int j_hi) {
    // Columns in blocks, so the double accumulators stay on the stack.
    enum { BLOCK = 256 };
    double acc[BLOCK];
    for (int j0 = j_lo; j0 < j_hi; j0 += BLOCK) {
        int nj = j_hi - j0 < BLOCK ? j_hi - j0 : BLOCK;
        for (int j = 0; j < nj; j++) acc[j] = 0.0;
        for (long i = 0; i < n; i++) {
            const real *row = g + i * (long)width + j0;
            for (int j = 0; j < nj; j++) acc[j] += row[j];
        }
        for (int j = 0; j < nj; j++) gb[j0 + j] += (real)acc[j];
    }
}

// Each column's sum is the same whichever range holds it: columns split over threads in
// ranges of whole vectors.
typedef struct {
    real *gb;
    const real *g;
    long n;
    int width;
} colsum_job;

static void colsum_range(void *ctx, long lo, long hi) {
    const colsum_job *j = ctx;
    int j_hi = (int)hi * VLEN < j->width ? (int)hi * VLEN : j->width;
    colsum_add(j->gb, j->g, j->n, j->width, (int)lo * VLEN, j_hi);
}

void ns_colsum_add(real *gb, const real *g, long n, int width) {
    if (n <= 0 || width <= 0) return;
    colsum_job j = {gb, g, n, width};
    long vectors = (width + VLEN - 1) / VLEN, per = n * VLEN;
    ns_parallel_for(colsum_range, &j, vectors, ns_elementwise_grain(per));
}

// y (n,m) := 1 b^T, the bias broadcast over rows (then GEMMs add into it with beta = 1).
static void fill_rows(real *y, const real *b, long n, int m) {
    for (long i = 0; i < n; i++) {
        real *row = y + i * (long)m;
        for (int j = 0; j < m; j++) row[j] = b[j];
    }
}

// x is (n,in), w is (out,in), b is (out), y is (n,out)
void ns_dense_forward(real *y, const real *x, const real *w, const real *b, real wmul,
                      long n, int in, int out) {
    fill_rows(y, b, n, out);
    NS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, out, in, wmul, x, in, w, in, 1, y,
            out);
}

// gy is (n,out): gW (out,in) += wmul gy^T x; gb += colsum gy; gx (n,in) = wmul gy W.
// Any output may be NULL: it is skipped (x is then not read).
void ns_dense_backward(real *gx, real *gw, real *gb, const real *gy, const real *x,
                       const real *w, real wmul, long n, int in, int out) {
    if (gw)
        NS_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, (int)n, wmul, gy, out, x, in,
                1, gw, in);
    if (gb) ns_colsum_add(gb, gy, n, out);
    if (gx)
        NS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, in, out, wmul, gy, out, w,
                in, 0, gx, in);
}

// Ry (n,out) = wmul (Rx W^T + x V^T) + vb
void ns_dense_rforward(real *ry, const real *x, const real *rx, const real *w,
                       const real *vw, const real *vb, real wmul, long n, int in, int out) {
    fill_rows(ry, vb, n, out);
    NS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, out, in, wmul, x, in, vw, in, 1,
            ry, out);
    if (rx)
        NS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, out, in, wmul, rx, in, w, in,
                1, ry, out);
}

// R{gW} = wmul (Rgy^T x + gy^T Rx), R{gb} = colsum Rgy, R{gx} = wmul (Rgy W + gy V).
// The layer's own gradient gW is not needed for H v, so it is not formed.
// Any output may be NULL: it is skipped (x is then not read).
void ns_dense_rbackward(real *gx, real *rgx, real *hw, real *hb, const real *gy,
                        const real *rgy, const real *x, const real *rx, const real *w,
                        const real *vw, real wmul, long n, int in, int out) {
    if (hw) {
        NS_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, (int)n, wmul, rgy, out, x, in,
                1, hw, in);
        if (rx)
            NS_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, (int)n, wmul, gy, out, rx,
                    in, 1, hw, in);
    }
    if (hb) ns_colsum_add(hb, rgy, n, out);
    if (gx)
        NS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, in, out, wmul, gy, out, w,
                in, 0, gx, in);
    if (rgx) {
        NS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, in, out, wmul, rgy, out, w,
                in, 0, rgx, in);
        NS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, in, out, wmul, gy, out, vw,
                in, 1, rgx, in);
    }
}
