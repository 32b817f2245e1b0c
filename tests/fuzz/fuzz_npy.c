// .npy files: the first byte picks the shape the reader is asked for; the rest is the file.
#include <math.h>
#include "fuzz.h"
#include "normsharp/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const int shapes[4][3] = {{4, 0, 0}, {2, 3, 0}, {2, 2, 2}, {0, 0, 0}};
    static const int ndims[4] = {1, 2, 3, 0};
    int s = data[0] % 4;
    const char *p = fz_put(0, "in.npy", data + 1, size - 1);
    real x[8];
    (void)ns_npy_check(p, ndims[s], shapes[s]);
    if (ns_npy_read(p, x, ndims[s], shapes[s]) == 0) {
        int count = 1;
        for (int i = 0; i < ndims[s]; i++) count *= shapes[s][i];
        for (int i = 0; i < count; i++)
            if (!isfinite(x[i])) abort();  // non-finite weights are refused
    }
    return 0;
}
