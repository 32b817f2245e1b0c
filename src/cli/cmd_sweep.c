// normsharp sweep — options, theta_0 of every seed, then the library's protocol
// (normsharp/protocol.h: the flows, GD over the grid, sweep.csv); prints the closing table
// with the observed transition.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/eos.h"
#include "normsharp/protocol.h"
#include "normsharp/sweep.h"
#include "train_cli.h"

// ---- the closing table --------------------------------------------------------------------------

// The closing table on stdout: per seed, every GD run with its sharpness against 2/eta,
// then s_GF, the predicted eta_c and the observed transition (ns_eos_transition).
static void print_table(const ns_protocol_result *r, const uint64_t *seeds, const char *root) {
    for (int k = 0; k < r->nseeds; k++) {
        const ns_protocol_view *v = r->views + (size_t)k * r->per;
        double tr = r->transition[k];
        printf("seed %llu\n", (unsigned long long)seeds[k]);
        printf("  %-12s %-10s %12s %12s %12s %9s\n", "eta", "status", "sharpness", "2/eta", "l1", "test_err");
        for (int q = 0; q < r->per; q++)
            printf("  %-12.6g %-10s %12.5g %12.5g %12.6g %9.4f\n", v[q].eta, v[q].status, v[q].sharpness,
                   2 / v[q].eta, v[q].l1, v[q].test_err);
        if (isnan(r->s_gf[k])) {
            printf("  (run with --flow for s_GF, the predicted eta_c and the observed transition)\n");
        } else {
            printf("  gradient flow: s_GF = %.6g, predicted eta_c = 2/s_GF = %.6g\n", r->s_gf[k], r->eta_c[k]);
            if (isnan(tr))
                printf("  observed transition: none in this grid (no final sharpness >10%% below s_GF and within 10%% of 2/eta)\n");
            else
                printf("  observed transition: eta = %.6g (smallest eta whose final sharpness is >10%% below s_GF and within 10%% of 2/eta)\n", tr);
        }
    }
    printf("results in %s/sweep.csv\n", root);
}

// ---- the command --------------------------------------------------------------------------------

// What `normsharp sweep` was asked for.
typedef struct {
    train_cli t;
    ns_train_opts gd;
    ns_flow_opts fl;
    const char *lr, *seeds_s, *span_s;
    int jobs, flow, around, quiet;
    double span[2];
    double *grid;
    int ngrid;
    uint64_t *seeds;
    int nseeds;
} sweep_args;

// Options, then their checks. Returns 0, -1 after --help, or an exit status (2).
static int parse_args(int argc, char **argv, sweep_args *a) {
    memset(a, 0, sizeof *a);
    train_cli_init(&a->t);
    ns_train_opts_default(&a->gd);
    ns_flow_opts_default(&a->fl);
    a->seeds_s = "0";
    a->span_s = "8";
    a->jobs = 1;
    ns_cli c;
    ns_cli_init(&c, "sweep", "normsharp sweep (--lr GRID | --flow --lr-around K) --out OUT [options]",
                "Gradient descent from the same theta_0 (per seed) at every learning rate of a grid. Run directories "
                "OUT/<dataset>/<arch>/<loss>/seed_<s>/lr_<eta>/ and OUT/<dataset>/<arch>/<loss>/sweep.csv. "
                "--flow first integrates the gradient flow of each seed (its s_GF predicts eta_c = 2/s_GF, in "
                "seed_<s>/flow/ and flow.csv); --lr-around K then uses K log-spaced rates from eta_c/F to "
                "eta_c*F (--lr-span F, default 8; or LO:HI for eta_c/LO to eta_c*HI). Runs go to --jobs worker processes, one OpenBLAS thread each, "
                "so results do not depend on --jobs. Rerunning the same command resumes: finished runs are kept.");
    ns_cli_add(&c, "lr", OPT_STR, &a->lr, 0, 0, "GRID", "learning rates: a list 0.01,0.02 or a log range A:B:K");
    ns_cli_add(&c, "seeds", OPT_STR, &a->seeds_s, 0, 0, "LIST", "seeds of theta_0, e.g. 0,1,2 (default 0)");
    ns_cli_add(&c, "jobs", OPT_INT, &a->jobs, 1, 4096, "N", "parallel worker processes (default 1)");
    ns_cli_add(&c, "flow", OPT_FLAG, &a->flow, 0, 0, NULL, "run the gradient flow of each seed first (needs --loss-goal)");
    ns_cli_add(&c, "lr-around", OPT_INT, &a->around, 1, 10000, "K", "with --flow: K log-spaced rates centred on eta_c");
    ns_cli_add(&c, "lr-span", OPT_STR, &a->span_s, 0, 0, "F|LO:HI",
               "--lr-around covers eta_c/F .. eta_c*F (default 8), or eta_c/LO .. eta_c*HI");
    ns_cli_add(&c, "rk-c", OPT_DOUBLE, &a->fl.rk_c, 1e-9, 2.7, "C", "flow step h = min(C / S, h_max) (default 0.5)");
    ns_cli_add(&c, "h-max", OPT_DOUBLE, &a->fl.h_max, 1e-12, INFINITY, "H", "largest flow step (default 1)");
    ns_cli_add(&c, "flow-eig-every", OPT_LONG, &a->fl.eig_every, 1, 1e15, "K", "flow: re-estimate S at steps 0 and 1, then when it may have drifted by 10 percent at the rate of its last two estimates, at most K steps later, and after a step that raised the loss (default 5)");
    ns_cli_add(&c, "flow-max-time", OPT_DOUBLE, &a->fl.max_time, 1e-300, INFINITY, "T", "flow: stop at time T");
    ns_cli_add(&c, "flow-max-steps", OPT_LONG, &a->fl.max_steps, 0, 1e15, "N", "flow: stop after N steps (default 1000000)");
    train_cli_add_model(&c, &a->t, 0);
    ns_cli_add_data(&c, &a->t.data);
    train_cli_add_gd(&c, &a->gd);
    train_cli_add_measure(&c, &a->t);
    train_cli_add_views(&c, &a->gd.weight_decay, &a->t.views);
    train_cli_add_output(&c, &a->t, 0);
    ns_cli_add(&c, "quiet", OPT_FLAG, &a->quiet, 0, 0, NULL, "no progress output (implied by --json)");
    int rc = ns_cli_parse(&c, argc, argv);
    if (rc) return rc;
    a->quiet |= a->t.json;
    if (!a->lr == !ns_cli_seen(&c, "lr-around"))
        return ns_cli_usage_error("give the learning rates either as --lr GRID or as --flow --lr-around K.");
    if (ns_cli_seen(&c, "lr-around") && !a->flow) return ns_cli_usage_error("--lr-around needs --flow (it centres the grid on eta_c).");
    if (a->flow && !ns_cli_seen(&c, "loss-goal"))
        return ns_cli_usage_error("--flow measures s_GF until the training loss reaches --loss-goal EPS; give --loss-goal.");
    if (a->gd.nesterov && !(a->gd.momentum > 0)) return ns_cli_usage_error("--nesterov needs --momentum > 0.");
    if ((rc = train_cli_check_views(&c))) return rc;
    a->fl.weight_decay = a->gd.weight_decay;
    if (ns_lr_span_parse(a->span_s, a->span) || (a->lr && ns_parse_grid(a->lr, 1, "--lr", &a->grid, &a->ngrid)) ||
        ns_parse_seeds(a->seeds_s, "--seeds", &a->seeds, &a->nseeds))
        return ns_cli_usage_error("%s.", ns_errmsg());
    if ((rc = train_cli_check(&a->t, &c))) return rc;
    if (a->t.weights) a->seeds[0] = a->t.seed;  // the one theta_0, under its own seed (--seeds is refused)
    a->fl.loss_goal = a->gd.loss_goal;
    return 0;
}

// theta_0 of every seed into o->models, and the results' root OUT/<dataset>/<arch>/<loss>.
// Returns an exit status.
static int make_seeds(ns_protocol_opts *o, const sweep_args *a, char root[4200]) {
    int rc;
    if (a->gd.batch > o->ds->n)
        return ns_cli_usage_error("--batch %ld is larger than the training set (%ld examples).", a->gd.batch, o->ds->n);
    if (!(o->models = ns_calloc((size_t)a->nseeds, sizeof *o->models))) return ns_cli_report(NS_ENOMEM);
    for (int k = 0; k < a->nseeds; k++)
        if ((rc = train_cli_model(&a->t, o->ds, a->seeds[k], &o->models[k]))) return ns_cli_report(rc);
    rc = ns_path(root, 4200, "%s/%s/%s/%s", a->t.out, o->ds->name, ns_model_cfg(o->models[0])->arch,
                 ns_loss_name(a->t.data.loss));
    return rc ? ns_cli_report(rc) : 0;
}

// The runs' options from the shared ones (their seeds are set per run by the protocol);
// the flows measure s_GF only, without the views.
static void protocol_opts(ns_protocol_opts *o, const sweep_args *a) {
    uint64_t seed;
    o->gd = a->gd;
    train_cli_run_opts(&a->t, 0, &seed, &o->gd.save_weights, &o->gd.weights_from, &o->gd.final, &o->gd.eig);
    o->flow = a->fl;
    train_cli_run_opts(&a->t, 0, &seed, &o->flow.save_weights, &o->flow.weights_from, &o->flow.final, &o->flow.eig);
    o->flow.final.views = o->flow.eig.views = a->fl.final.views;
    o->data = &a->t.data;
    o->nseeds = a->nseeds;
    o->seeds = a->seeds;
    o->run_flow = a->flow;
    o->grid = a->grid;
    o->ngrid = a->ngrid;
    o->around = a->around;
    o->span_lo = a->span[0];
    o->span_hi = a->span[1];
    o->jobs = a->jobs;
    o->quiet = a->quiet;
}

int cmd_sweep(int argc, char **argv) {
    sweep_args a;
    int status = parse_args(argc, argv, &a);
    ns_dataset ds = {0};
    ns_protocol_opts o = {.ds = &ds};
    char root[4200];
    int rc;
    if (status) status = status < 0 ? 0 : status;
    else if ((rc = ns_data_load(&a.t.data, &ds))) status = ns_cli_report(rc);
    else if (!(status = make_seeds(&o, &a, root))) {
        protocol_opts(&o, &a);
        o.root = root;
        ns_protocol_result res;
        status = ns_cli_report_once(ns_protocol_run(&o, &res));
        ns_buf b = {0};
        if (res.filled && !a.t.json) print_table(&res, a.seeds, root);
        else if (res.filled && (rc = ns_cli_put(&b, ns_protocol_result_json(&res, a.seeds, root, &b))) && !status)
            status = ns_cli_report(rc);
        ns_protocol_result_free(&res);
    }
    for (int k = 0; k < a.nseeds && o.models; k++) ns_model_free(o.models[k]);
    free(o.models);
    free(a.seeds);
    free(a.grid);
    ns_data_free(&ds);
    return status;
}
