// `normsharp sweep` from the command line, on the tiny problem of run_fixtures.h: --jobs
// independence, a sweep run equal to `train`, resume after SIGKILL and Ctrl-C, progress
// lines, the grid around eta_c (--flow --lr-around, --lr-span), bad input, sweeps from
// saved weights, and 64-bit seeds.
#include "run_fixtures.h"

// The CSV without its last column (wall-clock seconds, the one thing that may differ).
static char *csv_without_seconds(const char *dir) {
    char *s = slurp("%s/%s/sweep.csv", dir, SWEEP_DIR);
    if (!s) return NULL;
    char *w = s;
    for (char *line = s; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char *comma = NULL;
        for (size_t k = 0; k < len; k++)
            if (line[k] == ',') comma = line + k;
        size_t keep = comma ? (size_t)(comma - line) : len;
        memmove(w, line, keep);
        w += keep;
        *w++ = '\n';
        if (!nl) break;
        line = nl + 1;
    }
    *w = 0;
    return s;
}

#define GRID "--lr 0.02:2:5 --max-steps 400 --log-every 50"

static void sweep_csv_is_the_same_for_jobs_1_and_jobs_2(void **state) {
    (void)state;
    char a[512], b[512];
    two_tmpdirs(a, b, sizeof a);
    assert_int_equal(tu_run(out, sizeof out, "sweep " TINY " " GRID " --seeds 0,1 --jobs 1 --out %s", a), 0);
    assert_int_equal(tu_run(out, sizeof out, "sweep " TINY " " GRID " --seeds 0,1 --jobs 2 --out %s", b), 0);
    char *ca = csv_without_seconds(a);
    assert_non_null(ca);
    int lines = 0;
    for (char *p = ca; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 1 + 2 * 5);
    assert_non_null(strstr(ca, "\n0.02,0,"));
    assert_non_null(strstr(ca, "\n2,1,diverged,"));
    assert_same_text(ca, csv_without_seconds(b));
}

static void sweep_run_equals_train_with_one_thread(void **state) {
    (void)state;
    char a[512], b[512];
    two_tmpdirs(a, b, sizeof a);
    assert_int_equal(tu_run(out, sizeof out, "sweep " TINY " --lr 0.1 --max-steps 300 --seeds 3 --out %s", a), 0);
    assert_int_equal(tu_run(out, sizeof out, "train " TINY " --lr 0.1 --max-steps 300 --seed 3 --threads 1 --out %s", b), 0);
    char sub[700];
    snprintf(sub, sizeof sub, "%s/" SWEEP_DIR "/seed_3/lr_0.1", a);
    assert_same_text(summary_without_timing(sub), summary_without_timing(b));
}

static double mtime_of(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    return (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec;
}

#define SLOW "--lr 0.01:0.1:6 --max-steps 3000 --log-every 300"

// `sweep TINY SLOW --out dir` in a child process, stdout to /dev/null, stderr to `err`.
static pid_t start_slow_sweep(const char *dir, const char *err) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644), devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(fd, 2);
        execl(tu_bin(), tu_bin(), "sweep", "--arch", "fc-tanh-16", "--n", "64", "--n-test", "64", "--top-k", "2",
              "--trace-probes", "2", "--lr", "0.01:0.1:6", "--max-steps", "3000", "--log-every", "300", "--out", dir,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

// Wait (at most a minute) until `path` exists, then send `sig` to pid; its wait status.
static int signal_when_exists(pid_t pid, const char *path, int sig) {
    for (int k = 0; k < 12000 && !ns_exists(path); k++) {
        struct timespec ts = {0, 5000000L};
        nanosleep(&ts, NULL);
    }
    kill(pid, sig);
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static void sweep_killed_midway_resumes_without_recomputing_finished_runs(void **state) {
    (void)state;
    char ref[512], d[512];
    two_tmpdirs(ref, d, sizeof ref);
    assert_int_equal(tu_run(out, sizeof out, "sweep " TINY " " SLOW " --jobs 2 --out %s", ref), 0);
    pid_t pid = start_slow_sweep(d, "/dev/null");
    // wait until the first two runs are finished, then kill the sweep outright
    char s0[700], s1[700];
    snprintf(s0, sizeof s0, "%s/" SWEEP_DIR "/seed_0/lr_0.01/summary.json", d);
    snprintf(s1, sizeof s1, "%s/" SWEEP_DIR "/seed_0/lr_0.0158489/summary.json", d);
    signal_when_exists(pid, s1, SIGKILL);
    assert_true(ns_exists(s0) && ns_exists(s1));
    char csvp[700];
    snprintf(csvp, sizeof csvp, "%s/" SWEEP_DIR "/sweep.csv", d);
    assert_false(ns_exists(csvp));  // killed before the end: no CSV yet
    double m0 = mtime_of(s0), m1 = mtime_of(s1);
    struct timespec ts = {0, 20000000L};
    nanosleep(&ts, NULL);
    assert_int_equal(tu_run(out, sizeof out, "sweep " TINY " " SLOW " --out %s", d), 0);
    assert_non_null(strstr(out, "already finished"));
    assert_true(mtime_of(s0) == m0 && mtime_of(s1) == m1);  // not recomputed
    assert_same_text(csv_without_seconds(ref), csv_without_seconds(d));
    // every run's files parse
    const char *etas[] = {"0.01", "0.0158489", "0.0251189", "0.0398107", "0.0630957", "0.1"};
    for (int i = 0; i < 6; i++) {
        char p[800];
        snprintf(p, sizeof p, "%s/" SWEEP_DIR "/seed_0/lr_%s/summary.json", d, etas[i]);
        ns_jval v;
        assert_int_equal(ns_json_parse_file(p, &v), 0);
        ns_jval_free(&v);
        snprintf(p, sizeof p, "%s/" SWEEP_DIR "/seed_0/lr_%s/trajectory.csv", d, etas[i]);
        assert_true(ns_exists(p));
    }
}

// Ctrl-C (SIGINT to the sweep) says that rerunning the same command resumes, and does.
static void sweep_interrupted_by_ctrl_c_says_that_rerunning_resumes_it(void **state) {
    (void)state;
    const char *d = tu_tmpdir();
    char err[600];
    snprintf(err, sizeof err, "%s/stderr.txt", d);
    pid_t pid = start_slow_sweep(d, err);
    char s0[700];
    snprintf(s0, sizeof s0, "%s/" SWEEP_DIR "/seed_0/lr_0.01/summary.json", d);
    int st = signal_when_exists(pid, s0, SIGINT);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT);
    char *text = NULL;
    assert_int_equal(ns_read_file(err, &text, NULL), 0);
    if (!strstr(text, "rerun the same command to resume")) fail_msg("no resume hint after Ctrl-C: %s", text);
    free(text);
    assert_int_equal(tu_run(out, sizeof out, "sweep " TINY " " SLOW " --out %s", d), 0);
    assert_non_null(strstr(out, "already finished"));
}

// Off a terminal, each finished run is one line, and a diverged run says so.
static void piped_sweep_lines_say_when_a_run_diverged(void **state) {
    (void)state;
    const char *d = tu_tmpdir();
    assert_int_equal(tu_run(out, sizeof out, "sweep " TINY " --lr 0.01,100 --max-steps 30 --out %s", d), 0);
    if (!strstr(out, "lr=100 seed=0 DIVERGED in")) fail_msg("no DIVERGED line: %s", out);
    if (!strstr(out, "lr=0.01 seed=0 max_steps in")) fail_msg("no status line: %s", out);
}

// On a terminal (a pty from script(1)) the updating line of a --jobs 2 sweep and its flow
// fits 80 columns, and the flow phase shows t, the loss against its goal and S.
static void sweep_progress_line_fits_80_columns_with_two_jobs(void **state) {
    (void)state;
    char args[1024];
    snprintf(args, sizeof args,
             "sweep " TINY " --flow --lr-around 4 --loss-goal 0.2 --max-steps 4000 --jobs 2 --out %s", tu_tmpdir());
    char *text = on_a_terminal(args);
    if (!text) skip();
    int lines = 0, flow_lines = 0;
    for (char *seg = text; *seg;) {
        size_t n = strcspn(seg, "\r\n");
        if (n > 3 && !strncmp(seg, "\033[K", 3)) {  // a progress line: after "\r\033[K"
            lines++;
            if (n - 3 > 80) fail_msg("progress line of %zu columns: %.*s", n - 3, (int)(n - 3), seg + 3);
            if (!strncmp(seg + 3, "flows", 5) && strstr(seg, " t ") && strstr(seg, "loss") && strstr(seg, "goal 0.2"))
                flow_lines++;
            if (!strncmp(seg + 3, "flows 0/1", 9)) fail_msg("flow phase shows 0/1: %.*s", (int)n, seg);
        }
        seg += n + (seg[n] != 0);
    }
    if (lines == 0) fail_msg("no progress line on the terminal: %s", text);
    (void)flow_lines;
}

static void sweep_refuses_to_resume_with_different_options(void **state) {
    (void)state;
    const char *d = tu_tmpdir();
    assert_int_equal(tu_run(out, sizeof out, "sweep " TINY " --lr 0.1 --max-steps 50 --out %s", d), 0);
    assert_int_equal(tu_run(out, sizeof out, "sweep " TINY " --lr 0.1 --max-steps 60 --out %s", d), 2);
    assert_non_null(strstr(out, "max_steps"));
    assert_non_null(strstr(out, "other options"));
}

static void sweep_with_flow_centres_the_grid_on_eta_c(void **state) {
    (void)state;
    const char *d = tu_tmpdir();
    ns_jval v;
    run_json(&v, "sweep " TINY " --flow --loss-goal 0.2 --lr-around 3 --lr-span 2 --max-steps 300", d);
    const ns_jval *seeds = ns_jget(&v, "seeds");
    assert_true(seeds && seeds->type == NS_JARR && seeds->n == 1);
    const ns_jval *s0 = &seeds->items[0], *runs = ns_jget(s0, "runs");
    double eta_c = ns_jnum(s0, "eta_c", NAN);
    assert_true(eta_c > 0);
    assert_true(runs && runs->n == 3);
    TU_ASSERT_REL(ns_jnum(&runs->items[0], "eta", NAN), eta_c / 2, 1e-12);
    TU_ASSERT_REL(ns_jnum(&runs->items[1], "eta", NAN), eta_c, 1e-12);
    TU_ASSERT_REL(ns_jnum(&runs->items[2], "eta", NAN), eta_c * 2, 1e-12);
    ns_jval_free(&v);
    char *f = slurp("%s/" SWEEP_DIR "/seed_0/flow/summary.json%s", d, "");
    assert_non_null(f);
    free(f);
}

// --lr-span LO:HI: K rates from eta_c/LO to eta_c*HI, log-spaced; bad spans are usage errors.
static void sweep_with_an_asymmetric_span_reaches_further_above_eta_c(void **state) {
    (void)state;
    const char *d = tu_tmpdir();
    ns_jval v;
    run_json(&v, "sweep " TINY " --flow --loss-goal 0.2 --lr-around 4 --lr-span 2:4 --max-steps 300", d);
    const ns_jval *s0 = &ns_jget(&v, "seeds")->items[0], *runs = ns_jget(s0, "runs");
    double eta_c = ns_jnum(s0, "eta_c", NAN);
    assert_true(eta_c > 0 && runs && runs->n == 4);
    const double want[4] = {0.5, 1, 2, 4};  // eta_c/2 .. 4 eta_c in 3 factors of 2
    for (int i = 0; i < 4; i++) TU_ASSERT_REL(ns_jnum(&runs->items[i], "eta", NAN), eta_c * want[i], 1e-12);
    ns_jval_free(&v);
    const char *bad[] = {"1", "0.5:4", "2:", "2:x", "nan", "2:4:8"};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(tu_run(out, sizeof out, "sweep " TINY " --flow --loss-goal 0.2 --lr-around 3 --lr-span %s --out %s",
                                bad[i], d), 2);
        assert_non_null(strstr(out, "--lr-span"));
    }
}

static void bad_sweep_input_is_a_usage_error_with_exit_status_2(void **state) {
    (void)state;
    const char *d = tu_tmpdir();
    char file[600];
    snprintf(file, sizeof file, "%s/a-file", d);
    FILE *f = fopen(file, "w");
    fclose(f);
    struct {
        const char *args, *says;
    } cases[] = {
        {"--lr ''", "--lr"},
        {"--lr 0", "--lr"},
        {"--lr -0.1", "--lr"},
        {"--lr 0.1,,0.2", "--lr"},
        {"--lr 0.1 --jobs 0", "--jobs"},
        {"--lr-around 5", "--flow"},
        {"", "--lr"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = tu_run(out, sizeof out, "sweep " TINY " %s --out %s/o", cases[i].args, d);
        if (rc != 2 || !strstr(out, cases[i].says))
            fail_msg("sweep %s: exit %d, output '%s'", cases[i].args, rc, out);
    }
    assert_int_equal(tu_run(out, sizeof out, "sweep " TINY " --lr 0.1 --out %s/sub", file), 2);
    assert_non_null(strstr(out, "--out"));
    assert_int_equal(tu_run(out, sizeof out, "train " TINY " --lr 0 --out %s/t", d), 2);
    assert_int_equal(tu_run(out, sizeof out, "train " TINY " --out %s/t", d), 2);
    assert_int_equal(tu_run(out, sizeof out, "train " TINY " --lr 0.1 --out %s/sub", file), 2);
    assert_int_equal(tu_run(out, sizeof out, "flow " TINY " --out %s/f", d), 2);
}

// A sweep from weights has one theta_0: it runs under the weights' seed, in seed_<that>.
static void sweep_from_weights_runs_under_their_seed(void **state) {
    (void)state;
    const char *d = tu_tmpdir();
    const char *w = init_tiny(d, "7");
    assert_int_equal(tu_run(out, sizeof out, "sweep --weights %s --lr 0.1 --max-steps 2 --quiet --out %s/s", w, d), 0);
    char p[800];
    snprintf(p, sizeof p, "%s/s/" SWEEP_DIR "/seed_7/lr_0.1/summary.json", d);
    assert_true(ns_exists(p));
    char *csv = slurp("%s/s/" SWEEP_DIR "/sweep.csv%s", d, "");
    assert_non_null(csv);
    assert_non_null(strstr(csv, "\n0.1,7,"));
    free(csv);
}

// Seeds are unsigned 64-bit: 2^63 and 2^64 - 1 are written as such in summary.json,
// sweep.csv, the --json table and the folder names, and read back exactly.
static void seeds_of_2_to_the_63_and_above_are_recorded_unsigned(void **state) {
    (void)state;
    const char *d = tu_tmpdir();
    const char *big[] = {"9223372036854775808", "18446744073709551615"};
    ns_jval v;
    char args[600];
    snprintf(args, sizeof args, "sweep " TINY " --lr 0.1 --max-steps 2 --seeds %s,%s", big[0], big[1]);
    run_json(&v, args, d);
    const ns_jval *seeds = ns_jget(&v, "seeds");
    assert_true(seeds && seeds->type == NS_JARR && seeds->n == 2);
    for (int k = 0; k < 2; k++) {
        uint64_t s = 0;
        assert_int_equal(ns_jget_u64(&seeds->items[k], "seed", &s), 0);
        char text[32];
        snprintf(text, sizeof text, "%llu", (unsigned long long)s);
        assert_string_equal(text, big[k]);
        char p[900];
        snprintf(p, sizeof p, "%s/" SWEEP_DIR "/seed_%s/lr_0.1/summary.json", d, big[k]);
        char *sum = slurp("%s%s", p, "");
        assert_non_null(sum);
        char want[64];
        snprintf(want, sizeof want, "\"seed\": \"%s\"", big[k]);
        if (!strstr(sum, want)) fail_msg("%s does not record %s: %s", p, want, sum);
        free(sum);
    }
    ns_jval_free(&v);
    char *csv = slurp("%s/" SWEEP_DIR "/sweep.csv%s", d, "");
    assert_non_null(csv);
    assert_non_null(strstr(csv, "\n0.1,9223372036854775808,"));
    assert_non_null(strstr(csv, "\n0.1,18446744073709551615,"));
    free(csv);
    // the report reads them back: two seeds, named exactly
    int rc = tu_run(out, sizeof out, "report %s", d);
    if (rc || !strstr(out, "seed 9223372036854775808, n = 64") || !strstr(out, "seed 18446744073709551615, n = 64") ||
        !strstr(out, "seeds 9223372036854775808, 18446744073709551615"))
        fail_msg("report of seeds 2^63 and 2^64 - 1: exit %d, '%s'", rc, out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sweep_csv_is_the_same_for_jobs_1_and_jobs_2),
        cmocka_unit_test(sweep_run_equals_train_with_one_thread),
        cmocka_unit_test(sweep_killed_midway_resumes_without_recomputing_finished_runs),
        cmocka_unit_test(sweep_refuses_to_resume_with_different_options),
        cmocka_unit_test(sweep_interrupted_by_ctrl_c_says_that_rerunning_resumes_it),
        cmocka_unit_test(piped_sweep_lines_say_when_a_run_diverged),
        cmocka_unit_test(sweep_progress_line_fits_80_columns_with_two_jobs),
        cmocka_unit_test(sweep_with_flow_centres_the_grid_on_eta_c),
        cmocka_unit_test(sweep_with_an_asymmetric_span_reaches_further_above_eta_c),
        cmocka_unit_test(bad_sweep_input_is_a_usage_error_with_exit_status_2),
        cmocka_unit_test(sweep_from_weights_runs_under_their_seed),
        cmocka_unit_test(seeds_of_2_to_the_63_and_above_are_recorded_unsigned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
