// normsharp data — load a dataset exactly as training would (docs/CONVENTIONS.md, data) and print what came
// out: sizes, shape, class balance, and whether the standardization did its job.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

// Mean over features of the per-feature mean and of the per-feature population std of
// the n x d rows x (double accumulators).
static int feature_moments(const real *x, long n, int d, double *mean, double *std) {
    *mean = *std = NAN;
    if (n <= 0) return NS_OK;
    double *s1 = ns_calloc((size_t)d, sizeof *s1), *s2 = ns_calloc((size_t)d, sizeof *s2);
    if (!s1 || !s2) {
        free(s1);
        free(s2);
        return NS_ENOMEM;
    }
    for (long i = 0; i < n; i++) {
        const real *xi = x + (size_t)i * (size_t)d;
        for (int j = 0; j < d; j++) {
            s1[j] += xi[j];
            s2[j] += (double)xi[j] * xi[j];
        }
    }
    double ms = 0, ss = 0;
    for (int j = 0; j < d; j++) {
        double m = s1[j] / (double)n, var = s2[j] / (double)n - m * m;
        ms += m;
        ss += var > 0 ? sqrt(var) : 0;
    }
    *mean = ms / d;
    *std = ss / d;
    free(s1);
    free(s2);
    return NS_OK;
}

static void count_classes(const int *y, long n, int k, long *counts) {
    for (int c = 0; c < k; c++) counts[c] = 0;
    for (long i = 0; i < n; i++) counts[y[i]]++;
}

typedef struct {
    const ns_data_opts *o;
    const ns_dataset *ds;
    long *counts, *test_counts;
    double sub_mean, sub_std, test_mean, test_std;
    double seconds;
} data_summary;

static void moments_json(ns_json *j, const char *key, double mean, double std) {
    ns_json_obj(j, key);
    ns_json_num(j, "mean_of_feature_means", mean);
    ns_json_num(j, "mean_feature_std", std);
    ns_json_end(j);
}

static int print_json(const data_summary *s) {
    const ns_dataset *ds = s->ds;
    ns_buf b = {0};
    ns_json j;
    ns_json_begin(&j, &b);
    ns_json_obj(&j, NULL);
    ns_json_str(&j, "dataset", ds->name);
    ns_json_str(&j, "source", ds->source);
    ns_json_str(&j, "data_dir", ds->dir);
    ns_json_int(&j, "n", ds->n);
    ns_json_int(&j, "n_test", ds->n_test);
    ns_json_int(&j, "n_train_full", ds->n_train_full);
    ns_json_int(&j, "n_test_full", ds->n_test_full);
    ns_json_arr(&j, "shape");
    ns_json_int(&j, NULL, ds->c);
    ns_json_int(&j, NULL, ds->h);
    ns_json_int(&j, NULL, ds->w);
    ns_json_end(&j);
    ns_json_int(&j, "features", ds->d);
    ns_json_int(&j, "classes", ds->k);
    if (s->o->classes > 0) ns_json_int(&j, "classes_filter", s->o->classes);
    else ns_json_null(&j, "classes_filter");
    ns_json_str(&j, "loss", ns_loss_name(s->o->loss));
    ns_json_arr(&j, "class_counts");
    for (int c = 0; c < ds->k; c++) ns_json_int(&j, NULL, s->counts[c]);
    ns_json_end(&j);
    ns_json_arr(&j, "test_class_counts");
    for (int c = 0; c < ds->k; c++) ns_json_int(&j, NULL, s->test_counts[c]);
    ns_json_end(&j);
    ns_json_obj(&j, "standardized");
    moments_json(&j, "full_train", ds->full_mean, ds->full_std);
    moments_json(&j, "train_subset", s->sub_mean, s->sub_std);
    moments_json(&j, "test_subset", s->test_mean, s->test_std);
    ns_json_end(&j);
    ns_json_num(&j, "seconds", s->seconds);
    ns_json_end(&j);
    ns_buf_append(&b, "\n", 1);
    int rc = b.oom ? NS_ENOMEM : NS_OK;
    if (!rc) fwrite(b.data, 1, b.len, stdout);
    ns_buf_free(&b);
    return rc;
}

static void print_counts(const char *label, const long *counts, int k) {
    printf("%-14s", label);
    for (int c = 0; c < k; c++) printf(" %d:%ld", c, counts[c]);
    printf("\n");
}

static void print_text(const data_summary *s) {
    const ns_dataset *ds = s->ds;
    printf("%-14s %s (%s)\n", "dataset", ds->name, ds->dir);
    printf("%-14s %s\n", "source", ds->source);
    char with[48] = "";
    if (s->o->classes > 0) snprintf(with, sizeof with, " with label < %d", s->o->classes);
    printf("%-14s the first %ld examples%s of the %ld in the training split\n", "train", ds->n, with,
           ds->n_train_full);
    printf("%-14s the first %ld examples%s of the %ld in the test split\n", "test", ds->n_test, with,
           ds->n_test_full);
    printf("%-14s %d x %d x %d (C x H x W)\n", "input shape", ds->c, ds->h, ds->w);
    printf("%-14s %d\n", "features", ds->d);
    printf("%-14s %d\n", "classes", ds->k);
    printf("%-14s %s (one-hot targets and labels both prepared)\n", "loss", ns_loss_name(s->o->loss));
    print_counts("class counts", s->counts, ds->k);
    print_counts("test counts", s->test_counts, ds->k);
    printf("standardized   mean of feature means / mean feature std\n");
    printf("  %-22s %+.3e / %.6f\n", "full training split", ds->full_mean, ds->full_std);
    printf("  %-22s %+.3e / %.6f\n", "training subset", s->sub_mean, s->sub_std);
    printf("  %-22s %+.3e / %.6f\n", "test subset", s->test_mean, s->test_std);
    printf("%-14s %.3f s\n", "loaded in", s->seconds);
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
    data_summary s = {.o = &o, .ds = &ds, .seconds = ns_now() - t0};
    s.counts = ns_calloc((size_t)ds.k, sizeof *s.counts);
    s.test_counts = ns_calloc((size_t)ds.k, sizeof *s.test_counts);
    if (!s.counts || !s.test_counts) rc = NS_ENOMEM;
    if (!rc) {
        count_classes(ds.y_train, ds.n, ds.k, s.counts);
        count_classes(ds.y_test, ds.n_test, ds.k, s.test_counts);
        rc = feature_moments(ds.x_train, ds.n, ds.d, &s.sub_mean, &s.sub_std);
    }
    if (!rc) rc = feature_moments(ds.x_test, ds.n_test, ds.d, &s.test_mean, &s.test_std);
    if (!rc) {
        if (json) rc = print_json(&s);
        else print_text(&s);
    }
    free(s.counts);
    free(s.test_counts);
    ns_data_free(&ds);
    return ns_cli_report(rc);
}
