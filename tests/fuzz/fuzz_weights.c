// Weights folders: the input is model.json, then "\n----\n", then the bytes of one tensor
// file (fc1.weight.npy); the other tensors of fc-tanh-3 on 1x2x2 inputs, 2 classes, are
// valid files written once.
#include "fuzz.h"
#include "normsharp/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        ns_model_config cfg = {.arch = "fc-tanh-3", .param = "standard", .init_scale = 1, .c = 1, .h = 2, .w = 2, .k = 2};
        ns_model *m = NULL;
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/w", fz_dir());
        if (ns_model_create(&cfg, &m) || ns_weights_save(m, dir, NULL)) abort();
        ns_model_free(m);
        ready = 1;
    }
    const uint8_t *part[2];
    size_t len[2];
    int n = fz_split(data, size, part, len, 2);
    fz_put(0, "w/model.json", part[0], len[0]);
    if (n > 1) fz_put(1, "w/fc1.weight.npy", part[1], len[1]);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/w", fz_dir());
    ns_model *m = NULL;
    ns_data_opts d;
    if (ns_weights_load(dir, &m, &d) == 0) ns_model_free(m);
    return 0;
}
