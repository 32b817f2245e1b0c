// flatten.c — channels-last feature maps (n,h,w,c) to PyTorch's flatten order (n, c*h*w),
// so that the head's weight fcK.weight loads into the equivalent torch model unchanged.
// A permutation: linear, so the tangent pass is the same permutation and the backward
// pass is its inverse.
#include "layers.h"

// y[e][(ch*h + yy)*w + xx] = x[e][(yy*w + xx)*c + ch]
void ns_flatten_forward(real *y, const real *x, long n, int h, int w, int c) {
    long hw = (long)h * w, d = hw * c;
    for (long e = 0; e < n; e++)
        for (long p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++) y[e * d + ch * hw + p] = x[e * d + p * c + ch];
}

void ns_flatten_backward(real *gx, const real *gy, long n, int h, int w, int c) {
    long hw = (long)h * w, d = hw * c;
    for (long e = 0; e < n; e++)
        for (long p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++) gx[e * d + p * c + ch] = gy[e * d + ch * hw + p];
}

void ns_flatten_rforward(real *ry, const real *rx, long n, int h, int w, int c) {
    ns_flatten_forward(ry, rx, n, h, w, c);
}

void ns_flatten_rbackward(real *gx, real *rgx, const real *gy, const real *rgy, long n,
                          int h, int w, int c) {
    if (gx) ns_flatten_backward(gx, gy, n, h, w, c);
    ns_flatten_backward(rgx, rgy, n, h, w, c);
}
