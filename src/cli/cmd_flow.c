// normsharp flow — gradient flow from theta_0 by RK4; reports s_GF and eta_c = 2 / s_GF.
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "train_cli.h"

int cmd_flow(int argc, char **argv) {
    train_cli t;
    train_cli_init(&t);
    ns_flow_opts o;
    ns_flow_opts_default(&o);
    ns_cli c;
    ns_cli_init(&c, "flow", "normsharp flow --loss-goal EPS --out DIR [options]",
                "Gradient flow theta' = -grad L from theta_0, integrated by Runge-Kutta 4 at step "
                "h = min(c / S(theta), h_max), S the sharpness by warm-started Lanczos, until the training "
                "loss reaches EPS (or --max-time / --max-steps). Reports s_GF, the largest sharpness on the "
                "way, and the predicted critical learning rate eta_c = 2 / s_GF.");
    ns_cli_add(&c, "loss-goal", OPT_DOUBLE, &o.loss_goal, 0, INFINITY, "EPS", "stop when the training loss is <= EPS");
    ns_cli_add(&c, "rk-c", OPT_DOUBLE, &o.rk_c, 1e-9, 2.7, "C", "step h = min(C / S, h_max) (default 0.5)");
    ns_cli_add(&c, "h-max", OPT_DOUBLE, &o.h_max, 1e-12, INFINITY, "H", "largest step (default 1)");
    ns_cli_add(&c, "eig-every", OPT_LONG, &o.eig_every, 1, 1e15, "K", "re-estimate S at steps 0 and 1, then when it may have drifted by 10 percent at the rate of its last two estimates, at most K steps later, and after a step that raised the loss (default 5)");
    ns_cli_add(&c, "max-time", OPT_DOUBLE, &o.max_time, 1e-300, INFINITY, "T", "stop at flow time T (the last step lands on it)");
    ns_cli_add(&c, "max-steps", OPT_LONG, &o.max_steps, 0, 1e15, "N", "stop after N RK4 steps (default 1000000)");
    ns_cli_add(&c, "diverge-factor", OPT_DOUBLE, &o.diverge_factor, 1.000001, INFINITY, "F", "diverged when the loss exceeds F x the initial loss (default 1000)");
    ns_cli_add(&c, "log-every", OPT_LONG, &o.log_every, 0, 1e15, "K", "trajectory row every K steps (default 1)");
    ns_cli_add(&c, "test-every", OPT_LONG, &o.test_every, 0, 1e15, "K", "test loss/error on rows at multiples of K (default 100)");
    train_cli_add_model(&c, &t, 1);
    ns_cli_add_data(&c, &t.data);
    train_cli_add_measure(&c, &t);
    train_cli_add_output(&c, &t, 1);
    NS_CLI_PARSE(&c, argc, argv);
    if (!ns_cli_seen(&c, "loss-goal") && !ns_cli_seen(&c, "max-time") && !ns_cli_seen(&c, "max-steps"))
        return ns_cli_usage_error("the flow needs --loss-goal EPS (s_GF is measured until the loss reaches it), "
                                  "or --max-time / --max-steps.");
    int rc = train_cli_check(&t, &c);
    if (!rc) rc = train_cli_fresh_out(&t);
    if (rc) return rc;
    train_cli_run_opts(&t, t.seed, &o.seed, &o.save_weights, &o.weights_from, &o.final, &o.eig);

    ns_dataset ds = {0};
    ns_model *m = NULL;
    ns_flow_result res = {0};
    if ((rc = ns_data_load(&t.data, &ds))) return ns_cli_report(rc);
    if (!(rc = train_cli_model(&t, &ds, t.seed, &m))) {
        ns_progress *p = ns_progress_console("flow");
        rc = !p ? NS_ENOMEM : ns_flow_run(m, &ds, &t.data, &o, t.out, p, &res);
        ns_progress_console_end(p);
    }
    if (!rc) {
        if (t.json) {
            fputs(res.summary.data, stdout);
        } else {
            printf("status          %s\nsteps           %ld (flow time %.6g, %.1f s)\n", ns_status_name(res.status), res.steps, res.time,
                   res.seconds);
            printf("train loss      %.6g\n", res.final_loss);
            printf("s_GF            %.8g   (largest sharpness along the flow)\n", res.s_gf);
            printf("eta_c           %.8g   (= 2 / s_GF)\n", res.eta_c);
            printf("results in      %s/summary.json\n", t.out);
        }
    }
    ns_flow_result_free(&res);
    ns_model_free(m);
    ns_data_free(&ds);
    return ns_cli_report(rc);
}
