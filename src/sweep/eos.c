// sweep/eos.c — the Edge of Stability rules (normsharp/eos.h): one definition of "at the
// EoS" and of the observed transition for `normsharp sweep` and `normsharp report`.
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "normsharp/common.h"
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

int ns_lr_span_parse(const char *s, double span[2]) {
    const char *colon = strchr(s, ':');
    char a[64], why[512];
    double lo, hi;
    if (colon && (size_t)(colon - s) >= sizeof a)
        return ns_fail(NS_EINVAL, "--lr-span expects F or LO:HI (factors above 1), got '%s'", s);
    snprintf(a, sizeof a, "%.*s", colon ? (int)(colon - s) : (int)strlen(s), s);
    if (ns_parse_double(a, 1.000001, 1e6, "--lr-span", &lo) ||
        ns_parse_double(colon ? colon + 1 : a, 1.000001, 1e6, "--lr-span", &hi)) {
        snprintf(why, sizeof why, "%s", ns_errmsg());  // the number's sentence, then the form
        return ns_fail(NS_EINVAL, "%s (--lr-span expects F or LO:HI, factors above 1)", why);
    }
    span[0] = lo;
    span[1] = hi;
    return 0;
}
