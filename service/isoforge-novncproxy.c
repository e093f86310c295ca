/* isoforge-novncproxy.c — the browser console's proxy: options, configuration, proxy, loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/common/config.h"
#include "service/console/proxy.h"
#include "service/console/token.h"
#include "base/log.h"
#include "base/loop.h"

#define ISOFORGE_CONF	"/etc/isoforge/isoforge.conf"

static void
usage(void)
{
	fprintf(stderr, "usage: isoforge-novncproxy [-dnv] [-c FILE]\n"
	    "  -c FILE  configuration (default %s; its [console] section)\n"
	    "  -n       check the configuration, print it (secrets masked), exit\n"
	    "  -d -v    more logging (debug)\n", ISOFORGE_CONF);
	exit(2);
}

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
	log_info("signal %d: stopping (open consoles are closed)", signo);
	loop_quit(arg);
}

int
main(int argc, char **argv)
{
	struct console_proxy_config	 pc;
	struct console_proxy		*p;
	struct config			*cfg;
	struct loop			*loop;
	struct err			 err;
	const char			*conffile = ISOFORGE_CONF;
	char				*key, *origin, *page;
	const char			*s, *e;
	int				 ch, check = 0, verbose = 0;

	log_init("isoforge-novncproxy", 0);
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
		fprintf(stderr, "isoforge-novncproxy: %s\n", err.msg);
		return 1;
	}
	if (check) {
		config_dump(cfg, stdout);
		fprintf(stderr, "isoforge-novncproxy: %s: configuration OK\n", conffile);
		config_free(&cfg);
		return 0;
	}
	log_setverbose(verbose > 0 || cfg->debug);
	/* a wrong novnc_dir fails now, not at the first browser */
	page = xasprintf("%s/vnc_lite.html", cfg->console_novnc_dir);
	if (access(page, R_OK) != 0)
		fatalx("[console] novnc_dir %s: no readable vnc_lite.html (Debian's novnc package)",
		    cfg->console_novnc_dir);
	free(page);
	if (cfg->log_file != NULL && log_open(cfg->log_file, &err) != 0)
		fatalx("%s", err.msg);
	signal(SIGPIPE, SIG_IGN);
	if ((loop = loop_new(&err)) == NULL ||
	    loop_signal_add(loop, SIGTERM, on_stop_signal, loop, &err) != 0 ||
	    loop_signal_add(loop, SIGINT, on_stop_signal, loop, &err) != 0 ||
	    loop_signal_add(loop, SIGHUP, on_hup, NULL, &err) != 0)
		fatalx("event loop: %s", err.msg);
	key = console_key(cfg);
	memset(&pc, 0, sizeof(pc));
	pc.key = key;
	pc.bind_host = cfg->console_bind_host;
	pc.bind_port = (int)cfg->console_bind_port;
	pc.novnc_dir = cfg->console_novnc_dir;
	/* the origin of the pages it serves: base_url's scheme://host[:port] */
	s = strstr(cfg->console_base_url, "://");
	e = s != NULL ? strchr(s + 3, '/') : NULL;
	origin = e != NULL ? xstrndup(cfg->console_base_url, (size_t)(e - cfg->console_base_url)) :
	    xstrdup(cfg->console_base_url);
	pc.origin = origin;
	pc.max_connections = (int)cfg->console_max_connections;
	pc.idle_timeout_s = (int)cfg->console_idle_timeout;
	pc.handshake_timeout_s = 30;
	if ((p = console_proxy_new(loop, &pc, &err)) == NULL)
		fatalx("%s", err.msg);
	console_key_free(&key);
	free(origin);
	log_info("listening on %s port %d (noVNC from %s)", cfg->console_bind_host,
	    console_proxy_port(p), cfg->console_novnc_dir);
	if (loop_run(loop, &err) != 0)
		log_warnx("event loop: %s", err.msg);
	console_proxy_free(&p);
	loop_free(&loop);
	config_free(&cfg);
	log_info("stopped");
	return 0;
}
