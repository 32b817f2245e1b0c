// Errors as one sentence in a thread-local buffer, and checked allocation.
#include <errno.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "normsharp/common.h"

// The precision this library was built for (common.h: a program of the other fails to link).
#ifdef NS_DOUBLE
const int ns_precision_float64 = 1;
#else
const int ns_precision_float32 = 1;
#endif

static _Thread_local char errbuf[1024];

int ns_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return code;
}

const char *ns_errmsg(void) { return errbuf[0] ? errbuf : "unknown error"; }
void ns_clear_error(void) { errbuf[0] = 0; }

// Allocation-failure injection for tests: NS_FAIL_ALLOC_AT=k (k >= 1) makes the k-th call
// (counted across threads) of ns_malloc / ns_calloc / ns_realloc fail as if memory ran out,
// once; every other call is unaffected. NS_FAIL_ALLOC_AT=0 fails none and prints the number
// of calls to stderr at exit, so a test knows how many failure points a command has.
// Unset: no failure, no count. Always compiled in (one atomic increment per allocation), so
// that the shipped binary's failure paths are the ones tested (tests/test_failures.c).
static long fail_at = -1;  // -1: not read yet; 0: off (or counting)
static _Atomic long nalloc;

static void print_alloc_count(void) { fprintf(stderr, "normsharp: %ld allocations\n", (long)nalloc); }

static int injected_failure(void) {
    long at = __atomic_load_n(&fail_at, __ATOMIC_RELAXED);
    if (at < 0) {
        const char *s = getenv("NS_FAIL_ALLOC_AT");
        char *end;
        long v = s ? strtol(s, &end, 10) : -1;
        int valid = s && *s && *end == 0 && v >= 0;
        long unread = -1;
        if (__atomic_compare_exchange_n(&fail_at, &unread, valid ? v : 0, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED) &&
            valid && v == 0)
            atexit(print_alloc_count);
        at = __atomic_load_n(&fail_at, __ATOMIC_RELAXED);
    }
    return ++nalloc == at;
}

void *ns_malloc(size_t size) {
    void *p = injected_failure() ? NULL : malloc(size ? size : 1);
    if (!p) ns_fail(NS_ENOMEM, "out of memory allocating %zu bytes", size);
    return p;
}

void *ns_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) {
        ns_fail(NS_ENOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = injected_failure() ? NULL : calloc(count ? count : 1, size ? size : 1);
    if (!p) ns_fail(NS_ENOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *ns_realloc(void *p, size_t size) {
    void *q = injected_failure() ? NULL : realloc(p, size ? size : 1);
    if (!q) ns_fail(NS_ENOMEM, "out of memory reallocating %zu bytes", size);
    return q;
}

char *ns_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = ns_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

double ns_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
