// idx.c — the IDX format of MNIST and Fashion-MNIST, raw or gzip-compressed.
// Layout: magic 0x00 0x00 type ndim, then ndim big-endian uint32 sizes, then the data.
// Only type 0x08 (unsigned byte) is used by these datasets.
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "data_internal.h"

#define GZ_CHUNK (1u << 20)
#define GZ_BUFFER (256u * 1024u)  // zlib's input buffer for a file larger than this
// the largest element count an IDX file may declare: it must fit in long and size_t
#define IDX_MAX_COUNT ((uint64_t)LONG_MAX < (uint64_t)SIZE_MAX ? (uint64_t)LONG_MAX : (uint64_t)SIZE_MAX)

int ns_read_all_gz(const char *path, unsigned char **data, size_t *len, int *cut,
                   size_t (*limit)(const unsigned char *data, size_t len)) {
    *data = NULL;
    *len = 0;
    *cut = 0;
    struct stat st;
    long on_disk = stat(path, &st) == 0 ? (long)st.st_size : -1;
    gzFile f = gzopen(path, "rb");
    if (!f) return ns_fail(NS_EIO, "cannot open %s: %s", path, errno ? strerror(errno) : "out of memory");
    // Large files read faster through large buffers; a small file keeps zlib's default
    // (zlib allocates three times this size at the first read, whatever the file holds).
    if (on_disk < 0 || on_disk > GZ_BUFFER) gzbuffer(f, GZ_BUFFER);
    size_t cap = 1u << 16, n = 0;  // small files stay small; large ones double their way up
    unsigned char *buf = ns_malloc(cap);
    if (!buf) {
        gzclose(f);
        return NS_ENOMEM;
    }
    for (;;) {
        if (n == cap) {
            // grow geometrically; realloc of large blocks is cheap (mremap)
            if (cap > SIZE_MAX / 2) {
                free(buf);
                gzclose(f);
                return ns_fail(NS_ENOMEM, "%s is too large to read into memory", path);
            }
            unsigned char *nb = ns_realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                gzclose(f);
                return NS_ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        size_t most = limit ? limit(buf, n) : SIZE_MAX;
        if (n >= most) break;  // all the file can need (and one byte more, to see a surplus)
        size_t want = cap - n < GZ_CHUNK ? cap - n : GZ_CHUNK;
        int r = gzread(f, buf + n, (unsigned)(most - n < want ? most - n : want));
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        int zerr = Z_OK;
        const char *zmsg = gzerror(f, &zerr);
        if (r == 0 && zerr == Z_OK) break;  // clean end of file (gzip trailer checked)
        if (zerr == Z_BUF_ERROR) {          // the compressed stream stops mid-way
            *cut = 1;
            break;
        }
        // zlib's message reads "PATH: what"; keep only "what"
        size_t plen = strlen(path);
        if (zmsg && !strncmp(zmsg, path, plen) && !strncmp(zmsg + plen, ": ", 2)) zmsg += plen + 2;
        int code = zerr == Z_ERRNO ? NS_EIO : NS_EFORMAT;
        if (zerr == Z_ERRNO)
            ns_fail(code, "cannot read %s: %s", path, strerror(errno));
        else if (zerr == Z_MEM_ERROR)
            code = ns_fail(NS_ENOMEM, "out of memory while decompressing %s", path);
        else
            ns_fail(code, "corrupt gzip stream in %s (%s)", path, zmsg ? zmsg : "unknown zlib error");
        free(buf);
        gzclose(f);
        return code;
    }
    gzclose(f);
    *data = buf;
    *len = n;
    return NS_OK;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

// Header plus declared data plus one byte (to detect a surplus), once the header is read.
static size_t idx_limit(const unsigned char *p, size_t n) {
    if (n < 4) return SIZE_MAX;
    if (p[0] != 0 || p[1] != 0 || p[2] != 0x08 || p[3] < 1 || p[3] > 4) return n;  // not IDX: stop
    size_t header = 4 + 4 * (size_t)p[3];
    if (n < header) return SIZE_MAX;
    uint64_t prod = 1;
    for (int i = 0; i < p[3]; i++) {
        uint32_t dim = be32(p + 4 + 4 * i);
        if (dim != 0 && prod > IDX_MAX_COUNT / dim) return n;  // ns_idx_read says why
        prod *= dim;
    }
    return prod < SIZE_MAX - header - 1 ? header + (size_t)prod + 1 : SIZE_MAX;
}

int ns_idx_read(const char *path, ns_idx *out) {
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t len;
    int cut;
    int rc = ns_read_all_gz(path, &buf, &len, &cut, idx_limit);
    if (rc) return rc;
    if (len < 4) {
        free(buf);
        return ns_fail(NS_EFORMAT, "%s is truncated: it holds %zu bytes, too few for an IDX header", path, len);
    }
    if (buf[0] != 0 || buf[1] != 0 || buf[2] != 0x08 || buf[3] < 1 || buf[3] > 4) {
        int b0 = buf[0], b1 = buf[1], b2 = buf[2], b3 = buf[3];
        free(buf);
        return ns_fail(NS_EFORMAT,
                       "%s is not an IDX file of unsigned bytes: magic is %02x %02x %02x %02x, "
                       "expected 00 00 08 followed by 1 to 4 dimensions",
                       path, b0, b1, b2, b3);
    }
    int ndim = buf[3];
    size_t header = 4 + 4 * (size_t)ndim;
    if (len < header) {
        free(buf);
        return ns_fail(NS_EFORMAT, "%s is truncated: its header declares %d dimensions but the file ends at byte %zu",
                       path, ndim, len);
    }
    // count = prod dims, checked against overflow of both long and size_t
    uint64_t prod = 1;
    for (int i = 0; i < ndim; i++) {
        uint32_t dim = be32(buf + 4 + 4 * i);
        out->dims[i] = (long)dim;
        if (dim != 0 && prod > IDX_MAX_COUNT / dim) {
            free(buf);
            memset(out, 0, sizeof *out);
            return ns_fail(NS_EFORMAT, "%s: header dimensions overflow (their product does not fit in memory)", path);
        }
        prod *= dim;
    }
    long count = (long)prod;
    size_t found = len - header;
    if (found < (size_t)count) {
        free(buf);
        memset(out, 0, sizeof *out);
        return ns_fail(NS_EFORMAT, "%s is truncated: expected %ld bytes of data, found %zu", path, count, found);
    }
    if (found > (size_t)count) {
        free(buf);
        memset(out, 0, sizeof *out);
        return ns_fail(NS_EFORMAT, "%s has more bytes after the %ld bytes of data its header declares", path, count);
    }
    if (cut) {
        free(buf);
        memset(out, 0, sizeof *out);
        return ns_fail(NS_EFORMAT, "%s is truncated: its gzip stream ends before the end-of-stream marker", path);
    }
    // keep one allocation: move the data to the front
    memmove(buf, buf + header, (size_t)count);
    unsigned char *shrunk = realloc(buf, count ? (size_t)count : 1);
    if (shrunk) buf = shrunk;
    out->ndim = ndim;
    out->count = count;
    out->data = buf;
    return NS_OK;
}

void ns_idx_free(ns_idx *x) {
    if (!x) return;
    free(x->data);
    memset(x, 0, sizeof *x);
}
