// cli.h — the command line: one strict option parser shared by every command, and the
// list of commands. Only this layer prints errors and chooses exit statuses:
//   0 success (including a diverged run: divergence is a result),
//   1 a runtime failure (I/O, malformed file, solver),
//   2 bad usage (unknown option, bad number, impossible combination).
#ifndef NORMSHARP_CLI_H
#define NORMSHARP_CLI_H
#include "normsharp/common.h"
#include "normsharp/data.h"

typedef enum { OPT_FLAG, OPT_STR, OPT_DOUBLE, OPT_LONG, OPT_INT, OPT_U64, OPT_LOSS } ns_opt_type;

typedef struct {
    const char *name;     // long name without dashes, e.g. "lr"
    ns_opt_type type;
    void *ptr;            // int* for FLAG, const char** for STR, double*, long*, int*, uint64_t*, ns_loss_kind* for LOSS
    double lo, hi;        // accepted range for numbers (inclusive)
    const char *metavar;  // e.g. "ETA"
    const char *help;     // one line
    int seen;             // set by the parser
    const char *alias;    // an older spelling that still works (ns_cli_alias), or NULL
} ns_opt;

#define NS_MAX_OPTS 64
typedef struct {
    const char *cmd;      // "data", "dln sweep", ...
    const char *usage;    // "normsharp data [options]"
    const char *about;    // one paragraph
    ns_opt opt[NS_MAX_OPTS];
    int nopt;
    int max_pos;          // positional arguments accepted
    const char *pos[8];
    int npos;
} ns_cli;

void ns_cli_init(ns_cli *c, const char *cmd, const char *usage, const char *about);
ns_opt *ns_cli_add(ns_cli *c, const char *name, ns_opt_type t, void *ptr, double lo, double hi,
                   const char *metavar, const char *help);
// Accept --old_name as another spelling of the option `name` (already added); --help lists it.
void ns_cli_alias(ns_cli *c, const char *name, const char *old_name);
// Adds --dataset --data-dir --n --n-test --classes --loss.
void ns_cli_add_data(ns_cli *c, ns_data_opts *o);
// The data options of a run from saved weights: those given on the command line (parsed
// into `cli`), the rest from model.json (`saved`).
void ns_cli_merge_data(ns_data_opts *d, const ns_data_opts *cli, const ns_data_opts *saved, const ns_cli *c);
// Parse argv (argv[0] is the command name). Returns 0 to go on, -1 after printing --help
// (the command should return 0), or 2 after a usage error (message already printed).
// Use NS_CLI_PARSE, which returns from the calling command as appropriate.
int ns_cli_parse(ns_cli *c, int argc, char **argv);
#define NS_CLI_PARSE(c, argc, argv)                        \
    do {                                                   \
        int ns_cli_rc_ = ns_cli_parse((c), (argc), (argv)); \
        if (ns_cli_rc_) return ns_cli_rc_ < 0 ? 0 : ns_cli_rc_; \
    } while (0)
const ns_opt *ns_cli_opt(const ns_cli *c, const char *name);
int ns_cli_seen(const ns_cli *c, const char *name);

// Print "normsharp: <message>" for the last library error and map code -> exit status.
int ns_cli_report(int code);
// The same for an error every MPI rank shares (a sweep's result): only rank 0 prints it.
int ns_cli_report_once(int code);
// The text the library built into b (rc its status) onto stdout when rc is 0, then b freed;
// returns rc, or NS_ENOMEM (with its sentence) if b ran out of memory.
int ns_cli_put(ns_buf *b, int rc);
// --out DIR made (mkdir -p) and writable: 0, or 2 after a usage error naming --out.
int ns_cli_out_dir(const char *out);
// Print "normsharp: <formatted>" and return 2 (usage error).
int ns_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Configure OpenBLAS threads from --threads / environment (default: all cores).
void ns_cli_set_threads(int threads);
// --hvp-cache-mb MB into *mb (left at -1 when not given), and its effect on models created
// after ns_cli_set_hvp_cache (every model of the command: sweeps build theirs later).
void ns_cli_add_hvp_cache(ns_cli *c, long *mb);
void ns_cli_set_hvp_cache(long mb);

// Commands (each in src/cli/cmd_<name>.c)
int cmd_data(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_sharpness(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_flow(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_dln(int argc, char **argv);
int cmd_report(int argc, char **argv);
// `normsharp help CMD [SUB]`: the command's --help.
int cmd_help(int argc, char **argv);
#endif
