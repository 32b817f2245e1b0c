// IDX files, raw or gzip (zlib detects which): the corpus holds both.
#include "fuzz.h"
#include "normsharp/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_put(0, "in.idx", data, size);
    ns_idx x;
    if (ns_idx_read(p, &x) == 0) {
        long count = 1;
        for (int i = 0; i < x.ndim; i++) count *= x.dims[i];
        if (count != x.count) abort();
        volatile unsigned char sink = 0;
        for (long i = 0; i < x.count; i++) sink ^= x.data[i];  // every byte is there
        ns_idx_free(&x);
    }
    return 0;
}
