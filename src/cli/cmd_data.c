// normsharp data — load a dataset exactly as training would (docs/CONVENTIONS.md, data) and print what came
// out: sizes, shape, class balance, and whether the standardization did its job.
#include <stdio.h>
#include "cli.h"

static void print_counts(const char *label, const long *counts, int k) {
    printf("%-14s", label);
    for (int c = 0; c < k; c++) printf(" %d:%ld", c, counts[c]);
    printf("\n");
}

static void print_text(const ns_dataset *ds, const ns_data_opts *o, const ns_data_summary *s, double seconds) {
    printf("%-14s %s (%s)\n", "dataset", ds->name, ds->dir);
    printf("%-14s %s\n", "source", ds->source);
    char with[48] = "";
    if (o->classes > 0) snprintf(with, sizeof with, " with label < %d", o->classes);
    printf("%-14s the first %ld examples%s of the %ld in the training split\n", "train", ds->n, with,
           ds->n_train_full);
    printf("%-14s the first %ld examples%s of the %ld in the test split\n", "test", ds->n_test, with,
           ds->n_test_full);
    printf("%-14s %d x %d x %d (C x H x W)\n", "input shape", ds->c, ds->h, ds->w);
    printf("%-14s %d\n", "features", ds->d);
    printf("%-14s %d\n", "classes", ds->k);
    printf("%-14s %s (one-hot targets and labels both prepared)\n", "loss", ns_loss_name(o->loss));
    print_counts("class counts", s->counts, ds->k);
    print_counts("test counts", s->test_counts, ds->k);
    printf("standardized   mean of feature means / mean feature std\n");
    printf("  %-22s %+.3e / %.6f\n", "full training split", ds->full_mean, ds->full_std);
    printf("  %-22s %+.3e / %.6f\n", "training subset", s->sub_mean, s->sub_std);
    printf("  %-22s %+.3e / %.6f\n", "test subset", s->test_mean, s->test_std);
    printf("%-14s %.3f s\n", "loaded in", seconds);
}

int cmd_data(int argc, char **argv) {
    ns_data_opts o;
    ns_data_opts_default(&o);
    int json = 0;
    ns_cli c;
    ns_cli_init(&c, "data", "normsharp data [--dataset NAME] [--data-dir DIR] [--n N] [--n-test M] [--classes K] [--json]",
                "Load a dataset as training does (/255, standardize with the full training split, --classes, "
                "first N / first M) and print its sizes, shape, class counts and the moments after "
                "standardization.");
    ns_cli_add_data(&c, &o);
    ns_cli_add(&c, "json", OPT_FLAG, &json, 0, 0, NULL, "print one JSON object instead of text");
    NS_CLI_PARSE(&c, argc, argv);

    double t0 = ns_now();
    ns_dataset ds;
    int rc = ns_data_load(&o, &ds);
    if (rc) return ns_cli_report(rc);
    double seconds = ns_now() - t0;
    ns_data_summary s;
    if (!(rc = ns_data_summarize(&ds, &s))) {
        ns_buf b = {0};
        if (json) rc = ns_cli_put(&b, ns_data_summary_json(&ds, &o, &s, seconds, &b));
        else print_text(&ds, &o, &s, seconds);
        ns_data_summary_free(&s);
    }
    ns_data_free(&ds);
    return ns_cli_report(rc);
}
