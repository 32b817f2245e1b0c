// PLACEHOLDER: replaced by the real command.
#include <stdio.h>
#include "cli.h"
int cmd_sweep(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "normsharp: 'sweep' is not implemented yet.\n");
    return 1;
}
