/* isoforged.c — the build worker daemon: options, configuration, worker, event loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/common/config.h"
#include "base/log.h"
#include "base/loop.h"
#include "service/worker/worker.h"

#define ISOFORGED_CONF	"/etc/isoforge/isoforge.conf"

static void
usage(void)
{
	fprintf(stderr, "usage: isoforged [-dnv] [-c FILE]\n"
	    "  -c FILE  configuration (default %s)\n"
	    "  -n       check the configuration, print it (secrets masked), exit\n"
	    "  -d -v    more logging (debug)\n", ISOFORGED_CONF);
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
	else
		log_info("log file reopened (SIGHUP)");
}

static void
on_stop_signal(int signo, void *arg)
{
	log_info("signal %d: stopping (installs go on in libvirt, transfers stop; a restart "
	    "resumes every build)", signo);
	loop_quit(arg);
}

int
main(int argc, char **argv)
{
	struct config	*cfg;
	struct loop	*loop;
	struct worker	*w;
	struct err	 err;
	const char	*conffile = ISOFORGED_CONF;
	int		 ch, check = 0, verbose = 0;

	log_init("isoforged", 0);
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
		fprintf(stderr, "isoforged: %s\n", err.msg);
		return 1;
	}
	if (check) {
		config_dump(cfg, stdout);
		fprintf(stderr, "isoforged: %s: configuration OK\n", conffile);
		config_free(&cfg);
		return 0;
	}
	log_setverbose(verbose > 0 || cfg->debug);
	if (cfg->log_file != NULL && log_open(cfg->log_file, &err) != 0)
		fatalx("%s", err.msg);
	signal(SIGPIPE, SIG_IGN);
	if ((loop = loop_new(&err)) == NULL ||
	    loop_signal_add(loop, SIGTERM, on_stop_signal, loop, &err) != 0 ||
	    loop_signal_add(loop, SIGINT, on_stop_signal, loop, &err) != 0 ||
	    loop_signal_add(loop, SIGHUP, on_hup, NULL, &err) != 0)
		fatalx("event loop: %s", err.msg);
	if ((w = worker_new(cfg, loop, &err)) == NULL || worker_start(w, &err) != 0)
		fatalx("%s", err.msg);
	log_info("worker %s started (work_dir %s)", cfg->host, cfg->work_dir);
	if (loop_run(loop, &err) != 0)
		log_warnx("event loop: %s", err.msg);
	worker_stop(w);
	worker_free(&w);
	loop_free(&loop);
	config_free(&cfg);
	log_info("stopped");
	return 0;
}
