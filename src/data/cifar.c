// cifar.c — the CIFAR-10 "binary version": records of 1 label byte + 3072 pixel bytes,
// pixels in (C,H,W) = (3,32,32) order, red plane first; PyTorch's layout as is.
#include <stdlib.h>
#include <string.h>
#include "data_internal.h"

#define CIFAR_PIXELS 3072
#define CIFAR_RECORD (1 + CIFAR_PIXELS)
// A batch file holds 10000 records; allow a whole split (60000) in one, and one byte more to
// see a surplus. Nothing beyond is inflated (a gzip bomb stops here).
#define CIFAR_MAX_RECORDS 60000

static size_t cifar_limit(const unsigned char *data, size_t len) {
    (void)data;
    (void)len;
    return (size_t)CIFAR_MAX_RECORDS * CIFAR_RECORD + 1;
}

int ns_cifar_read(const char *path, unsigned char **pixels, int **labels, long *count) {
    *pixels = NULL;
    *labels = NULL;
    *count = 0;
    unsigned char *buf;
    size_t len;
    int cut;
    int rc = ns_read_all_gz(path, &buf, &len, &cut, cifar_limit);
    if (rc) return rc;
    if (cut) {
        free(buf);
        return ns_fail(NS_EFORMAT, "%s is truncated: its gzip stream ends early", path);
    }
    if (len > (size_t)CIFAR_MAX_RECORDS * CIFAR_RECORD) {
        free(buf);
        return ns_fail(NS_EFORMAT, "%s holds more than %d CIFAR-10 records: not a CIFAR-10 batch", path, CIFAR_MAX_RECORDS);
    }
    if (len == 0 || len % CIFAR_RECORD != 0) {
        free(buf);
        return ns_fail(NS_EFORMAT,
                       "%s is not a CIFAR-10 binary batch: its size %zu bytes is not a positive multiple of "
                       "the %d-byte record (1 label + 3072 pixels)",
                       path, len, CIFAR_RECORD);
    }
    long n = (long)(len / CIFAR_RECORD);
    unsigned char *px = ns_malloc((size_t)n * CIFAR_PIXELS);
    int *lab = ns_malloc((size_t)n * sizeof *lab);
    if (!px || !lab) {
        free(buf);
        free(px);
        free(lab);
        return NS_ENOMEM;
    }
    for (long i = 0; i < n; i++) {
        const unsigned char *rec = buf + (size_t)i * CIFAR_RECORD;
        if (rec[0] >= NS_DATA_CLASSES) {
            int bad = rec[0];
            free(buf);
            free(px);
            free(lab);
            return ns_fail(NS_EFORMAT, "%s: record %ld has label %d, outside 0..%d", path, i, bad,
                           NS_DATA_CLASSES - 1);
        }
        lab[i] = rec[0];
        memcpy(px + (size_t)i * CIFAR_PIXELS, rec + 1, CIFAR_PIXELS);
    }
    free(buf);
    *pixels = px;
    *labels = lab;
    *count = n;
    return NS_OK;
}
