// normsharp/eos.h — the Edge of Stability rules shared by the sweep's closing table and the
// report's findings: when a sharpness sits at 2/eta, which eta is the observed transition,
// and the learning-rate grid centred on the predicted critical rate eta_c = 2/s_GF.
#ifndef NORMSHARP_EOS_H
#define NORMSHARP_EOS_H

// "Within 10% of 2/eta" is |S - 2/eta| <= 0.1 * 2/eta; "below s_GF by more than 10%" is
// S < 0.9 s_GF (Cohen et al. 2021 call the first regime the Edge of Stability).
#define NS_EOS_TOL 0.10

// 1 if the sharpness S (1/units of the loss) of a run at learning rate eta > 0 lies within
// NS_EOS_TOL of 2/eta; 0 otherwise (also for a non-finite S).
int ns_at_eos(double eta, double sharpness);

// 1 if a run at eta with final sharpness S has left the flow for the Edge of Stability: S
// more than NS_EOS_TOL below the flat-regime sharpness s_ref (a finite positive s_GF) and
// within NS_EOS_TOL of 2/eta. The observed transition is the smallest such eta.
int ns_eos_transitioned(double eta, double sharpness, double s_ref);

// The observed transition to the Edge of Stability: the smallest eta[i] whose final
// sharpness[i] is more than NS_EOS_TOL below the flat-regime sharpness s_ref (s_GF, the
// largest sharpness along the gradient flow) and within NS_EOS_TOL of 2/eta[i]. eta and
// sharpness have n entries in any order; a run that did not finish or diverged enters with
// sharpness NAN and is never the transition. NAN when s_ref is not a finite positive number
// or no run qualifies.
double ns_eos_transition(const double *eta, const double *sharpness, int n, double s_ref);

// k learning rates, log-spaced, centred on eta_c > 0, written to out[0..k-1] in increasing
// order: from eta_c / span_lo to eta_c * span_hi (factors > 1). With span_lo == span_hi the
// grid is symmetric in log eta, so an odd k hits eta_c itself; k == 1 gives eta_c.
void ns_lr_grid_around(double *out, double eta_c, double span_lo, double span_hi, int k);

// The span of that grid from the text of --lr-span: "F" (span_lo = span_hi = F) or "LO:HI",
// each factor a number in (1, 1e6]. Returns 0, or NS_EINVAL (normsharp/common.h) with a
// sentence naming --lr-span; span is written only on success.
int ns_lr_span_parse(const char *s, double span[2]);
#endif
