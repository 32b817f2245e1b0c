// Errors as one sentence in a thread-local buffer, and checked allocation.
#include <errno.h>
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

void *ns_malloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p) ns_fail(NS_ENOMEM, "out of memory allocating %zu bytes", size);
    return p;
}

void *ns_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) {
        ns_fail(NS_ENOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) ns_fail(NS_ENOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *ns_realloc(void *p, size_t size) {
    void *q = realloc(p, size ? size : 1);
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
