// parallel.c — the threads that share one layer's sums (ns_parallel, layers.h).
//
// A pass over a chunk calls its convolution kernels many times, each for 20-200 us of work
// (a chunk of 4 examples), so the threads must be waiting when the work arrives: a pool of
// worker threads, started on first use and kept for the life of the process, spins briefly
// after each job (SPIN_NS) and then sleeps on a condition variable. The calling thread takes
// part 0 itself. One job runs at a time; a second thread that calls while a job runs computes
// its own job alone (parts = 1), which gives the same bits by the contract of ns_parallel.
// (model.c's groups of examples are such jobs too: run alone, one thread adds the groups in
// the same order.)
//
// How many threads: OpenBLAS's setting (openblas_get_num_threads: OPENBLAS_NUM_THREADS, or
// --threads through openblas_set_num_threads), so that one knob sets both and a sweep's
// worker processes, which set it to 1, never start a pool. After fork() the child has none of
// the parent's workers: an atfork handler forgets them and the child starts its own.
#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include "layers.h"

#define SPIN_NS 100000L  // how long an idle worker, or the waiting caller, spins (100 us)
#define CLAIMS 4         // ranges per thread of an ns_parallel_for, about

static struct {
    pthread_mutex_t busy;     // held by the thread whose job the pool runs
    pthread_mutex_t m;        // guards the sleeps on `start` and `done`
    pthread_cond_t start, done;
    int nworkers;             // worker threads started; worker i takes part i
    unsigned gen0[NS_MAX_PARTS];  // the job count when worker i started
    atomic_uint gen;          // jobs started
    atomic_int pending;       // workers that have not yet finished the current job
    ns_part_fn *fn;
    void *ctx;
    int parts;
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER, .m = PTHREAD_MUTEX_INITIALIZER,
          .start = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

int ns_parallel_threads(void) {
    int t = openblas_get_num_threads();
    return t < 1 ? 1 : t > NS_MAX_PARTS ? NS_MAX_PARTS : t;
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

// One round of a spin: a pause at first, then a yield of the CPU, so that a thread waited for
// that shares this CPU (with us, or with an OpenBLAS thread spinning after its last call) runs.
#define PAUSES 64
static inline void spin_round(int i) {
    if (i < PAUSES) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

// Spins up to SPIN_NS until *a != unlike; 1 if it changed.
static int spin_until_changed(atomic_uint *a, unsigned unlike) {
    long t0 = now_ns();
    for (int i = 1;; i++) {
        if (atomic_load_explicit(a, memory_order_acquire) != unlike) return 1;
        spin_round(i);
        if (i % 16 == 0 && now_ns() - t0 > SPIN_NS) return 0;
    }
}

static void *worker(void *arg) {
    int part = (int)(intptr_t)arg;
    unsigned seen = pool.gen0[part];
    for (;;) {
        if (!spin_until_changed(&pool.gen, seen)) {
            pthread_mutex_lock(&pool.m);
            while (atomic_load(&pool.gen) == seen) pthread_cond_wait(&pool.start, &pool.m);
            pthread_mutex_unlock(&pool.m);
        }
        seen = atomic_load(&pool.gen);
        if (part < pool.parts) pool.fn(pool.ctx, part, pool.parts);
        if (atomic_fetch_sub(&pool.pending, 1) == 1) {  // the last one out wakes the caller
            pthread_mutex_lock(&pool.m);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.m);
        }
    }
    return NULL;
}

// In a child of fork(): the workers did not come along, and a lock may have been held.
static void forget_pool(void) {
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.m, NULL);
    pthread_cond_init(&pool.start, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.nworkers = 0;
}

// Starts workers up to `want` (with pool.busy held); returns how many there are. Workers run
// with the asynchronous signals blocked, so that the program's handlers (SIGINT, SIGTERM, ...)
// run on its own threads; a fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) still
// reaches its handler on the worker that raised it (a sanitizer's report, say).
static int start_workers(int want) {
    static int atfork_set;
    if (pool.nworkers >= want) return pool.nworkers;
    if (!atfork_set) atfork_set = pthread_atfork(NULL, NULL, forget_pool) == 0;
    sigset_t mask, old;
    sigfillset(&mask);
    const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++) sigdelset(&mask, faults[i]);
    pthread_sigmask(SIG_SETMASK, &mask, &old);
    while (pool.nworkers < want) {
        int part = pool.nworkers + 1;
        pthread_t t;
        pool.gen0[part] = atomic_load(&pool.gen);
        if (pthread_create(&t, NULL, worker, (void *)(intptr_t)part)) break;
        pthread_detach(t);
        pool.nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pool.nworkers;
}

int ns_parallel_workers(void) { return pool.nworkers; }

static void run_parts(ns_part_fn *fn, void *ctx, int parts, int blas_one);

void ns_parallel(ns_part_fn *fn, void *ctx, long most) {
    int parts = ns_parallel_threads();
    run_parts(fn, ctx, most < parts ? (most < 1 ? 1 : (int)most) : parts, 0);
}

void ns_parallel_blas_one(ns_part_fn *fn, void *ctx, int parts) { run_parts(fn, ctx, parts, 1); }

// With blas_one, OpenBLAS's setting is 1 from when the pool is taken until it is given back,
// so that only the holder of the pool changes it (and sets it back).
static void run_parts(ns_part_fn *fn, void *ctx, int parts, int blas_one) {
    if (parts > NS_MAX_PARTS) parts = NS_MAX_PARTS;
    if (parts <= 1 || pthread_mutex_trylock(&pool.busy)) {
        fn(ctx, 0, 1);
        return;
    }
    int blas = openblas_get_num_threads();
    if (blas_one) openblas_set_num_threads(1);
    int workers = start_workers(parts - 1);
    if (parts > workers + 1) parts = workers + 1;
    pool.fn = fn, pool.ctx = ctx, pool.parts = parts;
    atomic_store(&pool.pending, workers);
    pthread_mutex_lock(&pool.m);
    atomic_fetch_add(&pool.gen, 1);
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.m);
    fn(ctx, 0, parts);
    long t0 = now_ns();
    for (int i = 1; atomic_load_explicit(&pool.pending, memory_order_acquire); i++) {
        spin_round(i);
        if (i % 16 == 0 && now_ns() - t0 > SPIN_NS) {
            pthread_mutex_lock(&pool.m);
            while (atomic_load(&pool.pending)) pthread_cond_wait(&pool.done, &pool.m);
            pthread_mutex_unlock(&pool.m);
            break;
        }
    }
    if (blas_one) openblas_set_num_threads(blas);
    pthread_mutex_unlock(&pool.busy);
}

// ns_parallel_for: part p takes range p first (so that every thread of the job gets work, even
// one that wakes late), then the parts claim the next ranges from a shared counter, so that a
// thread slowed down (by a colder cache, or another process on its core) takes fewer.
typedef struct {
    ns_range_fn *fn;
    void *ctx;
    long n, step;
    atomic_long claimed;  // ranges claimed from the counter (after the parts' first ones)
} range_job;

static void run_range(const range_job *j, long r) {
    long lo = r * j->step;
    if (lo < j->n) j->fn(j->ctx, lo, j->n - lo < j->step ? j->n : lo + j->step);
}

static void range_part(void *arg, int part, int parts) {
    range_job *j = arg;
    long ranges = (j->n + j->step - 1) / j->step;
    run_range(j, part);
    for (long r; (r = parts + atomic_fetch_add(&j->claimed, 1)) < ranges;) run_range(j, r);
}

void ns_parallel_for(ns_range_fn *fn, void *ctx, long n, long grain) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    long most = n / grain, threads = ns_parallel_threads();
    if (most < 2 || threads < 2) {
        fn(ctx, 0, n);
        return;
    }
    long parts = most < threads ? most : threads;
    long step = (n + CLAIMS * parts - 1) / (CLAIMS * parts);  // about CLAIMS ranges per thread
    range_job j = {fn, ctx, n, step > grain ? step : grain, 0};
    ns_parallel(range_part, &j, parts);
}
