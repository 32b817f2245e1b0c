// dln_fixtures.h — what the DLN suites share: a library call that must succeed, small
// random regression problems X beta = y, and a model evaluated at a parameter point.
// Used by test_dln_model.c, test_dln_ref.c and test_dln_train.c.
#ifndef NORMSHARP_DLN_FIXTURES_H
#define NORMSHARP_DLN_FIXTURES_H
#include "testutil.h"
#include "normsharp/dln.h"
#include "normsharp/rng.h"

// A library call that must succeed; on failure show its message.
#define DLN_OK(call)                                                                  \
    do {                                                                              \
        int rc_ = (call);                                                             \
        if (rc_) fail_msg("%s returned %d: %s", #call, rc_, ns_errmsg());             \
    } while (0)

typedef struct {
    int n, d;
    double *X, *y;  // n x d (row-major), n
    ns_dln_data t;  // a view of X, y
} dln_problem;

// How dln_problem_make draws the labels (one of DLN_Y_*), optionally | DLN_POSITIVE_X.
enum {
    DLN_Y_NOISE = 0,           // y ~ N(0, I), drawn after X
    DLN_Y_TEACHER = 1,         // y = X b with b ~ N(0, I)
    DLN_Y_NONNEG_TEACHER = 2,  // y = X b with b ~ U[0, 1]^d, so that beta >= 0 is feasible
    DLN_Y_SPARSE = 3,          // y = x_1 - 0.5 x_2 + 0.1 N(0, 1): near a 2-sparse teacher
    DLN_Y_MASK = 3,
    DLN_POSITIVE_X = 4,        // |X| instead of X
};

// n x d Gaussian X and labels as `how` says, all from `seed` (free with dln_problem_free).
static inline void dln_problem_make(dln_problem *p, int n, int d, uint64_t seed, int how) {
    ns_rng r;
    ns_rng_seed(&r, seed, NS_STREAM_TEST);
    p->n = n;
    p->d = d;
    p->X = malloc(sizeof(double) * n * d);
    p->y = malloc(sizeof(double) * n);
    if (!p->X || !p->y) fail_msg("out of memory");
    for (int i = 0; i < n * d; i++) p->X[i] = how & DLN_POSITIVE_X ? fabs(ns_rng_normal(&r)) : ns_rng_normal(&r);
    switch (how & DLN_Y_MASK) {
    case DLN_Y_NOISE:
        for (int k = 0; k < n; k++) p->y[k] = ns_rng_normal(&r);
        break;
    case DLN_Y_TEACHER:
    case DLN_Y_NONNEG_TEACHER:
        for (int k = 0; k < n; k++) p->y[k] = 0;
        for (int i = 0; i < d; i++) {
            double b = (how & DLN_Y_MASK) == DLN_Y_NONNEG_TEACHER ? ns_rng_uniform(&r) : ns_rng_normal(&r);
            for (int k = 0; k < n; k++) p->y[k] += p->X[k * d + i] * b;
        }
        break;
    case DLN_Y_SPARSE:
        for (int k = 0; k < n; k++) p->y[k] = p->X[k * d] * 1.0 - p->X[k * d + 1] * 0.5 + 0.1 * ns_rng_normal(&r);
        break;
    }
    p->t = (ns_dln_data){n, d, p->X, p->y};
}

static inline void dln_problem_free(dln_problem *p) {
    free(p->X);
    free(p->y);
}

// Model m evaluated at theta on t (free with ns_dln_point_free).
static inline void dln_point_at(ns_dln_point *pt, const ns_dln_model *m, const ns_dln_data *t, const double *theta) {
    DLN_OK(ns_dln_point_alloc(pt, t->n, t->d));
    ns_dln_eval(m, t, theta, pt);
}
#endif
