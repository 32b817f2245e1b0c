// dln/theory.c — the reference table of a task: every reference interpolator (lp.c, refsol.c,
// sdp.c, mirror.c) with its l1 norm, sharpness, generalization error and residual.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/dln.h"
#include "dln_internal.h"

const char *const ns_dln_ref_key[NS_REF_COUNT] = {"min_l1", "min_l2", "min_sharpness", "hypentropy", "gen_opt"};

static void ref_skip(ns_dln_ref *r, const char *why) {
    r->ok = 0;
    snprintf(r->note, sizeof r->note, "%s", why);
}

int ns_dln_theory_init(ns_dln_theory *th, int d) {
    memset(th, 0, sizeof *th);
    for (int k = 0; k < NS_REF_COUNT; k++) {
        ns_dln_ref *r = &th->ref[k];
        r->name = ns_dln_ref_key[k];
        r->l1 = r->sharpness = r->gen_err = r->residual = NAN;
        if (!(r->beta = ns_calloc((size_t)d, sizeof(double)))) {
            ns_dln_theory_free(th);
            return NS_ENOMEM;
        }
    }
    return NS_OK;
}

int ns_dln_theory_compute(const ns_dln_model *m, const ns_dln_task *task, ns_dln_theory *th) {
    double start = ns_now();
    ns_dln_data t = ns_dln_task_data(task);
    int d = t.d, nonneg = m->kind == NS_DLN_SHARED;
    int rc = ns_dln_theory_init(th, d);
    if (rc) return rc;
    for (int k = 0; k < NS_REF_COUNT; k++) {
        ns_dln_ref *r = &th->ref[k];
        double value;
        switch (k) {
        case NS_REF_MIN_L1: rc = ns_dln_min_weighted_l1(&t, NULL, nonneg, r->beta); break;
        case NS_REF_MIN_L2: rc = ns_dln_min_l2(&t, r->beta); break;
        case NS_REF_MIN_SHARP: rc = ns_dln_min_sharpness(&t, nonneg, r->beta, &value); break;
        case NS_REF_HYPENTROPY: rc = ns_dln_flow_prediction(m, &t, NULL, r->beta); break;
        case NS_REF_GEN_OPT:
            if (!task->beta_star) {
                ref_skip(r, "no teacher beta* is known for this task");
                continue;
            }
            rc = ns_dln_gen_opt(&t, task->sigma_diag, task->beta_star, nonneg, r->beta);
            break;
        }
        if (rc == NS_ENOMEM) {
            ns_dln_theory_free(th);
            return rc;
        }
        if (rc) {
            ref_skip(r, ns_errmsg());
            ns_clear_error();
            continue;
        }
        r->ok = 1;
        r->l1 = ns_dln_l1(d, r->beta);
        r->residual = dln_residual_inf(&t, r->beta);
        r->gen_err = ns_dln_gen_err(d, r->beta, task->beta_star, task->sigma_diag, task->noise);
        // The flow's solution is realized by the flow's own parameters; the others by the
        // flattest realization (the one the min-sharpness problem optimizes over).
        rc = k == NS_REF_HYPENTROPY ? ns_dln_sharpness_on_flow(m, &t, r->beta, NULL, &r->sharpness)
                                    : ns_dln_sharpness_of_beta(m, &t, r->beta, &r->sharpness);
        if (rc) {
            ns_dln_theory_free(th);
            return rc;
        }
        if (k == NS_REF_MIN_L2 && nonneg && isnan(r->sharpness))
            snprintf(r->note, sizeof r->note, "has negative entries: not realizable by beta = w*w");
    }
    th->seconds = ns_now() - start;
    return NS_OK;
}

void ns_dln_theory_free(ns_dln_theory *th) {
    for (int k = 0; k < NS_REF_COUNT; k++) free(th->ref[k].beta);
    memset(th, 0, sizeof *th);
}
