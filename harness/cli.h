/* The `ondev` command line: dispatch to the subcommands, the options every
 * subcommand shares, and the version report. */
#ifndef ONDEV_HARNESS_CLI_H
#define ONDEV_HARNESS_CLI_H

#include <stdio.h>

/* Exit statuses of the command. */
enum {
    OD_EXIT_OK = 0,
    OD_EXIT_FAIL = 1,         /* the experiment failed, or a regression */
    OD_EXIT_USAGE = 2,        /* bad usage or unusable input */
    OD_EXIT_INTERRUPTED = 130 /* stopped by SIGINT or SIGTERM */
};

/* The whole command: argv[0] is the program, argv[1] the subcommand. */
int od_main(int argc, char **argv);

/* Options shared by every subcommand. od_cli_common recognises one of them
 * in arg, applies it and returns 1; otherwise it returns 0. */
typedef struct od_cli_common {
    int json;   /* --json: the summary goes to stdout as JSON */
    int help;   /* -h, --help */
} od_cli_common;
int od_cli_common_option(od_cli_common *o, const char *arg);

/* Version, build and host, as text or as one JSON object. */
void od_cli_write_version(FILE *f, int json);

/* Write a buffer built in memory to f in one go, so that a reader never
 * sees half of it. Returns 0 on success. */
int od_cli_emit(FILE *f, const char *buf, size_t len);

#endif
