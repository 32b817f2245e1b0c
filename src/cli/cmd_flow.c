// PLACEHOLDER: replaced by the real command.
#include <stdio.h>
#include "cli.h"
int cmd_flow(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "normsharp: 'flow' is not implemented yet.\n");
    return 1;
}
