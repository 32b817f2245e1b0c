// residual.c — the addition that closes a residual block (He et al. 2016):
//   identity shortcut     y = x + s                           (c == co)
//   1x1 conv shortcut     y = x + wmul s P^T + pb             (c != co)
// where x (m, co) is the block's residual branch, s (m, c) the block's input and m the rows
// of the pass (examples x pixels, channels last, or examples x tokens). A 1x1 convolution on
// channels-last maps is the dense layer on its rows, so the shortcut is ns_dense_* on
// (m, c) -> (m, co), with P = PyTorch's Conv2d(c, co, 1) weight (co, c, 1, 1) read as (co, c).
// The sum is linear in (x, s), so the tangent passes are the same sums:
//   Ry = Rx + R{shortcut},  gx = gy,  gs = (d shortcut/ds)^T gy,  R{gx} = R{gy}.
#include <string.h>
#include "layers.h"

static void copy_unless_same(real *dst, const real *src, size_t len) {
    if (dst && dst != src) memcpy(dst, src, sizeof *dst * len);
}

// p: NULL (identity), or P (co*c) followed by pb (co).
void ns_residual_forward(real *y, const real *x, const real *s, const real *p, real wmul,
                         long m, int c, int co) {
    size_t len = (size_t)m * (size_t)co;
    if (p)
        ns_dense_forward(y, s, p, p + (size_t)co * c, wmul, m, c, co);
    else
        memcpy(y, s, sizeof *y * len);
    for (size_t i = 0; i < len; i++) y[i] += x[i];
}

void ns_residual_backward(real *gx, real *gs, real *gp, const real *gy, const real *s,
                          const real *p, real wmul, long m, int c, int co) {
    if (p)
        ns_dense_backward(gs, gp, gp ? gp + (size_t)co * c : NULL, gy, s, p, wmul, m, c, co);
    else
        copy_unless_same(gs, gy, (size_t)m * co);
    copy_unless_same(gx, gy, (size_t)m * co);
}

void ns_residual_rforward(real *ry, const real *rx, const real *s, const real *rs,
                          const real *p, const real *vp, real wmul, long m, int c, int co) {
    size_t len = (size_t)m * (size_t)co;
    if (p)
        ns_dense_rforward(ry, s, rs, p, vp, vp + (size_t)co * c, wmul, m, c, co);
    else
        memcpy(ry, rs, sizeof *ry * len);
    for (size_t i = 0; i < len; i++) ry[i] += rx[i];
}

void ns_residual_rbackward(real *gx, real *rgx, real *gs, real *rgs, real *hp, const real *gy,
                           const real *rgy, const real *s, const real *rs, const real *p,
                           const real *vp, real wmul, long m, int c, int co) {
    if (p) {
        ns_dense_rbackward(gs, rgs, hp, hp ? hp + (size_t)co * c : NULL, gy, rgy, s, rs, p, vp,
                           wmul, m, c, co);
    } else {
        copy_unless_same(gs, gy, (size_t)m * co);
        copy_unless_same(rgs, rgy, (size_t)m * co);
    }
    copy_unless_same(gx, gy, (size_t)m * co);
    copy_unless_same(rgx, rgy, (size_t)m * co);
}
