// dln/record.c — a DLN run and the DLN theory with their files (docs/OUTPUTS.md, "The DLN
// lab"): train, measure the final point, write trajectory.csv then summary.json; compute the
// reference interpolators and write theory.json with the fingerprint of the problem, so a
// rerun reuses them only for the very same problem; and the learning-rate sweep of
// `normsharp dln sweep` through the shared sweep runner.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cblas.h>
#include "normsharp/dln.h"
#include "normsharp/sweep.h"

int ns_dln_hypentropy(const ns_dln_model *m, const ns_dln_task *task, double **hyp) {
    ns_dln_data t = ns_dln_task_data(task);
    if (!(*hyp = ns_malloc(sizeof(double) * (size_t)t.d))) return NS_ENOMEM;
    int rc = ns_dln_flow_prediction(m, &t, NULL, *hyp);
    if (rc) {
        free(*hyp);
        *hyp = NULL;
        if (rc == NS_ENOMEM) return rc;  // out of memory is an error, not "no prediction"
        ns_clear_error();
    }
    return NS_OK;
}

// ---- JSON pieces ----------------------------------------------------------------------------

static void json_vec(ns_json *j, const char *key, const double *x, int d) {
    ns_json_arr(j, key);
    for (int i = 0; i < d; i++) ns_json_num(j, NULL, x[i]);
    ns_json_end(j);
}

// The inverse of json_vec: 1 and out[0..d) (null -> NaN) if v is an array of d values, else 0.
static int json_vec_read(const ns_jval *v, int d, double *out) {
    if (!v || v->type != NS_JARR || v->n != d) return 0;
    for (int i = 0; i < d; i++) out[i] = v->items[i].type == NS_JNUM ? v->items[i].num : NAN;
    return 1;
}

static void json_task(ns_json *j, const ns_dln_model *m, const ns_dln_task *t) {
    ns_json_obj(j, "task");
    ns_json_str(j, "kind", ns_dln_task_name(t->kind));
    ns_json_int(j, "n", t->n);
    ns_json_int(j, "d", t->d);
    if (t->kind == NS_TASK_SPARSE) ns_json_int(j, "s", t->s);
    else ns_json_null(j, "s");
    ns_json_num(j, "noise", t->noise);
    ns_json_u64(j, "seed", t->seed);
    ns_json_str(j, "model", ns_dln_model_name(m->kind));
    ns_json_int(j, "depth", m->depth);
    ns_json_num(j, "alpha", m->alpha);
    ns_json_end(j);
}

// The text ends with a newline, as the file; written to dir/name atomically if dir is given.
static int finish_json(ns_buf *b, const char *dir, const char *name) {
    ns_buf_append(b, "\n", 1);
    if (b->oom) return ns_fail(NS_ENOMEM, "out of memory while writing %s", name);
    if (!dir) return NS_OK;
    char path[4200];
    int rc = ns_path(path, sizeof path, "%s/%s", dir, name);
    return rc ? rc : ns_write_file_atomic(path, b->data, b->len);
}

// ---- the theory -----------------------------------------------------------------------------

// FNV-1a over everything the references depend on: a cached theory.json is reused only
// if this matches.
static void fingerprint(const ns_dln_model *m, const ns_dln_task *t, char out[17]) {
    uint64_t h = 1469598103934665603ULL;
    double head[4] = {(double)m->kind, (double)m->depth, m->alpha, t->noise};
    const double *parts[5] = {head, t->X, t->y, t->beta_star, t->sigma_diag};
    size_t lens[5] = {4, (size_t)t->n * t->d, (size_t)t->n, t->beta_star ? (size_t)t->d : 0, (size_t)t->d};
    for (int p = 0; p < 5; p++) {
        const unsigned char *b = (const unsigned char *)parts[p];
        for (size_t k = 0; k < lens[p] * sizeof(double); k++) h = (h ^ b[k]) * 1099511628211ULL;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static void json_theory(ns_buf *b, const ns_dln_model *m, const ns_dln_task *t, const ns_dln_theory *th) {
    char fp[17];
    fingerprint(m, t, fp);
    ns_json js, *j = &js;
    ns_json_doc(j, b, "dln-theory");
    ns_json_str(j, "fingerprint", fp);
    json_task(j, m, t);
    for (int k = 0; k < NS_REF_COUNT; k++) {
        const ns_dln_ref *r = &th->ref[k];
        if (!r->ok) {
            ns_json_null(j, r->name);
            continue;
        }
        ns_json_obj(j, r->name);
        json_vec(j, "beta", r->beta, t->d);
        ns_json_num(j, "l1", r->l1);
        ns_json_num(j, "sharpness", r->sharpness);
        ns_json_num(j, "gen_err", r->gen_err);
        ns_json_num(j, "residual", r->residual);
        ns_json_end(j);
    }
    ns_json_obj(j, "notes");
    for (int k = 0; k < NS_REF_COUNT; k++)
        if (th->ref[k].note[0]) ns_json_str(j, th->ref[k].name, th->ref[k].note);
    ns_json_end(j);
    if (t->beta_star) json_vec(j, "beta_star", t->beta_star, t->d);
    else ns_json_null(j, "beta_star");
    json_vec(j, "sigma_diag", t->sigma_diag, t->d);
    ns_json_num(j, "seconds", th->seconds);
    ns_json_end(j);
}

int ns_dln_theory_run(const ns_dln_model *m, const ns_dln_task *t, const char *out_dir, ns_dln_theory *th,
                      ns_buf *json) {
    int rc = ns_dln_theory_compute(m, t, th);
    if (rc) return rc;
    ns_buf b = {0};
    json_theory(&b, m, t, th);
    rc = finish_json(&b, out_dir, "theory.json");
    if (!rc && json) *json = b;
    else ns_buf_free(&b);
    if (rc) ns_dln_theory_free(th);
    return rc;
}

int ns_dln_theory_load(const char *path, const ns_dln_model *m, const ns_dln_task *t, ns_dln_theory *th) {
    ns_jval v;
    int rc = ns_exists(path) ? ns_json_parse_file(path, &v) : NS_EIO;
    if (rc == NS_ENOMEM) return -2;  // an error, not "no theory yet"
    if (rc) {
        ns_clear_error();
        return 0;
    }
    char fp[17];
    fingerprint(m, t, fp);
    if (strcmp(ns_jstr(&v, "fingerprint", ""), fp)) {
        ns_jval_free(&v);
        return -1;
    }
    if (ns_dln_theory_init(th, t->d)) {
        ns_jval_free(&v);
        return -2;
    }
    int ok = 1;
    for (int k = 0; k < NS_REF_COUNT && ok; k++) {
        ns_dln_ref *r = &th->ref[k];
        const ns_jval *o = ns_jget(&v, r->name);
        if (!o || o->type == NS_JNULL) {
            const ns_jval *notes = ns_jget(&v, "notes");
            snprintf(r->note, sizeof r->note, "%s", notes ? ns_jstr(notes, r->name, "not computed") : "not computed");
            continue;
        }
        if (!(ok = json_vec_read(ns_jget(o, "beta"), t->d, r->beta))) break;
        r->l1 = ns_jnum(o, "l1", NAN);
        r->sharpness = ns_jnum(o, "sharpness", NAN);
        r->gen_err = ns_jnum(o, "gen_err", NAN);
        r->residual = ns_jnum(o, "residual", NAN);
        r->ok = 1;
    }
    th->seconds = ns_jnum(&v, "seconds", NAN);
    ns_jval_free(&v);
    if (!ok) ns_dln_theory_free(th);
    return ok;
}

// ---- one run: train, measure, record ---------------------------------------------------------

// A failed measurement (no memory, LAPACK) is an error, never a silently missing value. The
// flow prediction alone may be unavailable (depth > 2, or its mirror-map solve fails): then
// it is left out, unless memory ran out.
static int measure(const ns_dln_model *m, const ns_dln_task *task, const double *hyp, const ns_dln_train_result *r,
                   int dense_max, ns_dln_measures *q) {
    ns_dln_data t = ns_dln_task_data(task);
    int d = t.d, p = ns_dln_nparams(m, d);
    memset(q, 0, sizeof *q);
    q->l1 = ns_dln_l1(d, r->beta);
    q->l2 = ns_dln_l2(p, r->theta);
    int finite = r->status != NS_DIVERGED && isfinite(q->l1) && isfinite(q->l2);
    q->sharp.lambda_max = q->sharp.lambda_min = q->sharp.sharpness = q->sharp.trace = NAN;
    q->sharp.method = "none";
    q->gen_err = q->dist_hyp = NAN;
    q->log_ainf_min = q->log_ainf_max = NAN;
    if (!finite) return 0;
    ns_dln_point pt;
    int rc = ns_dln_point_alloc(&pt, t.n, d);
    if (rc) return rc;
    ns_dln_eval(m, &t, r->theta, &pt);
    rc = ns_dln_sharpness_auto(m, &t, r->theta, &pt, dense_max, &q->sharp);
    ns_dln_point_free(&pt);
    if (rc) return rc;
    q->gen_err = ns_dln_gen_err(d, r->beta, task->beta_star, task->sigma_diag, task->noise);
    if (hyp) q->dist_hyp = ns_dln_dist(d, r->beta, hyp);
    if (r->log_alpha_inf_sq) {
        q->log_ainf_min = INFINITY;
        q->log_ainf_max = -INFINITY;
        for (int i = 0; i < d; i++) {
            q->log_ainf_min = fmin(q->log_ainf_min, r->log_alpha_inf_sq[i]);
            q->log_ainf_max = fmax(q->log_ainf_max, r->log_alpha_inf_sq[i]);
        }
        double *even = ns_malloc(sizeof(double) * (size_t)d);
        if (!even) return NS_ENOMEM;
        if (!(rc = ns_dln_flow_prediction(m, &t, r->log_alpha_inf_sq, even))) {
            q->have_even = 1;
            q->even_l1 = ns_dln_l1(d, even);
            q->even_gen = ns_dln_gen_err(d, even, task->beta_star, task->sigma_diag, task->noise);
            q->even_dist = ns_dln_dist(d, r->beta, even);
            if ((rc = ns_dln_sharpness_on_flow(m, &t, even, r->log_alpha_inf_sq, &q->even_sharp))) q->even_sharp = NAN;
        }
        free(even);
        if (rc == NS_ENOMEM) return rc;
        ns_clear_error();
    }
    return 0;
}

static void json_run(ns_buf *b, const ns_dln_train_opts *o, const ns_dln_model *m, const ns_dln_task *t,
                     const ns_dln_train_result *r, const ns_dln_measures *q) {
    ns_json js, *j = &js;
    ns_json_doc(j, b, o->flow ? "dln-flow" : "dln-train");
    ns_json_obj(j, "config");
    json_task(j, m, t);
    if (o->flow) ns_json_null(j, "lr");
    else ns_json_num(j, "lr", o->eta);
    ns_json_bool(j, "flow", o->flow);
    ns_json_num(j, "loss_goal", o->loss_goal);
    ns_json_int(j, "max_steps", o->max_steps);
    ns_json_num(j, "diverge_factor", o->diverge_factor);
    if (o->flow) {
        ns_json_num(j, "flow_c", o->flow_c);
        ns_json_num(j, "flow_hmax", o->flow_hmax);
    }
    ns_json_end(j);
    ns_json_str(j, "status", ns_status_name(r->status));
    ns_json_int(j, "steps", r->steps);
    if (r->diverged_at >= 0) ns_json_int(j, "diverged_at", r->diverged_at);
    else ns_json_null(j, "diverged_at");
    ns_json_obj(j, "final");
    ns_json_num(j, "train_loss", r->loss);
    ns_json_num(j, "l1", q->l1);
    ns_json_num(j, "l2", q->l2);
    // the two norms of the implicit bias, named for what they measure: ||beta||_1, and the
    // squared l2 norm of all weights (u, v or w); for beta = w*w they are equal (Woodworth et al.)
    ns_json_num(j, "beta_l1", q->l1);
    ns_json_num(j, "w_l2_sq", q->l2 * q->l2);
    ns_json_num(j, "lambda_max", q->sharp.lambda_max);
    // the secular route only bounds lambda_min from below
    if (!strcmp(q->sharp.method, "dense")) ns_json_num(j, "lambda_min", q->sharp.lambda_min);
    else ns_json_null(j, "lambda_min");
    ns_json_num(j, "sharpness", q->sharp.sharpness);
    ns_json_bool(j, "sharpness_exact", q->sharp.exact);
    ns_json_str(j, "sharpness_method", q->sharp.method);
    ns_json_num(j, "trace", q->sharp.trace);
    if (o->flow) ns_json_null(j, "two_over_eta");
    else ns_json_num(j, "two_over_eta", 2 / o->eta);
    ns_json_num(j, "gen_err", q->gen_err);
    ns_json_num(j, "dist_hypentropy", q->dist_hyp);
    ns_json_num(j, "time", r->time);
    if (o->flow) {
        ns_json_num(j, "s_gf", r->s_max);
        ns_json_num(j, "eta_c", r->s_max > 0 ? 2 / r->s_max : NAN);
    }
    ns_json_end(j);
    if (r->log_alpha_inf_sq) {
        ns_json_obj(j, "alpha_inf");
        ns_json_str(j, "definition", m->kind == NS_DLN_UV ? "alpha^2 prod_k |1 - eta^2 g_k,i^2| = |u_i^2 - v_i^2|/2"
                                                          : "alpha^2 prod_k |1 - 4 eta^2 g_k,i^2| = |u_i v_i|");
        ns_json_num(j, "min", exp(0.5 * q->log_ainf_min));
        ns_json_num(j, "max", exp(0.5 * q->log_ainf_max));
        json_vec(j, "log_alpha_inf_sq", r->log_alpha_inf_sq, t->d);
        ns_json_end(j);
    } else {
        ns_json_null(j, "alpha_inf");
    }
    if (q->have_even) {
        ns_json_obj(j, "even_prediction");
        ns_json_num(j, "l1", q->even_l1);
        ns_json_num(j, "sharpness", q->even_sharp);
        ns_json_num(j, "gen_err", q->even_gen);
        ns_json_num(j, "dist", q->even_dist);
        ns_json_end(j);
    } else {
        ns_json_null(j, "even_prediction");
    }
    json_vec(j, "beta", r->beta, t->d);
    ns_json_obj(j, "timing");
    ns_json_num(j, "seconds", r->seconds);
    ns_json_num(j, "seconds_per_step", r->steps > 0 ? r->seconds / r->steps : NAN);
    ns_json_end(j);
    ns_json_end(j);
}

int ns_dln_run(const ns_dln_model *m, const ns_dln_task *task, const double *hyp, const ns_dln_train_opts *o,
               int dense_max, const char *out_dir, ns_dln_run_result *res) {
    memset(res, 0, sizeof *res);
    ns_dln_data t = ns_dln_task_data(task);
    int rc = ns_dln_train(m, &t, o, &res->train);
    if (rc) return rc;
    char path[4200];
    if (!(rc = measure(m, task, hyp, &res->train, dense_max, &res->measures))) {
        json_run(&res->summary, o, m, task, &res->train, &res->measures);
        if (out_dir && res->train.traj.len && !(rc = ns_path(path, sizeof path, "%s/trajectory.csv", out_dir)))
            rc = ns_write_file_atomic(path, res->train.traj.data, res->train.traj.len);
        if (!rc) rc = finish_json(&res->summary, out_dir, "summary.json");
    }
    if (rc) ns_dln_run_result_free(res);
    return rc;
}

void ns_dln_run_result_free(ns_dln_run_result *r) {
    ns_dln_train_result_free(&r->train);
    ns_buf_free(&r->summary);
}

// ---- the learning-rate sweep -----------------------------------------------------------------

int ns_dln_sweep_layout(const char *out_dir, const double *etas, int n, char ***dirs) {
    char **d = ns_calloc((size_t)n + 1, sizeof(char *));
    int rc = d ? NS_OK : NS_ENOMEM;
    for (int i = 0; i < n && !rc; i++) {
        char p[4200];
        if (ns_path(p, sizeof p, "%s/runs/lr_%g", out_dir, etas[i]) || !(d[i] = ns_strdup(p))) {
            rc = NS_ENOMEM;
            break;
        }
        for (int k = 0; k < i && !rc; k++)
            if (!strcmp(d[k], d[i]))
                rc = ns_fail(NS_EINVAL, "--lr values %.17g and %.17g share the run directory '%s'; use fewer points.",
                             etas[k], etas[i], d[i]);
    }
    if (rc) ns_dln_sweep_layout_free(d, n);
    else *dirs = d;
    return rc;
}

void ns_dln_sweep_layout_free(char **dirs, int n) {
    for (int i = 0; dirs && i < n; i++) free(dirs[i]);
    free(dirs);
}

// The reference interpolators of a sweep are computed in a process of their own while the
// runs go on (the min-sharpness SDP takes seconds to tens of seconds for d = 1000); the
// runs do not need them. They are needed first when the CSV is assembled (the distance
// columns), so the first CSV row waits for that process and loads OUT/theory.json.
typedef struct {
    const ns_dln_sweep_opts *o;
    const ns_dln_model *m;
    const ns_dln_task *task;
    const double *hyp;      // the hypentropy prediction (cheap, computed up front), or NULL
    const char *theory_path;
    pid_t theory_pid;       // > 0 while the theory process runs
    int theory_state;       // 0 not yet loaded, 1 loaded, -1 unavailable
    ns_dln_theory th;
} sweep_ctx;

static int theory_write(const sweep_ctx *s) {
    ns_dln_theory th;
    int rc = ns_dln_theory_run(s->m, s->task, s->o->out_dir, &th, NULL);
    if (!rc) ns_dln_theory_free(&th);
    return rc;
}

// In a child process: compute the references, write theory.json, exit.
static pid_t theory_start(sweep_ctx *s) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid != 0) return pid;  // parent (or -1: fork failed, computed later in-process)
    openblas_set_num_threads(1);
    int rc = theory_write(s);
    if (rc) fprintf(stderr, "normsharp: %s\n", ns_errmsg());
    fflush(stderr);
    _exit(rc ? 1 : 0);
}

static int theory_ready(sweep_ctx *s) {
    if (s->theory_state > 0) return NS_OK;
    if (s->theory_state < 0) return ns_fail(NS_ESOLVER, "the reference interpolators are not available (see above)");
    if (s->theory_pid > 0) {
        int st;
        pid_t done = waitpid(s->theory_pid, &st, WNOHANG);
        if (done == 0 && !s->o->quiet) fprintf(stderr, "normsharp: waiting for the reference interpolators (theory.json)...\n");
        while (done == 0 || (done < 0 && errno == EINTR)) done = waitpid(s->theory_pid, &st, 0);
        s->theory_pid = 0;
    } else if (!ns_exists(s->theory_path)) {  // no child (fork failed): compute here
        int rc = theory_write(s);
        if (rc) {
            s->theory_state = -1;
            return rc;
        }
    }
    s->theory_state = ns_dln_theory_load(s->theory_path, s->m, s->task, &s->th) > 0 ? 1 : -1;
    if (s->theory_state < 0)
        return ns_fail(NS_ESOLVER, "the reference interpolators were not computed ('%s' is missing or stale)", s->theory_path);
    return NS_OK;
}

static int sweep_run(void *ctx, int i, const char *run_dir, ns_progress *p) {
    sweep_ctx *s = ctx;
    ns_dln_train_opts o = s->o->train;
    o.eta = s->o->etas[i];
    o.progress = p;
    ns_dln_run_result r;
    int rc = ns_dln_run(s->m, s->task, s->hyp, &o, s->o->dense_max, run_dir, &r);
    if (!rc) ns_dln_run_result_free(&r);
    return rc;
}

// eta,status,steps,l1,sharpness,two_over_eta,gen_err,dist_min_l1,dist_min_sharp,train_loss
// (the distances: ||beta - beta_ref||_2 from the run's beta and theory.json)
static int sweep_row(void *ctx, int i, const char *run_dir, ns_buf *line) {
    (void)i;
    sweep_ctx *s = ctx;
    int rc = theory_ready(s);
    char path[4200];
    if (rc || (rc = ns_path(path, sizeof path, "%s/summary.json", run_dir))) return rc;
    ns_jval v;
    if ((rc = ns_json_parse_file(path, &v))) return rc;
    const ns_jval *f = ns_jget(&v, "final"), *b = ns_jget(&v, "beta");
    int d = s->task->d;
    double dist[2] = {NAN, NAN}, *beta = ns_malloc(sizeof(double) * (size_t)d);
    if (!beta) {
        ns_jval_free(&v);
        return NS_ENOMEM;
    }
    if (json_vec_read(b, d, beta) && strcmp(ns_jstr(&v, "status", ""), "diverged")) {
        const ns_dln_ref *refs[2] = {&s->th.ref[NS_REF_MIN_L1], &s->th.ref[NS_REF_MIN_SHARP]};
        for (int k = 0; k < 2; k++)
            if (refs[k]->ok) dist[k] = ns_dln_dist(d, beta, refs[k]->beta);
    }
    free(beta);
    double lr = ns_jnum(ns_jget(&v, "config"), "lr", NAN);
    char eta[32] = "";
    if (!isnan(lr)) ns_fmt_double(eta, lr);
    ns_buf_printf(line, "%s,%s", eta, ns_jstr(&v, "status", ""));
    ns_csv_value(line, ns_jnum(&v, "steps", NAN));
    double l2 = ns_jnum(f, "l2", NAN);  // w_l2_sq from l2, so runs written before it resume
    double cells[9] = {ns_jnum(f, "l1", NAN), ns_jnum(f, "sharpness", NAN), ns_jnum(f, "two_over_eta", NAN),
                       ns_jnum(f, "gen_err", NAN), dist[0], dist[1], ns_jnum(f, "train_loss", NAN),
                       ns_jnum(f, "l1", NAN), l2 * l2};
    for (int k = 0; k < 9; k++) ns_csv_value(line, cells[k]);
    ns_jval_free(&v);
    return NS_OK;
}

static void sweep_label(void *ctx, int i, char *out, size_t cap) {
    sweep_ctx *s = ctx;
    snprintf(out, cap, "lr=%g", s->o->etas[i]);
}

// Which eta generalizes best, whether it is interior, and how it compares to the minimizers.
// Runs without a readable summary are left out; running out of memory is an error.
static int sweep_verdict(const ns_dln_sweep_opts *o, const ns_dln_theory *th, ns_dln_sweep_result *res) {
    res->best = -1;
    res->best_gen = INFINITY;
    for (int i = 0; i < o->n; i++) {
        char path[4200];
        ns_jval v;
        int rc = ns_path(path, sizeof path, "%s/summary.json", o->run_dirs[i]);
        if (!rc) rc = ns_json_parse_file(path, &v);
        if (rc == NS_ENOMEM) return rc;
        if (rc) {
            ns_clear_error();
            continue;
        }
        double g = ns_jnum(ns_jget(&v, "final"), "gen_err", NAN);
        if (strcmp(ns_jstr(&v, "status", ""), "diverged") && isfinite(g)) {
            res->n_ok++;
            if (g < res->best_gen) {
                res->best_gen = g;
                res->best = i;
            }
        }
        ns_jval_free(&v);
    }
    if (res->best >= 0) {
        res->best_eta = o->etas[res->best];
        res->interior = res->best > 0 && res->best < o->n - 1;
    }
    res->gen_l1 = th->ref[NS_REF_MIN_L1].ok ? th->ref[NS_REF_MIN_L1].gen_err : NAN;
    res->gen_sharp = th->ref[NS_REF_MIN_SHARP].ok ? th->ref[NS_REF_MIN_SHARP].gen_err : NAN;
    return 0;
}

// The sweep proper, once the theory is cached or started: the runs, the CSV, then the
// theory (for the verdict) and the verdict. The first error wins.
static int sweep_runs(sweep_ctx *sc, ns_dln_sweep_result *res) {
    const ns_dln_sweep_opts *o = sc->o;
    ns_sweep sw = {.n_runs = o->n, .run_dirs = o->run_dirs, .run = sweep_run, .row = sweep_row, .label = sweep_label,
                   .ctx = sc, .jobs = o->jobs, .csv_path = res->csv_path, .quiet = o->quiet,
                   .csv_header = "eta,status,steps,l1,sharpness,two_over_eta,gen_err,dist_min_l1,dist_min_sharp,train_loss,"
                                 "beta_l1,w_l2_sq"};
    ns_sweep_stats st = {0};
    int src = ns_sweep_run(&sw, &st);
    res->done = st.done;
    res->skipped = st.skipped;
    res->failed = st.failed;
    res->seconds = st.seconds;
    if (ns_sweep_rank() > 0) return src;  // under mpirun rank 0 reports the sweep
    res->ran = 1;
    char why[1024];  // the error to report: reading theory.json and the runs below may replace the message
    snprintf(why, sizeof why, "%s", ns_errmsg());
    int trc = theory_ready(sc);  // also reaps the theory process if no row needed it
    if (trc) fprintf(stderr, "normsharp: %s.\n", ns_errmsg());
    if (!src && trc) snprintf(why, sizeof why, "%s", ns_errmsg());
    if (!src) src = trc;
    if (sweep_verdict(o, &sc->th, res) && !src) {
        src = NS_ENOMEM;
        snprintf(why, sizeof why, "%s", ns_errmsg());
    }
    return src ? ns_fail(src, "%s", why) : 0;
}

int ns_dln_sweep(const ns_dln_model *m, const ns_dln_task *task, const ns_dln_sweep_opts *o, ns_dln_sweep_result *res) {
    memset(res, 0, sizeof *res);
    res->best = -1;
    res->best_eta = res->best_gen = res->gen_l1 = res->gen_sharp = NAN;
    int rc;
    if ((rc = ns_path(res->theory_path, sizeof res->theory_path, "%s/theory.json", o->out_dir)) ||
        (rc = ns_path(res->csv_path, sizeof res->csv_path, "%s/dln.csv", o->out_dir)))
        return rc;
    double *hyp = NULL;
    if ((rc = ns_dln_hypentropy(m, task, &hyp))) return rc;  // only out of memory: else NULL, no dist_hypentropy
    sweep_ctx sc = {.o = o, .m = m, .task = task, .hyp = hyp, .theory_path = res->theory_path};
    int found = ns_dln_theory_load(res->theory_path, m, task, &sc.th);
    if (found == -2) rc = ns_fail(NS_ENOMEM, "out of memory while reading '%s'", res->theory_path);
    else if (found < 0)
        rc = ns_fail(NS_EINVAL, "'%s' holds the results of another problem (task, model or alpha); use a new --out.",
                     o->out_dir);
    if (!rc) {
        if (found) sc.theory_state = 1;  // from an earlier sweep of this problem
        else if (ns_sweep_rank() == 0) sc.theory_pid = theory_start(&sc);  // only rank 0 needs and writes it
        rc = sweep_runs(&sc, res);
    }
    if (sc.theory_state > 0) ns_dln_theory_free(&sc.th);
    free(hyp);
    return rc;
}

int ns_dln_sweep_result_json(const ns_dln_sweep_result *r, int runs, ns_buf *out) {
    ns_json j;
    ns_json_begin(&j, out);
    ns_json_obj(&j, NULL);
    ns_json_str(&j, "csv", r->csv_path);
    ns_json_str(&j, "theory", r->theory_path);
    ns_json_int(&j, "runs", runs);
    ns_json_int(&j, "done", r->done);
    ns_json_int(&j, "skipped", r->skipped);
    ns_json_int(&j, "failed", r->failed);
    ns_json_num(&j, "seconds", r->seconds);
    if (r->best >= 0) {
        ns_json_obj(&j, "best");
        ns_json_num(&j, "eta", r->best_eta);
        ns_json_num(&j, "gen_err", r->best_gen);
        ns_json_int(&j, "index", r->best);
        ns_json_bool(&j, "interior", r->interior);
        ns_json_end(&j);
    } else {
        ns_json_null(&j, "best");
    }
    ns_json_num(&j, "min_l1_gen_err", r->gen_l1);
    ns_json_num(&j, "min_sharpness_gen_err", r->gen_sharp);
    ns_json_bool(&j, "below_both", r->best >= 0 && r->best_gen < r->gen_l1 && r->best_gen < r->gen_sharp);
    ns_json_end(&j);
    ns_buf_append(out, "\n", 1);
    return out->oom ? ns_fail(NS_ENOMEM, "out of memory while printing the sweep's summary") : 0;
}
