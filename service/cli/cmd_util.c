/* cmd_util.c — small pieces every CLI subcommand shares. */
#include <stdio.h>

#include <jansson.h>

#include "service/cli/cmd.h"

void
cmd_print_json(const json_t *j, size_t flags)
{
	json_dumpf(j, stdout, flags | JSON_ENCODE_ANY);
	putchar('\n');
	fflush(stdout);
}
