// normsharp/views.h — curvature views beyond the paper's sharpness, each built on the
// Hessian operator (exact R-operator HVPs) and each opt-in:
//   * adaptive (scale-invariant) sharpness: the spectrum of D H D, D = diag(|theta| + eps);
//   * per-layer curvature: top eigenvalue and trace of each tensor's diagonal block H_BB;
//   * the spectral density by stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao
//     2019; Ubaru, Chen & Saad 2017), Gaussian-smoothed;
//   * weight decay: the measured objective is L + (lambda/2) ||theta||^2, Hessian H + lambda I.
// Vectors are double, as in curvature.h.
#ifndef NORMSHARP_VIEWS_H
#define NORMSHARP_VIEWS_H
#include "normsharp/curvature.h"

// ---- operators built from another operator -------------------------------------------
// out := D H D v, D = diag(d) (length n, borrowed). The top eigenvalue of D H D with
// d = |theta| + eps is the adaptive sharpness of Kwon et al. (ASAM, 2021): a relu layer
// multiplied by c and the next divided by c maps theta_j -> c theta_j and H_jk -> H_jk /
// (c_j c_k), so D H D is unchanged when eps = 0 (and changes by O(eps / |theta|) otherwise).
typedef struct {
    ns_matvec_fn f;
    void *ctx;
    const double *d;
    double *tmp;  // length n, owned
} ns_scaled_op;
int ns_scaled_op_init(ns_scaled_op *op, ns_matvec_fn f, void *ctx, const double *d, size_t n);
void ns_scaled_op_free(ns_scaled_op *op);
int ns_scaled_matvec(void *op, const double *v, double *out, size_t n);  // ctx = ns_scaled_op*

// out := H_BB v for the coordinates B = [offset, offset + size) of an operator of dimension
// n: v is embedded into a zero vector of length n (the mask), H applied, B read back.
typedef struct {
    ns_matvec_fn f;
    void *ctx;
    size_t n, offset, size;
    double *v, *hv;  // length n, owned
} ns_block_op;
int ns_block_op_init(ns_block_op *op, ns_matvec_fn f, void *ctx, size_t n, size_t offset, size_t size);
void ns_block_op_free(ns_block_op *op);
int ns_block_matvec(void *op, const double *v, double *out, size_t size);  // ctx = ns_block_op*

// Exact trace of an operator of dimension n from n products with unit vectors.
int ns_exact_trace(ns_matvec_fn f, void *ctx, size_t n, double *trace);

// ---- stochastic Lanczos quadrature ----------------------------------------------------
// m steps of Lanczos with full reorthogonalization from the unit vector v0 (length n):
// alpha (length m) and beta (length m-1) of the tridiagonal T_m. Stops early, setting *steps
// < m, when span(Q) is invariant (beta ~ 0): T is then exact for v0. `hvps` counts products.
int ns_lanczos_tridiag(ns_matvec_fn f, void *ctx, size_t n, const double *v0, int m, double *alpha,
                       double *beta, int *steps, int *hvps);

typedef struct {
    int probes;       // P >= 1 Gaussian probe vectors (default 5)
    int steps;        // m >= 1 Lanczos steps per probe (default 80; at most n are used)
    uint64_t seed;    // probes from (seed, NS_STREAM_SLQ)
} ns_slq_opts;
void ns_slq_opts_default(ns_slq_opts *o);

// The quadrature: for probe p, the Ritz values node[p*m + i] of T_m and weights
// weight[p*m + i] = (first component of T's i-th eigenvector)^2 (sum 1 over i), for
// i < steps[p]. Then v^T g(H) v / ||v||^2 ~ sum_i weight_i g(node_i) (Golub & Meurant), and
// the density (1/n) sum_j delta(t - lambda_j) is approximated by the mean over probes.
typedef struct {
    int probes, m;
    int *steps;               // probes
    double *node, *weight;    // probes x m
    int hvps;
} ns_slq_result;
int ns_slq(ns_matvec_fn f, void *ctx, size_t n, const ns_slq_opts *o, ns_slq_result *r);
void ns_slq_result_free(ns_slq_result *r);
// Smallest and largest node over all probes.
void ns_slq_range(const ns_slq_result *r, double *lo, double *hi);
// phi(t) = (1/P) sum_p sum_i weight_pi N(t; node_pi, sigma^2): the Gaussian-smoothed
// spectral density, integrating to 1 (each of the n eigenvalues carries mass 1/n).
double ns_slq_density(const ns_slq_result *r, double t, double sigma);
// The default bandwidth: sigma = 1% of max |node| (a smallest positive floor if all are 0).
double ns_slq_default_sigma(const ns_slq_result *r);
// The density on `points` (>= 2) equally spaced t from lo - 4 sigma to hi + 4 sigma (lo, hi:
// the node range): t[g] and phi[g] = ns_slq_density(r, t[g], sigma).
void ns_slq_density_grid(const ns_slq_result *r, double sigma, int points, double *t, double *phi);
// Grid points of a written density.csv.
#define NS_DENSITY_POINTS 400
// That grid as CSV text appended to b: "lambda,density\n" and one row per point; or, with
// step >= 0, rows "step,lambda,density" without a header (a trajectory of densities).
void ns_slq_density_csv(ns_buf *b, const ns_slq_result *r, double sigma, int points, long step);
// The same written to `path` atomically.
int ns_slq_density_write(const char *path, const ns_slq_result *r, double sigma, int points);
#endif
