// testutil.h — shared helpers for the cmocka suites.
#ifndef NORMSHARP_TESTUTIL_H
#define NORMSHARP_TESTUTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "normsharp/common.h"

// A fresh temporary directory for one test (under $TMPDIR or /tmp). Not removed, so a
// failing test leaves its files for inspection; tests/run.sh cleans the parent.
static inline const char *tu_tmpdir(void) {
    static char buf[256];
    const char *base = getenv("NS_TEST_TMP");
    snprintf(buf, sizeof buf, "%s/t.XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(buf)) fail_msg("mkdtemp failed");
    return buf;
}

// Path of the normsharp binary under test (tests/run.sh sets NS_BIN).
static inline const char *tu_bin(void) {
    const char *b = getenv("NS_BIN");
    return b ? b : "./normsharp";
}

// Run `normsharp ARGS` through the shell, capture stdout+stderr into out (may be NULL),
// return the exit status (or -1 if killed by a signal, e.g. a sanitizer abort).
static inline int tu_run(char *out, size_t cap, const char *fmt, ...) {
    char args[4096], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", tu_bin(), args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t len = 0;
    char tmp[4096];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, p)) > 0) {
        if (out && len + 1 < cap) {
            size_t c = r < cap - 1 - len ? r : cap - 1 - len;
            memcpy(out + len, tmp, c);
            len += c;
        }
    }
    if (out && cap) out[len] = 0;
    int st = pclose(p);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return -1;
}

// Run `normsharp ARGS` and fail unless it exits with `code` and its output (stdout and
// stderr, captured into the char array `out` that the test file declares) contains `needle`.
#define EXPECT_EXIT(code, needle, ...)                                                          \
    do {                                                                                        \
        int st_ = tu_run(out, sizeof out, __VA_ARGS__);                                         \
        if (st_ != (code) || !strstr(out, needle))                                              \
            fail_msg("expected exit %d and '%s', got exit %d:\n%s", code, needle, st_, out);    \
    } while (0)

// Relative difference |a-b| / max(|a|,|b|,floor).
static inline double tu_rel(double a, double b, double floor) {
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    if (m < floor) m = floor;
    return fabs(a - b) / m;
}

#define TU_ASSERT_REL(a, b, tol)                                                        \
    do {                                                                                \
        double _a = (a), _b = (b);                                                      \
        if (!(tu_rel(_a, _b, 1e-300) <= (tol)))                                         \
            fail_msg("%s = %.17g vs %s = %.17g: relative %.3g > %.3g", #a, _a, #b, _b, \
                     tu_rel(_a, _b, 1e-300), (double)(tol));                            \
    } while (0)

#ifdef NS_DOUBLE
#define TU_REQUIRE_DOUBLE() ((void)0)
#else
// Tight derivative checks need the double build (make PRECISION=double).
#define TU_REQUIRE_DOUBLE() skip()
#endif

// The whole file, NUL-terminated (its length in *len unless len is NULL), or the test
// fails naming the file. free() it. (Not inlined: GCC's -Wdangling-pointer mistakes the
// returned buffer for the address of the local once inlined.)
static __attribute__((unused, noinline)) char *tu_slurp(const char *path, size_t *len) {
    char *s = NULL;
    if (ns_read_file(path, &s, len)) fail_msg("cannot read %s: %s", path, ns_errmsg());
    return s;
}

// Write len bytes to path (created or truncated), or the test fails naming the file.
static inline void tu_spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    if (len && fwrite(data, 1, len, f) != len) fail_msg("cannot write %s", path);
    if (fclose(f) != 0) fail_msg("cannot write %s", path);
}

// max_i |a_i - b_i| / max(|b_i|, 1e-3 max_j |b_j|): the relative error of a vector, with a
// floor for the components that are tiny against the rest.
static inline double tu_vec_rel_err(const real *a, const real *b, size_t n) {
    double big = 0, worst = 0;
    for (size_t i = 0; i < n; i++) big = fmax(big, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++) {
        double den = fmax(fabs((double)b[i]), 1e-3 * big);
        worst = fmax(worst, fabs((double)a[i] - b[i]) / (den > 0 ? den : 1e-300));
    }
    return worst;
}
#endif
