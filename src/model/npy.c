// NumPy .npy files, format version 1.0 (numpy/lib/format.py):
//   "\x93NUMPY" | major 1 | minor 0 | uint16 LE header length H | header (H bytes)
//   | data, C order, little-endian.
// The header is a Python dict literal, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (200, 784), }
// padded with spaces and ended by '\n' so that 10 + H is a multiple of 64.
// Written in the build's precision ('<f4' or '<f8'); read from either, converting.
// Versions 2.0/3.0 (4-byte header length) are read too.
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/model.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAX_DIMS 8

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

// Copy `count` items of `size` bytes, reversing each item's bytes on a big-endian host.
static void copy_le(void *dst, const void *src, size_t count, size_t size) {
    memcpy(dst, src, count * size);
    if (host_is_little_endian()) return;
    unsigned char *p = dst;
    for (size_t i = 0; i < count; i++, p += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

static int shape_count(int ndim, const int *shape, const char *path, size_t *count) {
    size_t c = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return ns_fail(NS_EINVAL, "%s: negative dimension %d in the shape.", path, shape[i]);
        if (shape[i] && c > SIZE_MAX / 8 / (size_t)shape[i])
            return ns_fail(NS_EINVAL, "%s: the shape is too large.", path);
        c *= (size_t)shape[i];
    }
    *count = c;
    return NS_OK;
}

static void shape_text(char *out, size_t cap, int ndim, const int *shape) {
    size_t len = 0;
    out[0] = 0;
    len += (size_t)snprintf(out, cap, "(");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, i ? ", %d" : "%d", shape[i]);
    if (len < cap) snprintf(out + len, cap - len, ndim == 1 ? ",)" : ")");
}

int ns_npy_write(const char *path, const real *x, int ndim, const int *shape) {
    if (ndim < 0 || ndim > NPY_MAX_DIMS)
        return ns_fail(NS_EINVAL, "%s: cannot write a %d-dimensional array.", path, ndim);
    size_t count = 0;
    int rc = shape_count(ndim, shape, path, &count);
    if (rc) return rc;
    char dims[256], dict[400];
    shape_text(dims, sizeof dims, ndim, shape);
    int dlen = snprintf(dict, sizeof dict, "{'descr': '<%c%d', 'fortran_order': False, 'shape': %s, }",
                        'f', (int)sizeof(real), dims);
    // pad with spaces so that magic(6) + version(2) + length(2) + header ends on 64 bytes
    size_t hlen = ((10 + (size_t)dlen + 1 + 63) / 64) * 64 - 10;
    size_t total = 10 + hlen + count * sizeof(real);
    unsigned char *buf = ns_malloc(total);
    if (!buf) return NS_ENOMEM;
    memcpy(buf, NPY_MAGIC, 6);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)dlen);
    memset(buf + 10 + dlen, ' ', hlen - (size_t)dlen - 1);
    buf[10 + hlen - 1] = '\n';
    copy_le(buf + 10 + hlen, x, count, sizeof(real));
    rc = ns_write_file_atomic(path, buf, total);
    free(buf);
    return rc;
}

// ---- reading: a tiny parser for the header dict ----------------------------------------
typedef struct {
    const char *p, *end;
} cursor;

static void skip_space(cursor *c) {
    while (c->p < c->end && isspace((unsigned char)*c->p)) c->p++;
}

static int eat(cursor *c, char ch) {
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

// A quoted Python string ('...' or "...") without escapes, into out.
static int read_str(cursor *c, char *out, size_t cap) {
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= cap || *c->p == '\\') return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[n] = 0;
    return 1;
}

static int read_word(cursor *c, const char *w) {
    skip_space(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n)) return 0;
    c->p += n;
    return 1;
}

// "(a, b, c)" with an optional trailing comma; "()" is a scalar.
static int read_shape(cursor *c, int *ndim, long *dims) {
    if (!eat(c, '(')) return 0;
    *ndim = 0;
    for (;;) {
        if (eat(c, ')')) return 1;
        skip_space(c);
        if (c->p >= c->end || !isdigit((unsigned char)*c->p) || *ndim >= NPY_MAX_DIMS) return 0;
        long v = 0;
        while (c->p < c->end && isdigit((unsigned char)*c->p)) {
            if (v > 100000000L) return 0;  // no tensor here is that large in one dimension
            v = v * 10 + (*c->p++ - '0');
        }
        while (c->p < c->end && (*c->p == 'L')) c->p++;  // Python 2 longs
        dims[(*ndim)++] = v;
        if (!eat(c, ',')) return eat(c, ')');
    }
}

typedef struct {
    char descr[16];
    int fortran;
    int ndim;
    long dims[NPY_MAX_DIMS];
} npy_header;

static int parse_header(const char *text, size_t len, npy_header *h) {
    cursor c = {text, text + len};
    int have = 0;
    if (!eat(&c, '{')) return 0;
    while (!eat(&c, '}')) {
        char key[32];
        if (!read_str(&c, key, sizeof key) || !eat(&c, ':')) return 0;
        if (!strcmp(key, "descr")) {
            if (!read_str(&c, h->descr, sizeof h->descr)) return 0;
            have |= 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (read_word(&c, "False")) h->fortran = 0;
            else if (read_word(&c, "True")) h->fortran = 1;
            else return 0;
            have |= 2;
        } else if (!strcmp(key, "shape")) {
            if (!read_shape(&c, &h->ndim, h->dims)) return 0;
            have |= 4;
        } else {
            return 0;
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}')) return 0;
            break;
        }
    }
    return have == 7;
}

// The first `len` bytes of PATH (the whole file is `file_len` bytes): checks magic, version,
// header, dtype, shape (against ndim/shape) and the data size. On success *off is where the
// data starts and *item its size in bytes (4 or 8).
static int check_header(const char *path, const unsigned char *u, size_t len, size_t file_len, int ndim,
                        const int *shape, size_t *off_out, size_t *item_out) {
    size_t count = 0;
    int rc = shape_count(ndim, shape, path, &count);
    if (rc) return rc;
    npy_header h = {.ndim = -1};
    size_t hlen = 0, off = 0;
    char want[256], got[256];
    if (len < 10 || memcmp(u, NPY_MAGIC, 6)) return ns_fail(NS_EFORMAT, "%s is not a NumPy .npy file (bad magic).", path);
    if (u[6] == 1) {
        hlen = (size_t)u[8] | (size_t)u[9] << 8;
        off = 10;
    } else if ((u[6] == 2 || u[6] == 3) && len >= 12) {
        hlen = (size_t)u[8] | (size_t)u[9] << 8 | (size_t)u[10] << 16 | (size_t)u[11] << 24;
        off = 12;
    } else {
        return ns_fail(NS_EFORMAT, "%s: unsupported .npy format version %d.%d.", path, u[6], u[7]);
    }
    if (hlen > len - off)
        return ns_fail(NS_EFORMAT, "%s: truncated .npy header (%zu bytes announced, %zu present).", path, hlen,
                       len - off);
    if (!parse_header((const char *)u + off, hlen, &h)) return ns_fail(NS_EFORMAT, "%s: malformed .npy header dict.", path);
    size_t item = !strcmp(h.descr, "<f4") ? 4 : !strcmp(h.descr, "<f8") ? 8 : 0;
    if (!item) return ns_fail(NS_EFORMAT, "%s: unsupported dtype '%s' (expected '<f4' or '<f8').", path, h.descr);
    int same = h.ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = h.dims[i] == shape[i];
    if (!same) {
        int hd[NPY_MAX_DIMS];
        for (int i = 0; i < h.ndim; i++) hd[i] = h.dims[i] <= INT_MAX ? (int)h.dims[i] : -1;
        shape_text(want, sizeof want, ndim, shape);
        shape_text(got, sizeof got, h.ndim, hd);
        return ns_fail(NS_EFORMAT, "%s has shape %s but the model expects %s.", path, got, want);
    }
    if (h.fortran && ndim > 1) return ns_fail(NS_EFORMAT, "%s is stored in Fortran order; save it in C order.", path);
    off += hlen;
    if (file_len - off != count * item)
        return ns_fail(NS_EFORMAT, "%s: data is %zu bytes but shape and dtype need %zu (%s).", path, file_len - off,
                       count * item, file_len - off < count * item ? "truncated" : "trailing bytes");
    *off_out = off;
    *item_out = item;
    return NS_OK;
}

int ns_npy_check(const char *path, int ndim, const int *shape) {
    FILE *f = fopen(path, "rb");
    if (!f) return ns_fail(NS_EIO, "cannot open '%s': %s", path, strerror(errno));
    unsigned char head[12 + 65536];  // a version 1 header is at most 65535 bytes
    size_t len = fread(head, 1, sizeof head, f);
    long file_len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    int err = ferror(f);
    fclose(f);
    if (err || file_len < 0) return ns_fail(NS_EIO, "cannot read '%s'", path);
    size_t hlen = len >= 12 && head[6] >= 2 ? (size_t)head[8] | (size_t)head[9] << 8 | (size_t)head[10] << 16 |
                                                  (size_t)head[11] << 24
                                            : 0;
    size_t off, item;
    if (hlen <= sizeof head - 12 || hlen > (size_t)file_len - 12)  // (a truncated header is refused)
        return check_header(path, head, len, (size_t)file_len, ndim, shape, &off, &item);
    // A longer header (format 2 or 3): read it whole; it is no larger than the file.
    char *data = NULL;
    size_t all = 0;
    int rc = ns_read_file(path, &data, &all);
    if (!rc) rc = check_header(path, (const unsigned char *)data, all, all, ndim, shape, &off, &item);
    free(data);
    return rc;
}

// "(i, j, ...)": the C-order index of flat element k.
static void index_text(char *out, size_t cap, size_t k, int ndim, const int *shape) {
    size_t idx[NPY_MAX_DIMS];
    for (int i = ndim - 1; i >= 0; i--) {
        idx[i] = shape[i] ? k % (size_t)shape[i] : 0;
        k = shape[i] ? k / (size_t)shape[i] : 0;
    }
    size_t len = (size_t)snprintf(out, cap, "(");
    for (int i = 0; i < ndim && len < cap; i++) len += (size_t)snprintf(out + len, cap - len, i ? ", %zu" : "%zu", idx[i]);
    if (len < cap) snprintf(out + len, cap - len, ")");
}

int ns_npy_read(const char *path, real *x, int ndim, const int *shape) {
    if (ndim < 0 || ndim > NPY_MAX_DIMS) return ns_fail(NS_EINVAL, "%s: cannot read a %d-dimensional array.", path, ndim);
    char *data = NULL;
    size_t len = 0, off = 0, item = 0;
    int rc = ns_read_file(path, &data, &len);
    if (rc) return rc;
    const unsigned char *u = (const unsigned char *)data;
    if ((rc = check_header(path, u, len, len, ndim, shape, &off, &item))) goto done;
    size_t count = (len - off) / item;
    for (size_t i = 0; i < count; i++) {
        if (item == 4) {
            float f;
            copy_le(&f, u + off + 4 * i, 1, 4);
            x[i] = (real)f;
        } else {
            double d;
            copy_le(&d, u + off + 8 * i, 1, 8);
            x[i] = (real)d;
        }
        // A NaN or infinite weight (or a float64 beyond float32's range) makes every loss
        // NaN: refuse it here, where the file and the place are known.
        if (!isfinite(x[i])) {
            char at[256];
            index_text(at, sizeof at, i, ndim, shape);
            rc = ns_fail(NS_EFORMAT, "%s: element %zu %s is not a finite number in %s; weights must be finite.", path,
                         i, at, NS_REAL_NAME);
            goto done;
        }
    }
done:
    free(data);
    return rc;
}
