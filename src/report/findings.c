// The findings of the paper's protocol (docs/CONVENTIONS.md, protocol), computed from the files of one
// experiment: eta_c predicted (2/s_GF) and observed, whether the sharpness sits at 2/eta
// above eta_c, whether the l1 norm grows there, which eta generalizes best, and for a DLN
// whether that eta beats both the min-l1 and the min-sharpness interpolator.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/report.h"
#include "report_internal.h"

// ---- Spearman rank correlation -------------------------------------------------------------
typedef struct {
    double v;
    int i;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    double x = ((const keyed *)a)->v, y = ((const keyed *)b)->v;
    return (x > y) - (x < y);
}

// rank[i] = 1-based rank of v[i]; tied values share their mean rank.
static int ranks(const double *v, int n, double *rank) {
    keyed *k = ns_calloc((size_t)n, sizeof *k);
    if (!k) return NS_ENOMEM;
    for (int i = 0; i < n; i++) k[i] = (keyed){v[i], i};
    qsort(k, (size_t)n, sizeof *k, cmp_keyed);
    for (int a = 0; a < n;) {
        int b = a;
        while (b + 1 < n && k[b + 1].v == k[a].v) b++;
        for (int j = a; j <= b; j++) rank[k[j].i] = 0.5 * (a + b) + 1;
        a = b + 1;
    }
    free(k);
    return 0;
}

// rho = Pearson correlation of the ranks.
double ns_spearman(const double *x, const double *y, int n) {
    if (n < 2) return NAN;
    double *rx = ns_calloc((size_t)n, sizeof *rx), *ry = ns_calloc((size_t)n, sizeof *ry);
    double rho = NAN;
    if (rx && ry && !ranks(x, n, rx) && !ranks(y, n, ry)) {
        double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < n; i++) mx += rx[i] / n, my += ry[i] / n;
        for (int i = 0; i < n; i++) {
            sxy += (rx[i] - mx) * (ry[i] - my);
            sxx += (rx[i] - mx) * (rx[i] - mx);
            syy += (ry[i] - my) * (ry[i] - my);
        }
        if (sxx > 0 && syy > 0) rho = sxy / sqrt(sxx * syy);
    }
    free(rx);
    free(ry);
    return rho;
}

// ---- the findings ----------------------------------------------------------------------------
static void critical_lr(const ns_report *r, const ns_rep_exp *e, ns_findings *f) {
    const ns_rep_flow *flow = e->flow >= 0 ? &r->flow[e->flow] : NULL;
    if (flow && isfinite(flow->s_gf)) {
        f->s_gf = flow->s_gf;
        f->s_gf_from = NS_SGF_FLOW;
        f->eta_c_pred = isfinite(flow->eta_c) ? flow->eta_c : 2 / flow->s_gf;
    } else if (f->is_dln && isfinite(e->theory_s_gf)) {
        f->s_gf = e->theory_s_gf;
        f->s_gf_from = NS_SGF_THEORY;
    } else if (f->is_dln && isfinite(e->ref[NS_REF_HYPENTROPY].sharpness)) {
        f->s_gf = e->ref[NS_REF_HYPENTROPY].sharpness;
        f->s_gf_from = NS_SGF_GF_SOLUTION;
    }
    if (isnan(f->eta_c_pred) && f->s_gf > 0) f->eta_c_pred = 2 / f->s_gf;
    // The flat-regime reference: s_GF, else the smallest finished eta's final sharpness.
    f->s_ref = f->s_gf;
    f->s_ref_from_flow = isfinite(f->s_gf);
    for (int i = 0; i < e->nrun && !isfinite(f->s_ref); i++)
        if (!ns_rep_diverged(&e->run[i]) && isfinite(e->run[i].sharpness)) f->s_ref = e->run[i].sharpness;
    for (int i = 0; i < e->nrun; i++) {
        const ns_rep_run *u = &e->run[i];
        double s = ns_rep_diverged(u) ? NAN : u->sharpness;
        if (ns_eos_transitioned(u->eta, s, f->s_ref) && !(u->eta >= f->eta_c_obs)) f->eta_c_obs = u->eta;
    }
    f->eta_c = isfinite(f->eta_c_pred) ? f->eta_c_pred : f->eta_c_obs;
}

static void above_eta_c(const ns_rep_exp *e, ns_findings *f) {
    if (!isfinite(f->eta_c)) return;
    double *x = ns_calloc((size_t)e->nrun + 1, sizeof *x), *y = ns_calloc((size_t)e->nrun + 1, sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return;
    }
    for (int i = 0; i < e->nrun; i++) {
        const ns_rep_run *u = &e->run[i];
        if (!ns_rep_converged(u) || !(u->eta > f->eta_c)) continue;
        if (isfinite(u->sharpness)) {
            f->n_above++;
            f->n_follow += ns_at_eos(u->eta, u->sharpness);
        }
        if (isfinite(u->l1)) {
            x[f->n_l1] = u->eta;
            y[f->n_l1++] = u->l1;
        }
    }
    if (f->n_l1 >= 3) f->l1_rho = ns_spearman(x, y, f->n_l1);
    for (int i = 1; i < f->n_l1; i++) {
        f->l1_steps++;
        f->l1_up += y[i] > y[i - 1];
    }
    free(x);
    free(y);
}

static void best_eta(const ns_rep_exp *e, ns_findings *f) {
    double lo = NAN, hi = NAN;
    for (int i = 0; i < e->nrun; i++) {
        const ns_rep_run *u = &e->run[i];
        f->n_diverged += ns_rep_diverged(u);
        if (!ns_rep_converged(u)) continue;
        f->n_converged++;
        if (isnan(lo)) lo = u->eta;
        hi = u->eta;
        if (!isfinite(u->test_err)) continue;
        // Lowest error; ties (error is discrete for classifiers) go to the lower test loss.
        int better = isnan(f->best_err) || u->test_err < f->best_err ||
                     (u->test_err == f->best_err && isfinite(u->test_loss) &&
                      !(u->test_loss >= f->best_loss));
        if (better) {
            f->best_eta = u->eta;
            f->best_err = u->test_err;
            f->best_loss = u->test_loss;
        }
    }
    if (isnan(f->best_eta)) f->best_position = 2;
    else f->best_position = f->best_eta == lo ? -1 : f->best_eta == hi ? 1 : 0;
}

void ns_report_findings(const ns_report *r, int k, ns_findings *f) {
    const ns_rep_exp *e = &r->exp[k];
    memset(f, 0, sizeof *f);
    f->s_gf = f->eta_c_pred = f->s_ref = f->eta_c_obs = f->eta_c = NAN;
    f->l1_rho = f->best_eta = f->best_err = f->best_loss = NAN;
    f->gen_min_l1 = f->gen_min_sharp = NAN;
    f->beats_both = -1;
    f->is_dln = e->kind == NS_EXP_DLN;
    f->n_runs = e->nrun;
    critical_lr(r, e, f);
    above_eta_c(e, f);
    best_eta(e, f);
    if (f->is_dln) {
        f->gen_min_l1 = e->ref[NS_REF_MIN_L1].gen_err;
        f->gen_min_sharp = e->ref[NS_REF_MIN_SHARP].gen_err;
        if (isfinite(f->best_err) && isfinite(f->gen_min_l1) && isfinite(f->gen_min_sharp))
            f->beats_both = f->best_err < f->gen_min_l1 && f->best_err < f->gen_min_sharp;
    }
}

// ---- as text -------------------------------------------------------------------------------------
static const char *sgf_source(ns_sgf_source s) {
    switch (s) {
    case NS_SGF_FLOW: return "from the gradient flow";
    case NS_SGF_THEORY: return "from theory.json";
    case NS_SGF_GF_SOLUTION: return "sharpness where the gradient flow ends, theory.json, a lower bound on s_GF";
    default: return "";
    }
}

static const char *eos_verdict(const ns_findings *f) {
    double frac = (double)f->n_follow / f->n_above;
    return frac >= 0.75 ? "yes" : frac >= 0.25 ? "partly" : "no";
}

int rp_l1_trend(double rho) { return !isfinite(rho) ? 0 : rho >= 0.5 ? 1 : rho <= -0.5 ? -1 : 0; }

static const char *l1_verdict(double rho) {
    int t = rp_l1_trend(rho);
    return !isfinite(rho) ? "no clear trend (constant values)" : t > 0 ? "yes" : t < 0 ? "no, it falls" : "no clear trend";
}

void ns_findings_text(const ns_findings *f, ns_buf *b) {
    const char *err = f->is_dln ? "generalization error" : "test error";
    // 1
    ns_buf_printf(b, "eta_c: predicted ");
    if (isfinite(f->eta_c_pred))
        ns_buf_printf(b, "%.4g (= 2/s_GF, s_GF = %.4g %s)", f->eta_c_pred, f->s_gf, sgf_source(f->s_gf_from));
    else
        ns_buf_printf(b, "unknown (%s)", f->is_dln ? "theory.json gives no s_GF" : "no gradient flow found for this experiment");
    if (isfinite(f->eta_c_obs))
        ns_buf_printf(b, "; observed %.4g (smallest eta whose final sharpness is >10%% below %s and within 10%% of 2/eta)\n",
                      f->eta_c_obs, f->s_ref_from_flow ? "s_GF" : "the sharpness at the smallest eta");
    else if (isfinite(f->s_ref))
        ns_buf_printf(b, "; observed: none (no finished run ends >10%% below %.4g and within 10%% of 2/eta)\n", f->s_ref);
    else
        ns_buf_printf(b, "; observed: none (no finished run with a measured sharpness)\n");
    // 2
    ns_buf_printf(b, "sharpness at 2/eta above eta_c: ");
    if (!isfinite(f->eta_c)) ns_buf_printf(b, "not testable, eta_c is unknown\n");
    else if (f->n_above == 0) ns_buf_printf(b, "not testable, no converged run with eta > %.4g\n", f->eta_c);
    else
        ns_buf_printf(b, "%s, %d of %d converged runs with eta > %.4g end within 10%% of 2/eta\n", eos_verdict(f),
                      f->n_follow, f->n_above, f->eta_c);
    // 3
    ns_buf_printf(b, "l1 norm grows with eta above eta_c: ");
    if (!isfinite(f->eta_c)) ns_buf_printf(b, "not testable, eta_c is unknown\n");
    else if (f->n_l1 < 3) ns_buf_printf(b, "not testable, only %d converged run(s) with eta > %.4g\n", f->n_l1, f->eta_c);
    else
        ns_buf_printf(b, "%s, Spearman rho = %.3f over %d converged runs; l1 rises in %d of %d consecutive steps\n",
                      l1_verdict(f->l1_rho), f->l1_rho, f->n_l1, f->l1_up, f->l1_steps);
    // 4
    ns_buf_printf(b, "best eta: ");
    if (f->best_position == 2) {
        ns_buf_printf(b, "none, no converged run has a %s (%d runs, %d diverged)\n", err, f->n_runs, f->n_diverged);
    } else {
        ns_buf_printf(b, "%.4g, %s %.4g (lowest of %d converged runs; %d diverged), %s", f->best_eta, err, f->best_err,
                      f->n_converged, f->n_diverged,
                      f->best_position < 0 ? "at the smallest converged eta"
                      : f->best_position > 0 ? "at the largest converged eta" : "strictly inside the converged range");
        if (isfinite(f->eta_c))
            ns_buf_printf(b, ", %s eta_c", f->best_eta > f->eta_c ? "above" : "at or below");
        ns_buf_printf(b, "\n");
    }
    if (!f->is_dln) return;
    // 5
    ns_buf_printf(b, "DLN best eta beats both minimizers: ");
    if (f->beats_both < 0)
        ns_buf_printf(b, "unknown (%s)\n", isfinite(f->best_err) ? "theory.json lacks the gen_err of min_l1 or min_sharpness"
                                                                 : "no converged run");
    else
        ns_buf_printf(b, "%s, generalization error %.4g at eta = %.4g vs %.4g (min-l1) and %.4g (min-sharpness)\n",
                      f->beats_both ? "yes" : "no", f->best_err, f->best_eta, f->gen_min_l1, f->gen_min_sharp);
}

// ---- as JSON -------------------------------------------------------------------------------------
static const char *sgf_key(ns_sgf_source s) {
    switch (s) {
    case NS_SGF_FLOW: return "flow";
    case NS_SGF_THEORY: return "theory";
    case NS_SGF_GF_SOLUTION: return "gf_solution";
    default: return NULL;
    }
}

void ns_findings_json(const ns_findings *f, ns_json *j, const char *key) {
    ns_json_obj(j, key);
    ns_json_obj(j, "eta_c");
    ns_json_num(j, "predicted", f->eta_c_pred);
    ns_json_num(j, "observed", f->eta_c_obs);
    ns_json_num(j, "used", f->eta_c);
    ns_json_num(j, "s_gf", f->s_gf);
    if (sgf_key(f->s_gf_from)) ns_json_str(j, "s_gf_source", sgf_key(f->s_gf_from));
    else ns_json_null(j, "s_gf_source");
    ns_json_num(j, "s_ref", f->s_ref);
    ns_json_bool(j, "s_ref_is_s_gf", f->s_ref_from_flow);
    ns_json_end(j);
    ns_json_obj(j, "sharpness_at_two_over_eta");
    ns_json_int(j, "converged_above", f->n_above);
    ns_json_int(j, "within_10pct", f->n_follow);
    ns_json_num(j, "fraction", f->n_above ? (double)f->n_follow / f->n_above : NAN);
    if (f->n_above) ns_json_str(j, "verdict", eos_verdict(f));
    else ns_json_null(j, "verdict");
    ns_json_end(j);
    ns_json_obj(j, "l1_growth");
    ns_json_int(j, "converged_above", f->n_l1);
    ns_json_num(j, "spearman", f->l1_rho);
    ns_json_int(j, "increasing_steps", f->l1_up);
    ns_json_int(j, "steps", f->l1_steps);
    if (f->n_l1 >= 3) ns_json_str(j, "verdict", l1_verdict(f->l1_rho));
    else ns_json_null(j, "verdict");
    ns_json_end(j);
    ns_json_obj(j, "best");
    ns_json_num(j, "eta", f->best_eta);
    ns_json_num(j, f->is_dln ? "gen_err" : "test_err", f->best_err);
    ns_json_num(j, "test_loss", f->best_loss);
    ns_json_int(j, "runs", f->n_runs);
    ns_json_int(j, "converged", f->n_converged);
    ns_json_int(j, "diverged", f->n_diverged);
    const char *pos[] = {"smallest", "inside", "largest"};
    if (f->best_position <= 1) ns_json_str(j, "position", pos[f->best_position + 1]);
    else ns_json_null(j, "position");
    ns_json_end(j);
    if (f->is_dln) {
        ns_json_obj(j, "dln");
        ns_json_num(j, "best_gen_err", f->best_err);
        ns_json_num(j, "min_l1_gen_err", f->gen_min_l1);
        ns_json_num(j, "min_sharpness_gen_err", f->gen_min_sharp);
        if (f->beats_both < 0) ns_json_null(j, "beats_both");
        else ns_json_bool(j, "beats_both", f->beats_both);
        ns_json_end(j);
    }
    ns_buf lines = {0};
    ns_findings_text(f, &lines);
    ns_json_arr(j, "lines");
    for (char *p = lines.data; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        ns_json_str(j, NULL, p);
        if (!nl) break;
        p = nl + 1;
    }
    ns_json_end(j);
    if (lines.oom) j->b->oom = 1;  // the caller sees the lost lines as its own out of memory
    ns_buf_free(&lines);
    ns_json_end(j);
}
