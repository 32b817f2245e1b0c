// run_fixtures.h — what the tests of `normsharp train`, `flow` and `sweep` (train.c,
// sweep.c) share: the tiny problem (64 Fashion-MNIST examples, a 16-unit network), the
// captured output, and helpers to read, compare and run.
#ifndef NORMSHARP_TESTS_CLI_RUN_FIXTURES_H
#define NORMSHARP_TESTS_CLI_RUN_FIXTURES_H
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include "testutil.h"

#define TINY "--arch fc-tanh-16 --n 64 --n-test 64 --top-k 2 --trace-probes 2"
#define SWEEP_DIR "fashion-mnist/fc-tanh-16/mse"

static char out[65536];

static inline char *slurp(const char *fmt, const char *a, const char *b) {
    char p[1024], *data = NULL;
    snprintf(p, sizeof p, fmt, a, b);
    if (ns_read_file(p, &data, NULL)) return NULL;
    return data;
}

// summary.json with its "timing" block dropped (everything else must be reproducible).
static inline char *summary_without_timing(const char *dir) {
    char *s = slurp("%s/summary.json%s", dir, "");
    if (!s) return NULL;
    char *t = strstr(s, "\"timing\"");
    if (t) *t = 0;
    return s;
}

// Two fresh directories, for two runs to compare.
static inline void two_tmpdirs(char *a, char *b, size_t cap) {
    snprintf(a, cap, "%s", tu_tmpdir());
    snprintf(b, cap, "%s", tu_tmpdir());
}

// Both texts could be read and are equal; frees them.
static inline void assert_same_text(char *a, char *b) {
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

// `normsharp ARGS --json --out DIR` exits 0; its stdout, parsed, goes to *v.
static inline void run_json(ns_jval *v, const char *args, const char *dir) {
    assert_int_equal(tu_run(out, sizeof out, "%s --json --out %s", args, dir), 0);
    assert_int_equal(ns_json_parse(out, strlen(out), "stdout", v), 0);
}

// The text of `normsharp ARGS` run on a pseudo-terminal of 80 columns (script(1)); NULL
// (the test is skipped) when script is not installed.
static inline char *on_a_terminal(const char *args) {
    if (system("command -v script >/dev/null 2>&1") != 0) return NULL;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "script -qec 'stty cols 80 2>/dev/null; %s %s' /dev/null 2>&1", tu_bin(), args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, p);
    text[len] = 0;
    assert_int_equal(pclose(p), 0);
    return text;
}

// `normsharp init` of the TINY model at `seed` into DIR/w; returns that path.
static inline const char *init_tiny(const char *dir, const char *seed) {
    static char w[600];
    snprintf(w, sizeof w, "%s/w", dir);
    int rc = tu_run(out, sizeof out, "init --arch fc-tanh-16 --n 64 --n-test 64 --seed %s --out %s", seed, w);
    if (rc) fail_msg("init failed (%d): %s", rc, out);
    return w;
}
#endif
