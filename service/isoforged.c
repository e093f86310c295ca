/* isoforged.c — the build worker daemon (worker issue). */
#include <stdio.h>

#include "service/log.h"

int
main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	log_init("isoforged", 0);
	log_warnx("the worker is not built yet");
	return 1;
}
