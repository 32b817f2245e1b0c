// CIFAR-10 binary batches, raw or gzip.
#include "fuzz.h"
#include "normsharp/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fz_put(0, "in.bin", data, size);
    unsigned char *px = NULL;
    int *lab = NULL;
    long n = 0;
    if (ns_cifar_read(p, &px, &lab, &n) == 0) {
        for (long i = 0; i < n; i++)
            if (lab[i] < 0 || lab[i] > 9) abort();
        volatile unsigned char sink = px[3072 * n - 1];
        (void)sink;
    }
    free(px);
    free(lab);
    return 0;
}
