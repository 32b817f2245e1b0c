// The shared sweep runner (sweep.h): parallel workers, resume, failures, CSV assembly.
#include <cblas.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include "testutil.h"
#include "normsharp/eos.h"
#include "normsharp/sweep.h"

#define NRUNS 6

typedef struct {
    char root[512];
    char *dirs[NRUNS];
    int fail_run;       // this run returns NS_EIO (-1: none)
    int kill_run;       // this run kills itself with SIGKILL (-1: none)
    int nosummary_run;  // this run returns 0 without summary.json (-1: none)
    int sleep_ms;       // each run sleeps this long
} fixture;

// Append one line to ROOT/NAME under an exclusive lock (shared log of all workers).
static void log_line(const fixture *f, const char *name, const char *fmt, int a, int b) {
    char p[600], line[64];
    snprintf(p, sizeof p, "%s/%s", f->root, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return;
    flock(fd, LOCK_EX);
    int n = snprintf(line, sizeof line, fmt, a, b);
    if (write(fd, line, (size_t)n) != n) {}
    flock(fd, LOCK_UN);
    close(fd);
}

// The number of workers running now, kept in ROOT/active (read-modify-write under a lock);
// the largest value ever seen goes to ROOT/max_active.
static int active_add(const fixture *f, int delta) {
    char p[600];
    snprintf(p, sizeof p, "%s/active", f->root);
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    flock(fd, LOCK_EX);
    char buf[32] = {0};
    ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
    int v = r > 0 ? atoi(buf) : 0;
    v += delta;
    int n = snprintf(buf, sizeof buf, "%d\n", v);
    if (ftruncate(fd, 0) || pwrite(fd, buf, (size_t)n, 0) != n) {}
    if (delta > 0) log_line(f, "max_active", "%d %d\n", v, 0);
    flock(fd, LOCK_UN);
    close(fd);
    return v;
}

static int test_run(void *ctx, int i, const char *run_dir, ns_progress *p) {
    fixture *f = ctx;
    log_line(f, "started", "%d\n", i, 0);
    log_line(f, "threads", "%d\n", openblas_get_num_threads(), 0);
    active_add(f, 1);
    for (int s = 0; s < 5; s++) {
        ns_progress_step(p, s, 1.0 / (s + 1));
        if (f->sleep_ms) {
            struct timespec ts = {0, (long)f->sleep_ms * 200000L};
            nanosleep(&ts, NULL);
        }
    }
    active_add(f, -1);
    if (i == f->fail_run) return ns_fail(NS_EIO, "run %d failed on purpose", i);
    if (i == f->kill_run) raise(SIGKILL);
    if (i == f->nosummary_run) return 0;
    // a deterministic "result" that depends only on i
    double x = 1.0;
    for (int k = 0; k < 1000; k++) x = x * 0.999 + (double)i * 1e-3;
    char p2[600], body[128];
    snprintf(p2, sizeof p2, "%s/trajectory.csv", run_dir);
    if (ns_write_file_atomic(p2, "step\n0\n", 7)) return NS_EIO;
    snprintf(p2, sizeof p2, "%s/summary.json", run_dir);
    char num[32];
    ns_fmt_double(num, x);
    int n = snprintf(body, sizeof body, "{\"run\": %d, \"x\": %s}\n", i, num);
    return ns_write_file_atomic(p2, body, (size_t)n);
}

static int test_row(void *ctx, int i, const char *run_dir, ns_buf *line) {
    (void)ctx;
    char p[600];
    snprintf(p, sizeof p, "%s/summary.json", run_dir);
    ns_jval v;
    int rc = ns_json_parse_file(p, &v);
    if (rc) return rc;
    char num[32];
    ns_fmt_double(num, ns_jnum(&v, "x", NAN));
    ns_buf_printf(line, "%d,%s", i, num);
    ns_jval_free(&v);
    return 0;
}

static void test_label(void *ctx, int i, char *out, size_t cap) {
    (void)ctx;
    snprintf(out, cap, "run=%d", i);
}

static void fixture_init(fixture *f) {
    memset(f, 0, sizeof *f);
    snprintf(f->root, sizeof f->root, "%s", tu_tmpdir());
    for (int i = 0; i < NRUNS; i++) {
        char d[600];
        snprintf(d, sizeof d, "%s/runs/r%d", f->root, i);
        f->dirs[i] = strdup(d);
    }
    f->fail_run = f->kill_run = f->nosummary_run = -1;
}

static void fixture_free(fixture *f) {
    for (int i = 0; i < NRUNS; i++) free(f->dirs[i]);
}

static int sweep(fixture *f, int jobs, ns_sweep_stats *st) {
    char csv[600];
    snprintf(csv, sizeof csv, "%s/runs/sweep.csv", f->root);
    ns_sweep s = {.n_runs = NRUNS, .run_dirs = f->dirs, .run = test_run, .row = test_row,
                  .label = test_label, .ctx = f, .jobs = jobs, .csv_path = csv,
                  .csv_header = "run,x", .quiet = 1};
    return ns_sweep_run(&s, st);
}

static char *read_rel(const fixture *f, const char *rel) {
    char p[600], *data = NULL;
    snprintf(p, sizeof p, "%s/%s", f->root, rel);
    if (ns_read_file(p, &data, NULL)) return NULL;
    return data;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

static void csv_is_identical_for_jobs_1_and_3(void **state) {
    (void)state;
    fixture a, b;
    fixture_init(&a);
    fixture_init(&b);
    ns_sweep_stats st;
    assert_int_equal(sweep(&a, 1, &st), 0);
    assert_int_equal(st.done, NRUNS);
    assert_int_equal(sweep(&b, 3, &st), 0);
    assert_int_equal(st.done, NRUNS);
    char *ca = read_rel(&a, "runs/sweep.csv"), *cb = read_rel(&b, "runs/sweep.csv");
    assert_non_null(ca);
    assert_non_null(cb);
    assert_string_equal(ca, cb);
    assert_int_equal(count_lines(ca), NRUNS + 1);
    assert_true(!strncmp(ca, "run,x\n0,", 8));
    free(ca);
    free(cb);
    fixture_free(&a);
    fixture_free(&b);
}

static void runs_start_in_index_order_with_one_job(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f);
    assert_int_equal(sweep(&f, 1, NULL), 0);
    char *s = read_rel(&f, "started");
    assert_non_null(s);
    assert_string_equal(s, "0\n1\n2\n3\n4\n5\n");
    free(s);
    fixture_free(&f);
}

static void at_most_jobs_workers_run_at_once(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f);
    f.sleep_ms = 20;
    assert_int_equal(sweep(&f, 2, NULL), 0);
    char *s = read_rel(&f, "max_active");
    assert_non_null(s);
    int mx = 0;
    for (char *p = s; *p;) {
        int v = atoi(p);
        if (v > mx) mx = v;
        p = strchr(p, '\n');
        if (!p) break;
        p++;
    }
    assert_true(mx >= 1 && mx <= 2);
    free(s);
    fixture_free(&f);
}

static void finished_runs_are_skipped_on_resume(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f);
    assert_int_equal(sweep(&f, 2, NULL), 0);
    char *before = read_rel(&f, "runs/sweep.csv");
    // forget run 2 and leave debris of an interrupted attempt in run 4
    char p[700];
    snprintf(p, sizeof p, "%s/summary.json", f.dirs[2]);
    assert_int_equal(unlink(p), 0);
    snprintf(p, sizeof p, "%s/summary.json", f.dirs[4]);
    assert_int_equal(unlink(p), 0);
    snprintf(p, sizeof p, "%s/summary.json.tmp.999999", f.dirs[4]);
    FILE *junk = fopen(p, "w");
    fputs("{\"half", junk);
    fclose(junk);
    snprintf(p, sizeof p, "%s/runs/sweep.csv.tmp.999999", f.root);
    junk = fopen(p, "w");
    fclose(junk);
    snprintf(p, sizeof p, "%s/started", f.root);
    unlink(p);
    ns_sweep_stats st;
    assert_int_equal(sweep(&f, 2, &st), 0);
    assert_int_equal(st.skipped, NRUNS - 2);
    assert_int_equal(st.done, 2);
    char *s = read_rel(&f, "started");
    assert_non_null(s);
    assert_true(!strcmp(s, "2\n4\n") || !strcmp(s, "4\n2\n"));
    snprintf(p, sizeof p, "%s/summary.json.tmp.999999", f.dirs[4]);
    assert_false(ns_exists(p));  // the stale temporary file was cleared
    snprintf(p, sizeof p, "%s/runs/sweep.csv.tmp.999999", f.root);
    assert_false(ns_exists(p));
    char *after = read_rel(&f, "runs/sweep.csv");
    assert_string_equal(before, after);
    free(s);
    free(before);
    free(after);
    fixture_free(&f);
}

static void failed_and_killed_runs_fail_the_sweep_but_the_csv_keeps_the_rest(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f);
    f.fail_run = 1;
    f.kill_run = 3;
    f.nosummary_run = 5;
    ns_sweep_stats st;
    int rc = sweep(&f, 2, &st);
    assert_int_not_equal(rc, 0);
    assert_int_not_equal(rc, NS_EINVAL);
    assert_int_equal(st.failed, 3);
    assert_int_equal(st.done, 3);
    assert_non_null(strstr(ns_errmsg(), "3 of 6"));
    char *c = read_rel(&f, "runs/sweep.csv");
    assert_non_null(c);
    assert_int_equal(count_lines(c), 1 + 3);
    assert_non_null(strstr(c, "\n0,"));
    assert_non_null(strstr(c, "\n2,"));
    assert_non_null(strstr(c, "\n4,"));
    assert_null(strstr(c, "\n1,"));
    free(c);
    fixture_free(&f);
}

static void a_second_sweep_into_the_same_directory_is_refused_while_one_runs(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f);
    char dir[600], lock[700];
    snprintf(dir, sizeof dir, "%s/runs", f.root);
    snprintf(lock, sizeof lock, "%s/.sweep.lock", dir);
    assert_int_equal(ns_mkdirs(dir), 0);
    int fd = open(lock, O_RDWR | O_CREAT, 0644);  // as a sweep takes it: a file open for writing (NFS)
    assert_true(fd >= 0);
    pid_t pid = fork();
    if (pid == 0) {  // another process holds the sweep lock
        flock(fd, LOCK_EX);
        sleep(5);
        _exit(0);
    }
    close(fd);
    struct timespec ts = {0, 200000000L};
    nanosleep(&ts, NULL);
    int rc = sweep(&f, 1, NULL);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(ns_errmsg(), "another sweep"));
    assert_int_equal(sweep(&f, 1, NULL), 0);  // the lock died with its holder
    fixture_free(&f);
}

// The lock is a file opened for writing (NFS emulates flock with a byte-range lock, which
// needs one), kept after the sweep so that no sweep ever locks a name another has unlinked.
static void the_sweep_lock_is_a_regular_file_in_the_csv_directory_that_stays(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f);
    assert_int_equal(sweep(&f, 1, NULL), 0);
    char lock[700];
    snprintf(lock, sizeof lock, "%s/runs/.sweep.lock", f.root);
    struct stat st;
    assert_int_equal(stat(lock, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(sweep(&f, 1, NULL), 0);  // the next sweep takes it again
    fixture_free(&f);
}

static void a_sweep_killed_midway_resumes_without_redoing_finished_runs(void **state) {
    (void)state;
    fixture ref, f;
    fixture_init(&ref);
    assert_int_equal(sweep(&ref, 2, NULL), 0);
    fixture_init(&f);
    f.sleep_ms = 150;  // each run takes ~150 ms
    pid_t pid = fork();
    if (pid == 0) _exit(sweep(&f, 2, NULL) ? 1 : 0);
    struct timespec ts = {0, 350000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int finished = 0;
    char p[700];
    for (int i = 0; i < NRUNS; i++) {
        snprintf(p, sizeof p, "%s/summary.json", f.dirs[i]);
        finished += ns_exists(p);
    }
    assert_true(finished >= 1 && finished < NRUNS);
    ts.tv_nsec = 400000000L;  // orphaned workers would finish in this time: there must be none
    nanosleep(&ts, NULL);
    int finished_later = 0;
    for (int i = 0; i < NRUNS; i++) {
        snprintf(p, sizeof p, "%s/summary.json", f.dirs[i]);
        finished_later += ns_exists(p);
    }
    assert_int_equal(finished_later, finished);
    char *started = read_rel(&f, "started");
    int started_before = count_lines(started);
    free(started);
    f.sleep_ms = 0;
    ns_sweep_stats st;
    assert_int_equal(sweep(&f, 2, &st), 0);
    assert_int_equal(st.skipped, finished);
    assert_int_equal(st.done, NRUNS - finished);
    started = read_rel(&f, "started");
    assert_int_equal(count_lines(started), started_before + NRUNS - finished);
    free(started);
    char *a = read_rel(&ref, "runs/sweep.csv"), *b = read_rel(&f, "runs/sweep.csv");
    assert_string_equal(a, b);
    free(a);
    free(b);
    fixture_free(&ref);
    fixture_free(&f);
}

// A run's arithmetic must not depend on --jobs: every worker computes with one OpenBLAS
// thread (multithreaded sgemm rounds differently), even when the sweep has the machine alone.
static void every_run_uses_one_openblas_thread_for_any_jobs(void **state) {
    (void)state;
    for (int jobs = 1; jobs <= 2; jobs++) {
        fixture f;
        fixture_init(&f);
        openblas_set_num_threads(2);
        assert_int_equal(sweep(&f, jobs, NULL), 0);
        char *s = read_rel(&f, "threads");
        assert_non_null(s);
        assert_string_equal(s, "1\n1\n1\n1\n1\n1\n");
        free(s);
        fixture_free(&f);
    }
}

static void zero_jobs_is_rejected(void **state) {
    (void)state;
    fixture f;
    fixture_init(&f);
    assert_int_equal(sweep(&f, 0, NULL), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "--jobs"));
    fixture_free(&f);
}

// The Edge of Stability rules (eos.h), worked by hand with s_GF = 10 (flat regime S = 10,
// eta_c = 0.2): at eta = 0.25, 2/eta = 8 and S = 8.5 qualifies (|8.5 - 8| <= 0.8, 8.5 < 9);
// at eta = 0.3, S = 9.5 is not below 0.9 s_GF; the transition is the SMALLEST qualifying
// eta whatever the order; a diverged run (NAN) and a non-positive s_ref never qualify.
static void eos_transition_is_the_smallest_eta_below_s_gf_at_two_over_eta(void **state) {
    (void)state;
    assert_true(ns_at_eos(0.25, 8.5));
    assert_true(ns_at_eos(0.25, 7.2));   // the edge: |7.2 - 8| = 0.8
    assert_false(ns_at_eos(0.25, 7.1));
    assert_false(ns_at_eos(0.25, NAN));
    double eta[] = {0.4, 0.3, 0.1, 0.25, 0.35}, s[] = {5.1, 9.5, 10, 8.5, NAN};
    TU_ASSERT_REL(ns_eos_transition(eta, s, 5, 10), 0.25, 0);
    s[3] = 9.4;  // 0.25 no longer more than 10% below s_GF: 0.4 (S = 5.1 vs 2/eta = 5) is next
    TU_ASSERT_REL(ns_eos_transition(eta, s, 5, 10), 0.4, 0);
    s[0] = NAN;  // diverged
    assert_true(isnan(ns_eos_transition(eta, s, 5, 10)));
    assert_true(isnan(ns_eos_transition(eta, s, 5, NAN)));
    assert_true(isnan(ns_eos_transition(eta, s, 5, -1)));
}

// The grid around eta_c: symmetric in log eta for one span (an odd k hits eta_c), and
// from eta_c/lo to eta_c*hi for two.
static void lr_grid_around_eta_c_spans_the_given_factors(void **state) {
    (void)state;
    double g[5];
    ns_lr_grid_around(g, 0.1, 4, 4, 5);
    double want[] = {0.025, 0.05, 0.1, 0.2, 0.4};
    for (int j = 0; j < 5; j++) TU_ASSERT_REL(g[j], want[j], 1e-15);
    ns_lr_grid_around(g, 0.1, 2, 8, 5);
    TU_ASSERT_REL(g[0], 0.05, 1e-15);
    TU_ASSERT_REL(g[2], 0.2, 1e-15);
    TU_ASSERT_REL(g[4], 0.8, 1e-15);
    ns_lr_grid_around(g, 0.1, 2, 8, 1);
    TU_ASSERT_REL(g[0], 0.1, 0);
}

static void lr_span_is_one_factor_or_lo_hi_both_above_1(void **state) {
    (void)state;
    double span[2] = {0, 0};
    assert_int_equal(ns_lr_span_parse("8", span), 0);
    assert_true(span[0] == 8 && span[1] == 8);
    assert_int_equal(ns_lr_span_parse("2:3.5", span), 0);
    assert_true(span[0] == 2 && span[1] == 3.5);
    assert_int_equal(ns_lr_span_parse("0.5", span), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "(--lr-span expects F or LO:HI, factors above 1)"));
    assert_true(span[0] == 2 && span[1] == 3.5);  // unchanged on error
    assert_int_equal(ns_lr_span_parse("2:", span), NS_EINVAL);
    assert_int_equal(ns_lr_span_parse("2:x", span), NS_EINVAL);
    char longer[100];
    memset(longer, '1', 80);
    snprintf(longer + 80, 20, ":2");
    assert_int_equal(ns_lr_span_parse(longer, span), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "--lr-span expects F or LO:HI (factors above 1), got"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csv_is_identical_for_jobs_1_and_3),
        cmocka_unit_test(runs_start_in_index_order_with_one_job),
        cmocka_unit_test(at_most_jobs_workers_run_at_once),
        cmocka_unit_test(finished_runs_are_skipped_on_resume),
        cmocka_unit_test(failed_and_killed_runs_fail_the_sweep_but_the_csv_keeps_the_rest),
        cmocka_unit_test(a_second_sweep_into_the_same_directory_is_refused_while_one_runs),
        cmocka_unit_test(the_sweep_lock_is_a_regular_file_in_the_csv_directory_that_stays),
        cmocka_unit_test(a_sweep_killed_midway_resumes_without_redoing_finished_runs),
        cmocka_unit_test(every_run_uses_one_openblas_thread_for_any_jobs),
        cmocka_unit_test(zero_jobs_is_rejected),
        cmocka_unit_test(eos_transition_is_the_smallest_eta_below_s_gf_at_two_over_eta),
        cmocka_unit_test(lr_grid_around_eta_c_spans_the_given_factors),
        cmocka_unit_test(lr_span_is_one_factor_or_lo_hi_both_above_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
