// meanpool.c — mean over the rows of each example: x (n, t, c) -> y (n, c),
// y[e][j] = (1/t) sum_r x[e][r][j]. It is the ResNet's global average pooling over the
// pixels of a channels-last map (t = h*w, PyTorch's AdaptiveAvgPool2d(1) + flatten) and the
// ViT's mean over tokens. Linear: Ry is the same mean of Rx, gx[e][r][j] = gy[e][j] / t.
#include "layers.h"

void ns_meanpool_forward(real *y, const real *x, long n, int t, int c) {
    for (long e = 0; e < n; e++) {
        real *ye = y + e * c;
        const real *xe = x + e * (long)t * c;
        for (int j = 0; j < c; j++) ye[j] = 0;
        for (int r = 0; r < t; r++)
            for (int j = 0; j < c; j++) ye[j] += xe[(long)r * c + j];
        for (int j = 0; j < c; j++) ye[j] /= (real)t;
    }
}

void ns_meanpool_backward(real *gx, const real *gy, long n, int t, int c) {
    for (long e = 0; e < n; e++)
        for (int r = 0; r < t; r++)
            for (int j = 0; j < c; j++) gx[(e * t + r) * c + j] = gy[e * c + j] / (real)t;
}

void ns_meanpool_rforward(real *ry, const real *rx, long n, int t, int c) {
    ns_meanpool_forward(ry, rx, n, t, c);
}

void ns_meanpool_rbackward(real *gx, real *rgx, const real *gy, const real *rgy, long n, int t,
                           int c) {
    if (gx) ns_meanpool_backward(gx, gy, n, t, c);
    ns_meanpool_backward(rgx, rgy, n, t, c);
}
