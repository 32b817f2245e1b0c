// PLACEHOLDER: replaced by the real command.
#include <stdio.h>
#include "cli.h"
int cmd_init(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "normsharp: 'init' is not implemented yet.\n");
    return 1;
}
