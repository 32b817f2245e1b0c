// A small JSON reader into a DOM (for model.json, summary.json and the report).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/common.h"

typedef struct {
    const char *s, *end, *start;
    const char *what;
    int depth;
} parser;

static int perr(parser *p, const char *msg) {
    return ns_fail(NS_EFORMAT, "%s is not valid JSON: %s at byte %ld", p->what, msg,
                   (long)(p->s - p->start));
}

static void ws(parser *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\n' || *p->s == '\t' || *p->s == '\r')) p->s++;
}

static int value(parser *p, ns_jval *v);

static int hex4(const char *h, unsigned *code) {
    *code = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)h[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        *code = *code << 4 | (unsigned)d;
    }
    return 1;
}

// RFC 8259 strings: raw control bytes (below 0x20, NUL among them) are invalid, and so are
// unknown escapes. \u0000 is refused too: a C string would end there (cutting, say, an
// architecture string short); other non-ASCII \u escapes read as '?'.
static int string(parser *p, char **out) {
    // p->s at opening quote
    p->s++;
    ns_buf b = {0};
    const char *bad = NULL;
    while (!bad && p->s < p->end && *p->s != '"') {
        char c = *p->s++;
        if ((unsigned char)c < 0x20) {
            p->s--;
            bad = "a raw control byte in a string";
        } else if (c == '\\') {
            if (p->s >= p->end) break;
            char e = *p->s++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case '"': case '\\': case '/': c = e; break;
            case 'u': {
                unsigned code;
                if (p->end - p->s < 4 || !hex4(p->s, &code)) {
                    bad = "a \\u escape without four hex digits";
                    break;
                }
                if (code == 0) {
                    bad = "\\u0000 in a string";
                    break;
                }
                p->s += 4;
                c = code < 0x80 ? (char)code : '?';  // only ASCII escapes are expected here
                break;
            }
            default: p->s--; bad = "an unknown escape in a string";
            }
        }
        if (!bad) ns_buf_append(&b, &c, 1);
    }
    if (bad) { ns_buf_free(&b); return perr(p, bad); }
    if (p->s >= p->end) { ns_buf_free(&b); return perr(p, "unterminated string"); }
    p->s++;
    if (b.oom) { ns_buf_free(&b); return NS_ENOMEM; }
    *out = b.data ? b.data : ns_strdup("");
    return *out ? 0 : NS_ENOMEM;
}

static int push(ns_jval *v, char *key, int *cap) {
    if (v->n == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        ns_jval *items = ns_realloc(v->items, sizeof(ns_jval) * (size_t)nc);
        if (!items) return ns_fail(NS_ENOMEM, "out of memory parsing JSON");
        v->items = items;
        if (v->type == NS_JOBJ) {
            char **keys = ns_realloc(v->keys, sizeof(char *) * (size_t)nc);
            if (!keys) return ns_fail(NS_ENOMEM, "out of memory parsing JSON");
            v->keys = keys;
        }
        *cap = nc;
    }
    if (v->type == NS_JOBJ) v->keys[v->n] = key;
    memset(&v->items[v->n], 0, sizeof(ns_jval));
    v->n++;
    return 0;
}

static int container(parser *p, ns_jval *v, char close) {
    p->s++;
    if (++p->depth > 64) return perr(p, "nesting too deep");
    int cap = 0;
    ws(p);
    if (p->s < p->end && *p->s == close) { p->s++; p->depth--; return 0; }
    for (;;) {
        ws(p);
        char *k = NULL;
        if (close == '}') {
            if (p->s >= p->end || *p->s != '"') return perr(p, "expected a key");
            int rc = string(p, &k);
            if (rc) return rc;
            ws(p);
            if (p->s >= p->end || *p->s != ':') { free(k); return perr(p, "expected ':'"); }
            p->s++;
        }
        int rc = push(v, k, &cap);
        if (rc) { free(k); return rc; }
        if ((rc = value(p, &v->items[v->n - 1]))) return rc;
        ws(p);
        if (p->s < p->end && *p->s == ',') { p->s++; continue; }
        if (p->s < p->end && *p->s == close) { p->s++; p->depth--; return 0; }
        return perr(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int value(parser *p, ns_jval *v) {
    ws(p);
    memset(v, 0, sizeof *v);
    if (p->s >= p->end) return perr(p, "unexpected end");
    char c = *p->s;
    if (c == '{') { v->type = NS_JOBJ; return container(p, v, '}'); }
    if (c == '[') { v->type = NS_JARR; return container(p, v, ']'); }
    if (c == '"') { v->type = NS_JSTR; return string(p, &v->str); }
    if (p->end - p->s >= 4 && !strncmp(p->s, "null", 4)) { v->type = NS_JNULL; v->num = NAN; p->s += 4; return 0; }
    if (p->end - p->s >= 4 && !strncmp(p->s, "true", 4)) { v->type = NS_JBOOL; v->num = 1; p->s += 4; return 0; }
    if (p->end - p->s >= 5 && !strncmp(p->s, "false", 5)) { v->type = NS_JBOOL; v->num = 0; p->s += 5; return 0; }
    char buf[64];
    size_t n = 0;
    while (p->s + n < p->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", p->s[n])) n++;
    if (n == 0) return perr(p, "unexpected character");
    memcpy(buf, p->s, n);
    buf[n] = 0;
    char *e;
    v->num = strtod(buf, &e);
    if (*e) return perr(p, "bad number");
    v->type = NS_JNUM;
    p->s += n;
    return 0;
}

int ns_json_parse(const char *text, size_t len, const char *what, ns_jval *out) {
    parser p = {text, text + len, text, what, 0};
    int rc = value(&p, out);
    if (rc == 0) {
        ws(&p);
        if (p.s != p.end) rc = perr(&p, "trailing characters");
    }
    if (rc) {
        ns_jval_free(out);
        memset(out, 0, sizeof *out);
    }
    return rc;
}

int ns_json_parse_file(const char *path, ns_jval *out) {
    char *text;
    size_t len;
    memset(out, 0, sizeof *out);
    int rc = ns_read_file(path, &text, &len);
    if (rc) return rc;
    rc = ns_json_parse(text, len, path, out);
    free(text);
    return rc;
}

void ns_jval_free(ns_jval *v) {
    if (!v) return;
    for (int i = 0; i < v->n; i++) {
        ns_jval_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof *v);
}

const ns_jval *ns_jget(const ns_jval *obj, const char *key) {
    if (!obj || obj->type != NS_JOBJ) return NULL;
    for (int i = 0; i < obj->n; i++)
        if (obj->keys[i] && !strcmp(obj->keys[i], key)) return &obj->items[i];
    return NULL;
}

double ns_jnum(const ns_jval *obj, const char *key, double def) {
    const ns_jval *v = ns_jget(obj, key);
    if (!v) return def;
    if (v->type == NS_JNUM || v->type == NS_JBOOL) return v->num;
    if (v->type == NS_JNULL) return NAN;
    return def;
}

int ns_jget_u64(const ns_jval *obj, const char *key, uint64_t *out) {
    const ns_jval *v = ns_jget(obj, key);
    if (v && v->type == NS_JSTR) {
        int rc = ns_parse_u64(v->str, key, out);
        if (rc) ns_clear_error();
        return rc ? -1 : 0;
    }
    if (v && v->type == NS_JNUM && v->num >= 0 && v->num < (double)NS_JSON_EXACT_MAX && v->num == floor(v->num)) {
        *out = (uint64_t)v->num;
        return 0;
    }
    return -1;
}

const char *ns_jstr(const ns_jval *obj, const char *key, const char *def) {
    const ns_jval *v = ns_jget(obj, key);
    return v && v->type == NS_JSTR ? v->str : def;
}
