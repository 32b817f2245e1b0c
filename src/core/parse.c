// Strict number parsing: the whole string must be a finite number in range.
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/common.h"

int ns_parse_double(const char *s, double lo, double hi, const char *what, double *out) {
    if (!s || !*s) return ns_fail(NS_EINVAL, "%s expects a number, got an empty value", what);
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end != 0)
        return ns_fail(NS_EINVAL, "%s expects a number, got '%s'", what, s);
    if (!isfinite(x) || errno == ERANGE)
        return ns_fail(NS_EINVAL, "%s expects a finite number, got '%s'", what, s);
    if (x < lo || x > hi)
        return ns_fail(NS_EINVAL, "%s must be between %g and %g, got '%s'", what, lo, hi, s);
    *out = x;
    return 0;
}

int ns_parse_long(const char *s, long lo, long hi, const char *what, long *out) {
    if (!s || !*s) return ns_fail(NS_EINVAL, "%s expects an integer, got an empty value", what);
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || *end != 0) {
        // Accept integral values in exponent form ("1e3") but say why "1e99" fails.
        double d;
        if (ns_parse_double(s, -INFINITY, INFINITY, what, &d) == 0 && d == floor(d)) {
            if (d < (double)lo || d > (double)hi)
                return ns_fail(NS_EINVAL, "%s must be between %ld and %ld, got '%s'", what, lo, hi, s);
            *out = (long)d;
            return 0;
        }
        return ns_fail(NS_EINVAL, "%s expects an integer, got '%s'", what, s);
    }
    if (errno == ERANGE || x < lo || x > hi)
        return ns_fail(NS_EINVAL, "%s must be between %ld and %ld, got '%s'", what, lo, hi, s);
    *out = x;
    return 0;
}

int ns_parse_int(const char *s, int lo, int hi, const char *what, int *out) {
    long x;
    int rc = ns_parse_long(s, lo, hi, what, &x);
    if (rc == 0) *out = (int)x;
    return rc;
}

int ns_parse_u64(const char *s, const char *what, uint64_t *out) {
    if (!s || !*s || *s == '-' || *s == '+')
        return ns_fail(NS_EINVAL, "%s expects a non-negative integer, got '%s'", what, s ? s : "");
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (end == s || *end != 0 || errno == ERANGE)
        return ns_fail(NS_EINVAL, "%s expects a non-negative integer, got '%s'", what, s);
    *out = (uint64_t)x;
    return 0;
}

int ns_parse_grid(const char *s, int positive, const char *what, double **out, int *count) {
    *out = NULL;
    *count = 0;
    if (!s || !*s) return ns_fail(NS_EINVAL, "%s expects a list like 0.01,0.02 or a range A:B:K, got an empty value", what);
    double lo = positive ? 0x1p-1074 : -INFINITY;
    if (strchr(s, ':')) {
        char a[64], b[64], k[64];
        const char *c1 = strchr(s, ':'), *c2 = strchr(c1 + 1, ':');
        if (!c2 || strchr(c2 + 1, ':') || (size_t)(c1 - s) >= sizeof a ||
            (size_t)(c2 - c1 - 1) >= sizeof b || strlen(c2 + 1) >= sizeof k)
            return ns_fail(NS_EINVAL, "%s range must be A:B:K (K log-spaced points from A to B), got '%s'", what, s);
        memcpy(a, s, (size_t)(c1 - s)); a[c1 - s] = 0;
        memcpy(b, c1 + 1, (size_t)(c2 - c1 - 1)); b[c2 - c1 - 1] = 0;
        strcpy(k, c2 + 1);
        double A, B;
        int K;
        int rc;
        if ((rc = ns_parse_double(a, 0x1p-1074, INFINITY, what, &A)) ||
            (rc = ns_parse_double(b, 0x1p-1074, INFINITY, what, &B)) ||
            (rc = ns_parse_int(k, 1, 100000, what, &K)))
            return ns_fail(rc, "%s range A:B:K needs A, B > 0 and 1 <= K <= 100000, got '%s'", what, s);
        if (K == 1 && A != B)
            return ns_fail(NS_EINVAL, "%s range '%s' has one point but A != B", what, s);
        double *v = ns_malloc(sizeof(double) * (size_t)K);
        if (!v) return NS_ENOMEM;
        for (int i = 0; i < K; i++)
            v[i] = K == 1 ? A : exp(log(A) + (log(B) - log(A)) * (double)i / (double)(K - 1));
        v[0] = A;
        v[K - 1] = B;
        *out = v;
        *count = K;
        return 0;
    }
    int n = 1;
    for (const char *p = s; *p; p++) n += *p == ',';
    double *v = ns_malloc(sizeof(double) * (size_t)n);
    if (!v) return NS_ENOMEM;
    const char *p = s;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char tok[64];
        if (len == 0 || len >= sizeof tok) {
            free(v);
            return ns_fail(NS_EINVAL, "%s has an empty or overlong item in '%s'", what, s);
        }
        memcpy(tok, p, len);
        tok[len] = 0;
        int rc = ns_parse_double(tok, lo, INFINITY, what, &v[i]);
        if (rc) {
            free(v);
            if (positive) return ns_fail(rc, "%s values must be finite numbers > 0, got '%s' in '%s'", what, tok, s);
            return rc;
        }
        p = e ? e + 1 : p + len;
    }
    *out = v;
    *count = n;
    return 0;
}

int ns_parse_seeds(const char *s, const char *what, uint64_t **out, int *count) {
    *out = NULL;
    *count = 0;
    int n = 1;
    for (const char *q = s; *q; q++) n += *q == ',';
    uint64_t *v = ns_calloc((size_t)n, sizeof *v);
    if (!v) return NS_ENOMEM;
    const char *q = s;
    for (int i = 0; i < n; i++) {
        const char *e = strchr(q, ',');
        char tok[32];
        size_t len = e ? (size_t)(e - q) : strlen(q);
        int rc = len == 0 || len >= sizeof tok ? ns_fail(NS_EINVAL, "%s expects a list like 0,1,2, got '%s'", what, s) : 0;
        if (!rc) {
            memcpy(tok, q, len);
            tok[len] = 0;
            rc = ns_parse_u64(tok, what, &v[i]);
        }
        for (int j = 0; j < i && !rc; j++)
            if (v[j] == v[i]) rc = ns_fail(NS_EINVAL, "%s lists seed %s twice", what, tok);
        if (rc) {
            free(v);
            return rc;
        }
        q = e ? e + 1 : q + len;
    }
    *out = v;
    *count = n;
    return 0;
}
