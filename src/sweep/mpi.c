// sweep/mpi.c — one sweep over the ranks of an MPI job (make MPI=1; docs/MPI.md).
//
// Roles. Every rank runs the same command and builds the same sweep (the same runs, in the
// same order); ns_sweep_run is then collective. Rank 0 runs the ordinary sweep of
// runner.c (lock, pending runs, progress, CSV) with ns_sweep_mpi_deal as its dispatcher:
// the pending runs go out one at a time, in index order, to whichever rank asks first —
// dynamic assignment, because runs differ in length by orders of magnitude (a divergence
// after ten steps, a convergence after a million). Rank 0 works too: a thread of its own
// carries out runs while its main thread deals, sleeping between looks at its mailbox, so
// P ranks on P cores keep P cores busy. The other ranks ask, run, and ask again with the
// result of the last run in the request, until rank 0 answers with the sweep's result.
//
// Bit-identity. Each run is carried out in-process by the runner's execute_run with exactly
// one OpenBLAS thread, as in the fork pool's children. A run's arithmetic depends on its
// own inputs only (the callbacks restore theta_0; buffer and chunk sizes follow from n), not
// on the rank, the thread or the runs before it, so the CSV equals a `--jobs 1` sweep's.
//
// Messages, on a duplicate of MPI_COMM_WORLD (all small, fixed-size, one homogeneous binary):
//   ASK   rank r -> 0   the sweep's fingerprint and the result of r's previous run (run -1: none)
//   GIVE  0 -> rank r   the index of r's next run
//   END   0 -> rank r   the sweep's result (code, stats, message), then which runs are finished
// A rank's request waits at rank 0 once nothing is left to deal, until the END. OpenMPI's
// blocking calls poll at full speed; every wait here tests and sleeps instead (at most
// MAX_NAP between tests), so an idle rank leaves its core to the runs beside it.
//
// Failures. A run that fails on any rank is reported by rank 0 like any failed run. A rank
// that dies takes the job down (OpenMPI's default); rank 0 says on SIGTERM that finished
// runs are kept, and the next mpirun redoes exactly the runs without summary.json. A rank
// that ends with an error while others go on would leave them waiting for it forever, so
// ns_sweep_mpi_finish aborts the job in that case — the one place that ends the processes
// of the job from library code, because MPI offers no other way out of a collective wait.
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "mpi_sweep.h"

#ifdef NS_MPI
#include <cblas.h>
#include <mpi.h>
#include <pthread.h>

#define FIRST_NAP 1e-4         // seconds between the first two looks of a waiting rank,
#define MAX_NAP 0.02           // doubling up to this
#define AGREE_SECONDS 60.0     // a failing rank waits this long for the others before aborting
#define VISIBLE_SECONDS 120.0  // longest wait for another node's files on a shared file system

enum { TAG_ASK = 7001, TAG_GIVE, TAG_END, TAG_END_RUNS };

typedef struct {
    uint64_t fingerprint;  // of the sweep this rank laid out (run directories, CSV path)
    int run;               // the run this rank just carried out, -1 if none
    int code;              // its NS_E* code, 0 if it finished
    double seconds;
    char why[400];         // the error message of a failed run
} ask_msg;

typedef struct {
    int rc, done, skipped, failed;
    int has_map;           // the map of finished runs follows (TAG_END_RUNS)
    double seconds;
    char why[1024];        // rank 0's error message when rc != 0
} end_msg;

static struct {
    int up;                // ns_sweep_mpi_start has run (and ns_sweep_mpi_finish not yet)
    int owner;             // MPI_Init was ours, so MPI_Finalize is too
    int rank, ranks;
    int threads_ok;        // MPI_THREAD_FUNNELED: rank 0 may run a worker thread
    MPI_Comm comm;
} mpi = {.rank = 0, .ranks = 1};

// Rank 0's view of the sweep in progress (between ns_sweep_mpi_run and its END).
static struct {
    uint64_t fingerprint;
    unsigned char *finished;  // per run: skipped or finished in this sweep
    unsigned char *remote;    // per run: finished by another rank (its files may show late)
    unsigned char *held;      // per rank: its request waits for the END
    char mismatch[400];       // a rank that laid out other runs, if any
} cur;

int ns_sweep_rank(void) { return mpi.rank; }
int ns_sweep_ranks(void) { return mpi.ranks; }

int ns_sweep_mpi_start(int *argc, char ***argv) {
    if (mpi.up) return 0;
    int provided = MPI_THREAD_SINGLE, initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) MPI_Query_thread(&provided);
    else if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return ns_fail(NS_EIO, "MPI could not be initialized");
    mpi.owner = !initialized;
    if (MPI_Comm_dup(MPI_COMM_WORLD, &mpi.comm) != MPI_SUCCESS) return ns_fail(NS_EIO, "MPI could not be initialized");
    MPI_Comm_rank(mpi.comm, &mpi.rank);
    MPI_Comm_size(mpi.comm, &mpi.ranks);
    mpi.threads_ok = provided >= MPI_THREAD_FUNNELED;
    mpi.up = 1;
    return 0;
}

static void nap(double seconds) {
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

// The next pause of a rank that keeps waiting.
static double longer(double pause) { return pause * 2 < MAX_NAP ? pause * 2 : MAX_NAP; }

// Wait for req, testing and sleeping (see the top). 1 when complete, 0 if `limit` seconds
// passed first (limit < 0: no limit).
static int await(MPI_Request *req, double limit) {
    double start = ns_now();
    for (double pause = FIRST_NAP;; pause = longer(pause)) {
        int done = 0;
        MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (done) return 1;
        if (limit >= 0 && ns_now() - start > limit) return 0;
        nap(pause);
    }
}

static void send_bytes(const void *buf, int len, int to, int tag) {
    MPI_Request r;
    MPI_Isend(buf, len, MPI_BYTE, to, tag, mpi.comm, &r);
    await(&r, -1);
}

static void recv_bytes(void *buf, int len, int from, int tag) {
    MPI_Request r;
    MPI_Irecv(buf, len, MPI_BYTE, from, tag, mpi.comm, &r);
    await(&r, -1);
}

// Wait until a message from `from` with `tag` (MPI_ANY_TAG: any) has arrived; its status.
static MPI_Status await_message(int from, int tag) {
    for (double pause = FIRST_NAP;; pause = longer(pause)) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(from, tag, mpi.comm, &flag, &st);
        if (flag) return st;
        nap(pause);
    }
}

int ns_sweep_mpi_finish(int status) {
    if (!mpi.up) return status;
    fflush(stdout);
    fflush(stderr);
    if (mpi.ranks > 1) {
        MPI_Request req;
        MPI_Ibarrier(mpi.comm, &req);
        if (!await(&req, status ? AGREE_SECONDS : -1)) {
            fprintf(stderr, "normsharp: rank %d of the MPI job stopped with exit status %d while other ranks went on; "
                    "stopping the whole job.\n", mpi.rank, status);
            MPI_Abort(MPI_COMM_WORLD, status);
        }
    }
    MPI_Comm_free(&mpi.comm);
    if (mpi.owner) MPI_Finalize();
    mpi.up = 0;
    return status;
}

static uint64_t fnv1a(uint64_t h, const char *text) {
    for (const unsigned char *c = (const unsigned char *)text;; c++) {
        h = (h ^ *c) * 1099511628211ULL;
        if (!*c) return h;
    }
}

// What identifies a sweep (FNV-1a of the CSV path and the run directories, in order):
// every rank must have laid out the same runs.
static uint64_t fingerprint(const ns_sweep *s) {
    uint64_t h = fnv1a(1469598103934665603ULL, s->csv_path);
    for (int i = 0; i < s->n_runs; i++) h = fnv1a(h, s->run_dirs[i]);
    return h;
}

// ---- files written on other nodes ------------------------------------------------------------

// Rereading the directory refreshes a network file system's cached view of it.
static int summary_visible(const char *run_dir) {
    DIR *d = opendir(run_dir);
    if (d) closedir(d);
    char p[4200];
    return ns_path(p, sizeof p, "%s/summary.json", run_dir) == 0 && ns_exists(p);
}

// A shared file system may show a file that another node created late (NFS caches lookups,
// by default for up to 60 s). Wait until the summary of every run in `which` is visible
// here before anything reads it; after VISIBLE_SECONDS give up and let the reader say
// which file is missing.
static void wait_visible(const ns_sweep *s, const unsigned char *which) {
    double start = ns_now();
    int told = 0;
    for (int i = 0; i < s->n_runs; i++) {
        while (which[i] && !summary_visible(s->run_dirs[i])) {
            double waited = ns_now() - start;
            if (waited > VISIBLE_SECONDS) return;
            if (!told && waited > 2) {
                fprintf(stderr, "normsharp: rank %d waits for the shared file system to show '%s/summary.json'...\n",
                        mpi.rank, s->run_dirs[i]);
                told = 1;
            }
            nap(0.1);
        }
    }
}

// ---- rank 0: the dealer ---------------------------------------------------------------------

enum { W_IDLE, W_RUN, W_DONE, W_STOP };
enum { HELD = 1, HELD_OTHER_SWEEP = 2 };  // values of cur.held

// Rank 0's own worker thread and its mailbox.
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;            // W_RUN: `run` given; W_DONE: its result below; W_STOP: no more runs
    int run, code;
    double seconds;
    char why[400];
    const ns_sweep *s;
    ns_sweep_exec_fn exec;
    int started;          // the thread exists
} local_worker;

static void *local_main(void *arg) {
    local_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->state != W_RUN && w->state != W_STOP) pthread_cond_wait(&w->cv, &w->mu);
        if (w->state == W_STOP) break;
        int i = w->run;
        pthread_mutex_unlock(&w->mu);
        double t0 = ns_now();
        int code = w->exec(w->s, i, NULL);
        pthread_mutex_lock(&w->mu);
        w->code = code;
        w->seconds = ns_now() - t0;
        snprintf(w->why, sizeof w->why, "%s", code ? ns_errmsg() : "");
        w->state = W_DONE;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

typedef struct {
    const ns_sweep *s;
    const int *pending;
    int npending, next;   // next: how many runs have been dealt
    int out;              // dealt and not yet ended
    ns_sweep_ended_fn ended;
    void *tally;
} dealer;

static int deal_next(dealer *d) {
    if (d->next >= d->npending) return -1;
    d->out++;
    return d->pending[d->next++];
}

static void run_ended_on(dealer *d, int rank, int i, int code, const char *why, double seconds) {
    if (i < 0 || i >= d->s->n_runs) return;
    d->out--;
    if (!code) {
        cur.finished[i] = 1;
        cur.remote[i] = rank != 0;
    }
    d->ended(d->tally, i, code, why, seconds);
}

// A request from a rank that laid out other runs gets none: it is held until the END,
// which fails the sweep. 1 if the request is for this sweep.
static int same_sweep(const ask_msg *a, int r) {
    if (a->fingerprint == cur.fingerprint) return 1;
    if (!cur.mismatch[0])
        snprintf(cur.mismatch, sizeof cur.mismatch,
                 "rank %d of the MPI job laid out other runs than rank 0 (other options, or other files such as "
                 "a flow's summary.json); every rank must run the same command on the same files", r);
    cur.held[r] = HELD_OTHER_SWEEP;
    return 0;
}

// Answer every request that has arrived. Returns the number answered.
static int serve_requests(dealer *d) {
    int n = 0;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_ASK, mpi.comm, &flag, &st);
        if (!flag) return n;
        ask_msg a;
        MPI_Recv(&a, (int)sizeof a, MPI_BYTE, st.MPI_SOURCE, TAG_ASK, mpi.comm, MPI_STATUS_IGNORE);
        a.why[sizeof a.why - 1] = 0;
        int r = st.MPI_SOURCE;
        n++;
        if (a.run >= 0) run_ended_on(d, r, a.run, a.code, a.why, a.seconds);
        if (!same_sweep(&a, r)) continue;
        int i = deal_next(d);
        if (i < 0) cur.held[r] = HELD;
        else send_bytes(&i, (int)sizeof i, r, TAG_GIVE);
    }
}

// Collect the local worker's result, if any, and give it the next run (or stop it).
// Waits up to `pause` seconds for it when nothing else is to be done.
static int serve_local(dealer *d, local_worker *w, double pause) {
    if (!w->started) {
        if (pause > 0) nap(pause);
        return 0;
    }
    pthread_mutex_lock(&w->mu);
    if (w->state != W_DONE && pause > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long ns = ts.tv_nsec + (long)(pause * 1e9);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    if (w->state != W_DONE) {
        pthread_mutex_unlock(&w->mu);
        return 0;
    }
    int i = w->run, code = w->code;
    double seconds = w->seconds;
    char why[400];
    snprintf(why, sizeof why, "%s", w->why);
    w->run = deal_next(d);
    w->state = w->run >= 0 ? W_RUN : W_STOP;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    run_ended_on(d, 0, i, code, why, seconds);
    return 1;
}

// Start rank 0's worker thread on the first run (if threads may run beside MPI). 1 if started.
static int local_start(local_worker *w, dealer *d, pthread_t *tid) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!mpi.threads_ok || d->npending == 0) return 0;
    w->run = deal_next(d);
    w->state = W_RUN;
    if (pthread_create(tid, NULL, local_main, w) == 0) return 1;
    d->next--;  // no thread: rank 0 only deals
    d->out--;
    return 0;
}

void ns_sweep_mpi_deal(const ns_sweep *s, const int *pending, int npending, ns_sweep_exec_fn exec,
                       ns_sweep_ended_fn ended, void *tally) {
    dealer d = {.s = s, .pending = pending, .npending = npending, .ended = ended, .tally = tally};
    if (!s->quiet) {
        fprintf(stderr, "sweep: %d runs to do on %d MPI ranks\n", npending, mpi.ranks);
        if (s->jobs > 1)
            fprintf(stderr, "sweep: --jobs %d does not apply under mpirun with several ranks: each rank carries out "
                    "one run at a time (start one rank per core)\n", s->jobs);
    }
    int threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    local_worker w = {.s = s, .exec = exec};
    pthread_t tid;
    w.started = local_start(&w, &d, &tid);
    double pause = FIRST_NAP;
    while (d.next < d.npending || d.out > 0) {
        int busy = serve_requests(&d);
        busy += serve_local(&d, &w, busy ? 0 : pause);
        pause = busy ? FIRST_NAP : longer(pause);
    }
    if (w.started) {
        pthread_mutex_lock(&w.mu);
        w.state = W_STOP;
        pthread_cond_broadcast(&w.cv);
        pthread_mutex_unlock(&w.mu);
        pthread_join(tid, NULL);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    openblas_set_num_threads(threads);
    wait_visible(s, cur.remote);  // the CSV is assembled from these files next
}

// ---- rank 0: the END; the other ranks: serving ------------------------------------------------

// Every rank's request is held now, or about to arrive (a slow start, or nothing was
// dealt): wait for the missing ones.
static void hold_all_requests(void) {
    for (int r = 1; r < mpi.ranks; r++) {
        if (cur.held[r]) continue;
        MPI_Status m = await_message(r, TAG_ASK);
        ask_msg a;
        MPI_Recv(&a, (int)sizeof a, MPI_BYTE, m.MPI_SOURCE, TAG_ASK, mpi.comm, MPI_STATUS_IGNORE);
        if (same_sweep(&a, r)) cur.held[r] = HELD;
    }
}

// Answer every held request with the sweep's result, and the map of finished runs to the
// ranks that laid out the same runs.
static void end_sweep(const ns_sweep *s, int rc, const ns_sweep_stats *st) {
    end_msg e = {.rc = rc, .done = st->done, .skipped = st->skipped, .failed = st->failed, .seconds = st->seconds};
    snprintf(e.why, sizeof e.why, "%s", rc ? ns_errmsg() : "");
    for (int r = 1; r < mpi.ranks; r++) {
        e.has_map = cur.held[r] == HELD && s->n_runs > 0;
        send_bytes(&e, (int)sizeof e, r, TAG_END);
        if (e.has_map) send_bytes(cur.finished, s->n_runs, r, TAG_END_RUNS);
    }
}

// Rank 0 on SIGTERM/SIGINT (mpirun stopping the job, typically because a rank died).
static void say_stopped(int sig) {
    static const char msg[] = "normsharp: the MPI sweep is being stopped; the finished runs are kept, "
                              "rerun the same command to do the rest.\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {}
    signal(sig, SIG_DFL);
    raise(sig);
}

static int lead(const ns_sweep *s, ns_sweep_stats *stats, ns_sweep_here_fn here) {
    size_t n = (size_t)(s->n_runs > 0 ? s->n_runs : 1);
    cur.fingerprint = fingerprint(s);
    cur.mismatch[0] = 0;
    cur.finished = ns_calloc(n, 1);
    cur.remote = ns_calloc(n, 1);
    cur.held = ns_calloc((size_t)mpi.ranks, 1);
    if (!cur.finished || !cur.remote || !cur.held) {
        // Without memory to serve them the other ranks cannot be told either: this rank
        // leaves the sweep, and ns_sweep_mpi_finish ends the job.
        free(cur.finished);
        free(cur.remote);
        free(cur.held);
        return NS_ENOMEM;
    }
    struct sigaction sa = {.sa_handler = say_stopped}, old_term, old_int;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);
    ns_sweep_stats st = {0};
    int rc = here(s, &st);
    for (int i = 0; i < s->n_runs; i++)  // the runs finished before this sweep (skipped)
        if (!cur.finished[i] && summary_visible(s->run_dirs[i])) cur.finished[i] = 1;
    hold_all_requests();
    if (cur.mismatch[0]) rc = ns_fail(NS_EIO, "%s", cur.mismatch);
    end_sweep(s, rc, &st);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    free(cur.finished);
    free(cur.remote);
    free(cur.held);
    cur.finished = cur.remote = cur.held = NULL;
    if (stats) *stats = st;
    return rc;
}

static int serve(const ns_sweep *s, ns_sweep_stats *stats, ns_sweep_exec_fn exec) {
    // Out of memory here, this rank stays out of the sweep; ns_sweep_mpi_finish then ends the job.
    unsigned char *finished = ns_calloc((size_t)(s->n_runs > 0 ? s->n_runs : 1), 1);
    if (!finished) return NS_ENOMEM;
    int threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    ask_msg a = {.fingerprint = fingerprint(s), .run = -1};
    end_msg e;
    for (;;) {
        send_bytes(&a, (int)sizeof a, 0, TAG_ASK);
        MPI_Status m = await_message(0, MPI_ANY_TAG);
        if (m.MPI_TAG == TAG_END) {
            recv_bytes(&e, (int)sizeof e, 0, TAG_END);
            break;
        }
        int i;
        recv_bytes(&i, (int)sizeof i, 0, TAG_GIVE);
        double t0 = ns_now();
        a.run = i;
        a.code = exec(s, i, NULL);
        a.seconds = ns_now() - t0;
        snprintf(a.why, sizeof a.why, "%s", a.code ? ns_errmsg() : "");
    }
    openblas_set_num_threads(threads);
    if (e.has_map) {
        recv_bytes(finished, s->n_runs, 0, TAG_END_RUNS);
        wait_visible(s, finished);  // the command reads them next (e.g. the flows' eta_c)
    }
    free(finished);
    if (stats) *stats = (ns_sweep_stats){.done = e.done, .skipped = e.skipped, .failed = e.failed, .seconds = e.seconds};
    e.why[sizeof e.why - 1] = 0;
    return e.rc ? ns_fail(e.rc, "%s", e.why) : 0;
}

int ns_sweep_mpi_run(const ns_sweep *s, ns_sweep_stats *stats, ns_sweep_here_fn here, ns_sweep_exec_fn exec) {
    return mpi.rank == 0 ? lead(s, stats, here) : serve(s, stats, exec);
}

#else  // a plain build: one process, no MPI

int ns_sweep_rank(void) { return 0; }
int ns_sweep_ranks(void) { return 1; }

int ns_sweep_mpi_start(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

int ns_sweep_mpi_finish(int status) { return status; }

int ns_sweep_mpi_run(const ns_sweep *s, ns_sweep_stats *stats, ns_sweep_here_fn here, ns_sweep_exec_fn exec) {
    (void)exec;
    return here(s, stats);
}

void ns_sweep_mpi_deal(const ns_sweep *s, const int *pending, int npending, ns_sweep_exec_fn exec,
                       ns_sweep_ended_fn ended, void *tally) {
    (void)s;
    (void)exec;
    for (int q = 0; q < npending; q++) ended(tally, pending[q], NS_EINVAL, "this build has no MPI (make MPI=1)", 0);
}
#endif
