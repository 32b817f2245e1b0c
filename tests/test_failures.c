// test_failures.c — failure paths: when the k-th allocation fails (NS_FAIL_ALLOC_AT=k, the
// hook in ns_malloc / ns_calloc / ns_realloc), every command stops with a non-zero exit and
// says why in sentences that start "normsharp: " — never a crash, never "unknown error",
// never a success that silently lost a measurement.
#include <sys/stat.h>
#include "testutil.h"

// A folder whose `gnuplot` draws nothing and succeeds: the report's own steps are under
// test here, and a real gnuplot per figure per failure point would take minutes.
static const char *fake_gnuplot_dir(void) {
    static char dir[300];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", tu_tmpdir());
        char path[400];
        snprintf(path, sizeof path, "%s/gnuplot", dir);
        tu_spit(path, "#!/bin/sh\nexit 0\n", 17);
        if (chmod(path, 0755)) fail_msg("chmod %s failed", path);
    }
    return dir;
}

// Runs `NS_FAIL_ALLOC_AT=k normsharp ARGS` (stdout discarded); returns the exit status, or
// -1 for a signal. stderr goes to err.
static int run_failing_at(long k, char *err, size_t cap, const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "PATH=%s:$PATH NS_FAIL_ALLOC_AT=%ld %s %s 2>&1 >/dev/null", fake_gnuplot_dir(), k, tu_bin(), args);
    FILE *p = popen(cmd, "r");
    if (!p) fail_msg("popen failed");
    size_t n = fread(err, 1, cap - 1, p);
    err[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// What the command said: lines "normsharp: ..." (at least one), and a sweep's own progress
// and closing lines; no "unknown error", no sanitizer report.
static void assert_sentences(const char *err, long k, const char *args) {
    if (!strstr(err, "normsharp: ")) fail_msg("k=%ld: '%s' failed without a sentence:\n%s", k, args, err);
    if (strstr(err, "unknown error") || strstr(err, "Sanitizer") || strstr(err, "runtime error"))
        fail_msg("k=%ld: '%s' said:\n%s", k, args, err);
    for (const char *l = err; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
        if (*l == '\n') continue;
        if (strncmp(l, "normsharp: ", 11) && strncmp(l, "sweep", 5))
            fail_msg("k=%ld: '%s' said a line that is not a sentence:\n%s", k, args, err);
    }
}

// The number of allocations the command makes (NS_FAIL_ALLOC_AT=0 prints it at exit; a
// sweep's workers print theirs too: the largest counts).
static long allocations_of(const char *args) {
    char err[16384];
    if (run_failing_at(0, err, sizeof err, args) != 0) fail_msg("'%s' failed:\n%s", args, err);
    long most = 0;
    for (const char *p = err; (p = strstr(p, "normsharp: ")); p++) {
        long n;
        if (sscanf(p, "normsharp: %ld allocations", &n) == 1 && n > most) most = n;
    }
    if (most <= 0) fail_msg("'%s' did not count its allocations:\n%s", args, err);
    return most;
}

// Fails the k-th allocation for k = 1..32, then about every 25% more, and the last: each
// run must stop with a non-zero status and sentences. Past the last, it must succeed.
// FMT may contain %s once: a fresh output directory for each run.
// RESET (may be NULL), a shell command run before each run, brings the files back to the
// state the count was taken in.
static void sweep_failures(const char *fmt, const char *reset) {
    TU_REQUIRE_DOUBLE();  // the same paths in every precision: the double builds (one with sanitizers) suffice
    char err[16384], args[4096];
    snprintf(args, sizeof args, fmt, tu_tmpdir());
    if (reset && system(reset) != 0) fail_msg("%s failed", reset);
    long total = allocations_of(args), tried = 0;
    for (long k = 1; k <= total; k = k < 32 ? k + 1 : k + k / 4 < total ? k + k / 4 : k == total ? total + 1 : total) {
        snprintf(args, sizeof args, fmt, tu_tmpdir());
        if (reset && system(reset) != 0) fail_msg("%s failed", reset);
        int rc = run_failing_at(k, err, sizeof err, args);
        tried++;
        if (rc < 0) fail_msg("k=%ld: '%s' crashed:\n%s", k, args, err);
        if (rc == 0) fail_msg("k=%ld of %ld: '%s' succeeded although an allocation failed:\n%s", k, total, args, err);
        assert_sentences(err, k, args);
    }
    snprintf(args, sizeof args, fmt, tu_tmpdir());
    if (reset && system(reset) != 0) fail_msg("%s failed", reset);
    if (run_failing_at(total + 1, err, sizeof err, args) != 0) fail_msg("k=%ld: '%s' failed:\n%s", total + 1, args, err);
    print_message("    %ld of %ld failure points tried: %s\n", tried, total, fmt);
}

#define TINY "--arch fc-tanh-16 --n 64 --n-test 64 --top-k 2 --trace-probes 2 --max-steps 20"

static void train_stops_with_a_sentence_whichever_allocation_fails(void **state) {
    (void)state;
    sweep_failures("train " TINY " --lr 0.1 --out %s", NULL);
}

static void sweep_stops_with_a_sentence_whichever_allocation_fails(void **state) {
    (void)state;
    sweep_failures("sweep " TINY " --lr 0.05,0.1 --jobs 1 --out %s", NULL);
}

static void dln_train_stops_with_a_sentence_whichever_allocation_fails(void **state) {
    (void)state;
    sweep_failures("dln train --x 0.5,1,2 --beta-star 1,1,1 --alpha 0.1 --lr 0.05 --out %s", NULL);
}

static void dln_sweep_stops_with_a_sentence_whichever_allocation_fails(void **state) {
    (void)state;
    sweep_failures("dln sweep --task sparse --n 6 --d 10 --s 2 --noise 0.2 --seed 3 --lr 0.02:3:2 --jobs 1 --out %s", NULL);
}

static void report_stops_with_a_sentence_whichever_allocation_fails(void **state) {
    (void)state;
    char dir[256], args[1024], err[8192];
    snprintf(dir, sizeof dir, "%s", tu_tmpdir());
    snprintf(args, sizeof args, "dln sweep --task sparse --n 6 --d 10 --s 2 --noise 0.2 --seed 3 --lr 0.02:3:3 --out %s/dln",
             dir);
    if (tu_run(err, sizeof err, "%s", args) != 0) fail_msg("%s: %s", args, err);
    snprintf(args, sizeof args, "sweep " TINY " --lr 0.05,0.1 --out %s", dir);
    if (tu_run(err, sizeof err, "%s", args) != 0) fail_msg("%s: %s", args, err);
    snprintf(args, sizeof args, "report %s --json", dir);  // %s of sweep_failures: unused here
    char fmt[1100];
    snprintf(fmt, sizeof fmt, "%s%%.0s", args);
    char reset[400];
    snprintf(reset, sizeof reset, "rm -rf %s/report", dir);  // the report's own output changes what it does
    sweep_failures(fmt, reset);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(train_stops_with_a_sentence_whichever_allocation_fails),
        cmocka_unit_test(sweep_stops_with_a_sentence_whichever_allocation_fails),
        cmocka_unit_test(dln_train_stops_with_a_sentence_whichever_allocation_fails),
        cmocka_unit_test(dln_sweep_stops_with_a_sentence_whichever_allocation_fails),
        cmocka_unit_test(report_stops_with_a_sentence_whichever_allocation_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
