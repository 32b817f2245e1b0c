// lanczos_hvps.c — how many Hessian-vector products normsharp's Lanczos spends on the
// sharpness S = max|lambda|, cold and warm-started, along a full-batch GD run.
//   lanczos_hvps WEIGHTS N ETA STEPS EVERY TOL OUT
// Loads WEIGHTS (a `normsharp init` directory) and the first N training examples of its
// dataset, runs STEPS steps of GD at learning rate ETA, and every EVERY steps (and at step
// 0) estimates S twice with k = 1 and tolerance TOL: from the seeded random start (cold),
// and from the previous estimate's top eigenvector (warm, as src/train does along a run).
// Prints one line per estimate point: step, S cold, S warm, HVPs cold, HVPs warm, and the
// seconds of the cold estimate spent outside the HVPs (the Lanczos overhead). Saves the
// final theta to OUT (a weights directory, for the eigsh comparison at a trained point).
// Build against the float library (see bench/lanczos_hvps.sh).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/measure.h"

typedef struct {
    ns_hessian_op op;
    double seconds;  // time inside the HVPs
} timed_op;

static int timed_matvec(void *ctx, const double *v, double *out, size_t n) {
    timed_op *t = ctx;
    double t0 = ns_now();
    int rc = ns_hessian_matvec(&t->op, v, out, n);
    t->seconds += ns_now() - t0;
    return rc;
}

// S by Lanczos (k = 1) from `warm` (NULL: cold); *seconds_other = time outside the HVPs.
static int sharpness(ns_model *m, const ns_batch *b, double tol, const double *warm, ns_eig_result *r,
                     double *seconds_other) {
    timed_op t = {.seconds = 0};
    int rc = ns_hessian_op_init(&t.op, m, b);
    if (rc) return rc;
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    o.tol = tol;
    o.warm = warm;
    double t0 = ns_now();
    rc = ns_lanczos(timed_matvec, &t, t.op.n, &o, r);
    *seconds_other = ns_now() - t0 - t.seconds;
    ns_hessian_op_free(&t.op);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: lanczos_hvps WEIGHTS N ETA STEPS EVERY TOL OUT\n");
        return 2;
    }
    const char *weights = argv[1], *out = argv[7];
    long n = atol(argv[2]), steps = atol(argv[4]), every = atol(argv[5]);
    double eta = atof(argv[3]), tol = atof(argv[6]);
    ns_model *m = NULL;
    ns_data_opts data;
    ns_dataset ds = {0};
    int rc = ns_weights_load(weights, &m, &data);
    if (!rc) {
        data.n = n;
        rc = ns_data_load(&data, &ds);
    }
    if (rc) {
        fprintf(stderr, "lanczos_hvps: %s\n", ns_errmsg());
        return 1;
    }
    ns_batch b = ns_batch_train(&ds, data.loss);
    size_t np = ns_model_nparams(m);
    real *grad = malloc(np * sizeof(real));
    double *warm = NULL;
    printf("step  S_cold        S_warm        hvps_cold hvps_warm  overhead_s(cold)  loss\n");
    for (long t = 0; t <= steps && !rc; t++) {
        double loss;
        if (t % every == 0 || t == steps) {
            ns_eig_result cold, hot = {0};
            double other_cold, other_warm;
            rc = sharpness(m, &b, tol, NULL, &cold, &other_cold);
            if (!rc && warm) rc = sharpness(m, &b, tol, warm, &hot, &other_warm);
            if (rc) break;
            ns_eig_result *next = warm ? &hot : &cold;  // the eigenvector to warm-start from
            ns_model_loss(m, &b, &loss, NULL);
            printf("%-5ld %-13.9g %-13.9g %-9d %-9d  %-16.3f  %.6g%s\n", t, cold.sharpness,
                   warm ? hot.sharpness : NAN, cold.iters, hot.iters, other_cold, loss,
                   cold.converged && (!warm || hot.converged) ? "" : "  NOT converged");
            fflush(stdout);
            free(warm);
            warm = next->vec_max;
            next->vec_max = NULL;
            ns_eig_result_free(&cold);
            ns_eig_result_free(&hot);
        }
        if (t == steps) break;
        rc = ns_model_grad(m, &b, grad, &loss, NULL);
        real *theta = ns_model_theta(m);
        for (size_t j = 0; j < np && !rc; j++) theta[j] -= (real)eta * grad[j];
    }
    if (!rc) rc = ns_weights_save(m, out, &data);
    if (rc) fprintf(stderr, "lanczos_hvps: %s\n", ns_errmsg());
    free(grad);
    free(warm);
    ns_data_free(&ds);
    ns_model_free(m);
    return rc ? 1 : 0;
}
