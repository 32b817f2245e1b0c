// Measuring a network at its current theta: the one place that computes and names the
// quantities of docs/CONVENTIONS.md, measurements, shared by `sharpness`, `train`, `flow` and the sweep.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/measure.h"

ns_batch ns_batch_train(const ns_dataset *ds, ns_loss_kind loss) {
    return (ns_batch){.x = ds->x_train, .y = ds->y_train, .t = ds->t_train, .n = ds->n, .loss = loss};
}

ns_batch ns_batch_test(const ns_dataset *ds, ns_loss_kind loss) {
    return (ns_batch){.x = ds->x_test, .y = ds->y_test, .t = ds->t_test, .n = ds->n_test, .loss = loss};
}

void ns_model_norms(ns_model *m, double *l1, double *l2, double *l1_tensor, double *l2_tensor) {
    const real *theta = ns_model_theta(m);
    double s1 = 0, s2 = 0;
    for (int t = 0; t < ns_model_ntensors(m); t++) {
        const ns_tensor_info *ti = ns_model_tensor(m, t);
        double t1 = 0, t2 = 0;
        for (size_t i = 0; i < ti->size; i++) {
            double x = theta[ti->offset + i];
            t1 += fabs(x);
            t2 += x * x;
        }
        if (l1_tensor) l1_tensor[t] = t1;
        if (l2_tensor) l2_tensor[t] = sqrt(t2);
        s1 += t1;
        s2 += t2;
    }
    if (l1) *l1 = s1;
    if (l2) *l2 = sqrt(s2);
}

int ns_eig_method_parse(const char *s, ns_eig_method *out) {
    static const char *names[] = {"none", "lanczos", "power"};
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, names[i])) {
            *out = (ns_eig_method)i;
            return NS_OK;
        }
    return ns_fail(NS_EINVAL, "unknown eigenvalue method '%s'; expected lanczos, power or none.", s ? s : "");
}

const char *ns_eig_method_name(ns_eig_method m) {
    return m == NS_EIG_LANCZOS ? "lanczos" : m == NS_EIG_POWER ? "power" : "none";
}

void ns_measure_opts_default(ns_measure_opts *o) {
    o->method = NS_EIG_LANCZOS;
    ns_lanczos_opts_default(&o->eig);
    o->trace_probes = 0;
    o->trace_seed = 0;
    o->weight_decay = 0;
    o->views = (ns_view_opts){.adaptive_eps = NS_ADAPTIVE_EPS, .density_steps = 80};
}

int ns_measure_eig(ns_model *m, const ns_batch *train, const ns_measure_opts *o, ns_eig_result *r) {
    memset(r, 0, sizeof *r);
    if (o->method == NS_EIG_NONE) return ns_fail(NS_EINVAL, "ns_measure_eig: no eigenvalue method chosen.");
    ns_hessian_op op;
    int rc = ns_hessian_op_init(&op, m, train);
    if (rc) return rc;
    op.weight_decay = o->weight_decay;
    if (o->method == NS_EIG_POWER)
        rc = ns_power_iteration(ns_hessian_matvec, &op, op.n, &o->eig, r);
    else
        rc = ns_lanczos(ns_hessian_matvec, &op, op.n, &o->eig, r);
    ns_hessian_op_free(&op);
    return rc;
}

static int measure_trace(ns_model *m, const ns_batch *train, const ns_measure_opts *o, ns_measurement *x) {
    ns_hessian_op op;
    int rc = ns_hessian_op_init(&op, m, train);
    if (rc) return rc;
    op.weight_decay = o->weight_decay;
    rc = ns_hutchinson_trace(ns_hessian_matvec, &op, op.n, o->trace_probes, o->trace_seed, &x->trace,
                             &x->trace_stderr);
    ns_hessian_op_free(&op);
    return rc;
}

static int measure_norms(ns_model *m, ns_measurement *x) {
    int nt = ns_model_ntensors(m);
    x->ntensors = nt;
    x->names = ns_calloc((size_t)nt, sizeof *x->names);
    x->l1_tensor = ns_calloc((size_t)nt, sizeof(double));
    x->l2_tensor = ns_calloc((size_t)nt, sizeof(double));
    if (!x->names || !x->l1_tensor || !x->l2_tensor) return NS_ENOMEM;
    for (int t = 0; t < nt; t++) snprintf(x->names[t], sizeof x->names[t], "%s", ns_model_tensor(m, t)->name);
    ns_model_norms(m, &x->l1, &x->l2, x->l1_tensor, x->l2_tensor);
    return NS_OK;
}

int ns_measure(ns_model *m, const ns_batch *train, const ns_batch *test, const ns_measure_opts *o,
               ns_measurement *x) {
    memset(x, 0, sizeof *x);
    x->test_loss = x->test_err = x->trace = x->trace_stderr = x->objective = NAN;
    x->method = o->method;
    x->weight_decay = o->weight_decay;
    double t0 = ns_now();
    int rc = ns_model_loss(m, train, &x->train_loss, &x->train_acc);
    if (!rc && test && test->n > 0) {
        double acc;
        rc = ns_model_eval_loss(m, train, test, &x->test_loss, &acc);
        x->test_err = ns_error_rate(acc, test->n);
    }
    x->train_err = ns_error_rate(x->train_acc, train->n);
    if (!rc) rc = measure_norms(m, x);
    if (o->weight_decay > 0) x->objective = x->train_loss + 0.5 * o->weight_decay * x->l2 * x->l2;
    x->seconds_loss = ns_now() - t0;
    int finite = isfinite(x->train_loss);
    if (!rc && finite && o->method != NS_EIG_NONE) {
        t0 = ns_now();
        rc = ns_measure_eig(m, train, o, &x->eig);
        x->have_eig = rc == 0;
        x->seconds_eig = ns_now() - t0;
    }
    if (!rc && finite && o->trace_probes > 0) {
        t0 = ns_now();
        x->trace_probes = o->trace_probes;
        rc = measure_trace(m, train, o, x);
        x->seconds_trace = ns_now() - t0;
    }
    if (!rc && finite) rc = ns_measure_views(m, train, o, &x->views);
    if (rc) ns_measurement_free(x);
    return rc;
}

void ns_measurement_free(ns_measurement *x) {
    if (!x) return;
    free(x->names);
    free(x->l1_tensor);
    free(x->l2_tensor);
    x->names = NULL;
    x->l1_tensor = x->l2_tensor = NULL;
    ns_eig_result_free(&x->eig);
    x->have_eig = 0;
    ns_view_result_free(&x->views);
}

static void json_per_tensor(ns_json *j, const char *key, const ns_measurement *x, const double *v) {
    ns_json_obj(j, key);
    for (int t = 0; t < x->ntensors && v; t++) ns_json_num(j, x->names[t], v[t]);
    ns_json_end(j);
}

// The keys of weight decay and of the views, only when asked for (so that the default
// output stays as it was).
static void views_json(ns_json *j, const ns_measurement *x) {
    const ns_view_result *v = &x->views;
    if (x->weight_decay > 0) {
        ns_json_num(j, "weight_decay", x->weight_decay);
        ns_json_num(j, "objective", x->objective);
    }
    if (v->have_adaptive) {
        ns_json_num(j, "adaptive_sharpness", v->adaptive.sharpness);
        ns_json_num(j, "adaptive_lambda_max", v->adaptive.lambda_max);
        ns_json_num(j, "adaptive_resid", v->adaptive.resid_max);
        ns_json_num(j, "adaptive_eps", v->adaptive_eps);
        ns_json_int(j, "adaptive_iters", v->adaptive.iters);
        ns_json_bool(j, "adaptive_converged", v->adaptive.converged);
    }
    if (v->have_layers) {
        ns_json_obj(j, "per_layer");
        for (int t = 0; t < v->nlayers; t++) {
            ns_json_obj(j, x->names[t]);
            ns_json_num(j, "lambda_max", v->layer_lambda_max[t]);
            ns_json_num(j, "sharpness", v->layer_sharpness[t]);
            ns_json_num(j, "resid", v->layer_resid[t]);
            ns_json_int(j, "iters", v->layer_iters[t]);
            ns_json_bool(j, "converged", v->layer_converged[t]);
            ns_json_num(j, "trace", v->layer_trace[t]);
            if (isnan(v->layer_trace[t])) ns_json_null(j, "trace_method");
            else ns_json_str(j, "trace_method", v->layer_trace_exact[t] ? "exact" : "hutchinson");
            ns_json_end(j);
        }
        ns_json_end(j);
    }
    if (v->have_density) {
        double lo, hi;
        ns_slq_range(&v->slq, &lo, &hi);
        ns_json_obj(j, "density");
        ns_json_int(j, "probes", v->slq.probes);
        ns_json_int(j, "steps", v->slq.m);
        ns_json_num(j, "sigma", v->density_sigma);
        ns_json_int(j, "hvps", v->slq.hvps);
        ns_json_num(j, "node_min", lo);
        ns_json_num(j, "node_max", hi);
        ns_json_end(j);
    }
}

void ns_measurement_json(ns_json *j, const char *key, const ns_measurement *x) {
    const ns_eig_result *e = x->have_eig ? &x->eig : NULL;
    ns_json_obj(j, key);
    ns_json_num(j, "train_loss", x->train_loss);
    ns_json_num(j, "train_acc", x->train_acc);
    ns_json_num(j, "train_err", x->train_err);
    ns_json_num(j, "test_loss", x->test_loss);
    ns_json_num(j, "test_err", x->test_err);
    ns_json_num(j, "l1", x->l1);
    ns_json_num(j, "l2", x->l2);
    ns_json_num(j, "lambda_max", e ? e->lambda_max : NAN);
    ns_json_num(j, "sharpness", e ? e->sharpness : NAN);
    ns_json_num(j, "lambda_min", e ? e->lambda_min : NAN);
    ns_json_num(j, "lambda_min_resid", e ? e->resid_min : NAN);
    if (e) ns_json_bool(j, "lambda_min_converged", e->min_converged);
    else ns_json_null(j, "lambda_min_converged");
    if (e) {
        ns_json_arr(j, "top_k");
        for (int i = 0; i < e->k; i++) ns_json_num(j, NULL, e->top[i]);
        ns_json_end(j);
        ns_json_arr(j, "top_k_resid");
        for (int i = 0; i < e->k; i++) ns_json_num(j, NULL, e->top_resid[i]);
        ns_json_end(j);
    } else {
        ns_json_null(j, "top_k");
        ns_json_null(j, "top_k_resid");
    }
    ns_json_num(j, "trace", x->trace);
    ns_json_num(j, "trace_stderr", x->trace_stderr);
    if (e) {
        ns_json_int(j, "eig_iters", e->iters);
        ns_json_bool(j, "eig_converged", e->converged);
    } else {
        ns_json_null(j, "eig_iters");
        ns_json_null(j, "eig_converged");
    }
    json_per_tensor(j, "l1_per_tensor", x, x->l1_tensor);
    json_per_tensor(j, "l2_per_tensor", x, x->l2_tensor);
    views_json(j, x);
    ns_json_end(j);
}

static void views_print(FILE *f, const ns_measurement *x) {
    const ns_view_result *v = &x->views;
    if (x->weight_decay > 0)
        fprintf(f, "weight decay    %.6g   objective L + (wd/2)||theta||^2 = %.6g (curvature is of the objective)\n",
                x->weight_decay, x->objective);
    if (v->have_adaptive)
        fprintf(f, "adaptive        %.8g   (max|lambda| of D H D, D = |theta| + %g; lambda_max %.8g; %d HVPs, %s, %.2f s)\n",
                v->adaptive.sharpness, v->adaptive_eps, v->adaptive.lambda_max, v->adaptive.iters,
                v->adaptive.converged ? "converged" : "NOT converged", v->seconds_adaptive);
    if (v->have_layers) {
        fprintf(f, "per layer       (diagonal Hessian blocks, %.2f s)\n", v->seconds_layers);
        for (int t = 0; t < v->nlayers; t++) {
            fprintf(f, "  %-20s lambda_max %-14.8g max|lambda| %-14.8g", x->names[t], v->layer_lambda_max[t],
                    v->layer_sharpness[t]);
            if (!isnan(v->layer_trace[t]))
                fprintf(f, " trace %.6g (%s)", v->layer_trace[t], v->layer_trace_exact[t] ? "exact" : "Hutchinson");
            fprintf(f, "%s\n", v->layer_converged[t] ? "" : "  NOT converged");
        }
    }
    if (v->have_density) {
        double lo, hi;
        ns_slq_range(&v->slq, &lo, &hi);
        fprintf(f, "density         SLQ, %d probes x %d steps, sigma %.4g, nodes in [%.6g, %.6g] (%d HVPs, %.2f s)\n",
                v->slq.probes, v->slq.m, v->density_sigma, lo, hi, v->slq.hvps, v->seconds_density);
    }
}

void ns_measurement_print(FILE *f, const ns_measurement *x) {
    fprintf(f, "train loss      %.6g\n", x->train_loss);
    fprintf(f, "train accuracy  %.4f\n", x->train_acc);
    if (isfinite(x->test_loss)) fprintf(f, "test loss       %.6g\ntest error      %.4f\n", x->test_loss, x->test_err);
    fprintf(f, "l1              %.6g\nl2              %.6g\n", x->l1, x->l2);
    for (int t = 0; t < x->ntensors; t++)
        fprintf(f, "  %-20s l1 %-12.6g l2 %.6g\n", x->names[t], x->l1_tensor[t], x->l2_tensor[t]);
    if (x->have_eig) {
        const ns_eig_result *e = &x->eig;
        fprintf(f, "lambda_max      %.8g\n", e->lambda_max);
        fprintf(f, "lambda_min      %.8g   (residual %.3g%s)\n", e->lambda_min, e->resid_min,
                e->min_converged || x->method != NS_EIG_LANCZOS ? "" : "; a bound only: --lambda-min converges it");
        fprintf(f, "max|lambda|     %.8g   (sharpness)\n", e->sharpness);
        for (int i = 0; i < e->k; i++) fprintf(f, "  top %-3d %-16.10g residual %.3g\n", i + 1, e->top[i], e->top_resid[i]);
        fprintf(f, "%s: %d Hessian-vector products, %s (%.2f s)\n", ns_eig_method_name(x->method), e->iters,
                e->converged ? "converged" : "NOT converged", x->seconds_eig);
    }
    if (x->trace_probes > 0)
        fprintf(f, "trace           %.6g +- %.3g (Hutchinson, %d probes, %.2f s)\n", x->trace, x->trace_stderr,
                x->trace_probes, x->seconds_trace);
    views_print(f, x);
}

int ns_measurement_doc_json(const char *weights, const ns_model *m, const ns_data_opts *data, const ns_measure_opts *mo,
                            const ns_measurement *x, double load_seconds, double seconds, ns_buf *out) {
    ns_json j;
    ns_json_doc(&j, out, "sharpness");
    ns_json_str(&j, "weights", weights);
    ns_json_str(&j, "arch", ns_model_cfg(m)->arch);
    ns_json_int(&j, "nparams", (long long)ns_model_nparams(m));
    ns_json_str(&j, "precision", NS_REAL_NAME);
    ns_data_opts_json(&j, "data", data);
    ns_json_obj(&j, "eig");
    ns_json_str(&j, "method", ns_eig_method_name(mo->method));
    ns_json_int(&j, "k", mo->eig.k);
    ns_json_num(&j, "tol", mo->eig.tol);
    ns_json_int(&j, "max_iter", mo->eig.max_iter);
    ns_json_bool(&j, "lambda_min_full", mo->eig.lambda_min_full);
    ns_json_u64(&j, "seed", mo->eig.seed);
    ns_json_int(&j, "trace_probes", mo->trace_probes);
    ns_json_end(&j);
    ns_measurement_json(&j, "final", x);
    ns_json_obj(&j, "timing");
    ns_json_num(&j, "load_seconds", load_seconds);
    ns_json_num(&j, "loss_seconds", x->seconds_loss);
    ns_json_num(&j, "eig_seconds", x->seconds_eig);
    ns_json_num(&j, "trace_seconds", x->seconds_trace);
    if (x->views.have_adaptive) ns_json_num(&j, "adaptive_seconds", x->views.seconds_adaptive);
    if (x->views.have_layers) ns_json_num(&j, "per_layer_seconds", x->views.seconds_layers);
    if (x->views.have_density) ns_json_num(&j, "density_seconds", x->views.seconds_density);
    ns_json_num(&j, "seconds", seconds);
    ns_json_end(&j);
    ns_json_end(&j);
    ns_buf_append(out, "\n", 1);
    return out->oom ? ns_fail(NS_ENOMEM, "out of memory while printing the measurement") : 0;
}
