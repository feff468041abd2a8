#include <stdio.h>
#include "tdecomp.h"
int main(int argc, char **argv)
{
    (void)argc; (void)argv;
    printf("tdecomp-tool %s\n", TD_VERSION_STRING);
    return 0;
}
