// normsharp <command> [options] — dispatch to the commands.
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "normsharp/sweep.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *about;
} command;

static const command commands[] = {
    {"data", cmd_data, "prepare a dataset and print its summary"},
    {"init", cmd_init, "draw theta_0 for an architecture and save it"},
    {"sharpness", cmd_sharpness, "loss, norms, sharpness, top-k eigenvalues and trace of saved weights"},
    {"train", cmd_train, "full-batch GD (or momentum/SGD) at one learning rate"},
    {"flow", cmd_flow, "gradient flow by RK4; predicts the critical learning rate eta_c"},
    {"sweep", cmd_sweep, "GD over a grid of learning rates and seeds"},
    {"dln", cmd_dln, "the diagonal linear network lab (train, theory, sweep)"},
    {"report", cmd_report, "figures and report.md from a results directory"},
};
#define NCMD ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f) {
    fprintf(f,
            "normsharp %s — norm versus sharpness under gradient descent\n\n"
            "usage: normsharp <command> [options]\n"
            "       normsharp <command> --help   (or: normsharp help <command>)\n"
            "       normsharp --version\n\ncommands:\n",
            NS_VERSION);
    for (int i = 0; i < NCMD; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].about);
}

static int run_command(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || (!strcmp(argv[1], "help") && argc == 2)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "help")) {  // normsharp help CMD [SUB]: the command's --help
        char *args[4] = {argv[0], argv[2], NULL, NULL};
        int n = 2;
        if (argc > 3) args[n++] = argv[3];
        if (argc > 4) {
            fprintf(stderr, "normsharp: 'help' takes a command (and a dln subcommand), e.g. 'normsharp help sweep'.\n");
            return 2;
        }
        static char help_flag[] = "--help";
        args[n++] = help_flag;
        return run_command(n, args);
    }
    if (!strcmp(argv[1], "--version")) {
        printf("normsharp %s (%s network math)\n", NS_VERSION, NS_REAL_NAME);
        return 0;
    }
    for (int i = 0; i < NCMD; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "normsharp: unknown command '%s'; run 'normsharp --help' for the list.\n", argv[1]);
    return 2;
}

// Under mpirun only the sweeps spread their runs over the ranks; any other command would
// run once per rank, into the same files.
static int spreads_over_ranks(int argc, char **argv) {
    return argc >= 2 && (!strcmp(argv[1], "sweep") || (!strcmp(argv[1], "dln") && argc >= 3 && !strcmp(argv[2], "sweep")));
}

// Ctrl-C: say what happens to the work, then die of SIGINT as usual (exit status 130).
// A sweep keeps its finished runs (summary.json marks them) and resumes when rerun; a
// single run writes summary.json last, so an interrupted one is redone from its start.
static const char *interrupt_text;
static size_t interrupt_len;

static void on_interrupt(int sig) {
    if (interrupt_text && write(STDERR_FILENO, interrupt_text, interrupt_len) < 0) {
        // nothing more to do: the message is best effort
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void say_on_interrupt(int argc, char **argv) {
    static char text[400];
    const char *clear = isatty(STDERR_FILENO) ? "\r\033[K" : "\n";
    if (argc < 2) return;
    int sweep = !strcmp(argv[1], "sweep") || (!strcmp(argv[1], "dln") && argc >= 3 && !strcmp(argv[2], "sweep"));
    int single = !strcmp(argv[1], "train") || !strcmp(argv[1], "flow") ||
                 (!strcmp(argv[1], "dln") && argc >= 3 && !strcmp(argv[2], "train"));
    if (sweep)
        snprintf(text, sizeof text, "%snormsharp: interrupted. Finished runs are kept: rerun the same command to "
                                    "resume the sweep where it stopped.\n", clear);
    else if (single)
        snprintf(text, sizeof text, "%snormsharp: interrupted; this run was not finished (no summary.json). Rerun the "
                                    "same command to run it again; a sweep resumes where it stopped.\n", clear);
    else
        return;
    interrupt_text = text;
    interrupt_len = strlen(text);
    struct sigaction sa = {0};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

// In an MPI build every command runs between MPI_Init and MPI_Finalize (docs/MPI.md).
int main(int argc, char **argv) {
    if (ns_sweep_mpi_start(&argc, &argv)) return ns_cli_report(NS_EIO);
    if (ns_sweep_ranks() > 1 && !spreads_over_ranks(argc, argv)) {
        if (ns_sweep_rank() == 0)
            fprintf(stderr, "normsharp: only 'sweep' and 'dln sweep' run over several MPI ranks; "
                            "start other commands without mpirun.\n");
        return ns_sweep_mpi_finish(2);
    }
    if (ns_sweep_rank() == 0) say_on_interrupt(argc, argv);
    return ns_sweep_mpi_finish(run_command(argc, argv));
}
