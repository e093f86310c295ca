/* isoforge-api.c — the REST API daemon (docs/api.md): options, configuration, the API, the
 * event loop (signals and the events consumer; HTTP runs on libmicrohttpd's threads). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/loop.h"
#include "service/api/api.h"
#include "service/common/config.h"

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

/* SIGHUP: the log file again (logrotate moved it). */
static void
on_hup(int signo, void *arg)
{
	struct err	 err;

	(void)signo;
	(void)arg;
	err_clear(&err);
	if (log_reopen(&err) != 0)
		log_warnx("%s", err.msg);
}

static void
on_stop_signal(int signo, void *arg)
{
	log_info("signal %d: stopping", signo);
	loop_quit(arg);
}

int
main(int argc, char **argv)
{
	struct config	*cfg;
	struct loop	*loop;
	struct api	*api;
	struct err	 err;
	const char	*conffile = ISOFORGE_API_CONF;
	int		 ch, check = 0, verbose = 0;

	log_init("isoforge-api", 0);
	while ((ch = getopt(argc, argv, "c:dnv")) != -1) {
		switch (ch) {
		case 'c':
			conffile = optarg;
			break;
		case 'd':
		case 'v':
			verbose++;
			break;
		case 'n':
			check = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	err_clear(&err);
	if ((cfg = config_load(conffile, &err)) == NULL) {
		fprintf(stderr, "isoforge-api: %s\n", err.msg);
		return 1;
	}
	if (check) {
		config_dump(cfg, stdout);
		fprintf(stderr, "isoforge-api: %s: configuration OK\n", conffile);
		config_free(&cfg);
		return 0;
	}
	log_setverbose(verbose > 0 || cfg->debug);
	if (cfg->log_file != NULL && log_open(cfg->log_file, &err) != 0)
		fatalx("%s", err.msg);
	signal(SIGPIPE, SIG_IGN);
	/* signals first: the HTTP threads started later inherit the blocked mask */
	if ((loop = loop_new(&err)) == NULL ||
	    loop_signal_add(loop, SIGTERM, on_stop_signal, loop, &err) != 0 ||
	    loop_signal_add(loop, SIGINT, on_stop_signal, loop, &err) != 0 ||
	    loop_signal_add(loop, SIGHUP, on_hup, NULL, &err) != 0)
		fatalx("event loop: %s", err.msg);
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
