// PLACEHOLDER: replaced by the real command.
#include <stdio.h>
#include "cli.h"
int cmd_sharpness(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "normsharp: 'sharpness' is not implemented yet.\n");
    return 1;
}
