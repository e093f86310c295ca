/* cmd_remote.c — the CLI's commands that talk to the workers over AMQP (worker issue). */
#include <stdio.h>

#include "service/cmd.h"

static int
not_yet(const char *name)
{
	fprintf(stderr, "isoforge %s: not built yet\n", name);
	return CMD_FAILED;
}

int cmd_build(int argc, char **argv) { (void)argc; (void)argv; return not_yet("build"); }
int cmd_status(int argc, char **argv) { (void)argc; (void)argv; return not_yet("status"); }
int cmd_list(int argc, char **argv) { (void)argc; (void)argv; return not_yet("list"); }
int cmd_finish(int argc, char **argv) { (void)argc; (void)argv; return not_yet("finish"); }
int cmd_cancel(int argc, char **argv) { (void)argc; (void)argv; return not_yet("cancel"); }
int cmd_console(int argc, char **argv) { (void)argc; (void)argv; return not_yet("console"); }
int cmd_versions(int argc, char **argv) { (void)argc; (void)argv; return not_yet("versions"); }
int cmd_tree(int argc, char **argv) { (void)argc; (void)argv; return not_yet("tree"); }
