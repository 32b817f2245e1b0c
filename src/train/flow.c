// train/flow.c — gradient flow theta' = -grad L(theta) by classical Runge–Kutta 4 at
// step h = min(c / S(theta), h_max) (docs/CONVENTIONS.md, measurements). Its largest sharpness before the loss
// reaches the goal, s_GF, predicts the critical learning rate eta_c = 2 / s_GF.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "record.h"

void ns_flow_opts_default(ns_flow_opts *o) {
    *o = (ns_flow_opts){.rk_c = 0.5, .h_max = 1.0, .eig_every = 5, .loss_goal = NAN, .max_time = INFINITY,
                        .max_steps = 1000000, .diverge_factor = 1e3, .log_every = 1, .test_every = 100,
                        .flush_seconds = 30};
    run_measure_defaults(&o->final, &o->eig);
}

void ns_flow_result_free(ns_flow_result *r) {
    if (r) ns_buf_free(&r->summary);
}

typedef struct {
    size_t n;
    real *base, *g;        // theta_t; the current stage's gradient
    double *sum;           // k1 + 2 k2 + 2 k3 + k4
    double wd;             // weight decay: the slopes are of L + (wd/2)||theta||^2
} rk4_work;

// theta := base - a * g, the point where the next stage's slope is taken.
static void stage_point(real *theta, const rk4_work *w, double a) {
    for (size_t i = 0; i < w->n; i++) theta[i] = (real)(w->base[i] - a * w->g[i]);
}

// One RK4 step of size h for theta' = -g(theta); w->g holds k1 = g(theta_t) on entry.
//   theta_{t+h} = theta_t - h/6 (k1 + 2 k2 + 2 k3 + k4),
//   k2 = g(theta_t - h/2 k1), k3 = g(theta_t - h/2 k2), k4 = g(theta_t - h k3).
static int rk4_step(ns_model *m, const ns_batch *train, rk4_work *w, double h) {
    real *theta = ns_model_theta(m);
    memcpy(w->base, theta, w->n * sizeof(real));
    for (size_t i = 0; i < w->n; i++) w->sum[i] = w->g[i];
    static const double at[3] = {0.5, 0.5, 1.0}, weight[3] = {2, 2, 1};
    for (int s = 0; s < 3; s++) {
        stage_point(theta, w, at[s] * h);
        double loss, acc;
        int rc = objective_grad(m, train, w->wd, w->g, &loss, &acc);
        if (rc) return rc;
        for (size_t i = 0; i < w->n; i++) w->sum[i] += weight[s] * w->g[i];
    }
    for (size_t i = 0; i < w->n; i++) theta[i] = (real)(w->base[i] - h / 6 * w->sum[i]);
    return 0;
}

static int check_opts(const ns_flow_opts *o) {
    if (!(o->rk_c > 0) || !isfinite(o->rk_c)) return ns_fail(NS_EINVAL, "--rk-c must be a finite number > 0, got %g", o->rk_c);
    if (!(o->h_max > 0)) return ns_fail(NS_EINVAL, "--h-max must be > 0, got %g", o->h_max);
    if (o->eig_every < 1) return ns_fail(NS_EINVAL, "the flow needs the sharpness: --eig-every must be >= 1");
    if (!(o->max_time > 0)) return ns_fail(NS_EINVAL, "--max-time must be > 0, got %g", o->max_time);
    if (isnan(o->loss_goal) && isinf(o->max_time) && o->max_steps <= 0)
        return ns_fail(NS_EINVAL, "the flow needs a --loss-goal, a --max-time or a --max-steps to stop");
    if (!(o->diverge_factor > 1)) return ns_fail(NS_EINVAL, "--diverge-factor must be > 1, got %g", o->diverge_factor);
    if (o->eig.method == NS_EIG_NONE) return ns_fail(NS_EINVAL, "the flow needs an eigenvalue method for its step size");
    if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
        return ns_fail(NS_EINVAL, "--weight-decay must be a finite number >= 0, got %g", o->weight_decay);
    return 0;
}

void ns_flow_config_json(ns_json *j, const ns_model *m, const ns_dataset *ds, const ns_data_opts *data,
                         const ns_flow_opts *o) {
    ns_json_obj(j, "config");
    config_model_data(j, m, ds, data, o->weights_from);
    ns_json_num(j, "rk_c", o->rk_c);
    ns_json_num(j, "h_max", o->h_max);
    ns_json_int(j, "eig_every", o->eig_every);
    ns_json_num(j, "loss_goal", o->loss_goal);
    ns_json_num(j, "max_time", o->max_time);
    ns_json_int(j, "max_steps", o->max_steps);
    ns_json_num(j, "diverge_factor", o->diverge_factor);
    config_views(j, o->weight_decay, &o->final);
    ns_json_int(j, "log_every", o->log_every);
    ns_json_int(j, "test_every", o->test_every);
    ns_json_num(j, "track_tol", o->eig.eig.tol);
    ns_json_num(j, "eig_tol", o->final.eig.tol);
    ns_json_int(j, "top_k", o->final.eig.k);
    ns_json_int(j, "trace_probes", o->final.trace_probes);
    ns_json_end(j);
}

// One flow: what integrate() reads and where it stands.
typedef struct {
    ns_model *m;
    const ns_flow_opts *o;
    ns_batch train, test;
    int has_test;
    rk4_work w;
    ns_measure_opts eig_opts;
    double *warm;           // the Lanczos warm start
    traj_writer traj;
    // where the flow ended
    ns_status status;
    long steps;
    double time, loss0, s_gf;
} flow_run;

// How far S may drift between two estimates, as a fraction of itself: h = c/S then stays
// within 10 % of c over the stale S.
#define FLOW_S_DRIFT 0.1

// Steps from an estimate s_new of S to the next one: as many as S, changing at the rate the
// last two estimates show (s_old, dt >= 1 steps before), takes to drift by FLOW_S_DRIFT of
// itself, between 1 and eig_every; 1 when there is no rate yet (s_old is NaN at the start) or
// S is not positive.
static long steps_to_next_estimate(double s_new, double s_old, long dt, long eig_every) {
    if (!(s_old > 0) || !(s_new > 0)) return 1;
    double rate = fabs(s_new - s_old) / s_old / (double)dt;  // relative change per step
    if (!(rate * (double)eig_every > FLOW_S_DRIFT)) return eig_every;
    double k = floor(FLOW_S_DRIFT / rate);
    return k < 1 ? 1 : (long)k;
}

// RK4 from theta_0 until the loss goal, max_time, max_steps or divergence, logging rows and
// refreshing S (hence the step h = min(c / S, h_max) and s_GF) as scheduled below.
static int integrate(flow_run *f, ns_progress *p) {
    const ns_flow_opts *o = f->o;
    double time = 0, loss0 = NAN, s_gf = NAN, sharp = NAN, prev_loss = INFINITY;
    int rc = 0;
    long t, t_sharp = -1, due = 0;  // the step of the latest estimate of S, and of the next
    for (t = 0;; t++) {
        double loss, acc;
        if ((rc = objective_grad(f->m, &f->train, f->w.wd, f->w.g, &loss, &acc))) return rc;  // k1
        if (t == 0) loss0 = loss;
        if (loss_diverged(loss, loss0, o->diverge_factor)) {
            f->status = NS_DIVERGED;
            break;
        }
        traj_row row = {.step = t, .time = time, .h = NAN, .train_loss = loss, .train_acc = acc};
        // S is estimated at steps 0 and 1, then when it may have drifted by FLOW_S_DRIFT of
        // itself at the rate of its last two estimates (at most eig_every steps later): one
        // long step with a stale S can send the flow off its path, and S grows fast early on,
        // e.g. with cross-entropy from a small S(0) (EXPERIMENTS.md §4, the CNN). And at once
        // after a step that raised the loss: a gradient flow's loss never rises, so h was too
        // long for the sharpness there.
        if (t >= due || loss > prev_loss) {
            if ((rc = row_eig(f->m, &f->train, &f->eig_opts, &f->warm, NULL, &row))) return rc;
            due = t + steps_to_next_estimate(row.sharpness, sharp, t - t_sharp, o->eig_every);
            sharp = row.sharpness;
            t_sharp = t;
            if (!(s_gf >= sharp)) s_gf = sharp;  // s_GF: the largest S so far
        }
        if (loss <= o->loss_goal) {
            f->status = NS_CONVERGED;
            break;
        }
        if (time >= o->max_time) {
            f->status = NS_MAX_TIME;
            break;
        }
        if (t >= o->max_steps) {
            f->status = NS_MAX_STEPS;
            break;
        }
        double h = sharp > 0 ? fmin(o->rk_c / sharp, o->h_max) : o->h_max;
        int last = time + h >= o->max_time;
        if (last) h = o->max_time - time;  // land exactly on max_time
        if (is_due(t, o->log_every)) {
            row.h = h;
            row_norms(f->m, o->weight_decay, &row);
            if (f->has_test && is_due(t, o->test_every) && (rc = row_test(f->m, &f->train, &f->test, &row))) return rc;
            if ((rc = traj_append(&f->traj, &row))) return rc;
        }
        if ((rc = rk4_step(f->m, &f->train, &f->w, h))) return rc;
        prev_loss = loss;
        time = last ? o->max_time : time + h;
        ns_progress_info pi = {.step = t, .max_steps = o->max_steps, .time = time, .max_time = o->max_time,
                               .loss = loss, .loss_goal = o->loss_goal, .sharpness = sharp};
        ns_progress_report(p, &pi);
    }
    f->steps = t;
    f->time = time;
    f->loss0 = loss0;
    f->s_gf = s_gf;
    return 0;
}

static int write_summary(const flow_run *f, const ns_dataset *ds, const ns_data_opts *data, const ns_measurement *fin,
                         double t_start, const char *out_dir, ns_flow_result *res) {
    ns_json j;
    ns_json_doc(&j, &res->summary, "flow");
    ns_flow_config_json(&j, f->m, ds, data, f->o);
    ns_json_str(&j, "status", ns_status_name(f->status));
    ns_json_int(&j, "steps", f->steps);
    ns_json_num(&j, "time", f->time);
    ns_json_num(&j, "s_gf", f->s_gf);
    ns_json_num(&j, "eta_c", 2 / f->s_gf);
    ns_json_num(&j, "initial_loss", f->loss0);
    ns_measurement_json(&j, "final", fin);
    ns_json_obj(&j, "timing");
    res->seconds = ns_now() - t_start;
    ns_json_num(&j, "seconds", res->seconds);
    ns_json_end(&j);
    return summary_finish(&j, &res->summary, out_dir);
}

int ns_flow_run(ns_model *m, const ns_dataset *ds, const ns_data_opts *data, const ns_flow_opts *o,
                const char *out_dir, ns_progress *p, ns_flow_result *res) {
    memset(res, 0, sizeof *res);
    int rc = check_opts(o);
    if (rc) return rc;
    double t_start = ns_now();
    size_t n = ns_model_nparams(m);
    flow_run f = {.m = m, .o = o, .train = ns_batch_train(ds, data->loss), .test = ns_batch_test(ds, data->loss),
                  .has_test = ds->n_test > 0, .w = {.n = n, .wd = o->weight_decay},
                  .eig_opts = with_weight_decay(&o->eig, o->weight_decay), .status = NS_MAX_STEPS};
    ns_measure_opts fin_opts = with_weight_decay(&o->final, o->weight_decay);
    ns_measurement fin = {0};
    f.w.base = ns_malloc(n * sizeof(real));
    f.w.g = ns_malloc(n * sizeof(real));
    f.w.sum = ns_malloc(n * sizeof(double));
    traj_extra extra = traj_extra_of(m, o->weight_decay, &(ns_measure_opts){0});
    if (!f.w.base || !f.w.g || !f.w.sum) rc = NS_ENOMEM;
    if (!rc && !(rc = traj_init(&f.traj, TRAJ_FLOW, out_dir, o->flush_seconds, &extra)) && !(rc = integrate(&f, p)))
        rc = measure_point(m, &f.train, f.has_test ? &f.test : NULL, &fin_opts, f.warm, f.status == NS_DIVERGED, &fin);
    if (!rc) {
        // the last point is on the trajectory too (it is where the loss reached the goal)
        if (fin.have_eig && !(f.s_gf >= fin.eig.sharpness)) f.s_gf = fin.eig.sharpness;
        traj_row row = {.step = f.steps, .time = f.time, .h = NAN};
        if (!(rc = traj_finish(&f.traj, &row, &fin)) && !(o->save_weights && (rc = save_weights(m, out_dir, data))))
            rc = write_summary(&f, ds, data, &fin, t_start, out_dir, res);
    }
    if (!rc) {
        res->status = f.status;
        res->steps = f.steps;
        res->time = f.time;
        res->s_gf = f.s_gf;
        res->eta_c = 2 / f.s_gf;
        res->final_loss = fin.train_loss;
    }
    ns_measurement_free(&fin);
    free(f.w.base);
    free(f.w.g);
    free(f.w.sum);
    free(f.warm);
    traj_free(&f.traj);
    if (rc) ns_buf_free(&res->summary);
    return rc;
}
