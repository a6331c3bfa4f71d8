/* The `ondev` program: everything lives in the harness library. */
#include "harness/cli.h"

int main(int argc, char **argv) { return od_main(argc, argv); }
