// dln/train.c — full-batch GD and gradient flow (RK4 at step min(c/S, h_max)) on a DLN.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/dln.h"
#include "dln_internal.h"

void ns_dln_train_opts_default(ns_dln_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->eta = 0.01;
    o->loss_goal = 1e-8;
    o->max_steps = 100000;
    o->diverge_factor = 1e6;
    o->flow_c = 0.2;
    o->flow_hmax = 1.0;
    o->eig_every = 0;
}

void ns_dln_train_result_free(ns_dln_train_result *r) {
    free(r->theta);
    free(r->beta);
    free(r->log_alpha_inf_sq);
    ns_buf_free(&r->traj);
    memset(r, 0, sizeof *r);
}

void ns_dln_gd_step(const ns_dln_model *m, int d, double *theta, const ns_dln_point *pt, double eta,
                    double *grad) {
    ns_dln_grad(m, d, theta, pt, grad);
    int p = ns_dln_nparams(m, d);
    for (int a = 0; a < p; a++) theta[a] -= eta * grad[a];
}

// Does the model have a conserved-up-to-GD quantity giving alpha_inf (docs/CONVENTIONS.md, DLN, Even et al.)?
static int has_alpha_inf(const ns_dln_model *m) {
    return m->kind == NS_DLN_UV || (m->kind == NS_DLN_PM && m->depth == 2);
}

// One GD step multiplies u^2 - v^2 (UV) by 1 - eta^2 g^2, and u v (PM, D = 2) by
// 1 - 4 eta^2 g^2 (expand the update); the log of the product is accumulated.
static void accumulate_alpha(const ns_dln_model *m, int d, const double *g, double eta, double *la) {
    double k = m->kind == NS_DLN_UV ? 1.0 : 4.0;
    for (int i = 0; i < d; i++) la[i] += log(fabs(1.0 - k * eta * eta * g[i] * g[i]));
}

// The same quantity read off the parameters (used for the flow, where it is conserved).
static void read_alpha(const ns_dln_model *m, int d, const double *theta, double *la) {
    for (int i = 0; i < d; i++) {
        double u = theta[i], v = theta[d + i];
        la[i] = m->kind == NS_DLN_UV ? log(fabs(u * u - v * v) / 2) : log(fabs(u * v));
    }
}

static void traj_row(ns_buf *b, long step, double time, double h, const ns_dln_point *pt, int d, int p,
                     const double *theta, double sharp) {
    ns_buf_printf(b, "%ld", step);
    double cells[5] = {time, h, pt->loss, ns_dln_l1(d, pt->beta), ns_dln_l2(p, theta)};
    for (int k = 0; k < 5; k++) ns_csv_cell(b, cells[k], 1);
    ns_csv_value(b, sharp);
    ns_buf_append(b, "\n", 1);
}

// Where a run stands at `step`, the same for GD and the flow: NS_DIVERGED (the loss is
// not finite or above diverge_factor x the initial loss), NS_CONVERGED (loss <=
// loss_goal) or NS_MAX_STEPS, recorded in r as the run's end; else -1 to go on.
static int run_state(const ns_dln_train_opts *o, const ns_dln_point *pt, long step, ns_dln_train_result *r) {
    r->steps = step;
    if (!isfinite(pt->loss) || pt->loss > o->diverge_factor * r->loss0) {
        r->diverged_at = step;
        return r->status = NS_DIVERGED;
    }
    if (pt->loss <= o->loss_goal) return r->status = NS_CONVERGED;
    if (step >= o->max_steps) return r->status = NS_MAX_STEPS;
    return -1;
}

static int train_gd(const ns_dln_model *m, const ns_dln_data *t, const ns_dln_train_opts *o,
                    ns_dln_train_result *r, ns_dln_point *pt, double *grad) {
    int d = t->d, p = ns_dln_nparams(m, d);
    double *theta = r->theta;
    for (long step = 0;; step++) {
        int state = run_state(o, pt, step, r);
        if (state == NS_DIVERGED) break;
        if (o->log_every > 0 && (step % o->log_every == 0 || state >= 0)) {
            double sh = NAN;
            if (o->eig_every > 0 && step % o->eig_every == 0) {
                ns_dln_sharp s;
                int rc = ns_dln_sharpness(m, t, theta, pt, 0, &s);
                if (rc) return rc;
                sh = s.sharpness;
            }
            traj_row(&r->traj, step, step * o->eta, o->eta, pt, d, p, theta, sh);
        }
        if (state >= 0) break;
        if (r->log_alpha_inf_sq) accumulate_alpha(m, d, pt->g, o->eta, r->log_alpha_inf_sq);
        ns_dln_gd_step(m, d, theta, pt, o->eta, grad);
        ns_dln_eval(m, t, theta, pt);
        if ((step & 63) == 0) ns_progress_step(o->progress, step + 1, pt->loss);
    }
    r->time = r->steps * o->eta;
    return NS_OK;
}

// Gradient flow theta' = -grad L(theta) by classical RK4 at h = min(c / S, h_max); S is
// the sharpness (secular route, refreshed every eig_every steps, default every step).
static int train_flow(const ns_dln_model *m, const ns_dln_data *t, const ns_dln_train_opts *o,
                      ns_dln_train_result *r, ns_dln_point *pt, double *grad) {
    int d = t->d, p = ns_dln_nparams(m, d);
    double *theta = r->theta;
    double *k = ns_malloc(sizeof(double) * 5 * (size_t)p);
    if (!k) return NS_ENOMEM;
    double *acc = k + 4 * (size_t)p;
    ns_dln_point q;
    int rc = ns_dln_point_alloc(&q, t->n, d);
    if (rc) {
        free(k);
        return rc;
    }
    long every = o->eig_every > 0 ? o->eig_every : 1;
    double S = NAN, time = 0;
    r->s_max = 0;
    for (long step = 0;; step++) {
        int state = run_state(o, pt, step, r);
        if (state == NS_DIVERGED) break;
        int refresh = step % every == 0;
        if (refresh) {
            ns_dln_sharp s;
            if ((rc = ns_dln_sharpness(m, t, theta, pt, 0, &s))) break;
            S = s.sharpness;
            if (pt->loss > o->loss_goal && S > r->s_max) r->s_max = S;
        }
        double h = S > 0 ? fmin(o->flow_c / S, o->flow_hmax) : o->flow_hmax;
        if (o->log_every > 0 && (step % o->log_every == 0 || state >= 0))
            traj_row(&r->traj, step, time, h, pt, d, p, theta, refresh ? S : NAN);
        if (state >= 0) break;
        // k1..k4 are gradients (the flow field is their negative)
        static const double stage[4] = {0, 0.5, 0.5, 1.0}, weight[4] = {1, 2, 2, 1};
        memcpy(acc, theta, sizeof(double) * (size_t)p);
        for (int st = 0; st < 4; st++) {
            double *ks = k + (size_t)st * p;
            if (st == 0) {
                ns_dln_grad(m, d, theta, pt, ks);
            } else {
                const double *prev = k + (size_t)(st - 1) * p;
                double *x = grad;  // evaluation point theta - stage * h * k_prev
                for (int a = 0; a < p; a++) x[a] = theta[a] - stage[st] * h * prev[a];
                ns_dln_eval(m, t, x, &q);
                ns_dln_grad(m, d, x, &q, ks);
            }
        }
        for (int st = 0; st < 4; st++)
            for (int a = 0; a < p; a++) acc[a] -= h / 6.0 * weight[st] * k[(size_t)st * p + a];
        memcpy(theta, acc, sizeof(double) * (size_t)p);
        time += h;
        ns_dln_eval(m, t, theta, pt);
        if ((step & 15) == 0) ns_progress_step(o->progress, step + 1, pt->loss);
    }
    r->time = time;
    if (r->log_alpha_inf_sq && !rc) read_alpha(m, d, theta, r->log_alpha_inf_sq);
    ns_dln_point_free(&q);
    free(k);
    return rc;
}

int ns_dln_train(const ns_dln_model *m, const ns_dln_data *t, const ns_dln_train_opts *o,
                 ns_dln_train_result *r) {
    memset(r, 0, sizeof *r);
    int rc = ns_dln_model_check(m);
    if (rc) return rc;
    if (!o->flow && !(o->eta > 0 && isfinite(o->eta)))
        return ns_fail(NS_EINVAL, "--lr must be a finite number > 0, got %g", o->eta);
    if (o->flow && !(o->flow_c > 0 && o->flow_hmax > 0))
        return ns_fail(NS_EINVAL, "the flow step constants must be > 0 (c = %g, h_max = %g)", o->flow_c, o->flow_hmax);
    int d = t->d, p = ns_dln_nparams(m, d);
    double start = ns_now();
    r->theta = ns_malloc(sizeof(double) * (size_t)p);
    r->beta = ns_malloc(sizeof(double) * (size_t)d);
    double *grad = ns_malloc(sizeof(double) * (size_t)p);
    if (has_alpha_inf(m)) r->log_alpha_inf_sq = ns_malloc(sizeof(double) * (size_t)d);
    ns_dln_point pt;
    if (!r->theta || !r->beta || !grad || (has_alpha_inf(m) && !r->log_alpha_inf_sq) ||
        (rc = ns_dln_point_alloc(&pt, t->n, d))) {
        free(grad);
        ns_dln_train_result_free(r);
        return NS_ENOMEM;
    }
    ns_dln_init(m, d, r->theta);
    if (r->log_alpha_inf_sq)
        for (int i = 0; i < d; i++) r->log_alpha_inf_sq[i] = 2 * log(m->alpha);
    ns_dln_eval(m, t, r->theta, &pt);
    r->loss0 = pt.loss;
    r->diverged_at = -1;
    if (o->log_every > 0) ns_buf_printf(&r->traj, "step,time,h,train_loss,l1,l2,sharpness\n");
    rc = o->flow ? train_flow(m, t, o, r, &pt, grad) : train_gd(m, t, o, r, &pt, grad);
    if (!rc) {
        memcpy(r->beta, pt.beta, sizeof(double) * (size_t)d);
        r->loss = pt.loss;
        r->seconds = ns_now() - start;
        if (r->traj.oom) rc = ns_fail(NS_ENOMEM, "out of memory while recording the trajectory");
    }
    free(grad);
    ns_dln_point_free(&pt);
    if (rc) ns_dln_train_result_free(r);
    return rc;
}
