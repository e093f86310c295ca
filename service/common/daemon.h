/*
 * daemon.h — the start-up isoforge's daemons share (isoforged, isoforge-api,
 * isoforge-novncproxy): the -c/-d/-n/-v options, the configuration and its -n check, the log,
 * and an event loop that stops on SIGTERM/SIGINT and reopens the log on SIGHUP.
 */
#ifndef ISOFORGE_DAEMON_H
#define ISOFORGE_DAEMON_H

#include "base/loop.h"
#include "service/common/config.h"

/* What differs between the daemons; lives as long as the loop (a static in main). */
struct daemon_spec {
	const char	*prog;		/* log name and the prefix of messages on stderr */
	const char	*default_conf;	/* without -c */
	void		(*usage)(void);	/* prints the usage and exits 2 */
	loop_signal_cb	 on_stop;	/* SIGTERM and SIGINT; its arg is the loop */
	int		 log_hup;	/* log it when SIGHUP reopened the log file */
};

/*
 * Parse the options, load the configuration and set the verbosity. With -n: print it (secrets
 * masked) and exit 0; a bad configuration: one line on stderr and exit 1. Caller frees the
 * result with config_free().
 */
struct config	*daemon_config(const struct daemon_spec *, int argc, char **argv);

/*
 * Open cfg's log file, ignore SIGPIPE, and make the event loop with the daemon's signal
 * handlers; any failure is fatal. Call it before starting threads: they inherit the blocked
 * signal mask. Caller frees the result with loop_free().
 */
struct loop	*daemon_loop(const struct daemon_spec *, const struct config *cfg);

#endif
