// bench_model.c — times the network passes on random data and compares them with sgemm.
//   bench_model [ARCH [N [REPS [mse|ce]]]]     defaults: fc-tanh-200-200 5000 20 mse
//   NS_BENCH_CHUNKS=16,4,2 bench_model ...     chunk sizes compared instead (below)
//   NS_BENCH_PATHS=1 bench_model ...           convolutions' implicit GEMM against patches
//   NS_BENCH_THREADS=1,2 bench_model ...       thread counts compared instead
//   NS_BENCH_PASS=gradient bench_model ...     one pass only (loss, gradient or hvp): for perf
// Inputs are 1x28x28 (Fashion-MNIST's shape), 10 classes. Build against a float library,
// with every sgemm timed by bench/gemm_clock.c:
//   make TAG=-nn -j2
//   cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude $(pkg-config --cflags openblas)
//      bench/bench_model.c bench/gemm_clock.c build/float-nn/libnormsharp.a
//      -Wl,--wrap=cblas_sgemm
//      $(pkg-config --libs openblas lapacke zlib) -lglpk -ldsdp -lm -lpthread -o bench_model
// Prints the median and best time of each pass, its GEMM-only floor ratio (the pass's time
// over the time of its matrix products run alone by OpenBLAS, the same calls as the pass makes
// with every convolution on its patch path: bench/gemm_clock.c; per run: median and range), its
// GFLOP/s at the best time counted two ways (the flops the passes do, and the customary 3x
// forward flops for a gradient), and the rate of an sgemm of the workload's largest shape,
// measured the same way. The best of several runs is the estimate least disturbed by other
// processes on a shared machine; the floor ratio, two clocks read in the same run, is the
// figure least disturbed by them.
// OpenBLAS threads: OPENBLAS_NUM_THREADS.
// With NS_BENCH_CHUNKS (a list of chunk sizes, each applied as NS_MODEL_CHUNK, which caps the
// examples per chunk), it instead times the gradient and H v (the primal cache filled) at each
// size in turn within every repetition, and prints per size the median time and the median and
// range of the per-repetition ratio to the first size: an A/B comparison that the load of the
// machine shifts alike for all sizes. NS_BENCH_PATHS does the same for the implicit GEMM of
// src/model/conv3x3.c against the patch path (im2col and sgemm), at the library's chunk size,
// and NS_BENCH_THREADS for thread counts (each set by openblas_set_num_threads, which sets the
// library's own threads too: src/model/parallel.c).
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "normsharp/model.h"
#include "normsharp/rng.h"

int bench_gemm_record(int slot, int (*pass)(void *), void *arg);  // bench/gemm_clock.c
double bench_gemm_replay(int slot);
long bench_gemm_calls(int slot);

// One pass of the model, for bench_gemm_record.
typedef struct {
    int pass;  // 0 loss, 1 gradient, 2 H v
    ns_model *m;
    const ns_batch *b;
    real *g, *hv;
    const real *v;
} pass_arg;

static int run_pass(void *arg) {
    pass_arg *a = arg;
    double loss_v, acc;
    return a->pass == 0   ? ns_model_loss(a->m, a->b, &loss_v, &acc)
           : a->pass == 1 ? ns_model_grad(a->m, a->b, a->g, &loss_v, &acc)
                          : ns_model_hvp(a->m, a->b, a->v, a->hv);
}

// Seconds: wall clock, or this process's CPU time if NS_BENCH_CPU is set (one thread only:
// on a machine shared with other jobs the CPU time of a single-threaded pass is what it
// would take alone, while its wall time counts the other jobs too).
static double clock_s(void) {
    if (!getenv("NS_BENCH_CPU")) return ns_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Sorts t and returns its median; t[0] is then the best time.
static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

// Best seconds of one sgemm C (m,n) = A (m,k) B^T over reps runs.
static double time_sgemm(int m, int n, int k, int reps) {
    float *a = calloc((size_t)m * k, sizeof *a), *b = calloc((size_t)n * k, sizeof *b);
    float *c = calloc((size_t)m * n, sizeof *c);
    double *t = calloc((size_t)reps, sizeof *t);
    for (size_t i = 0; i < (size_t)m * k; i++) a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)n * k; i++) b[i] = (float)(i % 5) * 0.1f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = clock_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, a, k, b, k, 0, c, n);
        t[r] = clock_s() - t0;
    }
    median(t, reps);
    double s = t[0];
    free(a), free(b), free(c), free(t);
    return s;
}

extern int ns_conv3x3_no_implicit;  // src/model/conv3x3.c

#define MAX_CHUNKS 8  // settings compared at most

// The NS_BENCH_CHUNKS, NS_BENCH_PATHS and NS_BENCH_THREADS comparisons (top of this file):
// setting i applies chunk size sizes[i] (0: the library's own), if patches[i] every
// convolution's patch path, and threads[i] threads (0: as set). Returns the exit status.
static int compare(int ns, const long *sizes, const int *patches, const int *threads, ns_model *m,
                   const ns_batch *b, real *g, const real *v, real *hv, int reps) {
    int threads_before = openblas_get_num_threads();
    double *t = calloc((size_t)(2 * ns * reps), sizeof *t), *u = calloc((size_t)reps, sizeof *u);
    double loss_v, acc;
    char label[MAX_CHUNKS][32];
    for (int i = 0; i < ns; i++)
        if (sizes[i])
            snprintf(label[i], sizeof label[i], "chunk %ld", sizes[i]);
        else if (threads[i])
            snprintf(label[i], sizeof label[i], "%d thread%s", threads[i], threads[i] > 1 ? "s" : "");
        else
            snprintf(label[i], sizeof label[i], "%s", patches[i] ? "patches" : "implicit");
    for (int r = -1; r < reps; r++)  // one warm-up round
        for (int i = 0; i < ns; i++) {
            char buf[32];
            snprintf(buf, sizeof buf, "%ld", sizes[i]);
            if (sizes[i])
                setenv("NS_MODEL_CHUNK", buf, 1);
            else
                unsetenv("NS_MODEL_CHUNK");
            ns_conv3x3_no_implicit = patches[i];
            openblas_set_num_threads(threads[i] ? threads[i] : threads_before);
            double t0 = clock_s();
            int rc = ns_model_grad(m, b, g, &loss_v, &acc);
            double t1 = clock_s();
            rc = rc ? rc : ns_model_hvp(m, b, v, hv);  // fills the primal cache at this size
            double t2 = clock_s();
            rc = rc ? rc : ns_model_hvp(m, b, v, hv);
            double t3 = clock_s();
            if (rc) {
                fprintf(stderr, "bench_model: %s\n", ns_errmsg());
                free(t), free(u);
                return 1;
            }
            if (r >= 0) t[(0 * ns + i) * reps + r] = t1 - t0, t[(1 * ns + i) * reps + r] = t3 - t2;
        }
    unsetenv("NS_MODEL_CHUNK");
    ns_conv3x3_no_implicit = 0;
    openblas_set_num_threads(threads_before);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < ns; i++) {
            const double *ti = t + (pass * ns + i) * reps, *t0 = t + (pass * ns) * reps;
            for (int r = 0; r < reps; r++) u[r] = ti[r] / t0[r];
            double mr = median(u, reps), lo = u[0], hi = u[reps - 1];
            for (int r = 0; r < reps; r++) u[r] = ti[r];
            printf("  %-8s %-10s  median %8.2f ms  / %s: %.2f (%.2f-%.2f)\n",
                   pass ? "hvp" : "gradient", label[i], median(u, reps) * 1e3, label[0], mr, lo, hi);
        }
    free(t), free(u);
    return 0;
}

// NS_BENCH_CHUNKS's list of sizes, or NS_BENCH_THREADS's of thread counts (`of_threads`),
// compared. Returns the exit status.
static int compare_list(const char *list, int of_threads, ns_model *m, const ns_batch *b, real *g,
                        const real *v, real *hv, int reps) {
    long sizes[MAX_CHUNKS] = {0}, size;
    int ns = 0, patches[MAX_CHUNKS] = {0}, threads[MAX_CHUNKS] = {0};
    for (const char *s = list; *s; s += strspn(s, ",")) {
        char *end;
        size = strtol(s, &end, 10);
        if (end == s || size < 1 || size > 1024 || ns == MAX_CHUNKS) {
            fprintf(stderr, "bench_model: %s must list 1 to %d numbers from 1 to 1024: %s\n",
                    of_threads ? "NS_BENCH_THREADS" : "NS_BENCH_CHUNKS", MAX_CHUNKS, list);
            return 2;
        }
        if (of_threads)
            threads[ns++] = (int)size;
        else
            sizes[ns++] = size;
        s = end;
    }
    return compare(ns, sizes, patches, threads, m, b, g, v, hv, reps);
}

int main(int argc, char **argv) {
    const char *arch = argc > 1 ? argv[1] : "fc-tanh-200-200";
    long n = argc > 2 ? atol(argv[2]) : 5000;
    int reps = argc > 3 ? atoi(argv[3]) : 20;
    ns_loss_kind loss = argc > 4 && strcmp(argv[4], "ce") == 0 ? NS_LOSS_CE : NS_LOSS_MSE;
    if (n < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_model [ARCH [N [REPS [mse|ce]]]]\n");
        return 2;
    }
    ns_model_config cfg = {.init_scale = 1, .seed = 0, .c = 1, .h = 28, .w = 28, .k = 10};
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    snprintf(cfg.param, sizeof cfg.param, "standard");
    ns_model *m;
    if (ns_model_create(&cfg, &m)) {
        fprintf(stderr, "bench_model: %s\n", ns_errmsg());
        return 1;
    }
    int d = cfg.c * cfg.h * cfg.w, k = cfg.k;
    size_t p = ns_model_nparams(m);
    real *x = malloc(sizeof *x * (size_t)n * d), *t = calloc((size_t)n * k, sizeof *t);
    int *y = malloc(sizeof *y * (size_t)n);
    real *g = malloc(sizeof *g * p), *v = malloc(sizeof *v * p), *hv = malloc(sizeof *hv * p);
    double *times = calloc((size_t)reps, sizeof *times), *floors = calloc((size_t)reps, sizeof *floors);
    ns_rng rng;
    ns_rng_seed(&rng, 1, NS_STREAM_DATA);
    for (size_t i = 0; i < (size_t)n * d; i++) x[i] = (real)ns_rng_normal(&rng);
    for (long i = 0; i < n; i++) t[i * k + (y[i] = (int)ns_rng_below(&rng, (uint64_t)k))] = 1;
    for (size_t i = 0; i < p; i++) v[i] = (real)ns_rng_normal(&rng);
    ns_batch b = {.x = x, .y = y, .t = t, .n = n, .loss = loss};

    const char *chunks = getenv("NS_BENCH_CHUNKS"), *threads = getenv("NS_BENCH_THREADS");
    if (chunks || threads || getenv("NS_BENCH_PATHS")) {
        printf("%s, n=%ld, %s, loss %s, %d interleaved repetitions%s\n", arch, n, NS_REAL_NAME,
               loss == NS_LOSS_CE ? "ce" : "mse", reps, getenv("NS_BENCH_CPU") ? ", CPU time" : "");
        long sizes[2] = {0, 0};
        int patches[2] = {0, 1}, same[2] = {0, 0};
        int rc = chunks    ? compare_list(chunks, 0, m, &b, g, v, hv, reps)
                 : threads ? compare_list(threads, 1, m, &b, g, v, hv, reps)
                           : compare(2, sizes, patches, same, m, &b, g, v, hv, reps);
        free(x), free(t), free(y), free(g), free(v), free(hv), free(times), free(floors);
        ns_model_free(m);
        return rc;
    }
    // Flops of the passes: a dense or conv layer of P weights costs 2 n P per product.
    // forward 1 product per layer; gradient: forward + weight gradient + input gradient
    // (none for the first layer); H v: forward, 2 tangent products (1 for the first layer),
    // input gradient, and 2 + 2 for the tangents of the weight and input gradients
    // (1 + 0 for the first layer). Convolutions count patches as rows.
    double f_fwd = 0, f_grad = 0, f_hvp = 0;
    int first = 1;
    for (int i = 0; i < ns_model_ntensors(m); i++) {
        const ns_tensor_info *ti = ns_model_tensor(m, i);
        if (strstr(ti->name, ".bias")) continue;
        double prod = 2.0 * (double)n * (double)ti->size;  // one GEMM's flops (dense layer)
        f_fwd += prod;
        f_grad += first ? 2 * prod : 3 * prod;
        f_hvp += first ? 3 * prod : 8 * prod;
        first = 0;
    }
    int conv = strncmp(arch, "fc", 2) != 0;  // flops are counted for fully connected nets only

    const char *names[3] = {"loss (forward)", "gradient", "hvp"};
    double med[3], best[3], floor_med[3], floor_lo[3], floor_hi[3];
    const char *only = getenv("NS_BENCH_PASS");
    int run[3] = {1, 1, 1};
    if (only) {
        for (int pass = 0; pass < 3; pass++)
            run[pass] = strcmp(only, pass == 0 ? "loss" : pass == 1 ? "gradient" : "hvp") == 0;
        if (!run[0] && !run[1] && !run[2]) {
            fprintf(stderr, "bench_model: NS_BENCH_PASS must be loss, gradient or hvp: %s\n", only);
            return 2;
        }
    }
    for (int pass = 0; pass < 3; pass++) {
        if (!run[pass]) continue;
        pass_arg pa = {pass, m, &b, g, hv, v};
        for (int r = -3; r < reps; r++) {  // two warm-up runs, then the GEMMs recorded
            int rc = r == -1 ? bench_gemm_record(pass, run_pass, &pa) : 0;
            double t0 = clock_s();
            rc = rc ? rc : run_pass(&pa);
            double t1 = clock_s(), gemm = r >= 0 ? bench_gemm_replay(pass) : 0;
            if (rc) {
                fprintf(stderr, "bench_model: %s\n", ns_errmsg());
                return 1;
            }
            if (r >= 0) times[r] = t1 - t0, floors[r] = (t1 - t0) / gemm;
        }
        med[pass] = median(times, reps);
        best[pass] = times[0];
        floor_med[pass] = median(floors, reps);
        floor_lo[pass] = floors[0], floor_hi[pass] = floors[reps - 1];
    }
    printf("%s, n=%ld, %zu parameters, %s, %s, loss %s, median of %d runs%s\n", arch, n, p,
           NS_REAL_NAME, getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "default threads",
           loss == NS_LOSS_CE ? "ce" : "mse", reps, getenv("NS_BENCH_CPU") ? ", CPU time" : "");
    double flops[3] = {f_fwd, f_grad, f_hvp};
    for (int pass = 0; pass < 3; pass++) {
        if (!run[pass]) continue;
        printf("  %-15s median %8.2f ms  best %8.2f ms  / GEMM floor %.2f (%.2f-%.2f)",
               names[pass], med[pass] * 1e3, best[pass] * 1e3, floor_med[pass], floor_lo[pass],
               floor_hi[pass]);
        if (!conv) printf("  %6.1f GFLOP/s done", flops[pass] / best[pass] * 1e-9);
        if (!conv && pass == 1) printf("  %6.1f GFLOP/s as 3x forward", 3 * f_fwd / best[pass] * 1e-9);
        printf("\n");
    }
    if (run[1] && run[2])
        printf("  hvp / gradient time: %.2f (medians), %.2f (best)\n", med[2] / med[1],
               best[2] / best[1]);
    // The reference: an sgemm of the first layer's forward shape (n x d) (d x W1).
    const ns_tensor_info *w1 = ns_model_tensor(m, 0);
    int out1 = w1->shape[0], in1 = (int)(w1->size / (size_t)out1);
    if (!conv && n <= 1 << 20) {
        double s = time_sgemm((int)n, out1, in1, reps);
        double rate = 2.0 * n * out1 * in1 / s * 1e-9;
        printf("  sgemm %ldx%dx%d        best %8.2f ms  %6.1f GFLOP/s\n", n, out1, in1, s * 1e3,
               rate);
        printf("  gradient at %.0f%% (flops done) / %.0f%% (3x forward) of the sgemm rate\n",
               100 * f_grad / best[1] * 1e-9 / rate, 100 * 3 * f_fwd / best[1] * 1e-9 / rate);
    }
    free(x), free(t), free(y), free(g), free(v), free(hv), free(times), free(floors);
    ns_model_free(m);
    return 0;
}
