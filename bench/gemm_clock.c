// gemm_clock.c — the benchmark's window into normsharp's GEMMs, built into build/bench's
// shared library (bench/run.sh), never into normsharp itself.
// Linked with -Wl,--wrap=cblas_sgemm, every sgemm that normsharp's passes call goes through
// __wrap_cblas_sgemm, which adds its wall time to a clock: the GEMM-only floor of a pass is
// the clock's advance over the pass. bench_sgemm_gflops times a plain sgemm of one shape.
// The clock is wall time, or this process's CPU time when NS_BENCH_CPU is set (as
// bench/compare.py's and bench/bench_model.c's, so that both sides of a ratio read the same
// clock; for one thread only: on a shared machine the GEMMs' CPU time is what they would take
// alone).
#include <cblas.h>
#include <stdlib.h>
#include <time.h>

void __real_cblas_sgemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m,
                        blasint n, blasint k, float alpha, const float *a, blasint lda,
                        const float *b, blasint ldb, float beta, float *c, blasint ldc);

static double gemm_seconds;

static double now(void) {
    static int cpu = -1;
    if (cpu < 0) cpu = getenv("NS_BENCH_CPU") != NULL;
    struct timespec t;
    clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void __wrap_cblas_sgemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m,
                        blasint n, blasint k, float alpha, const float *a, blasint lda,
                        const float *b, blasint ldb, float beta, float *c, blasint ldc) {
    double t0 = now();
    __real_cblas_sgemm(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    gemm_seconds += now() - t0;
}

// Seconds spent in normsharp's sgemm calls since the library was loaded.
double bench_gemm_seconds(void) { return gemm_seconds; }

// The OpenBLAS kernel in use (e.g. "Haswell", "Zen").
const char *bench_blas_core(void) { return openblas_get_corename(); }

// OpenBLAS threads for everything in the process (normsharp, and PyTorch's BLAS calls).
void bench_blas_threads(int t) { openblas_set_num_threads(t); }

// Best GFLOP/s over reps of C (m,n) = A (m,k) B^T (k,n), the shape of a dense layer's forward.
double bench_sgemm_gflops(int m, int n, int k, int reps) {
    float *a = calloc((size_t)m * k, sizeof *a), *b = calloc((size_t)n * k, sizeof *b);
    float *c = calloc((size_t)m * n, sizeof *c);
    double best = 1e30;
    if (!a || !b || !c) reps = 0;
    for (size_t i = 0; a && i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; b && i < (size_t)n * k; i++) b[i] = (float)(i % 5) * 0.1f;
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        __real_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
        if (r >= 0 && now() - t0 < best) best = now() - t0;
    }
    free(a), free(b), free(c);
    return reps > 0 ? 2.0 * m * n * k / best * 1e-9 : 0;
}
