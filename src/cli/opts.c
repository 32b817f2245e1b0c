// The option parser shared by every command: --name VALUE or --name=VALUE, strict numbers,
// one sentence and exit status 2 for anything it does not understand.
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cblas.h>
#include "cli.h"
#include "normsharp/model.h"
#include "normsharp/sweep.h"

void ns_cli_init(ns_cli *c, const char *cmd, const char *usage, const char *about) {
    memset(c, 0, sizeof *c);
    c->cmd = cmd;
    c->usage = usage;
    c->about = about;
}

ns_opt *ns_cli_add(ns_cli *c, const char *name, ns_opt_type t, void *ptr, double lo, double hi,
                   const char *metavar, const char *help) {
    if (c->nopt >= NS_MAX_OPTS) {
        fprintf(stderr, "normsharp: internal error: too many options for '%s'\n", c->cmd);
        abort();
    }
    ns_opt *o = &c->opt[c->nopt++];
    *o = (ns_opt){name, t, ptr, lo, hi, metavar, help, 0, NULL};
    return o;
}

void ns_cli_alias(ns_cli *c, const char *name, const char *old_name) {
    for (int k = 0; k < c->nopt; k++)
        if (!strcmp(c->opt[k].name, name)) {
            c->opt[k].alias = old_name;
            return;
        }
    fprintf(stderr, "normsharp: internal error: no option '%s' to alias for '%s'\n", name, c->cmd);
    abort();
}

void ns_cli_add_data(ns_cli *c, ns_data_opts *o) {
    ns_cli_add(c, "dataset", OPT_STR, &o->dataset, 0, 0, "NAME", "fashion-mnist (default), mnist or cifar10");
    ns_cli_add(c, "data-dir", OPT_STR, &o->data_dir, 0, 0, "DIR", "directory of the dataset files (required for cifar10; without it fashion-mnist and mnist use the installed copies)");
    ns_cli_add(c, "n", OPT_LONG, &o->n, 1, 1e9, "N", "training subset: the first N examples (default 5000)");
    ns_cli_add(c, "n-test", OPT_LONG, &o->n_test, 1, 1e9, "M", "test subset: the first M examples (default all)");
    ns_cli_add(c, "classes", OPT_INT, &o->classes, 2, 1000, "K", "keep only examples with label < K");
    ns_cli_add(c, "loss", OPT_LOSS, &o->loss, 0, 0, "LOSS", "mse (default) or ce (cross-entropy)");
}

// Print `text` wrapped at 80 columns, each line after the first indented by `indent`,
// the first starting at column `col`.
static void print_wrapped(const char *text, int col, int indent) {
    const int width = 80;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\n') p++;  // the text is reflowed
        if (!*p) break;
        size_t w = strcspn(p, " \n");
        if (col > indent && col + 1 + (int)w > width) {
            printf("\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            putchar(' ');
            col++;
        }
        fwrite(p, 1, w, stdout);
        col += (int)w;
        p += w;
    }
    putchar('\n');
}

void ns_cli_merge_data(ns_data_opts *d, const ns_data_opts *cli, const ns_data_opts *saved, const ns_cli *c) {
    *d = *saved;
    if (ns_cli_seen(c, "dataset")) {
        d->dataset = cli->dataset;
        // a data directory saved for another dataset does not carry over
        if (!saved->dataset || strcmp(saved->dataset, cli->dataset)) d->data_dir = NULL;
    }
    if (ns_cli_seen(c, "data-dir")) d->data_dir = cli->data_dir;
    if (ns_cli_seen(c, "n")) d->n = cli->n;
    if (ns_cli_seen(c, "n-test")) d->n_test = cli->n_test;
    if (ns_cli_seen(c, "classes")) d->classes = cli->classes;
    if (ns_cli_seen(c, "loss")) d->loss = cli->loss;
}

static void print_help(const ns_cli *c) {
    printf("usage: ");
    print_wrapped(c->usage, 7, 7);
    putchar('\n');
    print_wrapped(c->about, 0, 0);
    printf("\noptions:\n");
    for (int i = 0; i < c->nopt; i++) {
        const ns_opt *o = &c->opt[i];
        char left[64], help[512];
        if (o->type == OPT_FLAG) snprintf(left, sizeof left, "--%s", o->name);
        else snprintf(left, sizeof left, "--%s %s", o->name, o->metavar ? o->metavar : "X");
        if (o->alias) snprintf(help, sizeof help, "%s (also --%s)", o->help ? o->help : "", o->alias);
        else snprintf(help, sizeof help, "%s", o->help ? o->help : "");
        int col = printf("  %-24s", left);
        print_wrapped(help, col, 27);
    }
    printf("  %-24s %s\n", "--help", "show this help");
}

// Edit distance (insertions, deletions, substitutions) of a[0..na) and b, for suggestions.
static int edit_distance(const char *a, size_t na, const char *b) {
    size_t nb = strlen(b);
    if (na > 63 || nb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

// The option (by its current name) nearest to the unknown `name`: within a third of its
// length in edits, or the only one that starts with it. NULL if none is close.
static const char *nearest_option(const ns_cli *c, const char *name, size_t nlen) {
    const char *best = NULL, *prefix = NULL;
    int best_d = 99, nprefix = 0;
    for (int k = 0; k < c->nopt; k++) {
        const char *cand[2] = {c->opt[k].name, c->opt[k].alias};
        for (int q = 0; q < 2 && cand[q]; q++) {
            int d = edit_distance(name, nlen, cand[q]);
            if (d < best_d) best_d = d, best = c->opt[k].name;
            if (nlen >= 2 && !strncmp(cand[q], name, nlen)) nprefix++, prefix = c->opt[k].name;
        }
    }
    int limit = (int)nlen / 3 > 1 ? (int)nlen / 3 : 1;
    if (best && best_d <= limit) return best;
    return nprefix == 1 ? prefix : NULL;
}

int ns_cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("normsharp: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n", stderr);
    va_end(ap);
    return 2;
}

static int set_value(ns_opt *o, const char *flag, const char *val) {
    int rc = 0;
    switch (o->type) {
    case OPT_FLAG: *(int *)o->ptr = 1; break;
    case OPT_STR:
        if (!*val) return ns_fail(NS_EINVAL, "%s expects a value, got an empty string", flag);
        *(const char **)o->ptr = val;
        break;
    case OPT_DOUBLE: rc = ns_parse_double(val, o->lo, o->hi, flag, (double *)o->ptr); break;
    case OPT_LONG: {
        double hi = o->hi > 9.2e18 ? 9.2e18 : o->hi, lo = o->lo < -9.2e18 ? -9.2e18 : o->lo;
        rc = ns_parse_long(val, (long)lo, (long)hi, flag, (long *)o->ptr);
        break;
    }
    case OPT_INT: {
        double hi = o->hi > 2147483647.0 ? 2147483647.0 : o->hi, lo = o->lo < -2147483648.0 ? -2147483648.0 : o->lo;
        rc = ns_parse_int(val, (int)lo, (int)hi, flag, (int *)o->ptr);
        break;
    }
    case OPT_U64: rc = ns_parse_u64(val, flag, (uint64_t *)o->ptr); break;
    case OPT_LOSS:
        if (ns_loss_parse(val, (ns_loss_kind *)o->ptr))
            rc = ns_fail(NS_EINVAL, "%s must be mse or ce, got '%s'", flag, val);
        break;
    }
    return rc;
}

int ns_cli_parse(ns_cli *c, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(c);
            return -1;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
            if (c->npos < c->max_pos && c->npos < 8) {
                c->pos[c->npos++] = a;
                continue;
            }
            return ns_cli_usage_error("unexpected argument '%s' for 'normsharp %s'; see 'normsharp %s --help'.",
                                      a, c->cmd, c->cmd);
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        ns_opt *o = NULL;
        for (int k = 0; k < c->nopt; k++) {
            const char *al = c->opt[k].alias;
            if ((strlen(c->opt[k].name) == nlen && !strncmp(c->opt[k].name, name, nlen)) ||
                (al && strlen(al) == nlen && !strncmp(al, name, nlen)))
                o = &c->opt[k];
        }
        if (!o) {
            const char *near = nearest_option(c, name, nlen);
            if (near)
                return ns_cli_usage_error("unknown option '%.*s' for 'normsharp %s'; did you mean --%s?",
                                          (int)nlen + 2, a, c->cmd, near);
            return ns_cli_usage_error("unknown option '%.*s' for 'normsharp %s'; see 'normsharp %s --help'.",
                                      (int)nlen + 2, a, c->cmd, c->cmd);
        }
        char flag[80];
        snprintf(flag, sizeof flag, "--%s", o->name);
        const char *val = NULL;
        if (o->type == OPT_FLAG) {
            if (eq) return ns_cli_usage_error("%s takes no value.", flag);
        } else if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc) return ns_cli_usage_error("%s needs a value (%s).", flag, o->metavar ? o->metavar : "X");
            val = argv[++i];
        }
        if (set_value(o, flag, val)) return ns_cli_usage_error("%s.", ns_errmsg());
        o->seen = 1;
    }
    return 0;
}

const ns_opt *ns_cli_opt(const ns_cli *c, const char *name) {
    for (int k = 0; k < c->nopt; k++)
        if (!strcmp(c->opt[k].name, name)) return &c->opt[k];
    return NULL;
}

int ns_cli_seen(const ns_cli *c, const char *name) {
    const ns_opt *o = ns_cli_opt(c, name);
    return o && o->seen;
}

int ns_cli_report(int code) {
    if (code == 0) return 0;
    const char *m = ns_errmsg();
    size_t n = strlen(m);
    fprintf(stderr, "normsharp: %s%s\n", m, n && m[n - 1] == '.' ? "" : ".");
    return code == NS_EINVAL ? 2 : 1;
}

int ns_cli_out_dir(const char *out) {
    if (ns_mkdirs(out)) return ns_cli_usage_error("cannot use --out: %s.", ns_errmsg());
    if (access(out, W_OK | X_OK) != 0) return ns_cli_usage_error("cannot write into --out '%s': %s.", out, strerror(errno));
    return 0;
}

int ns_cli_put(ns_buf *b, int rc) {
    if (!rc && b->oom) rc = ns_fail(NS_ENOMEM, "out of memory while printing the result");
    if (!rc) fwrite(b->data, 1, b->len, stdout);
    ns_buf_free(b);
    return rc;
}

int ns_cli_report_once(int code) {
    if (code == 0 || ns_sweep_rank() == 0) return ns_cli_report(code);
    return code == NS_EINVAL ? 2 : 1;
}

void ns_cli_set_threads(int threads) {
    if (threads > 0) openblas_set_num_threads(threads);
}

void ns_cli_add_hvp_cache(ns_cli *c, long *mb) {
    *mb = -1;
    ns_cli_add(c, "hvp-cache-mb", OPT_LONG, mb, 0, 1L << 30, "MB",
               "memory for the forward and backward values that Hessian-vector products at one "
               "theta reuse (default 1024; 0 recomputes them every time; the results are the same)");
}

void ns_cli_set_hvp_cache(long mb) {
    if (mb >= 0) ns_hvp_cache_default((size_t)mb << 20);
}
