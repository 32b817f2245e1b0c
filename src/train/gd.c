// train/gd.c — gradient descent at a constant learning rate (docs/CONVENTIONS.md, protocol): full batch by
// default, heavy-ball or Nesterov momentum, or minibatch SGD; stops at the loss goal, the
// accuracy goal, the step limit or divergence; records the trajectory and measures the
// final iterate, the mean of the last m iterates and the point after a decayed phase.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/rng.h"
#include "record.h"

void ns_train_opts_default(ns_train_opts *o) {
    *o = (ns_train_opts){.lr = NAN, .loss_goal = NAN, .acc_goal = NAN, .max_steps = 100000, .diverge_factor = 1e3,
                         .log_every = 10, .test_every = 100, .eig_every = 0, .decay_factor = 0.1,
                         .flush_seconds = 30};
    run_measure_defaults(&o->final, &o->eig);
}

void ns_train_result_free(ns_train_result *r) {
    if (r) ns_buf_free(&r->summary);
}

// ---- the optimizer ----------------------------------------------------------------------

typedef struct {
    size_t n;              // parameters
    real *g, *v;           // gradient; momentum buffer (NULL without momentum)
    // minibatch SGD: a seeded permutation of the training set, consumed batch by batch
    long *perm, pos;
    ns_rng rng;
    real *bx, *bt;
    int *by;
} optimizer;

static void optimizer_free(optimizer *s) {
    free(s->g);
    free(s->v);
    free(s->perm);
    free(s->bx);
    free(s->bt);
    free(s->by);
    memset(s, 0, sizeof *s);
}

static int optimizer_init(optimizer *s, size_t n, const ns_dataset *ds, const ns_train_opts *o) {
    memset(s, 0, sizeof *s);
    s->n = n;
    s->g = ns_calloc(n, sizeof(real));
    if (!s->g) return NS_ENOMEM;
    if (o->momentum > 0 && !(s->v = ns_calloc(n, sizeof(real)))) return NS_ENOMEM;
    if (o->batch > 0) {
        long b = o->batch;
        s->perm = ns_calloc((size_t)ds->n, sizeof(long));
        s->bx = ns_calloc((size_t)b * (size_t)ds->d, sizeof(real));
        s->bt = ns_calloc((size_t)b * (size_t)ds->k, sizeof(real));
        s->by = ns_calloc((size_t)b, sizeof(int));
        if (!s->perm || !s->bx || !s->bt || !s->by) return NS_ENOMEM;
        ns_rng_seed(&s->rng, o->seed, NS_STREAM_BATCH);
        s->pos = ds->n;  // reshuffle before the first batch
    }
    return 0;
}

// The next minibatch: consecutive slices of a fresh Fisher–Yates permutation per epoch
// (the last slice of an epoch may be shorter).
static ns_batch next_minibatch(optimizer *s, const ns_dataset *ds, ns_loss_kind loss, long b) {
    if (s->pos >= ds->n) {
        for (long i = 0; i < ds->n; i++) s->perm[i] = i;
        for (long i = ds->n - 1; i > 0; i--) {
            long j = (long)ns_rng_below(&s->rng, (uint64_t)i + 1);
            long t = s->perm[i];
            s->perm[i] = s->perm[j];
            s->perm[j] = t;
        }
        s->pos = 0;
    }
    long cnt = ds->n - s->pos < b ? ds->n - s->pos : b;
    for (long r = 0; r < cnt; r++) {
        long i = s->perm[s->pos + r];
        memcpy(s->bx + r * ds->d, ds->x_train + i * ds->d, sizeof(real) * (size_t)ds->d);
        memcpy(s->bt + r * ds->k, ds->t_train + i * ds->k, sizeof(real) * (size_t)ds->k);
        s->by[r] = ds->y_train[i];
    }
    s->pos += cnt;
    return (ns_batch){.x = s->bx, .y = s->by, .t = s->bt, .n = cnt, .loss = loss};
}

// g_t at theta_t, with the loss and accuracy of the batch it was computed on.
static int gradient(optimizer *s, ns_model *m, const ns_dataset *ds, const ns_batch *train, const ns_train_opts *o,
                    double *loss, double *acc) {
    if (o->batch <= 0) return objective_grad(m, train, o->weight_decay, s->g, loss, acc);
    ns_batch mb = next_minibatch(s, ds, train->loss, o->batch);
    return objective_grad(m, &mb, o->weight_decay, s->g, loss, acc);
}

// theta -= eta * (mu v + g) with v = mu v + g (Nesterov), or theta -= eta * v (heavy ball).
static void update(optimizer *s, real *theta, double eta, double mu, int nesterov) {
    real *g = s->g, *v = s->v;
    if (!v) {
        for (size_t i = 0; i < s->n; i++) theta[i] -= (real)(eta * g[i]);
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        v[i] = (real)(mu * v[i] + g[i]);
        double d = nesterov ? g[i] + mu * v[i] : v[i];
        theta[i] -= (real)(eta * d);
    }
}

// ---- the last m iterates ------------------------------------------------------------------

typedef struct {
    int m, count, next;
    size_t n;
    real *slots;           // m x n
} iterate_ring;

static int ring_init(iterate_ring *r, int m, size_t n) {
    memset(r, 0, sizeof *r);
    if (m <= 0) return 0;
    if ((double)m * (double)n * sizeof(real) > 8e9)
        return ns_fail(NS_EINVAL, "--avg-last %d would keep %.1f GB of iterates; choose a smaller m", m,
                       (double)m * (double)n * sizeof(real) / 1e9);
    r->slots = ns_calloc((size_t)m * n, sizeof(real));
    if (!r->slots) return NS_ENOMEM;
    r->m = m;
    r->n = n;
    return 0;
}

static void ring_push(iterate_ring *r, const real *theta) {
    if (!r->m) return;
    memcpy(r->slots + (size_t)r->next * r->n, theta, sizeof(real) * r->n);
    r->next = (r->next + 1) % r->m;
    if (r->count < r->m) r->count++;
}

// theta := mean of the stored iterates (summed in double, oldest first).
static void ring_mean(const iterate_ring *r, real *theta) {
    int first = r->count < r->m ? 0 : r->next;
    for (size_t j = 0; j < r->n; j++) {
        double s = 0;
        for (int k = 0; k < r->count; k++) s += r->slots[(size_t)((first + k) % r->m) * r->n + j];
        theta[j] = (real)(s / r->count);
    }
}

// ---- the run ----------------------------------------------------------------------------

typedef struct {
    ns_model *m;
    const ns_dataset *ds;
    const ns_train_opts *o;
    ns_batch train, test;
    int has_test;
    optimizer opt;
    traj_writer traj;
    ns_measure_opts final, eig;  // o->final and o->eig with o->weight_decay
    ns_view_result row_views;    // the views of the row being recorded
    double *warm;          // last top eigenvector (trajectory and final Lanczos warm start)
    double t_start, step_seconds_sum;
} gd_run;

// One trajectory row at theta_t (before its update); step_seconds is filled in after.
static int measure_row(gd_run *g, long t, double loss, double acc, traj_row *r) {
    *r = (traj_row){.step = t, .train_loss = loss, .train_acc = acc, .step_seconds = NAN};
    row_norms(g->m, g->o->weight_decay, r);
    int rc = 0;
    if (g->has_test && is_due(t, g->o->test_every)) rc = row_test(g->m, &g->train, &g->test, r);
    if (!rc && is_due(t, g->o->eig_every)) rc = row_eig(g->m, &g->train, &g->eig, &g->warm, &g->row_views, r);
    return rc;
}

typedef struct {
    ns_status status;
    long steps, diverged_at;
    double loss0;
} gd_outcome;

// The main loop: theta_0 -> theta_T.
static int descend(gd_run *g, iterate_ring *ring, ns_progress *p, gd_outcome *out) {
    const ns_train_opts *o = g->o;
    real *theta = ns_model_theta(g->m);
    double loss0 = NAN;
    out->diverged_at = -1;
    ns_progress_info pi = {.max_steps = o->max_steps, .time = NAN, .max_time = NAN, .loss_goal = o->loss_goal,
                           .sharpness = NAN};
    for (long t = 0;; t++) {
        double t0 = ns_now(), bl, bacc, loss = NAN, acc = NAN;
        int rc = gradient(&g->opt, g->m, g->ds, &g->train, o, &bl, &bacc);
        if (rc) return rc;
        double t_grad = ns_now() - t0;
        // The full training loss: free with full-batch GD; for SGD, evaluated on log rows
        // (and the rules below are checked there), and always at step 0.
        int evaluated = o->batch <= 0;
        if (evaluated) {
            loss = bl;
            acc = bacc;
        } else if (t == 0 || is_due(t, o->log_every) || !isfinite(bl)) {
            if ((rc = ns_model_loss(g->m, &g->train, &loss, &acc))) return rc;
            evaluated = 1;
        }
        if (t == 0) out->loss0 = loss0 = loss;
        ring_push(ring, theta);
        out->steps = t;
        if (evaluated) {
            if (loss_diverged(loss, loss0, o->diverge_factor)) {
                out->status = NS_DIVERGED;
                out->diverged_at = t;
                return 0;
            }
            if (loss <= o->loss_goal) {
                out->status = NS_CONVERGED;
                return 0;
            }
            if (acc >= o->acc_goal) {
                out->status = NS_ACC_GOAL;
                return 0;
            }
        }
        if (t >= o->max_steps) {
            out->status = NS_MAX_STEPS;
            return 0;
        }
        traj_row row;
        int log = evaluated && is_due(t, o->log_every);
        if (log && (rc = measure_row(g, t, loss, acc, &row))) return rc;
        if (log && row.has_eig) pi.sharpness = row.sharpness;
        double t1 = ns_now();
        update(&g->opt, theta, o->lr, o->momentum, o->nesterov);
        double secs = t_grad + (ns_now() - t1);
        g->step_seconds_sum += secs;
        if (log) {
            row.time = ns_now() - g->t_start;
            row.step_seconds = secs;
            if ((rc = traj_append(&g->traj, &row))) return rc;
        }
        pi.step = t;
        pi.loss = evaluated ? loss : bl;
        ns_progress_report(p, &pi);
    }
}

// `decay_steps` more updates at eta * decay_factor from the current theta.
static int decay_phase(gd_run *g, double loss0, int *diverged) {
    const ns_train_opts *o = g->o;
    real *theta = ns_model_theta(g->m);
    *diverged = 0;
    for (long t = 0; t < o->decay_steps; t++) {
        double loss, acc;
        int rc = gradient(&g->opt, g->m, g->ds, &g->train, o, &loss, &acc);
        if (rc) return rc;
        if (!isfinite(loss) || (o->batch <= 0 && loss_diverged(loss, loss0, o->diverge_factor))) {
            *diverged = 1;
            return 0;
        }
        update(&g->opt, theta, o->lr * o->decay_factor, o->momentum, o->nesterov);
    }
    return 0;
}

void ns_train_config_json(ns_json *j, const ns_model *m, const ns_dataset *ds, const ns_data_opts *data,
                          const ns_train_opts *o) {
    ns_json_obj(j, "config");
    config_model_data(j, m, ds, data, o->weights_from);
    ns_json_num(j, "lr", o->lr);
    ns_json_num(j, "momentum", o->momentum);
    ns_json_bool(j, "nesterov", o->nesterov);
    ns_json_int(j, "batch", o->batch);
    config_views(j, o->weight_decay, &o->final);
    ns_json_num(j, "loss_goal", o->loss_goal);
    ns_json_num(j, "acc_goal", o->acc_goal);
    ns_json_int(j, "max_steps", o->max_steps);
    ns_json_num(j, "diverge_factor", o->diverge_factor);
    ns_json_int(j, "eig_every", o->eig_every);
    ns_json_int(j, "log_every", o->log_every);
    ns_json_int(j, "test_every", o->test_every);
    ns_json_int(j, "avg_last", o->avg_last);
    ns_json_int(j, "decay_steps", o->decay_steps);
    ns_json_num(j, "decay_factor", o->decay_factor);
    ns_json_int(j, "top_k", o->final.eig.k);
    ns_json_num(j, "eig_tol", o->final.eig.tol);
    ns_json_int(j, "eig_max_iter", o->final.eig.max_iter);
    ns_json_num(j, "track_tol", o->eig.eig.tol);
    ns_json_int(j, "trace_probes", o->final.trace_probes);
    ns_json_end(j);
}

static int check_opts(const ns_train_opts *o, const ns_dataset *ds) {
    if (!(o->lr > 0) || !isfinite(o->lr)) return ns_fail(NS_EINVAL, "the learning rate must be a finite number > 0, got %g", o->lr);
    if (!(o->momentum >= 0 && o->momentum < 1))
        return ns_fail(NS_EINVAL, "--momentum must be in [0, 1), got %g", o->momentum);
    if (o->nesterov && !(o->momentum > 0)) return ns_fail(NS_EINVAL, "--nesterov needs --momentum > 0");
    if (o->batch < 0 || o->batch > ds->n)
        return ns_fail(NS_EINVAL, "--batch %ld must be between 1 and the training set size %ld", o->batch, ds->n);
    if (o->max_steps < 0 || o->log_every < 0 || o->test_every < 0 || o->eig_every < 0 || o->avg_last < 0 ||
        o->decay_steps < 0)
        return ns_fail(NS_EINVAL, "step counts must not be negative");
    if (!(o->diverge_factor > 1)) return ns_fail(NS_EINVAL, "--diverge-factor must be > 1, got %g", o->diverge_factor);
    if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
        return ns_fail(NS_EINVAL, "--weight-decay must be a finite number >= 0, got %g", o->weight_decay);
    int rc = ns_view_opts_check(&o->final.views);
    return rc ? rc : ns_view_opts_check(&o->eig.views);
}

// What is measured once GD stops: the final iterate, then (unless it diverged) the mean of
// the last m iterates and a decayed phase from theta_T, theta restored after each.
typedef struct {
    ns_measurement fin, avg, dec;
    int have_avg, have_dec, dec_diverged;
} gd_end;

static void gd_end_free(gd_end *e) {
    ns_measurement_free(&e->fin);
    ns_measurement_free(&e->avg);
    ns_measurement_free(&e->dec);
}

static int measure_end(gd_run *g, const iterate_ring *ring, const gd_outcome *out, const char *out_dir, gd_end *e) {
    const ns_train_opts *o = g->o;
    ns_model *m = g->m;
    const ns_batch *test = g->has_test ? &g->test : NULL;
    int diverged = out->status == NS_DIVERGED;
    int rc = measure_point(m, &g->train, test, &g->final, g->warm, diverged, &e->fin);
    if (rc) return rc;
    traj_row row = {.step = out->steps, .time = ns_now() - g->t_start, .step_seconds = NAN};
    if ((rc = traj_finish(&g->traj, &row, &e->fin)) || (rc = write_density(out_dir, &e->fin))) return rc;
    if (diverged || (o->avg_last <= 0 && o->decay_steps <= 0)) return 0;
    size_t n = ns_model_nparams(m);
    real *theta = ns_model_theta(m), *theta_T = ns_malloc(n * sizeof(real));
    if (!theta_T) return NS_ENOMEM;
    memcpy(theta_T, theta, n * sizeof(real));
    if (o->avg_last > 0) {
        ring_mean(ring, theta);
        rc = measure_point(m, &g->train, test, &g->final, g->warm, 0, &e->avg);
        memcpy(theta, theta_T, n * sizeof(real));
        e->have_avg = !rc;
    }
    if (!rc && o->decay_steps > 0) {
        rc = decay_phase(g, out->loss0, &e->dec_diverged);
        if (!rc) rc = measure_point(m, &g->train, test, &g->final, g->warm, e->dec_diverged, &e->dec);
        memcpy(theta, theta_T, n * sizeof(real));
        e->have_dec = !rc;
    }
    free(theta_T);
    return rc;
}

// summary.json into res->summary and out_dir.
static int write_summary(const gd_run *g, const ns_data_opts *data, const gd_outcome *out, const gd_end *e,
                         int averaged_m, double train_seconds, const char *out_dir, ns_train_result *res) {
    ns_json j;
    ns_json_doc(&j, &res->summary, "train");
    ns_train_config_json(&j, g->m, g->ds, data, g->o);
    ns_json_str(&j, "status", ns_status_name(out->status));
    ns_json_int(&j, "steps", out->steps);
    if (out->diverged_at >= 0) ns_json_int(&j, "diverged_at", out->diverged_at);
    else ns_json_null(&j, "diverged_at");
    ns_json_num(&j, "initial_loss", out->loss0);
    ns_json_num(&j, "two_over_eta", 2 / g->o->lr);
    ns_measurement_json(&j, "final", &e->fin);
    if (e->have_avg) {
        ns_measurement_json(&j, "averaged", &e->avg);
        ns_json_int(&j, "averaged_m", averaged_m);
    } else {
        ns_json_null(&j, "averaged");
    }
    if (e->have_dec) {
        ns_measurement_json(&j, "decayed", &e->dec);
        ns_json_str(&j, "decayed_status", e->dec_diverged ? "diverged" : "finished");
    } else {
        ns_json_null(&j, "decayed");
    }
    ns_json_obj(&j, "timing");
    res->seconds = ns_now() - g->t_start;
    ns_json_num(&j, "seconds", res->seconds);
    ns_json_num(&j, "seconds_training", train_seconds);
    ns_json_num(&j, "seconds_per_step", out->steps > 0 ? g->step_seconds_sum / out->steps : NAN);
    ns_json_end(&j);
    return summary_finish(&j, &res->summary, out_dir);
}

int ns_train_run(ns_model *m, const ns_dataset *ds, const ns_data_opts *data, const ns_train_opts *o,
                 const char *out_dir, ns_progress *p, ns_train_result *res) {
    memset(res, 0, sizeof *res);
    res->diverged_at = -1;
    int rc = check_opts(o, ds);
    if (rc) return rc;
    gd_run g = {.m = m, .ds = ds, .o = o, .t_start = ns_now()};
    g.final = with_weight_decay(&o->final, o->weight_decay);
    g.eig = with_weight_decay(&o->eig, o->weight_decay);
    g.train = ns_batch_train(ds, data->loss);
    g.test = ns_batch_test(ds, data->loss);
    g.has_test = ds->n_test > 0;
    iterate_ring ring;
    gd_end e = {0};
    gd_outcome out = {0};
    if ((rc = ring_init(&ring, o->avg_last, ns_model_nparams(m)))) return rc;
    traj_extra extra = traj_extra_of(m, o->weight_decay, &o->eig);
    if (!(rc = optimizer_init(&g.opt, ns_model_nparams(m), ds, o)) &&
        !(rc = traj_init(&g.traj, TRAJ_GD, out_dir, o->flush_seconds, &extra)) && !(rc = descend(&g, &ring, p, &out))) {
        double train_seconds = ns_now() - g.t_start;
        if (!(rc = measure_end(&g, &ring, &out, out_dir, &e)) && !(o->save_weights && (rc = save_weights(m, out_dir, data))))
            rc = write_summary(&g, data, &out, &e, ring.count, train_seconds, out_dir, res);
    }
    if (!rc) {
        res->status = out.status;
        res->steps = out.steps;
        res->diverged_at = out.diverged_at;
        res->final_loss = e.fin.train_loss;
        res->final_sharpness = e.fin.have_eig ? e.fin.eig.sharpness : NAN;
        res->final_l1 = e.fin.l1;
        res->final_test_err = e.fin.test_err;
    }
    gd_end_free(&e);
    free(ring.slots);
    free(g.warm);
    ns_view_result_free(&g.row_views);
    optimizer_free(&g.opt);
    traj_free(&g.traj);
    if (rc) ns_buf_free(&res->summary);
    return rc;
}
