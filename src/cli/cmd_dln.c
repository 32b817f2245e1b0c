// PLACEHOLDER: replaced by the real command.
#include <stdio.h>
#include "cli.h"
int cmd_dln(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "normsharp: 'dln' is not implemented yet.\n");
    return 1;
}
