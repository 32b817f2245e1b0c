// DIR/report/report.md and DIR/report/index.html: the findings, the figures and the run
// tables of every experiment, written once through a small two-format document writer.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "report_internal.h"

// ---- a document written as Markdown and HTML at once -----------------------------------------
typedef struct {
    ns_buf md, html;
    int list, table;  // an open list / table
} doc;

static void html_text(ns_buf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': ns_buf_printf(b, "&amp;"); break;
        case '<': ns_buf_printf(b, "&lt;"); break;
        case '>': ns_buf_printf(b, "&gt;"); break;
        case '"': ns_buf_printf(b, "&quot;"); break;
        default: ns_buf_append(b, s, 1);
        }
    }
}

static void md_cell(ns_buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '|') ns_buf_append(b, "\\", 1);
        ns_buf_append(b, s, 1);
    }
}

static void d_close(doc *d) {
    if (d->list) ns_buf_printf(&d->html, "</ul>\n");
    if (d->table) ns_buf_printf(&d->html, "</table>\n");
    if (d->list || d->table) ns_buf_printf(&d->md, "\n");
    d->list = d->table = 0;
}

static void d_heading(doc *d, int level, const char *text) {
    d_close(d);
    ns_buf_printf(&d->md, "%.*s %s\n\n", level, "######", text);
    ns_buf_printf(&d->html, "<h%d>", level);
    html_text(&d->html, text);
    ns_buf_printf(&d->html, "</h%d>\n", level);
}

static void d_para(doc *d, const char *text) {
    d_close(d);
    ns_buf_printf(&d->md, "%s\n\n", text);
    ns_buf_printf(&d->html, "<p>");
    html_text(&d->html, text);
    ns_buf_printf(&d->html, "</p>\n");
}

static void d_item(doc *d, const char *text) {
    if (!d->list) {
        d_close(d);
        ns_buf_printf(&d->html, "<ul>\n");
        d->list = 1;
    }
    ns_buf_printf(&d->md, "- %s\n", text);
    ns_buf_printf(&d->html, "<li>");
    html_text(&d->html, text);
    ns_buf_printf(&d->html, "</li>\n");
}

static void d_row(doc *d, const char *const *cell, int n) {
    int header = !d->table;
    if (header) {
        d_close(d);
        ns_buf_printf(&d->html, "<table>\n");
        d->table = 1;
    }
    ns_buf_printf(&d->html, "<tr>");
    for (int i = 0; i < n; i++) {
        ns_buf_printf(&d->md, "| ");
        md_cell(&d->md, cell[i]);
        ns_buf_printf(&d->md, " ");
        ns_buf_printf(&d->html, header ? "<th>" : "<td>");
        html_text(&d->html, cell[i]);
        ns_buf_printf(&d->html, header ? "</th>" : "</td>");
    }
    ns_buf_printf(&d->md, "|\n");
    ns_buf_printf(&d->html, "</tr>\n");
    if (header) {
        for (int i = 0; i < n; i++) ns_buf_printf(&d->md, "|---");
        ns_buf_printf(&d->md, "|\n");
    }
}

static void d_figure(doc *d, const rp_figure *f) {
    d_close(d);
    if (f->drawn) {
        ns_buf_printf(&d->md, "![%s](%s.png)\n\n%s ([SVG](%s.svg), script `%s.gp`)\n\n", f->name, f->name, f->caption,
                      f->name, f->name);
        ns_buf_printf(&d->html, "<figure><a href=\"%s.svg\"><img src=\"%s.png\" alt=\"%s\"></a><figcaption>", f->name,
                      f->name, f->name);
    } else {
        ns_buf_printf(&d->md, "%s (not drawn; script `%s.gp`)\n\n", f->caption, f->name);
        ns_buf_printf(&d->html, "<figure><figcaption>(not drawn; script %s.gp) ", f->name);
    }
    if (f->drawn) {
        html_text(&d->html, f->caption);
        ns_buf_printf(&d->html, " (<a href=\"%s.svg\">SVG</a>, script %s.gp)", f->name, f->name);
    } else {
        html_text(&d->html, f->caption);
    }
    ns_buf_printf(&d->html, "</figcaption></figure>\n");
}

// ---- the report -------------------------------------------------------------------------------------
static const char *kind_name(ns_exp_kind k) {
    return k == NS_EXP_SWEEP ? "learning-rate sweep" : k == NS_EXP_TRAIN ? "standalone train runs" : "DLN lab sweep";
}

static void summary_table(doc *d, const rp_ctx *c) {
    const char *head[] = {"experiment", "runs", "diverged", "η_c predicted", "η_c observed", "best η", "best error"};
    d_row(d, head, 7);
    for (int k = 0; k < c->r->nexp; k++) {
        const ns_findings *f = &c->f[k];
        char runs[32], div[32], a[32], b[32], e[32], err[32];
        snprintf(runs, sizeof runs, "%d", f->n_runs);
        snprintf(div, sizeof div, "%d", f->n_diverged);
        const char *row[] = {c->r->exp[k].title, runs, div, rp_num(a, f->eta_c_pred), rp_num(b, f->eta_c_obs),
                             rp_num(e, f->best_eta), rp_num(err, f->best_err)};
        d_row(d, row, 7);
    }
}

// One list item per line of *lines, which it then frees.
static void lines_as_items(doc *d, ns_buf *lines) {
    for (char *p = lines->data; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        d_item(d, p);
        if (!nl) break;
        p = nl + 1;
    }
    ns_buf_free(lines);
}

static void findings_list(doc *d, const ns_findings *f) {
    ns_buf lines = {0};
    ns_findings_text(f, &lines);
    lines_as_items(d, &lines);
}

static void run_table(doc *d, const ns_rep_exp *e) {
    int dln = e->kind == NS_EXP_DLN;
    const char *net_head[] = {"η", "2/η", "status", "steps", "train loss", "test loss", "test error", "l1", "l2",
                              "sharpness", "avg sharpness", "decayed sharpness"};
    const char *dln_head[] = {"η", "2/η", "status", "steps", "train loss", "gen. error", "l1", "sharpness",
                              "dist. to min-l1", "dist. to min-sharpness"};
    int n = dln ? 10 : 12;
    d_row(d, dln ? dln_head : net_head, n);
    for (int i = 0; i < e->nrun; i++) {
        const ns_rep_run *u = &e->run[i];
        char v[12][32];
        snprintf(v[2], 32, "%s", *u->status ? u->status : "?");
        if (u->steps >= 0) snprintf(v[3], 32, "%ld", u->steps);
        else snprintf(v[3], 32, "\xe2\x80\x94");
        rp_num(v[0], u->eta);
        rp_num(v[1], 2 / u->eta);
        rp_num(v[4], u->train_loss);
        if (dln) {
            rp_num(v[5], u->test_err);
            rp_num(v[6], u->l1);
            rp_num(v[7], u->sharpness);
            rp_num(v[8], u->dist_min_l1);
            rp_num(v[9], u->dist_min_sharp);
        } else {
            rp_num(v[5], u->test_loss);
            rp_num(v[6], u->test_err);
            rp_num(v[7], u->l1);
            rp_num(v[8], u->l2);
            rp_num(v[9], u->sharpness);
            rp_num(v[10], u->avg_sharpness);
            rp_num(v[11], u->dec_sharpness);
        }
        const char *row[12];
        for (int j = 0; j < n; j++) row[j] = v[j];
        d_row(d, row, n);
    }
}

static void ref_table(doc *d, const ns_rep_exp *e) {
    int any = 0;
    for (int r = 0; r < NS_REF_COUNT; r++) any |= e->ref[r].present;
    if (!any) return;
    d_para(d, "Reference solutions (theory.json):");
    const char *head[] = {"solution", "l1", "sharpness", "gen. error"};
    d_row(d, head, 4);
    for (int r = 0; r < NS_REF_COUNT; r++) {
        if (!e->ref[r].present) continue;
        char a[32], b[32], g[32];
        const char *row[] = {ns_ref_label[r], rp_num(a, e->ref[r].l1), rp_num(b, e->ref[r].sharpness),
                             rp_num(g, e->ref[r].gen_err)};
        d_row(d, row, 4);
    }
}

static void figures_of(doc *d, const rp_ctx *c, int exp) {
    for (int i = 0; i < c->nfig; i++)
        if (c->fig[i].exp == exp) d_figure(d, &c->fig[i]);
}

// The settings swept at several seeds: the summary line, one row per seed, the figure.
static void seed_groups(doc *d, const rp_ctx *c) {
    if (!c->ngrp) return;
    d_heading(d, 2, "Across seeds");
    for (int gi = 0; gi < c->ngrp; gi++) {
        const ns_seed_group *g = &c->grp[gi];
        d_heading(d, 3, g->title);
        ns_buf line = {0};
        ns_seed_group_text(c->r, g, &line);
        lines_as_items(d, &line);
        if (g->n < 2) continue;  // only repeats of one seed: the sentence above says so
        const char *head[] = {"seed", "s_GF", "η_c predicted", "η_c observed", "above η_c at 2/η", "l1 ρ above η_c",
                              "best η", "best η / η_c", "best test error"};
        d_row(d, head, 9);
        for (int i = 0; i < g->n; i++) {
            const ns_findings *f = &c->f[g->exp[i]];
            char v[9][32];
            snprintf(v[0], 32, "%llu", (unsigned long long)c->r->exp[g->exp[i]].cfg.seed);
            snprintf(v[4], 32, "%d of %d", f->n_follow, f->n_above);
            const char *row[9] = {v[0], rp_num(v[1], f->s_gf), rp_num(v[2], f->eta_c_pred), rp_num(v[3], f->eta_c_obs),
                                  v[4], rp_num(v[5], f->l1_rho), rp_num(v[6], f->best_eta),
                                  rp_num(v[7], f->eta_c > 0 ? f->best_eta / f->eta_c : NAN), rp_num(v[8], f->best_err)};
            d_row(d, row, 9);
        }
        figures_of(d, c, RP_FIG_GROUP(gi));
    }
}

static const char *html_head =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>normsharp report</title>\n<style>\n"
    "body{font-family:sans-serif;max-width:1600px;margin:1em auto;padding:0 1em}\n"
    "img{max-width:100%;border:1px solid #ddd}\nfigure{margin:1em 0}\n"
    "table{border-collapse:collapse;font-size:90%}\ntd,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\n"
    "</style></head><body>\n";

int rp_write_documents(rp_ctx *c, ns_report_out *out) {
    const ns_report *r = c->r;
    doc d = {0};
    ns_buf_printf(&d.html, "%s", html_head);
    d_heading(&d, 1, "normsharp report");
    ns_buf intro = {0};
    int drawn = 0;
    for (int i = 0; i < c->nfig; i++) drawn += c->fig[i].drawn;
    ns_buf_printf(&intro,
                  "Results read from %s: %d experiment(s), %d gradient flow(s), %d figure(s) drawn of %d scripted. "
                  "Each figure is a PNG (for viewing) and an SVG (for papers); NAME.gp redraws it from data/. "
                  "Written by normsharp %s.",
                  r->dir, r->nexp, r->nflow, drawn, c->nfig, NS_VERSION);
    if (c->fail_msg[0]) ns_buf_printf(&intro, " Warning: %s.", c->fail_msg);
    d_para(&d, intro.data ? intro.data : "");
    ns_buf_free(&intro);
    if (r->nexp) {
        d_heading(&d, 2, "Summary");
        summary_table(&d, c);
    }
    seed_groups(&d, c);
    for (int k = 0; k < r->nexp; k++) {
        const ns_rep_exp *e = &r->exp[k];
        char where[4400];
        d_heading(&d, 2, e->title);
        snprintf(where, sizeof where, "%s in %s (%d runs).", kind_name(e->kind), e->dir, e->nrun);
        d_para(&d, where);
        if (e->flow >= 0) {
            snprintf(where, sizeof where, "Gradient flow: %s.", r->flow[e->flow].dir);
            d_para(&d, where);
        }
        d_heading(&d, 3, "Findings");
        findings_list(&d, &c->f[k]);
        d_heading(&d, 3, "Figures");
        figures_of(&d, c, k);
        if (e->kind == NS_EXP_DLN && e->dln_d > 3 && (c->o->coord_i < 0 || c->o->coord_j < 0))
            d_para(&d, "d > 3: the interpolators picture projects on the two coordinates where the min-l1 and "
                       "min-sharpness interpolators differ most; pass --coords I,J to choose others.");
        d_heading(&d, 3, "Runs");
        run_table(&d, e);
        ref_table(&d, e);
    }
    int standalone = 0;
    for (int k = 0; k < r->nflow; k++) standalone += !r->flow[k].used;
    if (standalone) {
        d_heading(&d, 2, "Gradient flows without a matching sweep");
        for (int k = 0; k < r->nflow; k++) {
            if (r->flow[k].used) continue;
            char line[4400], a[32], b[32];
            snprintf(line, sizeof line, "%s: s_GF = %s, eta_c = %s.", r->flow[k].dir, rp_num(a, r->flow[k].s_gf),
                     rp_num(b, r->flow[k].eta_c));
            d_para(&d, line);
            figures_of(&d, c, -1 - k);
        }
    }
    d_close(&d);
    ns_buf_printf(&d.html, "</body></html>\n");
    int rc = d.md.oom || d.html.oom ? NS_ENOMEM : 0;
    if (!rc && !ns_path(out->md, sizeof out->md, "%s/report.md", c->rdir) &&
        !ns_path(out->html, sizeof out->html, "%s/index.html", c->rdir)) {
        rc = ns_write_file_atomic(out->md, d.md.data, d.md.len);
        if (!rc) rc = ns_write_file_atomic(out->html, d.html.data, d.html.len);
    } else if (!rc) {
        rc = NS_EIO;
    }
    ns_buf_free(&d.md);
    ns_buf_free(&d.html);
    return rc;
}

// ---- the whole report ---------------------------------------------------------------------------
void ns_report_opts_default(ns_report_opts *o) {
    o->coord_i = o->coord_j = -1;
    o->gnuplot = NULL;
}

int ns_report_coords_parse(const char *s, ns_report_opts *o) {
    const char *comma = strchr(s, ',');
    char a[32];
    if (!comma || (size_t)(comma - s) >= sizeof a)
        return ns_fail(NS_EINVAL, "--coords expects two coordinates I,J (1-based), got '%s'", s);
    snprintf(a, sizeof a, "%.*s", (int)(comma - s), s);
    int i, j, rc;
    if ((rc = ns_parse_int(a, 1, 1000000000, "--coords", &i)) || (rc = ns_parse_int(comma + 1, 1, 1000000000, "--coords", &j)))
        return rc;
    if (i == j) return ns_fail(NS_EINVAL, "--coords needs two different coordinates, got '%s'", s);
    o->coord_i = i - 1;
    o->coord_j = j - 1;
    return 0;
}

int ns_report_write(const ns_report *r, const ns_report_opts *o, ns_report_out *out) {
    memset(out, 0, sizeof *out);
    rp_ctx c = {.r = r, .o = o};
    char data[4400];
    int rc = ns_path(c.rdir, sizeof c.rdir, "%s/report", r->dir);
    if (!rc) rc = ns_path(c.log, sizeof c.log, "%s/gnuplot.log", c.rdir);
    if (!rc) rc = ns_path(data, sizeof data, "%s/data", c.rdir);
    if (rc) return NS_EIO;
    if ((rc = ns_mkdirs(data)) || (rc = ns_write_file_atomic(c.log, "", 0))) return rc;
    ns_findings *f = ns_calloc((size_t)r->nexp + 1, sizeof *f);
    if (!f) return NS_ENOMEM;
    for (int k = 0; k < r->nexp; k++) ns_report_findings(r, k, &f[k]);
    c.f = f;
    ns_seed_group *grp = NULL;
    int ngrp = 0;
    if ((rc = ns_report_seed_groups(r, &grp, &ngrp))) {
        free(f);
        return rc;
    }
    c.grp = grp;
    c.ngrp = ngrp;
    for (int g = 0; g < ngrp && !c.rc; g++) rp_figure_seeds(&c, &grp[g], g);
    for (int k = 0; k < r->nexp && !c.rc; k++) rp_figures_experiment(&c, k);
    for (int k = 0; k < r->nflow && !c.rc; k++)
        if (!r->flow[k].used) rp_figure_standalone_flow(&c, k);
    rc = c.rc ? ns_fail(c.rc, "%s", c.rc_msg) : rp_write_documents(&c, out);
    out->nfig = c.nfig;
    if (!rc && (out->png = ns_calloc((size_t)c.nfig + 1, sizeof *out->png))) {
        for (int i = 0; i < c.nfig && !rc; i++) {
            if (!c.fig[i].drawn) continue;
            char path[4400];
            if (ns_path(path, sizeof path, "%s/%s.png", c.rdir, c.fig[i].name) || !(out->png[out->npng] = ns_strdup(path)))
                rc = NS_ENOMEM;
            else out->npng++;
        }
    } else if (!rc) {
        rc = NS_ENOMEM;
    }
    if (!rc && c.fail_msg[0]) rc = ns_fail(NS_EIO, "%s", c.fail_msg);
    for (int i = 0; i < c.nfig; i++) {
        free(c.fig[i].name);
        free(c.fig[i].caption);
    }
    free(c.fig);
    free(f);
    ns_seed_groups_free(grp, ngrp);
    return rc;
}

void ns_report_out_free(ns_report_out *out) {
    for (int i = 0; i < out->npng; i++) free(out->png[i]);
    free(out->png);
    memset(out, 0, sizeof *out);
}

const char *ns_exp_kind_name(ns_exp_kind k) {
    return k == NS_EXP_SWEEP ? "sweep" : k == NS_EXP_TRAIN ? "train" : "dln";
}

int ns_report_json(const ns_report *r, const ns_seed_group *grp, int ngrp, const ns_report_out *o, const char *error,
                   ns_buf *out) {
    ns_json j;
    ns_json_begin(&j, out);
    ns_json_obj(&j, NULL);
    ns_json_str(&j, "dir", r->dir);
    ns_json_str(&j, "report", o->md);
    ns_json_str(&j, "index", o->html);
    ns_json_int(&j, "figures_scripted", o->nfig);
    ns_json_arr(&j, "figures");
    for (int i = 0; i < o->npng; i++) ns_json_str(&j, NULL, o->png[i]);
    ns_json_end(&j);
    if (error) ns_json_str(&j, "error", error);
    else ns_json_null(&j, "error");
    ns_json_arr(&j, "experiments");
    for (int k = 0; k < r->nexp; k++) {
        ns_findings f;
        ns_report_findings(r, k, &f);
        ns_json_obj(&j, NULL);
        ns_json_str(&j, "title", r->exp[k].title);
        ns_json_str(&j, "kind", ns_exp_kind_name(r->exp[k].kind));
        ns_json_str(&j, "dir", r->exp[k].dir);
        ns_json_int(&j, "runs", r->exp[k].nrun);
        ns_findings_json(&f, &j, "findings");
        ns_json_end(&j);
    }
    ns_json_end(&j);
    ns_json_arr(&j, "across_seeds");
    for (int g = 0; g < ngrp; g++) ns_seed_group_json(r, &grp[g], &j, NULL);
    ns_json_end(&j);
    ns_json_end(&j);
    ns_buf_append(out, "\n", 1);
    return out->oom ? ns_fail(NS_ENOMEM, "out of memory while printing the report's findings") : 0;
}
