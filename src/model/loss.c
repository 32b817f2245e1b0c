// loss.c — the training losses of docs/CONVENTIONS.md, losses on network outputs f (n,k), with their first and
// second derivatives in f (per example; L = scale * sum_i l_i, scale = 1/n):
//   mse  l = 0.5 ||f - t||^2         dl/df = f - t              d2l/df2 Rf = Rf
//   ce   l = -log softmax(f)[y]      dl/df = p - e_y            d2l/df2 Rf = p*Rf - p (p.Rf)
// with p = softmax(f). Sums and the softmax are taken in double.
#include <math.h>
#include <stdlib.h>
#include "layers.h"

static int argmax(const real *v, int k) {
    int best = 0;
    for (int j = 1; j < k; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

int ns_loss_eval(ns_loss_kind kind, real *g, real *rg, const real *f, const real *rf,
                 const int *y, const real *t, long n, int k, double scale, double *loss_sum,
                 long *correct) {
    if (kind != NS_LOSS_MSE && kind != NS_LOSS_CE)
        return ns_fail(NS_EINVAL, "unknown loss kind %d", (int)kind);
    if (kind == NS_LOSS_MSE && !t)
        return ns_fail(NS_EINVAL, "the MSE loss needs one-hot targets, but the batch has none");
    if (kind == NS_LOSS_CE && !y)
        return ns_fail(NS_EINVAL, "the cross-entropy loss needs labels, but the batch has none");
    if (rg && !rf) return ns_fail(NS_EINVAL, "the loss's tangent pass needs the output tangent");
    double *p = NULL;
    if (kind == NS_LOSS_CE) {
        p = ns_malloc(sizeof *p * (size_t)k);
        if (!p) return ns_fail(NS_ENOMEM, "out of memory in the loss (%d classes)", k);
    }
    double sum = 0;
    long right = 0;
    for (long i = 0; i < n; i++) {
        const real *fi = f + i * (long)k;
        int label = y ? y[i] : argmax(t + i * (long)k, k);
        if (label < 0 || label >= k) {
            free(p);
            return ns_fail(NS_EINVAL, "a label (%d) is outside the classes 0..%d", label, k - 1);
        }
        right += argmax(fi, k) == label;
        if (kind == NS_LOSS_MSE) {
            const real *ti = t + i * (long)k;
            for (int j = 0; j < k; j++) {
                double r = (double)fi[j] - ti[j];
                sum += 0.5 * r * r;
                if (g) g[i * k + j] = (real)(scale * r);
                if (rg) rg[i * k + j] = (real)(scale * rf[i * k + j]);
            }
            continue;
        }
        // log softmax, shifted by the maximum for stability
        double m = fi[argmax(fi, k)], z = 0;
        for (int j = 0; j < k; j++) z += (p[j] = exp(fi[j] - m));
        double logz = m + log(z);
        sum += logz - fi[label];
        double prf = 0;  // p . Rf
        for (int j = 0; j < k; j++) {
            p[j] /= z;
            if (rg) prf += p[j] * rf[i * k + j];
        }
        for (int j = 0; j < k; j++) {
            if (g) g[i * k + j] = (real)(scale * (p[j] - (j == label)));
            if (rg) rg[i * k + j] = (real)(scale * p[j] * (rf[i * k + j] - prf));
        }
    }
    free(p);
    *loss_sum += sum;
    *correct += right;
    return 0;
}
