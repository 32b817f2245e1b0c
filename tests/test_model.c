// test_model.c — building models from architecture strings: tensor names and layouts as
// PyTorch's, theta_0 as a function of (arch, param, init scale, seed) only, the
// parameterizations, and clear errors for bad architectures and batches.
#include "testutil.h"
#include "normsharp/model.h"

static ns_model_config config(const char *arch, const char *param, int c, int h, int w, int k,
                              double scale, uint64_t seed) {
    ns_model_config cfg = {.init_scale = scale, .seed = seed, .c = c, .h = h, .w = w, .k = k};
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    snprintf(cfg.param, sizeof cfg.param, "%s", param);
    return cfg;
}

static ns_model *create(const char *arch, const char *param, int c, int h, int w, int k,
                        double scale, uint64_t seed) {
    ns_model_config cfg = config(arch, param, c, h, w, k, scale, seed);
    ns_model *m = NULL;
    if (ns_model_create(&cfg, &m)) fail_msg("%s: %s", arch, ns_errmsg());
    return m;
}

typedef struct {
    const char *name;
    int ndim, shape[4];
} want_tensor;

static void assert_tensors(ns_model *m, const want_tensor *want, int n) {
    assert_int_equal(ns_model_ntensors(m), n);
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        const ns_tensor_info *t = ns_model_tensor(m, i);
        assert_string_equal(t->name, want[i].name);
        assert_int_equal(t->ndim, want[i].ndim);
        size_t size = 1;
        for (int j = 0; j < t->ndim; j++) {
            assert_int_equal(t->shape[j], want[i].shape[j]);
            size *= (size_t)want[i].shape[j];
        }
        assert_int_equal(t->size, size);
        assert_int_equal(t->offset, offset);  // tensor after tensor, no gaps
        offset += size;
    }
    assert_int_equal(ns_model_nparams(m), offset);
    assert_null(ns_model_tensor(m, n));
}

static void mlp_tensors_have_pytorch_names_and_shapes(void **state) {
    (void)state;
    ns_model *m = create("fc-tanh-200-200", "standard", 1, 28, 28, 10, 1, 0);
    want_tensor want[] = {{"fc1.weight", 2, {200, 784}}, {"fc1.bias", 1, {200}},
                          {"fc2.weight", 2, {200, 200}}, {"fc2.bias", 1, {200}},
                          {"fc3.weight", 2, {10, 200}},  {"fc3.bias", 1, {10}}};
    assert_tensors(m, want, 6);
    assert_int_equal(ns_model_nparams(m), 199210);
    assert_string_equal(ns_model_cfg(m)->arch, "fc-tanh-200-200");
    ns_model_free(m);
}

static void cnn_tensors_have_pytorch_names_and_shapes(void **state) {
    (void)state;
    ns_model *m = create("cnn-relu-8-16-maxpool", "standard", 3, 32, 32, 10, 1, 0);
    want_tensor want[] = {{"conv1.weight", 4, {8, 3, 3, 3}}, {"conv1.bias", 1, {8}},
                          {"conv2.weight", 4, {16, 8, 3, 3}}, {"conv2.bias", 1, {16}},
                          {"fc1.weight", 2, {10, 16 * 8 * 8}}, {"fc1.bias", 1, {10}}};
    assert_tensors(m, want, 6);
    ns_model_free(m);
}

// The ResNet of docs/ARCHITECTURES.md: stem conv1/bn1, then layerS.B.{conv1,bn1,conv2,bn2,
// shortcut} (a 1x1 shortcut only where the channels change), then fc.
static void resnet_tensors_have_pytorch_names_and_shapes(void **state) {
    (void)state;
    ns_model *m = create("resnet-relu-4-8-bn", "standard", 1, 28, 28, 10, 1, 0);
    want_tensor want[] = {
        {"conv1.weight", 4, {4, 1, 3, 3}}, {"conv1.bias", 1, {4}},
        {"bn1.weight", 1, {4}}, {"bn1.bias", 1, {4}},
        {"layer1.0.conv1.weight", 4, {4, 4, 3, 3}}, {"layer1.0.conv1.bias", 1, {4}},
        {"layer1.0.bn1.weight", 1, {4}}, {"layer1.0.bn1.bias", 1, {4}},
        {"layer1.0.conv2.weight", 4, {4, 4, 3, 3}}, {"layer1.0.conv2.bias", 1, {4}},
        {"layer1.0.bn2.weight", 1, {4}}, {"layer1.0.bn2.bias", 1, {4}},
        {"layer2.0.conv1.weight", 4, {8, 4, 3, 3}}, {"layer2.0.conv1.bias", 1, {8}},
        {"layer2.0.bn1.weight", 1, {8}}, {"layer2.0.bn1.bias", 1, {8}},
        {"layer2.0.conv2.weight", 4, {8, 8, 3, 3}}, {"layer2.0.conv2.bias", 1, {8}},
        {"layer2.0.bn2.weight", 1, {8}}, {"layer2.0.bn2.bias", 1, {8}},
        {"layer2.0.shortcut.weight", 4, {8, 4, 1, 1}}, {"layer2.0.shortcut.bias", 1, {8}},
        {"fc.weight", 2, {10, 8}}, {"fc.bias", 1, {10}}};
    assert_tensors(m, want, (int)(sizeof want / sizeof *want));
    const real *th = ns_model_theta(m);
    assert_true(th[ns_model_tensor(m, 2)->offset] == 1 && th[ns_model_tensor(m, 3)->offset] == 0);
    ns_model_free(m);
    m = create("resnet-tanh-4-b2", "standard", 1, 8, 8, 10, 1, 0);
    assert_int_equal(ns_model_ntensors(m), 2 + 2 * 4 + 2);  // two blocks, no shortcut conv
    assert_string_equal(ns_model_tensor(m, 6)->name, "layer1.1.conv1.weight");
    ns_model_free(m);
}

// The ViT of docs/ARCHITECTURES.md: embed.{pos,proj}, blocks.I.{norm1,attn,norm2,fc1,fc2},
// norm, head; attn as nn.MultiheadAttention's in_proj_* and out_proj.
static void vit_tensors_have_pytorch_names_and_shapes(void **state) {
    (void)state;
    ns_model *m = create("vit-P7-D8-L1-H2", "standard", 1, 28, 28, 10, 1, 0);
    want_tensor want[] = {
        {"embed.pos", 3, {1, 16, 8}}, {"embed.proj.weight", 4, {8, 1, 7, 7}},
        {"embed.proj.bias", 1, {8}},
        {"blocks.0.norm1.weight", 1, {8}}, {"blocks.0.norm1.bias", 1, {8}},
        {"blocks.0.attn.in_proj_weight", 2, {24, 8}}, {"blocks.0.attn.in_proj_bias", 1, {24}},
        {"blocks.0.attn.out_proj.weight", 2, {8, 8}}, {"blocks.0.attn.out_proj.bias", 1, {8}},
        {"blocks.0.norm2.weight", 1, {8}}, {"blocks.0.norm2.bias", 1, {8}},
        {"blocks.0.fc1.weight", 2, {32, 8}}, {"blocks.0.fc1.bias", 1, {32}},
        {"blocks.0.fc2.weight", 2, {8, 32}}, {"blocks.0.fc2.bias", 1, {8}},
        {"norm.weight", 1, {8}}, {"norm.bias", 1, {8}},
        {"head.weight", 2, {10, 8}}, {"head.bias", 1, {10}}};
    assert_tensors(m, want, (int)(sizeof want / sizeof *want));
    ns_model_free(m);
}

// The head reads the pooled maps in PyTorch's flatten order (channel, row, column), so a
// state_dict moves between normsharp and torch unchanged. cnn-linear-2 on 1x4x4: conv1
// keeps only the centre tap (channel c scales the image by c + 1), avg pooling gives 2x2
// maps, and the head's single weight at feature 1*4 + 1*2 + 0 (channel 1, row 1, column 0)
// reads 2 * mean(x[2..3][0..1]).
static void cnn_head_reads_features_in_pytorch_flatten_order(void **state) {
    (void)state;
    ns_model *m = create("cnn-linear-2", "standard", 1, 4, 4, 1, 1, 0);
    real *th = ns_model_theta(m);
    memset(th, 0, sizeof *th * ns_model_nparams(m));
    th[4] = 1;      // conv1.weight[0][0][1][1]
    th[9 + 4] = 2;  // conv1.weight[1][0][1][1]
    const ns_tensor_info *head = ns_model_tensor(m, 2);
    assert_string_equal(head->name, "fc1.weight");
    th[head->offset + 1 * 4 + 1 * 2 + 0] = 1;
    real x[16], t[1] = {0};
    for (int i = 0; i < 16; i++) x[i] = (real)(i * i % 7) - 2;
    ns_batch b = {.x = x, .t = t, .n = 1, .loss = NS_LOSS_MSE};
    double loss;
    assert_int_equal(ns_model_loss(m, &b, &loss, NULL), 0);
    double f = 2 * (x[2 * 4 + 0] + x[2 * 4 + 1] + x[3 * 4 + 0] + x[3 * 4 + 1]) / 4;
    TU_ASSERT_REL(loss, 0.5 * f * f, 1e-6);
    ns_model_free(m);
}

static int same_bits(ns_model *a, ns_model *b) {
    return ns_model_nparams(a) == ns_model_nparams(b) &&
           memcmp(ns_model_theta(a), ns_model_theta(b), sizeof(real) * ns_model_nparams(a)) == 0;
}

static void theta0_depends_only_on_arch_param_scale_and_seed(void **state) {
    (void)state;
    const char *params[] = {"standard", "ntk", "mup"};
    for (int p = 0; p < 3; p++) {
        ns_model *a = create("fc-tanh-20-10", params[p], 1, 5, 5, 4, 1, 7);
        ns_model *b = create("fc-tanh-20-10", params[p], 1, 5, 5, 4, 1, 7);
        ns_model *c = create("fc-tanh-20-10", params[p], 1, 5, 5, 4, 1, 8);
        assert_true(same_bits(a, b));
        assert_false(same_bits(a, c));
        // Passes do not change theta, and a model built later is still the same.
        real *g = test_malloc(sizeof *g * ns_model_nparams(a));
        real x[25] = {0}, t[4] = {1, 0, 0, 0};
        ns_batch batch = {.x = x, .t = t, .n = 1, .loss = NS_LOSS_MSE};
        assert_int_equal(ns_model_grad(a, &batch, g, NULL, NULL), 0);
        assert_true(same_bits(a, b));
        test_free(g);
        ns_model_free(a), ns_model_free(b), ns_model_free(c);
    }
    ns_model *s = create("cnn-tanh-4-maxpool", "standard", 1, 6, 6, 3, 1, 3);
    ns_model *s2 = create("cnn-tanh-4-maxpool", "standard", 1, 6, 6, 3, 1, 3);
    ns_model *n = create("cnn-tanh-4-maxpool", "ntk", 1, 6, 6, 3, 1, 3);
    assert_true(same_bits(s, s2));
    assert_false(same_bits(s, n));
    ns_model_free(s), ns_model_free(s2), ns_model_free(n);
}

// --init-scale c multiplies every initial parameter: theta_0(c) = c theta_0(1), bit for bit
// for a power of two.
static void init_scale_multiplies_theta0(void **state) {
    (void)state;
    ns_model *a = create("cnn-gelu-3", "standard", 2, 4, 4, 3, 1, 5);
    ns_model *b = create("cnn-gelu-3", "standard", 2, 4, 4, 3, 0.25, 5);
    const real *ta = ns_model_theta(a), *tb = ns_model_theta(b);
    for (size_t i = 0; i < ns_model_nparams(a); i++) assert_true(tb[i] == (real)0.25 * ta[i]);
    ns_model_free(a), ns_model_free(b);
}

// standard: uniform in +-1/sqrt(fan_in) (PyTorch's default), variance bound^2 / 3;
// ntk and mup: N(0,1) weights, zero biases.
static void parameterizations_draw_the_documented_distributions(void **state) {
    (void)state;
    ns_model *m = create("fc-relu-300", "standard", 1, 20, 20, 10, 1, 11);
    const real *th = ns_model_theta(m);
    for (int i = 0; i < 4; i++) {
        const ns_tensor_info *t = ns_model_tensor(m, i);
        double fan_in = i < 2 ? 400 : 300, bound = 1 / sqrt(fan_in), s2 = 0;
        for (size_t j = 0; j < t->size; j++) {
            double v = th[t->offset + j];
            assert_true(fabs(v) <= bound);
            s2 += v * v;
        }
        if (t->size > 1000) TU_ASSERT_REL(s2 / (double)t->size, bound * bound / 3, 0.05);
    }
    ns_model_free(m);
    const char *params[] = {"ntk", "mup"};
    for (int p = 0; p < 2; p++) {
        m = create("fc-relu-300", params[p], 1, 20, 20, 10, 1, 11);
        th = ns_model_theta(m);
        const ns_tensor_info *w = ns_model_tensor(m, 0), *b = ns_model_tensor(m, 1);
        double s1 = 0, s2 = 0;
        for (size_t j = 0; j < w->size; j++) s1 += th[w->offset + j], s2 += th[w->offset + j] * th[w->offset + j];
        assert_true(fabs(s1 / (double)w->size) < 0.01);
        TU_ASSERT_REL(s2 / (double)w->size, 1.0, 0.02);
        for (size_t j = 0; j < b->size; j++) assert_true(th[b->offset + j] == 0);
        ns_model_free(m);
    }
}

// ntk's forward multiplier makes the network's function independent of how the variance is
// split: a standard-init model and an ntk model with the same effective weights agree.
static void ntk_forward_multiplier_is_one_over_sqrt_fan_in(void **state) {
    (void)state;
    ns_model *s = create("fc-tanh-6", "standard", 1, 1, 4, 2, 1, 1);
    ns_model *n = create("fc-tanh-6", "ntk", 1, 1, 4, 2, 1, 1);
    real *ts = ns_model_theta(s), *tn = ns_model_theta(n);
    for (int i = 0; i < ns_model_ntensors(s); i++) {
        const ns_tensor_info *t = ns_model_tensor(s, i);
        double fan_in = i < 2 ? 4 : 6;
        int weight = strstr(t->name, "weight") != NULL;
        for (size_t j = 0; j < t->size; j++)
            tn[t->offset + j] = weight ? ts[t->offset + j] * (real)sqrt(fan_in) : ts[t->offset + j];
    }
    real x[4] = {0.3, -1, 2, 0.5}, tt[2] = {0, 1};
    ns_batch b = {.x = x, .t = tt, .n = 1, .loss = NS_LOSS_MSE};
    double ls, ln;
    assert_int_equal(ns_model_loss(s, &b, &ls, NULL), 0);
    assert_int_equal(ns_model_loss(n, &b, &ln, NULL), 0);
    TU_ASSERT_REL(ls, ln, sizeof(real) == 8 ? 1e-13 : 1e-5);
    ns_model_free(s), ns_model_free(n);
}

static void valid_architecture_strings_are_accepted(void **state) {
    (void)state;
    const char *ok[] = {"fc-tanh-200-200", "fc-linear", "fc-relu", "fc-gelu-1", "fc-elu-3-4-5",
                        "fc-softplus-65536", "cnn-relu-32-32-avgpool", "cnn-gelu-8-maxpool",
                        "cnn-elu-4", "cnn-tanh-1-2-3-4", "resnet-relu-16-32-64",
                        "resnet-relu-16-32-64-bn", "resnet-tanh-8-b2", "resnet-relu-8-16-b3-bn",
                        "resnet-gelu-8-bn-b2", "vit-P7-D64-L2-H4", "vit-P1-D1-L1-H1"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (ns_arch_check(ok[i]) != 0) fail_msg("%s rejected: %s", ok[i], ns_errmsg());
}

// Every bad architecture is refused with one sentence that names the fault.
static void bad_architectures_are_rejected_with_a_clear_message(void **state) {
    (void)state;
    struct {
        const char *arch, *says;
    } bad[] = {
        {"mlp-tanh-10", "unknown architecture 'mlp-tanh-10'"},
        {"FC-tanh-10", "unknown architecture"},
        {"fc-tanh-0", "width '0'"},
        {"fc-swish-10", "unknown activation 'swish'"},
        {"fc-Tanh-10", "unknown activation 'Tanh'"},
        {"fc", "names no activation"},
        {"fc-tanh--10", "empty field"},
        {"fc-tanh-10-", "empty field"},
        {"fc-tanh-1e3", "width '1e3'"},
        {"fc-tanh--5", "empty field"},
        {"fc-tanh-100000", "from 1 to 65536"},
        {"fc-tanh-99999999999999999999", "from 1 to 65536"},
        {"cnn-relu-5000", "channel count '5000'"},
        {"cnn-relu", "no convolution"},
        {"cnn-relu-maxpool", "no convolution"},
        {"fc-relu-10-maxpool", "only to cnn"},
        {"cnn-relu-maxpool-8", "channel count 'maxpool'"},
        {"", "empty"},
        {"resnet-relu-16-b0", "blocks per stage 'b0'"},
        {"resnet-relu-16-b17", "from 1 to 16"},
        {"resnet-relu", "no convolution"},
        {"resnet-relu-bn", "no convolution"},
        {"resnet-relu-16-maxpool", "only to cnn"},
        {"resnet-relu-16-bn-bn", "channel count 'bn'"},
        {"vit-P7-D64-L2-H3", "3 heads do not divide the width 64"},
        {"vit-P7-D64-L2", "not of the form vit-PP-DD-LL-HH"},
        {"vit-P7-D64-L2-H4-H4", "not of the form"},
        {"vit-P0-D64-L2-H4", "patch size as P"},
        {"vit-P7-D64-L0-H4", "depth as L"},
        {"vit-D64-P7-L2-H4", "patch size as P"},
        {"vit-P7-D64-L2-Hx", "head count as H"},
        {"fc-tanh-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1", "more than 32"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ns_clear_error();
        assert_int_equal(ns_arch_check(bad[i].arch), NS_EINVAL);
        if (!strstr(ns_errmsg(), bad[i].says))
            fail_msg("'%s': message \"%s\" does not say \"%s\"", bad[i].arch, ns_errmsg(), bad[i].says);
        ns_model_config cfg = config(bad[i].arch, "standard", 1, 28, 28, 10, 1, 0);
        ns_model *m = (ns_model *)&cfg;  // must be reset to NULL on failure
        assert_int_equal(ns_model_create(&cfg, &m), NS_EINVAL);
        assert_null(m);
    }
    assert_int_equal(ns_arch_check(NULL), NS_EINVAL);
}

static void bad_configurations_are_rejected_with_a_clear_message(void **state) {
    (void)state;
    struct {
        ns_model_config cfg;
        const char *says;
    } bad[] = {
        {config("cnn-relu-4-4-4", "standard", 1, 6, 6, 10, 1, 0), "at least 8x8"},
        {config("cnn-relu-4", "standard", 3, 1, 8, 10, 1, 0), "at least 2x2"},
        {config("fc-tanh-10", "xavier", 1, 2, 2, 10, 1, 0), "unknown parameterization 'xavier'"},
        {config("fc-tanh-10", "standard", 1, 2, 2, 0, 1, 0), "classes"},
        {config("fc-tanh-10", "standard", 0, 2, 2, 3, 1, 0), "input shape"},
        {config("fc-tanh-10", "standard", 1, 2, 2, 3, NAN, 0), "init scale"},
        {config("fc-tanh-10", "standard", 1, 2, 2, 3, -1, 0), "init scale"},
        {config("fc-relu-65536-65536-65536", "standard", 1, 28, 28, 10, 1, 0), "parameters"},
        {config("vit-P5-D8-L1-H2", "standard", 1, 28, 28, 10, 1, 0),
         "the patch size 5 does not divide the 28x28 images"},
        {config("resnet-relu-4-4-4-4-4-4-4", "standard", 1, 28, 28, 10, 1, 0), "at least 64x64"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ns_model *m = NULL;
        assert_int_equal(ns_model_create(&bad[i].cfg, &m), NS_EINVAL);
        assert_null(m);
        if (!strstr(ns_errmsg(), bad[i].says))
            fail_msg("'%s': message \"%s\" does not say \"%s\"", bad[i].cfg.arch, ns_errmsg(), bad[i].says);
    }
    assert_int_equal(ns_model_create(NULL, NULL), NS_EINVAL);
    // 32 conv blocks pool 32 times: refused (and no shift overflows on the way)
    char deep[128] = "cnn-relu";
    for (int i = 0; i < 32; i++) strcat(deep, "-1");
    ns_model_config cfg = config(deep, "standard", 1, 28, 28, 10, 1, 0);
    ns_model *m = NULL;
    assert_int_equal(ns_model_create(&cfg, &m), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "pools 32 times"));
}

static void bad_batches_are_rejected_without_a_crash(void **state) {
    (void)state;
    ns_model *m = create("fc-tanh-3", "standard", 1, 1, 2, 2, 1, 0);
    real x[2] = {1, 2}, t[2] = {1, 0}, g[64], v[64] = {0};
    int y[1] = {0};
    ns_batch empty = {.x = x, .t = t, .n = 0, .loss = NS_LOSS_MSE};
    assert_int_equal(ns_model_loss(m, &empty, NULL, NULL), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "empty"));
    assert_int_equal(ns_model_loss(m, NULL, NULL, NULL), NS_EINVAL);
    ns_batch no_t = {.x = x, .y = y, .n = 1, .loss = NS_LOSS_MSE};
    assert_int_equal(ns_model_grad(m, &no_t, g, NULL, NULL), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "targets"));
    ns_batch no_y = {.x = x, .t = t, .n = 1, .loss = NS_LOSS_CE};
    assert_int_equal(ns_model_hvp(m, &no_y, v, g), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "labels"));
    ns_batch ok = {.x = x, .y = y, .t = t, .n = 1, .loss = NS_LOSS_CE};
    assert_int_equal(ns_model_grad(m, &ok, NULL, NULL, NULL), NS_EINVAL);
    assert_int_equal(ns_model_hvp(m, &ok, NULL, g), NS_EINVAL);
    int bad_label[1] = {7};
    ns_batch bl = {.x = x, .y = bad_label, .n = 1, .loss = NS_LOSS_CE};
    assert_int_equal(ns_model_loss(m, &bl, NULL, NULL), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "label (7)"));
    ns_model_free(m);
}

// The workspace grows with the batch and is reused: results do not depend on earlier calls.
static void passes_give_the_same_result_after_the_workspace_grows(void **state) {
    (void)state;
    ns_model *m = create("cnn-softplus-2-maxpool", "standard", 1, 4, 4, 3, 1, 2);
    real x[16 * 9], t[3 * 9] = {0};
    int y[9];
    for (int i = 0; i < 16 * 9; i++) x[i] = (real)sin(i * 1.3);
    for (int i = 0; i < 9; i++) t[i * 3 + (y[i] = i % 3)] = 1;
    ns_batch small = {.x = x, .y = y, .t = t, .n = 2, .loss = NS_LOSS_CE};
    ns_batch big = {.x = x, .y = y, .t = t, .n = 9, .loss = NS_LOSS_CE};
    double l1, l2, l3, a1, a3;
    real v[64], h1[64], h2[64];
    assert_true(ns_model_nparams(m) <= 64);
    for (int i = 0; i < 64; i++) v[i] = (real)cos(i);
    assert_int_equal(ns_model_loss(m, &small, &l1, &a1), 0);
    assert_int_equal(ns_model_hvp(m, &small, v, h1), 0);
    assert_int_equal(ns_model_loss(m, &big, &l2, NULL), 0);
    assert_int_equal(ns_model_loss(m, &small, &l3, &a3), 0);
    assert_int_equal(ns_model_hvp(m, &small, v, h2), 0);
    assert_true(l1 == l3 && a1 == a3 && l1 != l2);
    assert_memory_equal(h1, h2, sizeof(real) * ns_model_nparams(m));
    ns_model_free(m);
}

// ---- batch norm in evaluation mode ---------------------------------------------------------

// Sets every element of tensor `name` to `value` (a missing name fails the test).
static void set_tensor(ns_model *m, const char *name, real value) {
    for (int i = 0; i < ns_model_ntensors(m); i++) {
        const ns_tensor_info *t = ns_model_tensor(m, i);
        if (strcmp(t->name, name)) continue;
        for (size_t j = 0; j < t->size; j++) ns_model_theta(m)[t->offset + j] = value;
        return;
    }
    fail_msg("no tensor %s", name);
}

// resnet-linear-1-bn on 1x1 images: every 3x3 convolution sees only its centre tap (the rest
// is padding). With conv weights 1 and biases 0, bn1 = (gamma 2, beta 0.5), the block's bn1
// and bn2 = (1, 0), fc = (1, 0), eps = 1e-5:
//   training batch x = (1, 3): the stem's bn normalizes with mean 2, variance 1:
//     r0 = 1/sqrt(1 + eps), y0 = 0.5 -+ 2 r0 (mean 0.5, variance 4 r0^2);
//     block bn1: r1 = 1/sqrt(4 r0^2 + eps), y1 = -+ 2 r0 r1; bn2: r2 = 1/sqrt(4 r0^2 r1^2 + eps);
//   a test example x in evaluation mode (the training batch's statistics):
//     y0 = 2 (x - 2) r0 + 0.5, y1 = (y0 - 0.5) r1, y2 = y1 r2, f = y0 + y2.
// So test x = (5, 0) gives f = 6 r0 (1 + r1 r2) + 0.5 and -4 r0 (1 + r1 r2) + 0.5, and MSE
// with target 1 is ((f1 - 1)^2 + (f2 - 1)^2) / 4. Normalizing the test batch by its own
// statistics (mean 2.5, variance 6.25) would give f = 0.5 +- 5 q0 (1 + q1 q2) instead, q the
// r's of that batch.
static void batch_norm_evaluates_the_test_set_with_the_training_statistics(void **state) {
    (void)state;
    ns_model *m = create("resnet-linear-1-bn", "standard", 1, 1, 1, 1, 1, 0);
    for (int i = 0; i < ns_model_ntensors(m); i++) set_tensor(m, ns_model_tensor(m, i)->name, 0);
    const char *convs[] = {"conv1.weight", "layer1.0.conv1.weight", "layer1.0.conv2.weight"};
    for (int i = 0; i < 3; i++) set_tensor(m, convs[i], 1);
    set_tensor(m, "bn1.weight", 2), set_tensor(m, "bn1.bias", (real)0.5);
    set_tensor(m, "layer1.0.bn1.weight", 1), set_tensor(m, "layer1.0.bn2.weight", 1);
    set_tensor(m, "fc.weight", 1);
    real xtr[2] = {1, 3}, xte[2] = {5, 0}, t[2] = {1, 1};
    int y[2] = {0, 0};
    ns_batch train = {.x = xtr, .y = y, .t = t, .n = 2, .loss = NS_LOSS_MSE};
    ns_batch test = {.x = xte, .y = y, .t = t, .n = 2, .loss = NS_LOSS_MSE};
    double eps = 1e-5, r0 = 1 / sqrt(1 + eps), r1 = 1 / sqrt(4 * r0 * r0 + eps);
    double r2 = 1 / sqrt(4 * r0 * r0 * r1 * r1 + eps), s = r0 * (1 + r1 * r2);
    double f1 = 6 * s + 0.5, f2 = -4 * s + 0.5;
    double want = ((f1 - 1) * (f1 - 1) + (f2 - 1) * (f2 - 1)) / 4;
    double loss, acc, own;
    assert_int_equal(ns_model_eval_loss(m, &train, &test, &loss, &acc), 0);
    TU_ASSERT_REL(loss, want, 1e-6);
    assert_true(acc == 1);
    // the test batch's own statistics, which evaluation mode must not use
    assert_int_equal(ns_model_loss(m, &test, &own, NULL), 0);
    double q0 = 1 / sqrt(6.25 + eps), q1 = 1 / sqrt(4 * 6.25 * q0 * q0 + eps);
    double q2 = 1 / sqrt(4 * 6.25 * q0 * q0 * q1 * q1 + eps), u = 5 * q0 * (1 + q1 * q2);
    TU_ASSERT_REL(own, ((u + 0.5 - 1) * (u + 0.5 - 1) + (-u + 0.5 - 1) * (-u + 0.5 - 1)) / 4, 1e-6);
    assert_true(fabs(own - want) > 0.1);
    // and the training batch evaluated so is the training loss
    double train_loss, eval_train;
    assert_int_equal(ns_model_loss(m, &train, &train_loss, NULL), 0);
    assert_int_equal(ns_model_eval_loss(m, &train, &train, &eval_train, NULL), 0);
    TU_ASSERT_REL(train_loss, (0.5 + 8 * s * s) / 4, 1e-6);  // f = 0.5 -+ 2 s
    assert_true(eval_train == train_loss);
    ns_model_free(m);
}

// On a real ResNet: the training batch in evaluation mode is the training loss (to rounding:
// the training pass takes the batch in one chunk, the evaluation in chunks of up to 4), a
// test batch is evaluated the same in one chunk or in chunks of 3 (its examples no longer
// interact), evaluation leaves the next gradient unchanged, and without the training batch a
// model with batch norm is refused; a model without batch norm evaluates as ns_model_loss.
static void evaluation_mode_is_consistent_with_training_and_chunks(void **state) {
    (void)state;
    ns_model *m = create("resnet-relu-3-4-bn", "standard", 1, 6, 6, 3, 1, 5);
    enum { NTR = 8, NTE = 7, D = 36 };
    real x[(NTR + NTE) * D], t[(NTR + NTE) * 3] = {0};
    int y[NTR + NTE];
    for (int i = 0; i < (NTR + NTE) * D; i++) x[i] = (real)sin(0.7 * i + 0.2 * (i % 5));
    for (int i = 0; i < NTR + NTE; i++) t[i * 3 + (y[i] = i % 3)] = 1;
    ns_batch train = {.x = x, .y = y, .t = t, .n = NTR, .loss = NS_LOSS_MSE};
    ns_batch test = {.x = x + NTR * D, .y = y + NTR, .t = t + NTR * 3, .n = NTE, .loss = NS_LOSS_MSE};
    size_t p = ns_model_nparams(m);
    real *g1 = test_malloc(sizeof(real) * p), *g2 = test_malloc(sizeof(real) * p);
    double ltr, etr, l1, l2, own;
    assert_int_equal(ns_model_grad(m, &train, g1, &ltr, NULL), 0);
    assert_int_equal(ns_model_eval_loss(m, &train, &train, &etr, NULL), 0);
    TU_ASSERT_REL(etr, ltr, 1e-12);
    assert_int_equal(ns_model_eval_loss(m, &train, &test, &l1, NULL), 0);
    assert_int_equal(ns_model_loss(m, &test, &own, NULL), 0);
    assert_true(fabs(l1 - own) > 1e-6 * fabs(own));
    setenv("NS_MODEL_CHUNK", "3", 1);
    ns_model *c = create("resnet-relu-3-4-bn", "standard", 1, 6, 6, 3, 1, 5);
    assert_int_equal(ns_model_eval_loss(c, &train, &test, &l2, NULL), 0);
    unsetenv("NS_MODEL_CHUNK");
    TU_ASSERT_REL(l2, l1, 1e-12);
    assert_int_equal(ns_model_grad(m, &train, g2, &etr, NULL), 0);
    assert_memory_equal(g1, g2, sizeof(real) * p);
    assert_int_equal(ns_model_eval_loss(m, NULL, &test, &l2, NULL), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "batch norm"));
    ns_model_free(c);
    ns_model_free(m);
    m = create("resnet-relu-3-4", "standard", 1, 6, 6, 3, 1, 5);
    assert_int_equal(ns_model_loss(m, &test, &own, NULL), 0);
    assert_int_equal(ns_model_eval_loss(m, NULL, &test, &l2, NULL), 0);
    assert_true(l2 == own);
    ns_model_free(m);
    test_free(g1), test_free(g2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mlp_tensors_have_pytorch_names_and_shapes),
        cmocka_unit_test(cnn_tensors_have_pytorch_names_and_shapes),
        cmocka_unit_test(resnet_tensors_have_pytorch_names_and_shapes),
        cmocka_unit_test(vit_tensors_have_pytorch_names_and_shapes),
        cmocka_unit_test(cnn_head_reads_features_in_pytorch_flatten_order),
        cmocka_unit_test(theta0_depends_only_on_arch_param_scale_and_seed),
        cmocka_unit_test(init_scale_multiplies_theta0),
        cmocka_unit_test(parameterizations_draw_the_documented_distributions),
        cmocka_unit_test(ntk_forward_multiplier_is_one_over_sqrt_fan_in),
        cmocka_unit_test(valid_architecture_strings_are_accepted),
        cmocka_unit_test(bad_architectures_are_rejected_with_a_clear_message),
        cmocka_unit_test(bad_configurations_are_rejected_with_a_clear_message),
        cmocka_unit_test(bad_batches_are_rejected_without_a_crash),
        cmocka_unit_test(passes_give_the_same_result_after_the_workspace_grows),
        cmocka_unit_test(batch_norm_evaluates_the_test_set_with_the_training_statistics),
        cmocka_unit_test(evaluation_mode_is_consistent_with_training_and_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
