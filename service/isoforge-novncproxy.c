/* isoforge-novncproxy.c — the browser console's proxy: options, configuration, proxy, loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/common/daemon.h"
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
on_stop_signal(int signo, void *arg)
{
	log_info("signal %d: stopping (open consoles are closed)", signo);
	loop_quit(arg);
}

static const struct daemon_spec novncproxy = {
	.prog = "isoforge-novncproxy",
	.default_conf = ISOFORGE_CONF,
	.usage = usage,
	.on_stop = on_stop_signal,
};

int
main(int argc, char **argv)
{
	struct console_proxy_config	 pc;
	struct console_proxy		*p;
	struct config			*cfg;
	struct loop			*loop;
	struct err			 err;
	char				*key, *origin, *page;
	const char			*s, *e;

	cfg = daemon_config(&novncproxy, argc, argv);
	/* a wrong novnc_dir fails now, not at the first browser (and on stderr, before the log) */
	page = xasprintf("%s/vnc_lite.html", cfg->console_novnc_dir);
	if (access(page, R_OK) != 0)
		fatalx("[console] novnc_dir %s: no readable vnc_lite.html (Debian's novnc package)",
		    cfg->console_novnc_dir);
	free(page);
	loop = daemon_loop(&novncproxy, cfg);
	err_clear(&err);
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
