// normsharp report DIR [--json] [--coords I,J]: read every result under DIR, draw the figures
// with gnuplot into DIR/report/, write report.md and index.html, print the findings.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/report.h"
#include "cli.h"

// Returns NS_ENOMEM (with its sentence) if it could not build its text.
static int print_text(const ns_report *r, const ns_seed_group *grp, int ngrp, const ns_report_out *out) {
    if (out->md[0])
        printf("report: %s (open %s to view the %d figure%s)\n", out->md, out->html, out->npng, out->npng == 1 ? "" : "s");
    for (int k = 0; k < r->nexp; k++) {
        ns_findings f;
        ns_buf b = {0};
        ns_report_findings(r, k, &f);
        ns_findings_text(&f, &b);
        printf("\n%s [%s]\n", r->exp[k].title, ns_exp_kind_name(r->exp[k].kind));
        for (char *p = b.data; p && *p;) {
            char *nl = strchr(p, '\n');
            printf("  %.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
            if (!nl) break;
            p = nl + 1;
        }
        int oom = b.oom;
        ns_buf_free(&b);
        if (oom) return NS_ENOMEM;
    }
    for (int g = 0; g < ngrp; g++) {
        ns_buf b = {0};
        ns_seed_group_text(r, &grp[g], &b);
        int oom = b.oom;
        if (!oom) printf("\n%s [seeds]\n  %s", grp[g].title, b.data ? b.data : "\n");
        ns_buf_free(&b);
        if (oom) return NS_ENOMEM;
    }
    return 0;
}

int cmd_report(int argc, char **argv) {
    ns_cli c;
    int json = 0;
    const char *coords = NULL;
    ns_cli_init(&c, "report", "normsharp report DIR [--json] [--coords I,J]",
                "Reads every result under DIR (sweep.csv with its runs, flow and train summaries, DLN dln.csv and\n"
                "theory.json), draws the figures with gnuplot into DIR/report/ (PNG and SVG, each with its gnuplot\n"
                "script and data), writes DIR/report/report.md and index.html, and prints the findings: eta_c\n"
                "predicted and observed, whether the sharpness follows 2/eta above eta_c, whether the l1 norm grows\n"
                "there, the best learning rate, and for a DLN whether it beats both minimizers.");
    c.max_pos = 1;
    ns_cli_add(&c, "json", OPT_FLAG, &json, 0, 0, NULL, "print the report's paths and findings as JSON");
    ns_cli_add(&c, "coords", OPT_STR, &coords, 0, 0, "I,J",
               "DLN: draw coordinates beta_I, beta_J (1-based) of the GD solutions and minimizers");
    NS_CLI_PARSE(&c, argc, argv);
    if (c.npos != 1) return ns_cli_usage_error("report needs one results directory: normsharp report DIR.");
    ns_report_opts o;
    ns_report_opts_default(&o);
    if (coords && ns_report_coords_parse(coords, &o)) return ns_cli_usage_error("%s.", ns_errmsg());
    ns_report r;
    int rc = ns_report_load(c.pos[0], &r);
    if (rc) return ns_cli_report(rc);
    ns_seed_group *grp = NULL;
    int ngrp = 0;
    if ((rc = ns_report_seed_groups(&r, &grp, &ngrp))) {
        ns_report_free(&r);
        return ns_cli_report(rc);
    }
    ns_report_out out;
    rc = ns_report_write(&r, &o, &out);
    char *error = rc ? ns_strdup(ns_errmsg()) : NULL;
    ns_buf b = {0};
    int prc = json ? ns_cli_put(&b, ns_report_json(&r, grp, ngrp, &out, error, &b)) : print_text(&r, grp, ngrp, &out);
    fflush(stdout);
    if (!rc && prc) {
        rc = prc;
        error = ns_strdup(ns_errmsg());
    }
    if (rc) {
        ns_fail(rc, "%s", error ? error : "the report could not be written");
        rc = ns_cli_report(rc);
    }
    free(error);
    ns_seed_groups_free(grp, ngrp);
    ns_report_out_free(&out);
    ns_report_free(&r);
    return rc;
}
