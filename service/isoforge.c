/* isoforge.c — the CLI: finds the subcommand and runs it. */
#include <stdio.h>
#include <string.h>

#include "service/cli/cmd.h"
#include "base/log.h"

struct command {
	const char	*name;
	int		(*run)(int, char **);
	const char	*summary;
};

static const struct command commands[] = {
	{ "plan",	cmd_plan,	"print the domain XML a build would define" },
	{ "local",	cmd_local,	"local build: ISO file in, image file out, no cloud" },
	{ "build",	cmd_build,	"ask isoforge-api for a build from a Glance ISO" },
	{ "status",	cmd_status,	"show one build" },
	{ "list",	cmd_list,	"list builds" },
	{ "finish",	cmd_finish,	"end an interactive install (guest shutdown)" },
	{ "cancel",	cmd_cancel,	"cancel a build" },
	{ "console",	cmd_console,	"print a browser (noVNC) URL of a build's console" },
	{ "versions",	cmd_versions,	"list the versions (images) of a chain" },
	{ "tree",	cmd_tree,	"show an image's ancestors and descendants" },
};

static void
usage(FILE *out)
{
	size_t	 i;

	fprintf(out, "usage: isoforge COMMAND [ARGS...]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'isoforge COMMAND --help' shows a command's options.\n");
}

int
main(int argc, char **argv)
{
	size_t	 i;

	log_init("isoforge", 0);
	if (argc < 2) {
		usage(stderr);
		return CMD_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return CMD_OK;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "isoforge: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return CMD_USAGE;
}
