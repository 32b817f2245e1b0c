// Reading a results directory: walk it, recognise what train, flow, sweep and the DLN lab
// wrote (docs/OUTPUTS.md), and turn it into experiments whose runs are sorted by eta.
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "normsharp/report.h"

const char *const ns_ref_label[NS_REF_COUNT] = {"min-l1 interpolator", "min-l2 interpolator",
                                           "min-sharpness interpolator", "gradient-flow (hypentropy) solution",
                                           "generalization-optimal interpolator"};

int ns_rep_converged(const ns_rep_run *r) {
    return !strcmp(r->status, "converged") || !strcmp(r->status, "acc_goal");
}
int ns_rep_diverged(const ns_rep_run *r) { return !strcmp(r->status, "diverged"); }

// ---- string lists ------------------------------------------------------------------------
typedef struct {
    char **v;
    int n, cap;
} strlist;

static int sl_push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = ns_realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return NS_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = ns_strdup(s))) return NS_ENOMEM;
    l->n++;
    return 0;
}

static void sl_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Sorted, so that readdir's order does not leak into the report.
static void sl_sort(strlist *l) {
    if (l->n > 1) qsort(l->v, (size_t)l->n, sizeof *l->v, cmp_str);
}

// ---- the walk ------------------------------------------------------------------------------
typedef struct {
    dev_t dev;
    ino_t ino;
} dir_id;

typedef struct {
    strlist sweeps, dlns, summaries;  // directories holding sweep.csv / dln.csv / summary.json
    dir_id *seen;                     // every real directory visited, and DIR/report (our output)
    int nseen;
} found;

#define MAX_DEPTH 16

// Marks the directory as visited; 0 if it was already (a link back into the tree, or a
// second link to one folder): each real folder is read once, whatever links lead to it.
static int first_visit(found *f, const struct stat *st, int *rc) {
    for (int k = 0; k < f->nseen; k++)
        if (f->seen[k].dev == st->st_dev && f->seen[k].ino == st->st_ino) return 0;
    dir_id *v = ns_realloc(f->seen, (size_t)(f->nseen + 1) * sizeof *v);
    if (!v) {
        *rc = NS_ENOMEM;
        return 0;
    }
    f->seen = v;
    f->seen[f->nseen++] = (dir_id){st->st_dev, st->st_ino};
    return 1;
}

// Entries in name order, so that neither readdir's order nor which of several links to one
// folder comes first leaks into the report.
static int walk(const char *dir, int depth, found *f) {
    DIR *d = opendir(dir);
    if (!d) {
        if (depth > 0) return 0;  // an unreadable subdirectory holds nothing we can use
        return ns_fail(NS_EIO, "cannot read the results directory '%s': %s", dir, strerror(errno));
    }
    strlist names = {0};
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d)))
        if (e->d_name[0] != '.') rc = sl_push(&names, e->d_name);
    closedir(d);
    sl_sort(&names);
    for (int i = 0; i < names.n && !rc; i++) {
        const char *name = names.v[i];
        char path[4096];
        if (ns_path(path, sizeof path, "%s/%s", dir, name)) {
            rc = NS_EIO;
            break;
        }
        struct stat st;
        if (stat(path, &st) != 0) continue;  // e.g. a dangling link
        if (S_ISDIR(st.st_mode)) {
            if (!strcmp(name, "weights") || depth >= MAX_DEPTH || !first_visit(f, &st, &rc)) continue;
            rc = walk(path, depth + 1, f);
        } else if (S_ISREG(st.st_mode)) {
            if (!strcmp(name, "sweep.csv")) rc = sl_push(&f->sweeps, dir);
            else if (!strcmp(name, "dln.csv")) rc = sl_push(&f->dlns, dir);
            else if (!strcmp(name, "summary.json")) rc = sl_push(&f->summaries, dir);
        }
    }
    sl_free(&names);
    return rc;
}

// ---- runs ---------------------------------------------------------------------------------
typedef struct {
    const char *name;
    size_t off;
} field;
#define F(name, member) {name, offsetof(ns_rep_run, member)}
// Columns of sweep.csv and dln.csv; this list covers every double of ns_rep_run but eta.
static const field csv_fields[] = {
    F("train_loss", train_loss), F("train_err", train_err), F("test_loss", test_loss),
    F("test_err", test_err), F("gen_err", test_err), F("l1", l1), F("l2", l2),
    F("lambda_max", lambda_max), F("sharpness", sharpness), F("trace", trace),
    F("avg_train_loss", avg_train_loss), F("avg_test_err", avg_test_err), F("avg_l1", avg_l1),
    F("avg_l2", avg_l2), F("avg_sharpness", avg_sharpness), F("dec_train_loss", dec_train_loss),
    F("dec_test_err", dec_test_err), F("dec_l1", dec_l1), F("dec_l2", dec_l2),
    F("dec_sharpness", dec_sharpness), F("dist_min_l1", dist_min_l1), F("dist_min_sharp", dist_min_sharp),
    F("w_l2_sq", w_l2_sq),
};
#define NCSV ((int)(sizeof csv_fields / sizeof csv_fields[0]))

// summary.json blocks "final", "averaged", "decayed" of a train run.
typedef struct {
    const char *block, *key;
    size_t off;
} sfield;
#define S(block, key, member) {block, key, offsetof(ns_rep_run, member)}
static const sfield summary_fields[] = {
    S("final", "train_loss", train_loss), S("final", "train_err", train_err),
    S("final", "test_loss", test_loss), S("final", "test_err", test_err), S("final", "l1", l1),
    S("final", "l2", l2), S("final", "lambda_max", lambda_max), S("final", "sharpness", sharpness),
    S("final", "trace", trace), S("averaged", "train_loss", avg_train_loss),
    S("averaged", "test_err", avg_test_err), S("averaged", "l1", avg_l1), S("averaged", "l2", avg_l2),
    S("averaged", "sharpness", avg_sharpness), S("decayed", "train_loss", dec_train_loss),
    S("decayed", "test_err", dec_test_err), S("decayed", "l1", dec_l1), S("decayed", "l2", dec_l2),
    S("decayed", "sharpness", dec_sharpness),
};
#define NSUM ((int)(sizeof summary_fields / sizeof summary_fields[0]))

static double *field_of(ns_rep_run *r, size_t off) { return (double *)(void *)((char *)r + off); }

static void run_init(ns_rep_run *r) {
    memset(r, 0, sizeof *r);
    r->eta = NAN;
    r->steps = -1;
    for (int i = 0; i < NCSV; i++) *field_of(r, csv_fields[i].off) = NAN;
}

// A whole number read from a file, as a long: `fallback` unless it is finite, integral and
// within long's range (casting NaN or a value out of range is undefined behaviour).
static long whole(double x, long fallback) {
    return x == floor(x) && x >= -0x1p63 && x < 0x1p63 ? (long)x : fallback;
}

static int whole_int(double x, int fallback) {
    long v = whole(x, fallback);
    return v >= INT_MIN && v <= INT_MAX ? (int)v : fallback;
}

// The seed of a row: its cell's unsigned 64-bit integer, exactly (a double would round
// seeds above 2^53); 0 if the cell is empty or not one.
static uint64_t row_seed(const ns_table *t, int row, int col) {
    uint64_t seed = 0;
    if (ns_parse_u64(ns_table_str(t, row, col), "seed", &seed)) {
        ns_clear_error();
        seed = 0;
    }
    return seed;
}

static void run_from_row(ns_rep_run *r, const ns_table *t, int row) {
    run_init(r);
    r->eta = ns_table_num(t, row, ns_table_col(t, "eta"));
    r->seed = row_seed(t, row, ns_table_col(t, "seed"));
    r->steps = whole(ns_table_num(t, row, ns_table_col(t, "steps")), -1);
    snprintf(r->status, sizeof r->status, "%s", ns_table_str(t, row, ns_table_col(t, "status")));
    for (int i = 0; i < NCSV; i++) {
        int c = ns_table_col(t, csv_fields[i].name);
        if (c >= 0) *field_of(r, csv_fields[i].off) = ns_table_num(t, row, c);
    }
}

static void run_from_summary(ns_rep_run *r, const ns_jval *sum) {
    run_init(r);
    const ns_jval *cfg = ns_jget(sum, "config");
    r->eta = ns_jnum(cfg, "lr", NAN);
    if (ns_jget_u64(cfg, "seed", &r->seed)) r->seed = 0;
    r->steps = whole(ns_jnum(sum, "steps", -1), -1);
    snprintf(r->status, sizeof r->status, "%s", ns_jstr(sum, "status", ""));
    for (int i = 0; i < NSUM; i++)
        *field_of(r, summary_fields[i].off) = ns_jnum(ns_jget(sum, summary_fields[i].block), summary_fields[i].key, NAN);
}

static int cmp_eta(const void *a, const void *b) {
    double x = ((const ns_rep_run *)a)->eta, y = ((const ns_rep_run *)b)->eta;
    if (isnan(x) || isnan(y)) return isnan(x) - isnan(y);
    return (x > y) - (x < y);
}

static void sort_runs(ns_rep_run *run, int n) {
    if (n > 1) qsort(run, (size_t)n, sizeof *run, cmp_eta);
}

// A JSON array of numbers as a fresh double array (non-numbers read as NAN).
static int read_vector(const ns_jval *a, double **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!a || a->type != NS_JARR || a->n == 0) return 0;
    double *v = ns_calloc((size_t)a->n, sizeof *v);
    if (!v) return NS_ENOMEM;
    for (int i = 0; i < a->n; i++) v[i] = a->items[i].type == NS_JNUM ? a->items[i].num : NAN;
    *out = v;
    *n = a->n;
    return 0;
}

// ---- configurations ---------------------------------------------------------------------------
static void config_read(ns_rep_config *c, const ns_jval *sum) {
    memset(c, 0, sizeof *c);
    const ns_jval *cf = ns_jget(sum, "config");
    snprintf(c->dataset, sizeof c->dataset, "%s", ns_jstr(cf, "dataset", ""));
    snprintf(c->arch, sizeof c->arch, "%s", ns_jstr(cf, "arch", ""));
    snprintf(c->loss, sizeof c->loss, "%s", ns_jstr(cf, "loss", ""));
    snprintf(c->param, sizeof c->param, "%s", ns_jstr(cf, "param", ""));
    c->seed_known = ns_jget_u64(cf, "seed", &c->seed) == 0;
    if (!c->seed_known) c->seed = 0;
    c->n = whole(ns_jnum(cf, "n", NAN), -1);
    c->init_scale = ns_jnum(cf, "init_scale", NAN);
    double wd = ns_jnum(cf, "weight_decay", 0);
    c->weight_decay = isfinite(wd) ? wd : 0;
    c->batch = whole(ns_jnum(cf, "batch", -1), -1);
}

static int str_match(const char *a, const char *b) { return !*a || !*b || !strcmp(a, b); }

// Same experiment: dataset, architecture, loss and seed agree; n, parameterization and
// init scale agree where both files give them.
static int config_match(const ns_rep_config *a, const ns_rep_config *b) {
    return *a->dataset && !strcmp(a->dataset, b->dataset) && *a->arch && !strcmp(a->arch, b->arch) &&
           *a->loss && !strcmp(a->loss, b->loss) && a->seed_known == b->seed_known && a->seed == b->seed &&
           (a->n < 0 || b->n < 0 || a->n == b->n) && str_match(a->param, b->param) &&
           (isnan(a->init_scale) || isnan(b->init_scale) || a->init_scale == b->init_scale) &&
           a->weight_decay == b->weight_decay && (a->batch < 0 || b->batch < 0 || a->batch == b->batch);
}

static int summary_read(const char *dir, ns_jval *sum) {
    char path[4096];
    if (ns_path(path, sizeof path, "%s/summary.json", dir)) return NS_EIO;
    return ns_json_parse_file(path, sum);
}

// ---- experiments ------------------------------------------------------------------------------
static ns_rep_exp *exp_new(ns_report *r, ns_exp_kind kind, const char *dir) {
    ns_rep_exp *e = ns_realloc(r->exp, (size_t)(r->nexp + 1) * sizeof *e);
    if (!e) return NULL;
    r->exp = e;
    e = &r->exp[r->nexp++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->flow = -1;
    e->cfg.n = e->cfg.batch = -1;
    e->cfg.init_scale = NAN;
    e->theory_s_gf = NAN;
    e->dln_n = e->dln_d = -1;
    for (int k = 0; k < NS_REF_COUNT; k++) e->ref[k].l1 = e->ref[k].sharpness = e->ref[k].gen_err = NAN;
    if (!(e->dir = ns_strdup(dir))) {
        r->nexp--;
        return NULL;
    }
    return e;
}

static void set_text(char **dst, ns_buf *b) {
    free(*dst);
    *dst = b->oom ? NULL : b->data;
    b->data = NULL;
    ns_buf_free(b);
}

void rp_setting_text(ns_buf *b, const ns_rep_config *c) {
    ns_buf_printf(b, "%s, %s, %s loss", *c->dataset ? c->dataset : "unknown dataset",
                  *c->arch ? c->arch : "unknown architecture", *c->loss ? c->loss : "unknown");
}

void rp_file_safe(char *s) {
    for (char *p = s; p && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            *p = '_';
}

const char *rp_rel_dir(const ns_report *r, const char *dir) {
    size_t l = strlen(r->dir);
    if (!strcmp(dir, r->dir)) return ".";
    if (!strncmp(dir, r->dir, l) && dir[l] == '/') return dir + l + 1;
    if (!strcmp(r->dir, "/") && dir[0] == '/') return dir + 1;
    return dir;
}

// Title and tag of a network experiment from its configuration; the title ends with the
// experiment's folder under DIR, since sweeps of one setting and seed may sit in several.
static int name_network(const ns_report *r, ns_rep_exp *e, const char *what) {
    ns_buf t = {0}, g = {0};
    const ns_rep_config *c = &e->cfg;
    rp_setting_text(&t, c);
    if (c->seed_known) ns_buf_printf(&t, ", seed %llu", (unsigned long long)c->seed);
    else ns_buf_printf(&t, ", seed unknown");
    if (c->n > 0) ns_buf_printf(&t, ", n = %ld", c->n);
    // SGD and weight decay change what is optimized and how: say so, and keep their figures apart
    if (c->batch > 0) ns_buf_printf(&t, ", SGD batch %ld (2/η is the full-batch GD threshold)", c->batch);
    if (c->weight_decay > 0) ns_buf_printf(&t, ", weight decay λ = %g", c->weight_decay);
    if (what) ns_buf_printf(&t, " (%s)", what);
    ns_buf_printf(&t, ", in %s", rp_rel_dir(r, e->dir));
    ns_buf_printf(&g, "%s_%s_%s_seed", c->dataset, c->arch, c->loss);
    if (c->seed_known) ns_buf_printf(&g, "%llu", (unsigned long long)c->seed);
    if (c->batch > 0) ns_buf_printf(&g, "_batch%ld", c->batch);
    if (c->weight_decay > 0) ns_buf_printf(&g, "_wd%g", c->weight_decay);
    set_text(&e->title, &t);
    set_text(&e->tag, &g);
    return e->title && e->tag ? 0 : NS_ENOMEM;
}

// dataset/arch/loss from a sweep directory OUT/<dataset>/<arch>/<loss>, when no run says.
static void config_from_path(ns_rep_config *c, const char *dir) {
    const char *part[3] = {NULL, NULL, NULL};
    const char *end = dir + strlen(dir);
    for (int k = 2; k >= 0; k--) {
        const char *p = end;
        while (p > dir && p[-1] != '/') p--;
        part[k] = p;
        if (p == dir) break;
        end = p - 1;
    }
    char *dst[3] = {c->dataset, c->arch, c->loss};
    size_t cap[3] = {sizeof c->dataset, sizeof c->arch, sizeof c->loss};
    for (int k = 0; k < 3; k++) {
        if (!part[k] || *dst[k]) continue;
        size_t len = strcspn(part[k], "/");
        snprintf(dst[k], cap[k], "%.*s", (int)len, part[k]);
    }
}

static int load_sweep_seed(ns_report *r, const char *dir, const ns_table *t, uint64_t seed) {
    ns_rep_exp *e = exp_new(r, NS_EXP_SWEEP, dir);
    if (!e) return NS_ENOMEM;
    int cseed = ns_table_col(t, "seed");
    e->run = ns_calloc((size_t)t->nrow, sizeof *e->run);
    if (!e->run) return NS_ENOMEM;
    int found_cfg = 0;
    for (int i = 0; i < t->nrow; i++) {
        if (row_seed(t, i, cseed) != seed) continue;
        ns_rep_run *run = &e->run[e->nrun++];
        run_from_row(run, t, i);
        char rdir[4096];
        if (ns_path(rdir, sizeof rdir, "%s/seed_%llu/lr_%g", dir, (unsigned long long)seed, run->eta)) return NS_EIO;
        if (ns_is_dir(rdir) && !(run->dir = ns_strdup(rdir))) return NS_ENOMEM;
        ns_jval sum;
        int rc = !found_cfg && run->dir ? summary_read(run->dir, &sum) : NS_EIO;
        if (rc == NS_ENOMEM) return rc;  // an unreadable summary is skipped, but not for want of memory
        if (!rc) {
            config_read(&e->cfg, &sum);
            ns_jval_free(&sum);
            found_cfg = 1;
        }
    }
    ns_clear_error();
    sort_runs(e->run, e->nrun);
    config_from_path(&e->cfg, dir);
    if (!e->cfg.seed_known) e->cfg.seed = seed, e->cfg.seed_known = 1;
    char fdir[4096];
    if (ns_path(fdir, sizeof fdir, "%s/seed_%llu/flow", dir, (unsigned long long)seed)) return NS_EIO;
    for (int k = 0; k < r->nflow; k++)
        if (!strcmp(r->flow[k].dir, fdir)) {
            e->flow = k;
            r->flow[k].used = 1;
        }
    return name_network(r, e, NULL);
}

// DIR/NAME, a results table of docs/OUTPUTS.md (sweep.csv, dln.csv): one run a row, with
// at least the 'eta' and 'status' columns.
static int read_results_csv(const char *dir, const char *name, ns_table *t) {
    char path[4096];
    if (ns_path(path, sizeof path, "%s/%s", dir, name)) return NS_EIO;
    int rc = ns_table_read(path, t);
    if (rc) return rc;
    if (ns_table_col(t, "eta") < 0 || ns_table_col(t, "status") < 0) {
        ns_table_free(t);
        return ns_fail(NS_EFORMAT, "'%s' has no 'eta' or 'status' column, so it is not a %s of docs/OUTPUTS.md", path, name);
    }
    return NS_OK;
}

static int load_sweep(ns_report *r, const char *dir) {
    ns_table t;
    int rc = read_results_csv(dir, "sweep.csv", &t);
    if (rc) return rc;
    // One experiment per seed, in the order the seeds first appear.
    int cseed = ns_table_col(&t, "seed");
    for (int i = 0; i < t.nrow && !rc; i++) {
        uint64_t seed = row_seed(&t, i, cseed);
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = row_seed(&t, j, cseed) == seed;
        if (!seen) rc = load_sweep_seed(r, dir, &t, seed);
    }
    ns_table_free(&t);
    return rc;
}

static int load_theory(ns_rep_exp *e) {
    char path[4096];
    if (ns_path(path, sizeof path, "%s/theory.json", e->dir)) return NS_EIO;
    if (!ns_exists(path)) return 0;
    ns_jval th;
    int rc = ns_json_parse_file(path, &th);
    if (rc) return rc;
    for (int k = 0; k < NS_REF_COUNT && !rc; k++) {
        const ns_jval *s = ns_jget(&th, ns_dln_ref_key[k]);
        if (!s || s->type != NS_JOBJ) continue;
        ns_rep_ref *ref = &e->ref[k];
        ref->present = 1;
        ref->l1 = ns_jnum(s, "l1", NAN);
        ref->sharpness = ns_jnum(s, "sharpness", NAN);
        ref->gen_err = ns_jnum(s, "gen_err", NAN);
        rc = read_vector(ns_jget(s, "beta"), &ref->beta, &ref->d);
    }
    e->theory_s_gf = ns_jnum(&th, "s_gf", NAN);
    const ns_jval *task = ns_jget(&th, "task");
    e->dln_n = whole_int(ns_jnum(task, "n", NAN), -1);
    e->dln_d = whole_int(ns_jnum(task, "d", NAN), -1);
    ns_buf t = {0};
    ns_buf_printf(&t, "DLN, %s task", ns_jstr(task, "kind", "unknown"));
    const char *num_keys[] = {"n", "d", "s", "noise", "alpha"};
    for (int k = 0; k < 5; k++) {
        double x = ns_jnum(task, num_keys[k], NAN);
        if (isfinite(x)) ns_buf_printf(&t, ", %s = %g", num_keys[k], x);
    }
    uint64_t seed;
    if (!ns_jget_u64(task, "seed", &seed)) ns_buf_printf(&t, ", seed = %llu", (unsigned long long)seed);
    const char *model = ns_jstr(task, "model", NULL);
    if (model) ns_buf_printf(&t, ", %s model", model);
    set_text(&e->title, &t);
    ns_jval_free(&th);
    return rc ? rc : e->title ? 0 : NS_ENOMEM;
}

static int load_dln(ns_report *r, const char *dir) {
    ns_table t;
    int rc = read_results_csv(dir, "dln.csv", &t);
    if (rc) return rc;
    ns_rep_exp *e = exp_new(r, NS_EXP_DLN, dir);
    if (!e || !(e->run = ns_calloc((size_t)t.nrow + 1, sizeof *e->run))) {
        ns_table_free(&t);
        return NS_ENOMEM;
    }
    for (int i = 0; i < t.nrow && !rc; i++) {
        ns_rep_run *run = &e->run[e->nrun++];
        run_from_row(run, &t, i);
        char rdir[4096];
        if (ns_path(rdir, sizeof rdir, "%s/runs/lr_%g", dir, run->eta)) rc = NS_EIO;
        else if (ns_is_dir(rdir) && !(run->dir = ns_strdup(rdir))) rc = NS_ENOMEM;
        ns_jval sum;
        int got = !rc && run->dir ? summary_read(run->dir, &sum) : NS_EIO;
        if (got == NS_ENOMEM) rc = got;  // an unreadable summary is skipped, but not for want of memory
        else if (!got) {
            rc = read_vector(ns_jget(&sum, "beta"), &run->beta, &run->d);
            ns_jval_free(&sum);
        }
    }
    ns_table_free(&t);
    if (rc) return rc;
    ns_clear_error();
    sort_runs(e->run, e->nrun);
    if ((rc = load_theory(e))) return rc;
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    ns_buf g = {0};
    ns_buf_printf(&g, "dln_%s", base);
    set_text(&e->tag, &g);
    if (!e->title) {
        ns_buf tt = {0};
        ns_buf_printf(&tt, "DLN, %s (no theory.json)", base);
        set_text(&e->title, &tt);
    }
    return e->tag && e->title ? 0 : NS_ENOMEM;
}

static int add_flow(ns_report *r, const char *dir, const ns_jval *sum) {
    ns_rep_flow *f = ns_realloc(r->flow, (size_t)(r->nflow + 1) * sizeof *f);
    if (!f) return NS_ENOMEM;
    r->flow = f;
    f = &r->flow[r->nflow];
    memset(f, 0, sizeof *f);
    if (!(f->dir = ns_strdup(dir))) return NS_ENOMEM;
    config_read(&f->cfg, sum);
    f->s_gf = ns_jnum(sum, "s_gf", NAN);
    f->eta_c = ns_jnum(sum, "eta_c", NAN);
    r->nflow++;
    return 0;
}

static int add_train_run(ns_report *r, const char *dir, const ns_jval *sum) {
    ns_rep_config cfg;
    config_read(&cfg, sum);
    ns_rep_exp *e = NULL;
    for (int k = 0; k < r->nexp && !e; k++)
        if (r->exp[k].kind == NS_EXP_TRAIN && config_match(&r->exp[k].cfg, &cfg)) e = &r->exp[k];
    if (!e) {
        // The experiment lives where its first run's parent is.
        char parent[4096];
        if (ns_path(parent, sizeof parent, "%s", dir)) return NS_EIO;
        char *slash = strrchr(parent, '/');
        if (slash && slash != parent) *slash = 0;
        if (!(e = exp_new(r, NS_EXP_TRAIN, parent))) return NS_ENOMEM;
        e->cfg = cfg;
        int rc = name_network(r, e, "train runs");
        if (rc) return rc;
    }
    ns_rep_run *run = ns_realloc(e->run, (size_t)(e->nrun + 1) * sizeof *run);
    if (!run) return NS_ENOMEM;
    e->run = run;
    run = &e->run[e->nrun++];
    run_from_summary(run, sum);
    return (run->dir = ns_strdup(dir)) ? 0 : NS_ENOMEM;
}

static int under(const char *path, const strlist *dirs) {
    for (int k = 0; k < dirs->n; k++) {
        size_t l = strlen(dirs->v[k]);
        if (!strncmp(path, dirs->v[k], l) && path[l] == '/') return 1;
    }
    return 0;
}

static int load_summaries(ns_report *r, const found *f) {
    for (int i = 0; i < f->summaries.n; i++) {
        const char *dir = f->summaries.v[i];
        const char *base = strrchr(dir, '/');
        base = base ? base + 1 : dir;
        int in_sweep = under(dir, &f->sweeps) || under(dir, &f->dlns);
        if (in_sweep && strcmp(base, "flow")) continue;  // runs of a sweep: read through its CSV
        ns_jval sum;
        int rc = summary_read(dir, &sum);
        if (rc) return rc;
        const char *kind = ns_jstr(&sum, "kind", "");
        if (!strcmp(kind, "flow")) rc = add_flow(r, dir, &sum);
        else if (!strcmp(kind, "train") && !in_sweep) rc = add_train_run(r, dir, &sum);
        ns_jval_free(&sum);
        if (rc) return rc;
    }
    for (int k = 0; k < r->nexp; k++)
        if (r->exp[k].kind == NS_EXP_TRAIN)
            sort_runs(r->exp[k].run, r->exp[k].nrun);
    return 0;
}

// Standalone flows join the network experiment with the same configuration.
static void attach_flows(ns_report *r) {
    for (int k = 0; k < r->nexp; k++) {
        ns_rep_exp *e = &r->exp[k];
        if (e->kind == NS_EXP_DLN || e->flow >= 0) continue;
        for (int j = 0; j < r->nflow && e->flow < 0; j++)
            if (!r->flow[j].used && config_match(&e->cfg, &r->flow[j].cfg)) {
                e->flow = j;
                r->flow[j].used = 1;
            }
    }
}

int rp_unique_tag(char **tag, const char *(*name_at)(const void *ctx, int j), const void *ctx, int n) {
    ns_buf g = {0};
    ns_buf_printf(&g, "%s", *tag);
    for (int copy = 2, j = 0; !g.oom && j < n;) {
        if (strcmp(name_at(ctx, j), g.data)) {
            j++;
            continue;
        }
        g.len = 0;
        ns_buf_printf(&g, "%s_%d", *tag, copy++);
        j = 0;  // the new name must differ from every earlier one too
    }
    set_text(tag, &g);
    return *tag ? 0 : NS_ENOMEM;
}

static const char *exp_tag(const void *ctx, int j) { return ((const ns_report *)ctx)->exp[j].tag; }

// File names must differ: a repeated tag gets "_2", "_3", ...
static int unique_tags(ns_report *r) {
    for (int k = 1; k < r->nexp; k++)
        if (rp_unique_tag(&r->exp[k].tag, exp_tag, r, k)) return NS_ENOMEM;
    for (int k = 0; k < r->nexp; k++) rp_file_safe(r->exp[k].tag);  // tags become file names
    return 0;
}

int ns_report_load(const char *dir, ns_report *r) {
    memset(r, 0, sizeof *r);
    if (!ns_is_dir(dir)) return ns_fail(NS_EIO, "'%s' is not a directory; give the directory a sweep, dln, train or flow command wrote", dir);
    if (!(r->dir = ns_strdup(dir))) return NS_ENOMEM;
    size_t l = strlen(r->dir);
    while (l > 1 && r->dir[l - 1] == '/') r->dir[--l] = 0;
    char skip[4096];
    if (ns_path(skip, sizeof skip, "%s/report", r->dir)) return NS_EIO;
    found f = {0};
    struct stat st;
    int rc = 0;
    if (stat(r->dir, &st) == 0) first_visit(&f, &st, &rc);
    if (!rc && stat(skip, &st) == 0) first_visit(&f, &st, &rc);  // our own output
    if (!rc) rc = walk(r->dir, 0, &f);
    if (!rc) {
        sl_sort(&f.sweeps);
        sl_sort(&f.dlns);
        sl_sort(&f.summaries);
        rc = load_summaries(r, &f);
    }
    for (int i = 0; i < f.sweeps.n && !rc; i++) rc = load_sweep(r, f.sweeps.v[i]);
    for (int i = 0; i < f.dlns.n && !rc; i++) rc = load_dln(r, f.dlns.v[i]);
    sl_free(&f.sweeps);
    sl_free(&f.dlns);
    sl_free(&f.summaries);
    free(f.seen);
    if (!rc) attach_flows(r);
    if (!rc) rc = unique_tags(r);
    if (!rc && r->nexp == 0 && r->nflow == 0)
        rc = ns_fail(NS_EIO, "no results under '%s': found no sweep.csv, dln.csv, or summary.json of a train or flow run", r->dir);
    if (rc) ns_report_free(r);
    return rc;
}

void ns_report_free(ns_report *r) {
    for (int k = 0; k < r->nexp; k++) {
        ns_rep_exp *e = &r->exp[k];
        for (int i = 0; i < e->nrun; i++) {
            free(e->run[i].dir);
            free(e->run[i].beta);
        }
        for (int j = 0; j < NS_REF_COUNT; j++) free(e->ref[j].beta);
        free(e->run);
        free(e->dir);
        free(e->title);
        free(e->tag);
    }
    for (int k = 0; k < r->nflow; k++) free(r->flow[k].dir);
    free(r->exp);
    free(r->flow);
    free(r->dir);
    memset(r, 0, sizeof *r);
}
