// PLACEHOLDER: replaced by the real command.
#include <stdio.h>
#include "cli.h"
int cmd_train(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "normsharp: 'train' is not implemented yet.\n");
    return 1;
}
