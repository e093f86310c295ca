/* cmd_local.c — isoforge local build (local build issue). */
#include <stdio.h>

#include "service/cmd.h"

int
cmd_local(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "isoforge local: not built yet\n");
	return CMD_FAILED;
}
