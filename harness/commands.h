/* The subcommands of `ondev`. Each takes the arguments after its name
 * (argv[0] is the subcommand) and returns the process exit status:
 * 0 success, 1 failure of the experiment or a regression, 2 bad usage or
 * unusable input. */
#ifndef ONDEV_HARNESS_COMMANDS_H
#define ONDEV_HARNESS_COMMANDS_H

int od_cmd_run(int argc, char **argv);
int od_cmd_privacy(int argc, char **argv);
/* `ondev privacy attack` and `ondev privacy audit` (cmd_privacy_audit.c);
 * argv[0] is the action. */
int od_cmd_privacy_attack(int argc, char **argv);
int od_cmd_privacy_audit(int argc, char **argv);
int od_cmd_devices(int argc, char **argv);
int od_cmd_workloads(int argc, char **argv);
int od_cmd_report(int argc, char **argv);
int od_cmd_compare(int argc, char **argv);
int od_cmd_profile(int argc, char **argv);

#endif
