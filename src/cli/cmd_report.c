// PLACEHOLDER: replaced by the real command.
#include <stdio.h>
#include "cli.h"
int cmd_report(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "normsharp: 'report' is not implemented yet.\n");
    return 1;
}
