// train/record.c — trajectory rows, the summary's common blocks, the divergence rule and
// the measurement of a point: one implementation for gradient descent and gradient flow.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "record.h"

static const char *traj_header[] = {
    [TRAJ_GD] = "step,time,train_loss,train_acc,l1,l2,test_loss,test_err,lambda_max,sharpness,step_seconds\n",
    [TRAJ_FLOW] = "step,time,h,train_loss,train_acc,l1,l2,test_loss,test_err,lambda_max,sharpness\n",
};

traj_extra traj_extra_of(const ns_model *m, double weight_decay, const ns_measure_opts *rows) {
    return (traj_extra){.objective = weight_decay > 0, .adaptive = rows->views.adaptive,
                        .per_layer = rows->views.per_layer, .m = m};
}

// The header: the usual columns, then the opt-in ones.
static void traj_header_line(ns_buf *b, traj_kind kind, const traj_extra *x) {
    const char *h = traj_header[kind];
    ns_buf_append(b, h, strlen(h) - 1);
    if (x->objective) ns_buf_printf(b, ",objective");
    if (x->adaptive) ns_buf_printf(b, ",adaptive_sharpness");
    for (int t = 0; x->per_layer && t < ns_model_ntensors(x->m); t++)
        ns_buf_printf(b, ",layer_sharpness:%s", ns_model_tensor(x->m, t)->name);
    ns_buf_append(b, "\n", 1);
}

int traj_init(traj_writer *w, traj_kind kind, const char *dir, double flush_seconds, const traj_extra *extra) {
    memset(w, 0, sizeof *w);
    w->kind = kind;
    if (extra) w->extra = *extra;
    w->flush_seconds = flush_seconds;
    w->next_flush = ns_now() + flush_seconds;
    int rc = ns_path(w->path, sizeof w->path, "%s/trajectory.csv", dir);
    if (!rc) rc = ns_path(w->density_path, sizeof w->density_path, "%s/density_trajectory.csv", dir);
    if (rc) return rc;
    traj_header_line(&w->text, kind, &w->extra);
    return w->text.oom ? NS_ENOMEM : 0;
}

// A cell: empty when not measured, else the round-trip number ("nan"/"inf" if not finite).
int traj_append(traj_writer *w, const traj_row *r) {
    ns_buf *b = &w->text;
    ns_buf_printf(b, "%ld", r->step);
    ns_csv_cell(b, r->time, 1);
    if (w->kind == TRAJ_FLOW) ns_csv_cell(b, r->h, 1);
    ns_csv_cell(b, r->train_loss, 1);
    ns_csv_cell(b, r->train_acc, 1);
    ns_csv_cell(b, r->l1, 1);
    ns_csv_cell(b, r->l2, 1);
    ns_csv_cell(b, r->test_loss, r->has_test);
    ns_csv_cell(b, r->test_err, r->has_test);
    ns_csv_cell(b, r->lambda_max, r->has_eig);
    ns_csv_cell(b, r->sharpness, r->has_eig);
    if (w->kind == TRAJ_GD) ns_csv_cell(b, r->step_seconds, !isnan(r->step_seconds));
    const ns_view_result *v = r->views;
    if (w->extra.objective) ns_csv_cell(b, r->objective, !isnan(r->objective));
    if (w->extra.adaptive) ns_csv_cell(b, v ? v->adaptive.sharpness : NAN, v && v->have_adaptive);
    for (int t = 0; w->extra.per_layer && t < ns_model_ntensors(w->extra.m); t++)
        ns_csv_cell(b, v && v->have_layers ? v->layer_sharpness[t] : NAN, v && v->have_layers);
    ns_buf_append(b, "\n", 1);
    if (v && v->have_density) {
        if (!w->density.len) ns_buf_printf(&w->density, "step,lambda,density\n");
        ns_slq_density_csv(&w->density, &v->slq, v->density_sigma, NS_DENSITY_POINTS, r->step);
        if (w->density.oom) return ns_fail(NS_ENOMEM, "out of memory recording the densities along the trajectory");
    }
    if (b->oom) return ns_fail(NS_ENOMEM, "out of memory recording the trajectory");
    if (ns_now() >= w->next_flush) return traj_flush(w);
    return 0;
}

int traj_flush(traj_writer *w) {
    w->next_flush = ns_now() + w->flush_seconds;
    int rc = ns_write_file_atomic(w->path, w->text.data, w->text.len);
    if (!rc && w->density.len) rc = ns_write_file_atomic(w->density_path, w->density.data, w->density.len);
    return rc;
}

void traj_free(traj_writer *w) {
    ns_buf_free(&w->text);
    ns_buf_free(&w->density);
}

void config_model_data(ns_json *j, const ns_model *m, const ns_dataset *ds, const ns_data_opts *data,
                       const char *weights_from) {
    const ns_model_config *c = ns_model_cfg(m);
    ns_json_str(j, "arch", c->arch);
    ns_json_str(j, "param", c->param);
    ns_json_num(j, "init_scale", c->init_scale);
    ns_json_u64(j, "seed", c->seed);
    if (weights_from) ns_json_str(j, "weights_from", weights_from);
    ns_json_str(j, "dataset", ds->name);
    ns_json_int(j, "n", ds->n);
    ns_json_int(j, "n_test", ds->n_test);
    ns_json_int(j, "classes", ds->k);
    ns_json_str(j, "loss", ns_loss_name(data->loss));
    ns_json_str(j, "precision", NS_REAL_NAME);
    ns_json_int(j, "nparams", (long long)ns_model_nparams(m));
}

void config_views(ns_json *j, double weight_decay, const ns_measure_opts *final) {
    const ns_view_opts *v = &final->views;
    if (weight_decay > 0) ns_json_num(j, "weight_decay", weight_decay);
    if (v->adaptive) ns_json_num(j, "adaptive_eps", v->adaptive_eps);
    if (v->per_layer) ns_json_bool(j, "per_layer", 1);
    if (v->density_probes > 0) {
        ns_json_int(j, "density_probes", v->density_probes);
        ns_json_int(j, "density_steps", v->density_steps);
        ns_json_num(j, "density_sigma", v->density_sigma);
    }
}

int write_density(const char *dir, const ns_measurement *x) {
    if (!x->views.have_density) return 0;
    char p[4200];
    int rc = ns_path(p, sizeof p, "%s/density.csv", dir);
    if (rc) return rc;
    return ns_slq_density_write(p, &x->views.slq, x->views.density_sigma, NS_DENSITY_POINTS);
}

int summary_finish(ns_json *j, ns_buf *b, const char *dir) {
    ns_json_end(j);
    ns_buf_append(b, "\n", 1);
    if (b->oom) return ns_fail(NS_ENOMEM, "out of memory writing the summary of '%s'", dir);
    char p[4200];
    int rc = ns_path(p, sizeof p, "%s/summary.json", dir);
    if (rc) return rc;
    return ns_write_file_atomic(p, b->data, b->len);
}

void run_measure_defaults(ns_measure_opts *final, ns_measure_opts *eig) {
    ns_measure_opts_default(final);
    final->eig.k = NS_TOP_K_DEFAULT;
    final->eig.max_iter = NS_EIG_ITERS_DEFAULT;
    final->trace_probes = NS_TRACE_PROBES_DEFAULT;
    ns_measure_opts_default(eig);
}

int is_due(long t, long every) { return every > 0 && t % every == 0; }

int loss_diverged(double loss, double loss0, double factor) {
    if (!isfinite(loss)) return 1;
    return loss0 > 0 && loss > factor * loss0;
}

void row_norms(ns_model *m, double wd, traj_row *r) {
    ns_model_norms(m, &r->l1, &r->l2, NULL, NULL);
    r->objective = wd > 0 ? r->train_loss + 0.5 * wd * r->l2 * r->l2 : NAN;
}

int objective_grad(ns_model *m, const ns_batch *b, double wd, real *grad, double *loss, double *acc) {
    int rc = ns_model_grad(m, b, grad, loss, acc);
    if (rc || wd == 0) return rc;
    const real *theta = ns_model_theta(m);
    for (size_t i = 0, n = ns_model_nparams(m); i < n; i++) grad[i] += (real)(wd * theta[i]);
    return 0;
}

ns_measure_opts with_weight_decay(const ns_measure_opts *o, double wd) {
    ns_measure_opts r = *o;
    r.weight_decay = wd;
    return r;
}

int row_test(ns_model *m, const ns_batch *train, const ns_batch *test, traj_row *r) {
    if (!test || test->n <= 0) return 0;
    double acc;
    int rc = ns_model_eval_loss(m, train, test, &r->test_loss, &acc);
    if (rc) return rc;
    r->test_err = ns_error_rate(acc, test->n);
    r->has_test = 1;
    return 0;
}

int row_eig(ns_model *m, const ns_batch *train, const ns_measure_opts *o, double **warm, ns_view_result *views,
            traj_row *r) {
    if (o->method == NS_EIG_NONE) return 0;
    ns_measure_opts oo = *o;
    oo.eig.warm = *warm;
    ns_eig_result e;
    int rc = ns_measure_eig(m, train, &oo, &e);
    if (rc) return rc;
    r->lambda_max = e.lambda_max;
    r->sharpness = e.sharpness;
    r->has_eig = 1;
    if (e.vec_max) {  // keep the eigenvector for the next warm start
        free(*warm);
        *warm = e.vec_max;
        e.vec_max = NULL;
    }
    ns_eig_result_free(&e);
    if (!views) return 0;
    ns_view_result_free(views);
    if ((rc = ns_measure_views(m, train, o, views))) return rc;
    r->views = views;
    return 0;
}

int measure_point(ns_model *m, const ns_batch *train, const ns_batch *test, const ns_measure_opts *o,
                  const double *warm, int diverged, ns_measurement *x) {
    ns_measure_opts oo = *o;
    oo.eig.warm = warm;
    if (diverged) {  // the spectrum of a blown-up point means nothing and may take long
        oo.method = NS_EIG_NONE;
        oo.trace_probes = 0;
        oo.views.adaptive = oo.views.per_layer = oo.views.density_probes = 0;
    }
    return ns_measure(m, train, test, &oo, x);
}

static void row_from_measurement(const ns_measurement *x, traj_row *r) {
    r->train_loss = x->train_loss;
    r->train_acc = x->train_acc;
    r->l1 = x->l1;
    r->l2 = x->l2;
    r->has_test = !isnan(x->test_loss);
    r->test_loss = x->test_loss;
    r->test_err = x->test_err;
    r->has_eig = x->have_eig;
    r->lambda_max = x->have_eig ? x->eig.lambda_max : NAN;
    r->sharpness = x->have_eig ? x->eig.sharpness : NAN;
    r->objective = x->objective;
    r->views = &x->views;
}

int traj_finish(traj_writer *w, traj_row *row, const ns_measurement *fin) {
    row_from_measurement(fin, row);
    int rc = traj_append(w, row);
    return rc ? rc : traj_flush(w);
}

int save_weights(const ns_model *m, const char *dir, const ns_data_opts *data) {
    char p[4200];
    int rc = ns_path(p, sizeof p, "%s/weights", dir);
    if (rc) return rc;
    if ((rc = ns_mkdirs(p))) return rc;
    return ns_weights_save(m, p, data);
}

// ---- resuming: is a finished run the one we would compute now? -----------------------------

static int jval_equal(const ns_jval *a, const ns_jval *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case NS_JNULL: return 1;
    case NS_JBOOL:
    case NS_JNUM: return a->num == b->num;
    case NS_JSTR: return !strcmp(a->str, b->str);
    default: return 0;  // config values are scalars
    }
}

static void describe(const ns_jval *v, char *out, size_t cap) {
    if (!v) snprintf(out, cap, "(missing)");
    else if (v->type == NS_JNUM) snprintf(out, cap, "%.17g", v->num);
    else if (v->type == NS_JSTR) snprintf(out, cap, "'%s'", v->str);
    else if (v->type == NS_JBOOL) snprintf(out, cap, "%s", v->num ? "true" : "false");
    else snprintf(out, cap, "null");
}

int ns_config_matches(const char *summary_path, const ns_jval *want, char *why, size_t cap) {
    ns_jval doc;
    if (ns_json_parse_file(summary_path, &doc)) {
        snprintf(why, cap, "%s", ns_errmsg());
        return 0;
    }
    const ns_jval *have = ns_jget(&doc, "config");
    int ok = have && have->type == NS_JOBJ;
    if (!ok) snprintf(why, cap, "it has no \"config\" object");
    for (int pass = 0; ok && pass < 2; pass++) {  // keys of want in have, then of have in want
        const ns_jval *x = pass ? have : want, *y = pass ? want : have;
        for (int i = 0; ok && i < x->n; i++) {
            const ns_jval *other = ns_jget(y, x->keys[i]);
            if (other && jval_equal(&x->items[i], other)) continue;
            char a[64], b[64];
            describe(pass ? other : &x->items[i], a, sizeof a);
            describe(pass ? &x->items[i] : other, b, sizeof b);
            snprintf(why, cap, "its %s is %s, this command asks for %s", x->keys[i], b, a);
            ok = 0;
        }
    }
    ns_jval_free(&doc);
    return ok;
}
