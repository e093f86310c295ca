/* isoforged.c — the build worker daemon: options, configuration, worker, event loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/common/daemon.h"
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

static void
on_stop_signal(int signo, void *arg)
{
	log_info("signal %d: stopping (installs go on in libvirt, transfers stop; a restart "
	    "resumes every build)", signo);
	loop_quit(arg);
}

static const struct daemon_spec isoforged = {
	.prog = "isoforged",
	.default_conf = ISOFORGED_CONF,
	.usage = usage,
	.on_stop = on_stop_signal,
	.log_hup = 1,
};

int
main(int argc, char **argv)
{
	struct config	*cfg;
	struct loop	*loop;
	struct worker	*w;
	struct err	 err;

	cfg = daemon_config(&isoforged, argc, argv);
	loop = daemon_loop(&isoforged, cfg);
	err_clear(&err);
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
