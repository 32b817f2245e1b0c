// gemm_clock.c — the benchmark's window into normsharp's GEMMs, built into build/bench's
// shared library (bench/run.sh), never into normsharp itself.
// Linked with -Wl,--wrap=cblas_sgemm, every sgemm that normsharp's passes call goes through
// __wrap_cblas_sgemm, which, while a recording is on, appends the call's shape to a list
// (under a lock: a convolutional net's threads call sgemm at once, src/model/model.c).
// The GEMM floor of a pass is the time OpenBLAS takes for the matrix products of the pass
// alone: bench_gemm_record runs the pass once with every convolution on its patch path
// (im2col and sgemm: the implicit GEMM of src/model/conv3x3.c calls no sgemm), recording its
// sgemm calls; bench_gemm_replay then runs the same calls (operations, shapes, leading
// dimensions, alpha, beta) on buffers of its own, with nothing in between. What forms no GEMM
// on the patch path has no share in the floor: a first convolution on 1-3 channels (direct
// sums there; on the implicit path the forward sums of a grey layer use the implicit
// kernel), activations, pooling, the loss.
// bench_sgemm_gflops times a plain sgemm of one shape.
// The clock is wall time, or this process's CPU time when NS_BENCH_CPU is set (as
// bench/compare.py's and bench/bench_model.c's, so that both sides of a ratio read the same
// clock; for one thread only: on a shared machine the GEMMs' CPU time is what they would take
// alone).
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

void __real_cblas_sgemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m,
                        blasint n, blasint k, float alpha, const float *a, blasint lda,
                        const float *b, blasint ldb, float beta, float *c, blasint ldc);

// A recorded sgemm call.
typedef struct {
    CBLAS_ORDER o;
    CBLAS_TRANSPOSE ta, tb;
    blasint m, n, k, lda, ldb, ldc;
    float alpha, beta;
} gemm_call;

#define SLOTS 4
static struct {
    gemm_call *calls;
    size_t n, cap;
} slots[SLOTS];
static int recording = -1;  // the slot being recorded, or -1
static pthread_mutex_t record_lock = PTHREAD_MUTEX_INITIALIZER;
static float *replay_buf[3];
static size_t replay_len[3];

extern int ns_conv3x3_no_implicit;  // src/model/conv3x3.c

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
    __real_cblas_sgemm(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (recording >= 0) {  // the threads of a pass (model.c's groups) may call at once
        pthread_mutex_lock(&record_lock);
        __typeof__(slots[0]) *sl = &slots[recording];
        if (sl->n == sl->cap) {
            size_t cap = sl->cap ? 2 * sl->cap : 256;
            gemm_call *p = realloc(sl->calls, cap * sizeof *p);
            if (!p) abort();
            sl->calls = p, sl->cap = cap;
        }
        sl->calls[sl->n++] = (gemm_call){o, ta, tb, m, n, k, lda, ldb, ldc, alpha, beta};
        pthread_mutex_unlock(&record_lock);
    }
}

// Values an operand of `rows` x `cols` (as stored: row-major rows, or column-major columns)
// with leading dimension ld spans.
static size_t span(CBLAS_ORDER o, blasint rows, blasint cols, blasint ld) {
    if (o == CblasColMajor) {
        blasint t = rows;
        rows = cols, cols = t;
    }
    return rows > 0 ? (size_t)(rows - 1) * (size_t)ld + (size_t)cols : 0;
}

// Runs pass(arg) once, recording its sgemm calls in slot (0-3), with every convolution on its
// patch path. Returns pass's status.
int bench_gemm_record(int slot, int (*pass)(void *), void *arg) {
    if (slot < 0 || slot >= SLOTS) return -1;
    slots[slot].n = 0;
    int was = ns_conv3x3_no_implicit;
    recording = slot, ns_conv3x3_no_implicit = 1;
    int rc = pass(arg);
    recording = -1, ns_conv3x3_no_implicit = was;
    for (size_t i = 0; i < slots[slot].n; i++) {  // room for the largest operands
        gemm_call *c = &slots[slot].calls[i];
        int ta = c->ta != CblasNoTrans, tb = c->tb != CblasNoTrans;
        size_t need[3] = {span(c->o, ta ? c->k : c->m, ta ? c->m : c->k, c->lda),
                          span(c->o, tb ? c->n : c->k, tb ? c->k : c->n, c->ldb),
                          span(c->o, c->m, c->n, c->ldc)};
        for (int j = 0; j < 3; j++)
            if (need[j] > replay_len[j]) {
                free(replay_buf[j]);
                replay_buf[j] = calloc(need[j], sizeof *replay_buf[j]);
                if (!replay_buf[j]) abort();
                for (size_t e = 0; e < need[j]; e++) replay_buf[j][e] = (float)(e % 7) * 0.01f;
                replay_len[j] = need[j];
            }
    }
    return rc;
}

// Seconds to run the calls recorded in slot once more, one after the other.
double bench_gemm_replay(int slot) {
    if (slot < 0 || slot >= SLOTS) return 0;
    double t0 = now();
    for (size_t i = 0; i < slots[slot].n; i++) {
        gemm_call *c = &slots[slot].calls[i];
        __real_cblas_sgemm(c->o, c->ta, c->tb, c->m, c->n, c->k, c->alpha, replay_buf[0], c->lda,
                           replay_buf[1], c->ldb, c->beta, replay_buf[2], c->ldc);
    }
    return now() - t0;
}

// sgemm calls recorded in slot.
long bench_gemm_calls(int slot) { return slot >= 0 && slot < SLOTS ? (long)slots[slot].n : 0; }

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
