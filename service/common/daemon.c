/* daemon.c — the start-up isoforge's daemons share: options, configuration, log, event loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/log.h"
#include "service/common/daemon.h"

struct config *
daemon_config(const struct daemon_spec *spec, int argc, char **argv)
{
	struct config	*cfg;
	struct err	 err;
	const char	*conffile = spec->default_conf;
	int		 ch, check = 0, verbose = 0;

	log_init(spec->prog, 0);
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
			spec->usage();
		}
	}
	if (optind != argc)
		spec->usage();
	err_clear(&err);
	if ((cfg = config_load(conffile, &err)) == NULL) {
		fprintf(stderr, "%s: %s\n", spec->prog, err.msg);
		exit(1);
	}
	if (check) {
		config_dump(cfg, stdout);
		fprintf(stderr, "%s: %s: configuration OK\n", spec->prog, conffile);
		config_free(&cfg);
		exit(0);
	}
	log_setverbose(verbose > 0 || cfg->debug);
	return cfg;
}

/* SIGHUP: the log file again (logrotate moved it); arg is the daemon's spec. */
static void
daemon_on_hup(int signo, void *arg)
{
	const struct daemon_spec	*spec = arg;
	struct err			 err;

	(void)signo;
	err_clear(&err);
	if (log_reopen(&err) != 0)
		log_warnx("%s", err.msg);
	else if (spec->log_hup)
		log_info("log file reopened (SIGHUP)");
}

struct loop *
daemon_loop(const struct daemon_spec *spec, const struct config *cfg)
{
	struct loop	*loop;
	struct err	 err;

	err_clear(&err);
	if (cfg->log_file != NULL && log_open(cfg->log_file, &err) != 0)
		fatalx("%s", err.msg);
	signal(SIGPIPE, SIG_IGN);
	if ((loop = loop_new(&err)) == NULL ||
	    loop_signal_add(loop, SIGTERM, spec->on_stop, loop, &err) != 0 ||
	    loop_signal_add(loop, SIGINT, spec->on_stop, loop, &err) != 0 ||
	    loop_signal_add(loop, SIGHUP, daemon_on_hup, (void *)spec, &err) != 0)
		fatalx("event loop: %s", err.msg);
	return loop;
}
