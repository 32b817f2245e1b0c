// sweep/eos.c — the Edge of Stability rules (normsharp/eos.h): one definition of "at the
// EoS" and of the observed transition for `normsharp sweep` and `normsharp report`.
#include <math.h>
#include "normsharp/eos.h"

int ns_at_eos(double eta, double sharpness) {
    double two = 2 / eta;
    return isfinite(sharpness) && fabs(sharpness - two) <= NS_EOS_TOL * two;
}

int ns_eos_transitioned(double eta, double sharpness, double s_ref) {
    return s_ref > 0 && isfinite(s_ref) && eta > 0 && sharpness < (1 - NS_EOS_TOL) * s_ref && ns_at_eos(eta, sharpness);
}

double ns_eos_transition(const double *eta, const double *sharpness, int n, double s_ref) {
    double best = NAN;
    for (int i = 0; i < n; i++)
        if (ns_eos_transitioned(eta[i], sharpness[i], s_ref) && !(eta[i] >= best)) best = eta[i];
    return best;
}

void ns_lr_grid_around(double *out, double eta_c, double span_lo, double span_hi, int k) {
    for (int j = 0; j < k; j++)
        out[j] = k == 1 ? eta_c
                 : span_lo == span_hi ? eta_c * pow(span_lo, 2.0 * j / (k - 1) - 1)  // the symmetric grid, as it always was
                                      : eta_c / span_lo * pow(span_lo * span_hi, (double)j / (k - 1));
}
