/* cmd.h — the CLI's subcommands; each takes argv after the subcommand name, returns an exit code. */
#ifndef ISOFORGE_CMD_H
#define ISOFORGE_CMD_H

/* Exit codes: 0 done, 1 the operation failed, 2 usage or input error. */
#define CMD_OK		0
#define CMD_FAILED	1
#define CMD_USAGE	2

#include <jansson.h>

/* Prints one JSON value and a newline on stdout (the CLI's --json output); flags as json_dumps. */
void	cmd_print_json(const json_t *, size_t flags);

int	cmd_plan(int argc, char **argv);	/* service/cli/cmd_plan.c */
int	cmd_local(int argc, char **argv);	/* service/cli/cmd_local.c */
int	cmd_build(int argc, char **argv);	/* service/cli/cmd_remote.c */
int	cmd_status(int argc, char **argv);
int	cmd_list(int argc, char **argv);
int	cmd_finish(int argc, char **argv);
int	cmd_cancel(int argc, char **argv);
int	cmd_console(int argc, char **argv);
int	cmd_versions(int argc, char **argv);
int	cmd_tree(int argc, char **argv);

#endif
