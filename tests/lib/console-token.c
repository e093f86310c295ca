/*
 * console-token — the tests' side of the API for the console (service/console/token.h):
 *   console-token key CONF                       the [console] key CONF gives (derived or set)
 *   console-token password BUILD_ID              the build's VNC password
 *   console-token mint BUILD_ID HOST PORT TTL    a token valid TTL seconds from now (< 0: expired)
 *   console-token url BASE_URL TOKEN             the noVNC URL
 * The key comes from $CONSOLE_KEY (not argv: ps shows that).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "service/common/config.h"
#include "service/console/token.h"

static const char *
env_key(void)
{
	const char	*k = getenv("CONSOLE_KEY");

	if (k == NULL || *k == '\0') {
		fprintf(stderr, "console-token: $CONSOLE_KEY is not set\n");
		exit(2);
	}
	return k;
}

int
main(int argc, char **argv)
{
	struct config	*cfg;
	struct err	 e;
	char		*s;

	err_clear(&e);
	if (argc == 3 && strcmp(argv[1], "key") == 0) {
		if ((cfg = config_load(argv[2], &e)) == NULL) {
			fprintf(stderr, "console-token: %s\n", e.msg);
			return 1;
		}
		s = console_key(cfg);
		config_free(&cfg);
	} else if (argc == 3 && strcmp(argv[1], "password") == 0)
		s = console_vnc_password(env_key(), argv[2]);
	else if (argc == 6 && strcmp(argv[1], "mint") == 0)
		s = console_token_mint(env_key(), argv[2], argv[3], atoi(argv[4]),
		    time(NULL) + atol(argv[5]), &e);
	else if (argc == 4 && strcmp(argv[1], "url") == 0)
		s = console_url(argv[2], argv[3]);
	else {
		fprintf(stderr, "usage: console-token key CONF | password ID | "
		    "mint ID HOST PORT TTL | url BASE TOKEN\n");
		return 2;
	}
	if (s == NULL) {
		fprintf(stderr, "console-token: %s\n", e.msg);
		return 1;
	}
	printf("%s\n", s);
	free(s);
	return 0;
}
