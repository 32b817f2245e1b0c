// Architecture strings, through model creation and one exact HVP on a tiny batch. Inputs
// that would build a large model are skipped after parsing (widths are bounded by the
// parser; a fuzzer needs speed, not size).
#include <math.h>
#include "fuzz.h"
#include "normsharp/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    ns_model_config cfg = {.init_scale = 1, .seed = data[0], .c = 1 + data[1] % 3, .h = 8, .w = 8, .k = 3};
    char *s = fz_str(data + 2, size - 2, sizeof cfg.arch - 1);
    snprintf(cfg.arch, sizeof cfg.arch, "%s", s);
    snprintf(cfg.param, sizeof cfg.param, "%s", data[0] % 3 == 0 ? "standard" : data[0] % 3 == 1 ? "ntk" : "mup");
    free(s);
    if (ns_arch_check(cfg.arch)) return 0;
    // every number of the string (widths, channels, a ViT's patch size, width, depth and heads,
    // blocks per stage) at most 24, for speed: "vit-P1-D1722-L1-H2" took 11 s per HVP when only
    // numbers right after a '-' were bounded
    for (const char *p = cfg.arch; *p; p++)
        if (*p >= '0' && *p <= '9' && (p == cfg.arch || p[-1] < '0' || p[-1] > '9') && atoi(p) > 24) return 0;
    ns_model *m = NULL;
    if (ns_model_create(&cfg, &m)) return 0;
    size_t P = ns_model_nparams(m), d = (size_t)cfg.c * 64;
    real x[2 * 3 * 64], t[2 * 3] = {1, 0, 0, 0, 1, 0};
    int y[2] = {0, 1};
    for (size_t i = 0; i < 2 * d; i++) x[i] = (real)sin((double)i);
    ns_batch b = {.x = x, .y = y, .t = t, .n = 2, .loss = data[0] & 1 ? NS_LOSS_CE : NS_LOSS_MSE};
    real *v = malloc(P * sizeof *v), *hv = malloc(P * sizeof *hv);
    for (size_t i = 0; i < P; i++) v[i] = (real)cos((double)i);
    if (ns_model_hvp(m, &b, v, hv) == 0)
        for (size_t i = 0; i < P; i++)
            if (!isfinite(hv[i])) abort();  // a finite net on finite data has a finite Hessian
    free(v);
    free(hv);
    ns_model_free(m);
    return 0;
}
