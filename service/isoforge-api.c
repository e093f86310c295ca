/* isoforge-api.c — the REST API daemon (docs/api.md): options, configuration, the API, the
 * event loop (signals and the events consumer; HTTP runs on libmicrohttpd's threads). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/loop.h"
#include "service/api/api.h"
#include "service/common/daemon.h"

#define ISOFORGE_API_CONF	"/etc/isoforge/isoforge.conf"

static void
usage(void)
{
	fprintf(stderr, "usage: isoforge-api [-dnv] [-c FILE]\n"
	    "  -c FILE  configuration (default %s)\n"
	    "  -n       check the configuration, print it (secrets masked), exit\n"
	    "  -d -v    more logging (debug)\n", ISOFORGE_API_CONF);
	exit(2);
}

static void
on_stop_signal(int signo, void *arg)
{
	log_info("signal %d: stopping", signo);
	loop_quit(arg);
}

static const struct daemon_spec isoforge_api = {
	.prog = "isoforge-api",
	.default_conf = ISOFORGE_API_CONF,
	.usage = usage,
	.on_stop = on_stop_signal,
};

int
main(int argc, char **argv)
{
	struct config	*cfg;
	struct loop	*loop;
	struct api	*api;
	struct err	 err;

	cfg = daemon_config(&isoforge_api, argc, argv);
	/* the loop first: the HTTP threads started later inherit its blocked signal mask */
	loop = daemon_loop(&isoforge_api, cfg);
	err_clear(&err);
	if ((api = api_new(cfg, loop, &err)) == NULL || api_start(api, &err) != 0)
		fatalx("%s", err.msg);
	log_info("listening on %s port %ld (%s), view in %s", cfg->api_bind_host,
	    cfg->api_bind_port, api->base_url, cfg->api_state_dir);
	if (loop_run(loop, &err) != 0)
		log_warnx("event loop: %s", err.msg);
	api_stop(api);
	api_free(&api);
	loop_free(&loop);
	config_free(&cfg);
	log_info("stopped");
	return 0;
}
