// A growing string buffer, round-trip number formatting and a small JSON writer.
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/common.h"

void ns_buf_append(ns_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = ns_realloc(b->data, cap);
        if (!d) {
            b->oom = 1;
            ns_fail(NS_ENOMEM, "out of memory building text output");
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

void ns_buf_printf(ns_buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        ns_buf_append(b, tmp, (size_t)n);
        return;
    }
    char *big = ns_malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ns_buf_append(b, big, (size_t)n);
    free(big);
}

void ns_buf_free(ns_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void ns_fmt_double(char out[32], double x) {
    if (isnan(x)) { strcpy(out, "nan"); return; }
    if (isinf(x)) { strcpy(out, x > 0 ? "inf" : "-inf"); return; }
    // Shortest of %.15g..%.17g that reads back exactly.
    for (int p = 15; p <= 17; p++) {
        snprintf(out, 32, "%.*g", p, x);
        if (strtod(out, NULL) == x) return;
    }
}

void ns_csv_cell(ns_buf *b, double x, int measured) {
    ns_buf_append(b, ",", 1);
    if (!measured) return;
    char s[32];
    ns_fmt_double(s, x);
    ns_buf_append(b, s, strlen(s));
}

void ns_csv_value(ns_buf *b, double x) {
    ns_csv_cell(b, x, !isnan(x));
}

// ---- JSON writer ------------------------------------------------------------------
static void indent(ns_json *j) {
    ns_buf_append(j->b, "\n", 1);
    for (int i = 0; i < j->depth; i++) ns_buf_append(j->b, "  ", 2);
}

static void json_string(ns_buf *b, const char *s) {
    ns_buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            ns_buf_append(b, e, 2);
        } else if (*p < 0x20) {
            ns_buf_printf(b, "\\u%04x", *p);
        } else {
            ns_buf_append(b, (const char *)p, 1);
        }
    }
    ns_buf_append(b, "\"", 1);
}

static void key(ns_json *j, const char *k) {
    if (j->depth > 0) {
        int first = j->first[j->depth];
        j->first[j->depth] = 0;
        // Objects get one key per line; arrays stay on one line ("[1, 2, 3]").
        if (!first) ns_buf_append(j->b, j->kind[j->depth] == '{' ? "," : ", ", j->kind[j->depth] == '{' ? 1 : 2);
        if (j->kind[j->depth] == '{') indent(j);
    }
    if (k && j->depth > 0 && j->kind[j->depth] == '{') {
        json_string(j->b, k);
        ns_buf_append(j->b, ": ", 2);
    }
}

void ns_json_begin(ns_json *j, ns_buf *b) {
    memset(j, 0, sizeof *j);
    j->b = b;
}

static void open(ns_json *j, const char *k, char c) {
    key(j, k);
    ns_buf_append(j->b, &c, 1);
    if (j->depth < 31) j->depth++;
    j->first[j->depth] = 1;
    j->kind[j->depth] = c;
}

void ns_json_obj(ns_json *j, const char *k) { open(j, k, '{'); }
void ns_json_arr(ns_json *j, const char *k) { open(j, k, '['); }

void ns_json_end(ns_json *j) {
    char c = j->kind[j->depth] == '{' ? '}' : ']';
    int empty = j->first[j->depth];
    j->depth--;
    if (c == '}' && !empty) indent(j);
    ns_buf_append(j->b, &c, 1);
    if (j->depth == 0) ns_buf_append(j->b, "\n", 1);
}

void ns_json_num(ns_json *j, const char *k, double x) {
    key(j, k);
    if (!isfinite(x)) {
        ns_buf_append(j->b, "null", 4);
        return;
    }
    char t[32];
    ns_fmt_double(t, x);
    ns_buf_append(j->b, t, strlen(t));
}

void ns_json_int(ns_json *j, const char *k, long long x) {
    key(j, k);
    ns_buf_printf(j->b, "%lld", x);
}

void ns_json_u64(ns_json *j, const char *k, uint64_t x) {
    key(j, k);
    if (x < NS_JSON_EXACT_MAX) ns_buf_printf(j->b, "%llu", (unsigned long long)x);
    else ns_buf_printf(j->b, "\"%llu\"", (unsigned long long)x);
}

void ns_json_bool(ns_json *j, const char *k, int x) {
    key(j, k);
    ns_buf_append(j->b, x ? "true" : "false", x ? 4 : 5);
}

void ns_json_str(ns_json *j, const char *k, const char *s) {
    key(j, k);
    if (!s) ns_buf_append(j->b, "null", 4);
    else json_string(j->b, s);
}

void ns_json_null(ns_json *j, const char *k) {
    key(j, k);
    ns_buf_append(j->b, "null", 4);
}

void ns_json_doc(ns_json *j, ns_buf *b, const char *kind) {
    ns_json_begin(j, b);
    ns_json_obj(j, NULL);
    ns_json_str(j, "program", "normsharp");
    ns_json_str(j, "version", NS_VERSION);
    ns_json_str(j, "kind", kind);
}
