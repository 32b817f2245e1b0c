// normsharp init — draw theta_0 for an architecture (docs/CONVENTIONS.md, architectures) and save it as a weights
// directory (model.json + one .npy per tensor). theta_0 depends only on the architecture,
// the parameterization, the init scale and the seed; the input shape and the number of
// classes come from the dataset's known shape, so the data is not loaded.
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "normsharp/measure.h"
#include "normsharp/model.h"

static int print_json(ns_model *m, const char *out) {
    double l1, l2;
    ns_model_norms(m, &l1, &l2, NULL, NULL);
    ns_buf b = {0};
    ns_json j;
    ns_json_doc(&j, &b, "init");
    ns_json_str(&j, "out", out);
    ns_model_config_json(&j, ns_model_cfg(m));
    ns_json_int(&j, "nparams", (long long)ns_model_nparams(m));
    ns_json_num(&j, "l1", l1);
    ns_json_num(&j, "l2", l2);
    ns_model_tensors_json(&j, "tensors", m, 0);
    ns_json_end(&j);
    ns_buf_append(&b, "\n", 1);
    return ns_cli_put(&b, 0);
}

static void print_text(ns_model *m, const char *out) {
    const ns_model_config *cfg = ns_model_cfg(m);
    double l1, l2;
    ns_model_norms(m, &l1, &l2, NULL, NULL);
    printf("theta_0 of %s (%s, init scale %g, seed %llu) for input %dx%dx%d and %d classes\n", cfg->arch,
           cfg->param, cfg->init_scale, (unsigned long long)cfg->seed, cfg->c, cfg->h, cfg->w, cfg->k);
    printf("%zu parameters in %d tensors, l1 %.6g, l2 %.6g\n", ns_model_nparams(m), ns_model_ntensors(m), l1, l2);
    for (int t = 0; t < ns_model_ntensors(m); t++) {
        const ns_tensor_info *ti = ns_model_tensor(m, t);
        printf("  %-16s (", ti->name);
        for (int d = 0; d < ti->ndim; d++) printf(d ? ", %d" : "%d", ti->shape[d]);
        printf(")\n");
    }
    printf("wrote %s/model.json and one .npy per tensor\n", out);
}

int cmd_init(int argc, char **argv) {
    ns_model_config cfg = {.init_scale = 1.0};
    const char *arch = NULL, *param = "standard", *out = NULL;
    int json = 0;
    ns_data_opts data;
    ns_data_opts_default(&data);
    ns_cli c;
    ns_cli_init(&c, "init",
                "normsharp init --arch ARCH [--param P] [--init-scale C] [--seed S] [--dataset D] [--classes K] "
                "--out DIR [--json]",
                "Draw the initial parameters theta_0 of an architecture and save them as a weights directory "
                "(model.json + one NumPy .npy file per tensor, PyTorch names and layouts). The input shape and "
                "the number of classes come from --dataset and --classes; the data is not loaded, and the data "
                "options are recorded in model.json as the defaults for later commands.");
    ns_cli_add(&c, "arch", OPT_STR, &arch, 0, 0, "ARCH", "architecture, e.g. fc-tanh-200-200, cnn-relu-32-32-avgpool, resnet-relu-16-32-64-bn, vit-P7-D64-L2-H4 (docs/ARCHITECTURES.md)");
    ns_cli_add(&c, "param", OPT_STR, &param, 0, 0, "P", "parameterization: standard (default), ntk or mup");
    ns_cli_add(&c, "init-scale", OPT_DOUBLE, &cfg.init_scale, 0, 1e6, "C", "multiplies the initial weights (default 1)");
    ns_cli_add(&c, "seed", OPT_U64, &cfg.seed, 0, 0, "S", "seed of theta_0 (default 0)");
    ns_cli_add_data(&c, &data);
    ns_cli_add(&c, "out", OPT_STR, &out, 0, 0, "DIR", "the weights directory to write");
    ns_cli_add(&c, "json", OPT_FLAG, &json, 0, 0, NULL, "print one JSON object instead of text");
    NS_CLI_PARSE(&c, argc, argv);
    if (!arch) return ns_cli_usage_error("init needs --arch (e.g. --arch fc-tanh-200-200).");
    if (!out) return ns_cli_usage_error("init needs --out DIR, the weights directory to write.");
    if (ns_arch_check(arch)) return ns_cli_usage_error("--arch: %s", ns_errmsg());
    if (ns_param_check(param)) return ns_cli_usage_error("--param: %s.", ns_errmsg());
    if (ns_data_shape(data.dataset, &cfg.c, &cfg.h, &cfg.w, &cfg.k)) return ns_cli_usage_error("--dataset: %s.", ns_errmsg());
    if (data.classes > cfg.k)
        return ns_cli_usage_error("--classes %d is more than the %d classes of %s.", data.classes, cfg.k, data.dataset);
    if (data.classes > 0) cfg.k = data.classes;
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    snprintf(cfg.param, sizeof cfg.param, "%s", param);
    if (strlen(arch) >= sizeof cfg.arch) return ns_cli_usage_error("--arch is too long.");

    ns_model *m = NULL;
    int rc = ns_model_create(&cfg, &m);
    if (!rc) rc = ns_weights_save(m, out, &data);
    if (!rc) {
        if (json) rc = print_json(m, out);
        else print_text(m, out);
    }
    if (m) ns_model_free(m);
    return ns_cli_report(rc);
}
