/* cmd_plan.c — isoforge plan (isoboot issue). */
#include <stdio.h>

#include "service/cmd.h"

int
cmd_plan(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "isoforge plan: not built yet\n");
	return CMD_FAILED;
}
