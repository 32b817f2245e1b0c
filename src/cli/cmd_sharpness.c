// normsharp sharpness — load saved weights and their data, and measure (docs/CONVENTIONS.md, measurements) the
// training loss and accuracy, the norms, the top of the Hessian spectrum (Lanczos with
// full reorthogonalization on exact HVPs over the whole training subset) and the trace.
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "train_cli.h"
#include "normsharp/measure.h"
#include "normsharp/model.h"

typedef struct {
    const char *weights;
    const ns_data_opts *data;
    const ns_model *m;
    double load_seconds, seconds;
} run_info;

static void print_text(const run_info *r, const ns_measurement *x) {
    const ns_model_config *cfg = ns_model_cfg(r->m);
    printf("weights         %s (%s, %zu parameters, %s)\n", r->weights, cfg->arch, ns_model_nparams(r->m),
           NS_REAL_NAME);
    printf("data            %s, n %ld, loss %s\n", r->data->dataset, r->data->n, ns_loss_name(r->data->loss));
    ns_measurement_print(stdout, x);
    printf("total           %.2f s (loading %.2f s)\n", r->seconds, r->load_seconds);
}

int cmd_sharpness(int argc, char **argv) {
    const char *weights = NULL, *method = "lanczos";
    int json = 0, threads = 0;
    long hvp_cache_mb;
    ns_measure_opts mo;
    ns_measure_opts_default(&mo);
    mo.eig.k = NS_TOP_K_DEFAULT;
    mo.eig.max_iter = NS_EIG_ITERS_DEFAULT;
    mo.trace_probes = NS_TRACE_PROBES_DEFAULT;
    ns_data_opts cli_data;
    ns_data_opts_default(&cli_data);
    ns_cli c;
    ns_cli_init(&c, "sharpness",
                "normsharp sharpness --weights DIR [data options] [--top-k K] [--eig-tol TOL] [--eig-iters N] "
                "[--trace-probes P] [--lambda-min] [--seed S] [--method lanczos|power] [--json]",
                "Load a weights directory and its data (the data options default to those saved in model.json) "
                "and print the training loss and accuracy, the l1 and l2 norms (total and per tensor), "
                "lambda_max, the sharpness max|lambda|, the top-k eigenvalues with their residual norms, the "
                "number of Hessian-vector products, whether the eigensolver converged, and the Hutchinson "
                "trace with its standard error. Hessians are exact (R-operator HVPs) over the whole "
                "training subset.");
    ns_cli_add(&c, "weights", OPT_STR, &weights, 0, 0, "DIR", "weights directory (normsharp init, or a run's weights/)");
    ns_cli_add_data(&c, &cli_data);
    ns_cli_add(&c, "top-k", OPT_INT, &mo.eig.k, 1, 1000, "K", "how many top eigenvalues to report (default 5)");
    ns_cli_alias(&c, "top-k", "k");
    ns_cli_add(&c, "eig-tol", OPT_DOUBLE, &mo.eig.tol, 1e-14, 0.5, "TOL",
               "relative residual at which an eigenvalue counts as converged (default 1e-4)");
    ns_cli_alias(&c, "eig-tol", "tol");
    ns_cli_add(&c, "eig-iters", OPT_INT, &mo.eig.max_iter, 1, 100000, "N",
               "Hessian-vector products at most (default 300 for lanczos, 1000 for power)");
    ns_cli_alias(&c, "eig-iters", "max-iter");
    ns_cli_add(&c, "trace-probes", OPT_INT, &mo.trace_probes, 0, 1000000, "P",
               "Hutchinson probes for the trace (default 10; 0 skips it)");
    ns_cli_add(&c, "lambda-min", OPT_FLAG, &mo.eig.lambda_min_full, 0, 0, NULL,
               "converge lambda_min too, to residual <= --eig-tol x sharpness (by default it is only bounded, as far "
               "as the sharpness max|lambda| needs)");
    ns_cli_add(&c, "seed", OPT_U64, &mo.eig.seed, 0, 0, "S", "seed of the start vector and the probes (default 0)");
    ns_cli_add(&c, "method", OPT_STR, &method, 0, 0, "M", "lanczos (default) or power");
    ns_cli_add(&c, "threads", OPT_INT, &threads, 0, 4096, "T", "threads, OpenBLAS's and normsharp's own (default: all cores)");
    const char *density_out = NULL;
    train_cli_add_views(&c, &mo.weight_decay, &mo.views);
    ns_cli_add(&c, "density-out", OPT_STR, &density_out, 0, 0, "FILE",
               "with --density-probes: write the density as CSV (lambda,density) to FILE");
    ns_cli_add_hvp_cache(&c, &hvp_cache_mb);
    ns_cli_add(&c, "json", OPT_FLAG, &json, 0, 0, NULL, "print one JSON object instead of text");
    NS_CLI_PARSE(&c, argc, argv);
    if (!weights) return ns_cli_usage_error("sharpness needs --weights DIR (a directory written by normsharp init).");
    int vrc = train_cli_check_views(&c);
    if (vrc) return vrc;
    if (!density_out != !(mo.views.density_probes > 0))
        return ns_cli_usage_error("--density-probes P and --density-out FILE go together (the density is written to FILE).");
    if (ns_eig_method_parse(method, &mo.method) || mo.method == NS_EIG_NONE)
        return ns_cli_usage_error("--method must be lanczos or power, got '%s'.", method);
    if (mo.method == NS_EIG_POWER && mo.eig.lambda_min_full)
        return ns_cli_usage_error("--lambda-min needs --method lanczos (power iteration finds one end only).");
    if (mo.method == NS_EIG_POWER && !ns_cli_seen(&c, "eig-iters")) mo.eig.max_iter = 1000;
    mo.trace_seed = mo.eig.seed;
    ns_cli_set_threads(threads);
    ns_cli_set_hvp_cache(hvp_cache_mb);

    double t0 = ns_now();
    ns_model *m = NULL;
    ns_data_opts saved, data;
    ns_dataset ds = {0};
    int loaded = 0;
    int rc = ns_weights_load(weights, &m, &saved);
    if (!rc) {
        ns_cli_merge_data(&data, &cli_data, &saved, &c);
        rc = ns_data_load(&data, &ds);
        loaded = rc == 0;
    }
    if (!rc) rc = ns_model_fits(m, &ds, weights);
    run_info r = {.weights = weights, .data = &data, .m = m, .load_seconds = ns_now() - t0};
    if (!rc) {
        ns_batch train = ns_batch_train(&ds, data.loss), test = ns_batch_test(&ds, data.loss);
        ns_measurement x;
        rc = ns_measure(m, &train, &test, &mo, &x);
        r.seconds = ns_now() - t0;
        if (!rc && x.views.have_density &&
            (rc = ns_slq_density_write(density_out, &x.views.slq, x.views.density_sigma, NS_DENSITY_POINTS)))
            ns_measurement_free(&x);
        if (!rc) {
            ns_buf b = {0};
            if (json) rc = ns_cli_put(&b, ns_measurement_doc_json(weights, m, &data, &mo, &x, r.load_seconds, r.seconds, &b));
            else print_text(&r, &x);
            if (!rc && !isfinite(x.train_loss) && (mo.method != NS_EIG_NONE || mo.trace_probes > 0))
                rc = ns_fail(NS_EIO, "the training loss at the weights in %s is %g, so the Hessian there is not defined "
                                     "and the sharpness, the eigenvalues and the trace were not computed; the weights "
                                     "(or the data) make the network's outputs overflow", weights, x.train_loss);
            else if (!rc && x.have_eig && !x.eig.converged)
                fprintf(stderr, "normsharp: warning: %s did not reach --eig-tol %g within %d Hessian-vector products; "
                                "raise --eig-iters for a converged estimate.\n",
                        ns_eig_method_name(mo.method), mo.eig.tol, mo.eig.max_iter);
            ns_measurement_free(&x);
        }
    }
    if (loaded) ns_data_free(&ds);
    if (m) ns_model_free(m);
    return ns_cli_report(rc);
}
