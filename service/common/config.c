/* config.c — isoforge.conf: one table of options {section, name, type, default, validator}. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "drivers/guestnet.h"
#include "service/common/amqp.h"
#include "service/common/config.h"
#include "base/ini.h"
#include "base/util.h"

enum conf_type {
	CONF_STRING,
	CONF_SECRET,		/* printed as *** */
	CONF_URL,		/* its user:pass@ password is printed as *** */
	CONF_PATH,		/* an absolute path */
	CONF_INT,
	CONF_BOOL
};

struct conf_option {
	const char	*section;
	const char	*name;
	enum conf_type	 type;
	const char	*def;		/* NULL: unset */
	size_t		 off;		/* into struct config */
	int		 required;
	long		 min, max;	/* CONF_INT */
	/* Extra check of a non-empty value; fills err (without FILE:LINE) and returns -1. */
	int		(*check)(const char *value, struct err *);
	const char	*help;		/* one line, for the dump */
};

static int check_transport_url(const char *, struct err *);
static int check_http_url(const char *, struct err *);
static int check_auth_type(const char *, struct err *);
static int check_interface(const char *, struct err *);
static int check_domain_type(const char *, struct err *);
static int check_ip(const char *, struct err *);
static int check_image_id(const char *, struct err *);
static int check_guest_network(const char *, struct err *);
static int check_guest_deny(const char *, struct err *);
static int check_roles(const char *, struct err *);
static int check_queue_name(const char *, struct err *);

#define OFF(f)	offsetof(struct config, f)

static const struct conf_option conf_options[] = {
	{ "DEFAULT", "transport_url", CONF_URL, NULL, OFF(transport_url), 1, 0, 0,
	    check_transport_url, "RabbitMQ: rabbit://user:pass@host:port/vhost (hosts "
	    "comma-separated; ?ssl=1 or amqps:// for TLS)" },
	{ "DEFAULT", "host", CONF_STRING, NULL, OFF(host), 0, 0, 0, NULL,
	    "this worker's name in events and logs (default: the host name)" },
	{ "DEFAULT", "heartbeat", CONF_INT, "60", OFF(heartbeat), 0, 0, 3600, NULL,
	    "AMQP heartbeat in seconds (0 = off)" },
	{ "DEFAULT", "debug", CONF_BOOL, "false", OFF(debug), 0, 0, 0, NULL, "log debug messages" },
	{ "DEFAULT", "log_file", CONF_PATH, NULL, OFF(log_file), 0, 0, 0, NULL,
	    "log to this file (reopened on SIGHUP, for logrotate); default: standard error" },

	{ "oslo_messaging_rabbit", "ssl_ca_file", CONF_PATH, NULL, OFF(amqp_ca_file), 0, 0, 0,
	    NULL, "CA bundle RabbitMQ's certificate must chain to, for a transport_url over TLS "
	    "(amqps:// or ?ssl=1); default: the system's CAs" },

	{ "keystone_authtoken", "auth_url", CONF_STRING, NULL, OFF(auth_url), 1, 0, 0,
	    check_http_url, "Keystone, e.g. http://keystone:5000/v3" },
	{ "keystone_authtoken", "auth_type", CONF_STRING, "password", OFF(auth_type), 0, 0, 0,
	    check_auth_type, "only password" },
	{ "keystone_authtoken", "username", CONF_STRING, NULL, OFF(username), 1, 0, 0, NULL,
	    "isoforge's service user (roles: service)" },
	{ "keystone_authtoken", "password", CONF_SECRET, NULL, OFF(password), 1, 0, 0, NULL, NULL },
	{ "keystone_authtoken", "project_name", CONF_STRING, NULL, OFF(project_name), 1, 0, 0,
	    NULL, NULL },
	{ "keystone_authtoken", "user_domain_name", CONF_STRING, "Default", OFF(user_domain_name),
	    0, 0, 0, NULL, NULL },
	{ "keystone_authtoken", "project_domain_name", CONF_STRING, "Default",
	    OFF(project_domain_name), 0, 0, 0, NULL, NULL },
	{ "keystone_authtoken", "region_name", CONF_STRING, NULL, OFF(region_name), 0, 0, 0, NULL,
	    "catalog region (default: any)" },
	{ "keystone_authtoken", "interface", CONF_STRING, "public", OFF(interface), 0, 0, 0,
	    check_interface, "catalog interface: public | internal | admin" },
	{ "keystone_authtoken", "cafile", CONF_PATH, NULL, OFF(cafile), 0, 0, 0, NULL,
	    "CA bundle for TLS to the services" },

	{ "glance", "endpoint", CONF_STRING, NULL, OFF(glance_endpoint), 0, 0, 0, check_http_url,
	    "override the catalog's image endpoint" },
	{ "nova", "endpoint", CONF_STRING, NULL, OFF(nova_endpoint), 0, 0, 0, check_http_url,
	    "override the catalog's compute endpoint" },

	{ "libvirt", "uri", CONF_STRING, "qemu:///system", OFF(libvirt_uri), 0, 0, 0, NULL, NULL },
	{ "libvirt", "domain_type", CONF_STRING, "auto", OFF(domain_type), 0, 0, 0,
	    check_domain_type, "auto (KVM when a probe guest runs under it, else TCG) | kvm | qemu" },

	{ "builds", "work_dir", CONF_PATH, "/var/lib/isoforge", OFF(work_dir), 0, 0, 0, NULL,
	    "root disks under build, and the job store (jobs.db)" },
	{ "builds", "cache_dir", CONF_PATH, "/var/cache/isoforge", OFF(cache_dir), 0, 0, 0, NULL,
	    "ISOs by their Glance os_hash_value" },
	{ "builds", "max_builds", CONF_INT, "2", OFF(max_builds), 0, 1, 64, NULL,
	    "builds at once on this worker (AMQP prefetch)" },
	{ "builds", "install_timeout", CONF_INT, "14400", OFF(install_timeout), 0, 60,
	    7 * 24 * 3600, NULL, "seconds before an install is failed (a request may ask less)" },
	{ "builds", "progress_interval", CONF_INT, "60", OFF(progress_interval), 0, 0, 86400,
	    NULL, "seconds between an install's progress events (0: none)" },
	{ "builds", "inactivity_timeout", CONF_INT, "900", OFF(inactivity_timeout), 0, 0,
	    7 * 24 * 3600, NULL, "an unattended install with no disk writes and no console "
	    "output for so long fails, with a screenshot (0: off; a request may set its own)" },
	{ "builds", "finish_grace", CONF_INT, "60", OFF(finish_grace), 0, 1, 3600, NULL,
	    "seconds `isoforge finish` waits for the guest to shut down before pulling the plug" },
	{ "builds", "cleanup_retry", CONF_INT, "60", OFF(cleanup_retry), 0, 1, 86400, NULL,
	    "seconds between attempts to remove what an ended build left (a failed removal)" },
	{ "builds", "chain_key", CONF_SECRET, NULL, OFF(chain_key), 0, 0, 0, NULL,
	    "the key of the ids of chain versions; the same on every worker (default: derived "
	    "from [keystone_authtoken] password)" },
	{ "builds", "cache_max_gib", CONF_INT, "64", OFF(cache_max_gib), 0, 1, 1048576, NULL,
	    "the ISO cache's bound: least recently used ISOs no build uses are removed beyond it" },
	{ "builds", "max_disk_gib", CONF_INT, "256", OFF(max_disk_gib), 0, 1, 65536, NULL,
	    "the largest root disk a build may have: a flavor asking for more is refused" },
	{ "builds", "vnc_listen", CONF_STRING, "127.0.0.1", OFF(vnc_listen), 0, 0, 0, check_ip,
	    "address the consoles listen on" },
	{ "builds", "virtio_win_image", CONF_STRING, NULL, OFF(virtio_win_image), 0, 0, 0,
	    check_image_id, "Glance id of the virtio-win ISO used for virtio_win_image=auto" },
	{ "builds", "guest_network", CONF_STRING, GUESTNET_DEFAULT, OFF(guest_network), 0, 0, 0,
	    check_guest_network, "what an install VM reaches: isolated | none | network:NAME | "
	    "bridge:NAME" },
	{ "builds", "guest_deny", CONF_STRING, GUESTNET_DEFAULT_DENY, OFF(guest_deny), 0, 0, 0,
	    check_guest_deny, "CIDRs an isolated guest may not reach (none: no range)" },

	{ "api", "bind_host", CONF_STRING, "127.0.0.1", OFF(api_bind_host), 0, 0, 0, check_ip,
	    "address isoforge-api listens on" },
	{ "api", "bind_port", CONF_INT, "9480", OFF(api_bind_port), 0, 1, 65535, NULL,
	    "port isoforge-api listens on" },
	{ "api", "host", CONF_STRING, NULL, OFF(api_host), 0, 0, 0, check_queue_name,
	    "this API process's name: its view is fed by queue isoforge.api.<host> (default: "
	    "[DEFAULT] host)" },
	{ "api", "public_url", CONF_STRING, NULL, OFF(api_public_url), 0, 0, 0, check_http_url,
	    "base URL of links in answers (default: http://bind_host:bind_port)" },
	{ "api", "state_dir", CONF_PATH, "/var/lib/isoforge-api", OFF(api_state_dir), 0, 0, 0,
	    NULL, "the builds view (builds.db, 0600 in a 0700 directory)" },
	{ "api", "max_body", CONF_INT, "65536", OFF(api_max_body), 0, 1024, 1048576, NULL,
	    "largest request body in bytes (413 beyond)" },
	{ "api", "max_depth", CONF_INT, "16", OFF(api_max_depth), 0, 2, 64, NULL,
	    "deepest JSON nesting of a request body (400 beyond)" },
	{ "api", "token_cache_size", CONF_INT, "1024", OFF(api_token_cache_size), 0, 0, 1000000,
	    NULL, "Keystone token validations kept (0 = validate every request)" },
	{ "api", "token_cache_ttl", CONF_INT, "300", OFF(api_token_cache_ttl), 0, 1, 3600, NULL,
	    "seconds a cached validation is used at most (never past the token's expiry)" },
	{ "api", "threads", CONF_INT, "4", OFF(api_threads), 0, 1, 64, NULL,
	    "HTTP worker threads" },
	{ "api", "trust_margin", CONF_INT, "7200", OFF(api_trust_margin), 0, 0, 7 * 24 * 3600,
	    NULL, "seconds a build's trust outlives its install and customize timeouts" },
	{ "api", "policy_read", CONF_STRING, "reader,member,admin", OFF(api_policy_read), 0, 0, 0,
	    check_roles, "roles that may read builds, chains and profiles (comma-separated)" },
	{ "api", "policy_write", CONF_STRING, "member,admin", OFF(api_policy_write), 0, 0, 0,
	    check_roles, "roles that may create builds and act on them" },
	{ "api", "policy_admin", CONF_STRING, "admin", OFF(api_policy_admin), 0, 0, 0,
	    check_roles, "roles that see the builds of every project (all_projects=1)" },

	{ "console", "key", CONF_SECRET, NULL, OFF(console_key), 0, 0, 0, NULL,
	    "signs console tokens and makes the builds' VNC passwords; the same on the API, the "
	    "proxy and every worker (default: derived from [keystone_authtoken] password)" },
	{ "console", "token_ttl", CONF_INT, "600", OFF(console_token_ttl), 0, 10, 86400, NULL,
	    "seconds a console URL (its single-use token) stays valid" },
	{ "console", "bind_host", CONF_STRING, "127.0.0.1", OFF(console_bind_host), 0, 0, 0,
	    check_ip, "address isoforge-novncproxy listens on" },
	{ "console", "bind_port", CONF_INT, "6080", OFF(console_bind_port), 0, 1, 65535, NULL,
	    "port isoforge-novncproxy listens on" },
	{ "console", "base_url", CONF_STRING, "http://127.0.0.1:6080", OFF(console_base_url), 0,
	    0, 0, check_http_url, "isoforge-novncproxy as browsers reach it (console URLs)" },
	{ "console", "novnc_dir", CONF_PATH, "/usr/share/novnc", OFF(console_novnc_dir), 0, 0, 0,
	    NULL, "noVNC's files (Debian's novnc package)" },
	{ "console", "max_connections", CONF_INT, "64", OFF(console_max_connections), 0, 1,
	    10000, NULL, "consoles isoforge-novncproxy relays at once" },
	{ "console", "idle_timeout", CONF_INT, "3600", OFF(console_idle_timeout), 0, 10,
	    7 * 24 * 3600, NULL, "seconds without traffic either way before a console is closed" },
};

#define CONF_NOPTIONS	(sizeof(conf_options) / sizeof(conf_options[0]))

static char **
conf_str(struct config *c, const struct conf_option *o)
{
	return (char **)((char *)c + o->off);
}

static long *
conf_long(struct config *c, const struct conf_option *o)
{
	return (long *)((char *)c + o->off);
}

static int *
conf_int(struct config *c, const struct conf_option *o)
{
	return (int *)((char *)c + o->off);
}

/* Accepts rabbit:// or amqp:// URLs, each comma-separated host with user:pass@ and a port. */
static int
check_transport_url(const char *v, struct err *err)
{
	struct mq_url	*u;
	struct err	 why;

	err_clear(&why);
	if (mq_url_parse(v, &u, &why) != 0) {
		/* drop mq_url_parse's "transport_url: " prefix, the caller names the option */
		err_set(err, ERR_INVAL, "%s", strncmp(why.msg, "transport_url: ", 15) == 0 ?
		    why.msg + 15 : why.msg);
		return -1;
	}
	mq_url_free(&u);
	return 0;
}

static int
check_http_url(const char *v, struct err *err)
{
	if ((strncmp(v, "http://", 7) != 0 || v[7] == '\0') &&
	    (strncmp(v, "https://", 8) != 0 || v[8] == '\0')) {
		err_set(err, ERR_INVAL, "must be an http:// or https:// URL");
		return -1;
	}
	return 0;
}

static int
check_auth_type(const char *v, struct err *err)
{
	if (strcmp(v, "password") != 0) {
		err_set(err, ERR_INVAL, "only 'password' is supported");
		return -1;
	}
	return 0;
}

static int
check_interface(const char *v, struct err *err)
{
	if (strcmp(v, "public") != 0 && strcmp(v, "internal") != 0 && strcmp(v, "admin") != 0) {
		err_set(err, ERR_INVAL, "must be one of public|internal|admin");
		return -1;
	}
	return 0;
}

static int
check_domain_type(const char *v, struct err *err)
{
	if (strcmp(v, "auto") != 0 && strcmp(v, "kvm") != 0 && strcmp(v, "qemu") != 0) {
		err_set(err, ERR_INVAL, "must be one of auto|kvm|qemu");
		return -1;
	}
	return 0;
}

static int
check_ip(const char *v, struct err *err)
{
	unsigned char	 a[16];

	if (inet_pton(AF_INET, v, a) != 1 && inet_pton(AF_INET6, v, a) != 1) {
		err_set(err, ERR_INVAL, "must be an IPv4 or IPv6 address");
		return -1;
	}
	return 0;
}

static int
check_image_id(const char *v, struct err *err)
{
	if (!util_is_uuid(v)) {
		err_set(err, ERR_INVAL, "must be a Glance image id (a UUID)");
		return -1;
	}
	return 0;
}

static int
check_guest_network(const char *v, struct err *err)
{
	struct guestnet_policy	 p;

	return guestnet_parse(v, &p, err);
}

static int
check_guest_deny(const char *v, struct err *err)
{
	struct guestnet_cidr	*ranges;
	size_t			 n;

	if (guestnet_parse_deny(v, &ranges, &n, err) == -1)
		return -1;
	free(ranges);
	return 0;
}

/* A comma-separated list of role names. */
static int
check_roles(const char *v, struct err *err)
{
	for (; *v != '\0'; v++)
		if (!isalnum((unsigned char)*v) && strchr(",_-.: ", *v) == NULL) {
			err_set(err, ERR_INVAL, "must be role names separated by commas");
			return -1;
		}
	return 0;
}

/* A name that may end a queue name: [A-Za-z0-9._-]. */
static int
check_queue_name(const char *v, struct err *err)
{
	for (; *v != '\0'; v++)
		if (!isalnum((unsigned char)*v) && strchr("._-", *v) == NULL) {
			err_set(err, ERR_INVAL, "may only hold letters, digits, '.', '_' and '-'");
			return -1;
		}
	return 0;
}

/* Stores value (already validated) into the option's field. */
static void
conf_store(struct config *c, const struct conf_option *o, const char *value, long n, int b)
{
	char	**s;

	switch (o->type) {
	case CONF_INT:
		*conf_long(c, o) = n;
		break;
	case CONF_BOOL:
		*conf_int(c, o) = b;
		break;
	default:
		s = conf_str(c, o);
		free(*s);
		*s = (value == NULL || *value == '\0') ? NULL : xstrdup(value);
		break;
	}
}

/* Parses and checks one value for option o; fills err with "FILE:LINE: section.key: why". */
static int
conf_set(struct config *c, const struct conf_option *o, const char *value,
    const char *fn, int line, struct err *err)
{
	struct err	 why;
	char		*end;
	long		 n = 0;
	int		 b = 0;

	err_clear(&why);
	switch (o->type) {
	case CONF_INT:
		errno = 0;
		n = strtol(value, &end, 10);
		if (*value == '\0' || *end != '\0' || errno != 0)
			err_set(&why, ERR_INVAL, "must be an integer");
		else if (n < o->min || n > o->max)
			err_set(&why, ERR_INVAL, "must be between %ld and %ld", o->min, o->max);
		break;
	case CONF_BOOL:
		if (strcasecmp(value, "true") == 0 || strcasecmp(value, "yes") == 0 ||
		    strcasecmp(value, "on") == 0 || strcmp(value, "1") == 0)
			b = 1;
		else if (strcasecmp(value, "false") == 0 || strcasecmp(value, "no") == 0 ||
		    strcasecmp(value, "off") == 0 || strcmp(value, "0") == 0)
			b = 0;
		else
			err_set(&why, ERR_INVAL, "must be true or false");
		break;
	case CONF_PATH:
		if (*value != '\0' && *value != '/')
			err_set(&why, ERR_INVAL, "must be an absolute path");
		break;
	default:
		break;
	}
	if (why.kind == ERR_NONE && o->required && *value == '\0')
		err_set(&why, ERR_INVAL, "must not be empty");
	if (why.kind == ERR_NONE && o->check != NULL && *value != '\0')
		o->check(value, &why);
	if (why.kind != ERR_NONE) {
		err_set(err, ERR_INVAL, "%s:%d: [%s] %s: %s", fn, line, o->section, o->name,
		    why.msg);
		return -1;
	}
	conf_store(c, o, value, n, b);
	return 0;
}

struct conf_parse {
	struct config	*config;
	int		 lines[CONF_NOPTIONS];	/* where each option was set, 0 = not */
};

static const struct conf_option *
conf_find(const char *section, const char *key)
{
	size_t	 i;

	/* oslo.config treats the DEFAULT section case-sensitively; so do we */
	for (i = 0; i < CONF_NOPTIONS; i++)
		if (strcmp(conf_options[i].section, section) == 0 &&
		    strcmp(conf_options[i].name, key) == 0)
			return &conf_options[i];
	return NULL;
}

static int
conf_known_section(const char *section)
{
	size_t	 i;

	for (i = 0; i < CONF_NOPTIONS; i++)
		if (strcmp(conf_options[i].section, section) == 0)
			return 1;
	return 0;
}

/* ini_parse callback: one key = value line. */
static int
conf_line(void *arg, const char *section, const char *key, const char *value,
    const char *fn, int line, struct err *err)
{
	struct conf_parse		*cp = arg;
	const struct conf_option	*o;
	const char			*sec = *section == '\0' ? "DEFAULT" : section;

	if (!conf_known_section(sec)) {
		err_set(err, ERR_INVAL, "%s:%d: unknown section [%s]", fn, line, sec);
		return -1;
	}
	if ((o = conf_find(sec, key)) == NULL) {
		err_set(err, ERR_INVAL, "%s:%d: [%s] %s: unknown option", fn, line, sec, key);
		return -1;
	}
	if (cp->lines[o - conf_options] != 0) {
		err_set(err, ERR_INVAL, "%s:%d: [%s] %s: set twice (first at line %d)", fn, line,
		    sec, key, cp->lines[o - conf_options]);
		return -1;
	}
	cp->lines[o - conf_options] = line;
	return conf_set(cp->config, o, value, fn, line, err);
}

struct config *
config_defaults(void)
{
	struct config	*c;
	char		 host[HOST_NAME_MAX + 1];
	size_t		 i;

	c = xcalloc(1, sizeof(*c));
	for (i = 0; i < CONF_NOPTIONS; i++)
		if (conf_options[i].def != NULL &&
		    conf_set(c, &conf_options[i], conf_options[i].def, "<defaults>", 0, NULL) != 0)
			abort();	/* a bad default is a bug in the table */
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	c->host = xstrdup(host);
	return c;
}

struct config *
config_parse(const char *text, const char *filename, struct err *err)
{
	struct conf_parse	 cp;
	size_t			 i;

	if (filename == NULL)
		filename = "<string>";
	memset(&cp, 0, sizeof(cp));
	cp.config = config_defaults();
	if (ini_parse(text, filename, conf_line, &cp, err) != 0)
		goto fail;
	for (i = 0; i < CONF_NOPTIONS; i++) {
		if (conf_options[i].required && *conf_str(cp.config, &conf_options[i]) == NULL) {
			err_set(err, ERR_INVAL, "%s: [%s] %s: missing (required)", filename,
			    conf_options[i].section, conf_options[i].name);
			goto fail;
		}
	}
	return cp.config;
fail:
	config_free(&cp.config);
	return NULL;
}

struct config *
config_load(const char *path, struct err *err)
{
	struct config	*c;
	char		*text;

	if ((text = util_read_file(path, 1 << 20, NULL, err)) == NULL)
		return NULL;
	c = config_parse(text, path, err);
	free(text);
	return c;
}

char *
config_mask_url(const char *url)
{
	struct buf	 b;
	const char	*p, *host, *at, *colon, *end;

	/* passwords in URLs are percent-encoded: ',', '/' and '@' end a part */

	buf_init(&b);
	if ((p = strstr(url, "://")) == NULL) {
		buf_puts(&b, url);
		return buf_release(&b);
	}
	p += 3;
	buf_append(&b, url, (size_t)(p - url));
	/* each comma-separated host part: [user[:pass]@]host[:port], the last one up to '/' */
	while (*p != '\0') {
		host = p;
		end = host + strcspn(host, ",/");
		at = memchr(host, '@', (size_t)(end - host));
		if (at != NULL) {
			colon = memchr(host, ':', (size_t)(at - host));
			if (colon != NULL) {
				buf_append(&b, host, (size_t)(colon - host));
				buf_puts(&b, ":***");
			} else
				buf_append(&b, host, (size_t)(at - host));
			buf_append(&b, at, (size_t)(end - at));
		} else
			buf_append(&b, host, (size_t)(end - host));
		p = end;
		if (*p == ',') {
			buf_puts(&b, ",");
			p++;
		} else if (*p == '/') {
			buf_puts(&b, p);
			break;
		}
	}
	return buf_release(&b);
}

void
config_dump(const struct config *c, FILE *out)
{
	const struct conf_option	*o;
	const char			*section = NULL;
	char				*masked, *const *s;
	size_t				 i;

	for (i = 0; i < CONF_NOPTIONS; i++) {
		o = &conf_options[i];
		if (section == NULL || strcmp(section, o->section) != 0) {
			fprintf(out, "%s[%s]\n", section == NULL ? "" : "\n", o->section);
			section = o->section;
		}
		if (o->help != NULL)
			fprintf(out, "# %s\n", o->help);
		switch (o->type) {
		case CONF_INT:
			fprintf(out, "%s = %ld\n", o->name,
			    *(const long *)((const char *)c + o->off));
			break;
		case CONF_BOOL:
			fprintf(out, "%s = %s\n", o->name,
			    *(const int *)((const char *)c + o->off) ? "true" : "false");
			break;
		default:
			s = (char *const *)((const char *)c + o->off);
			if (*s == NULL)
				fprintf(out, "%s =\n", o->name);
			else if (o->type == CONF_SECRET)
				fprintf(out, "%s = ***\n", o->name);
			else if (o->type == CONF_URL) {
				masked = config_mask_url(*s);
				fprintf(out, "%s = %s\n", o->name, masked);
				free(masked);
			} else
				fprintf(out, "%s = %s\n", o->name, *s);
			break;
		}
	}
}

void
config_free(struct config **cp)
{
	struct config	*c;
	size_t		 i;

	if (cp == NULL || (c = *cp) == NULL)
		return;
	for (i = 0; i < CONF_NOPTIONS; i++)
		if (conf_options[i].type != CONF_INT && conf_options[i].type != CONF_BOOL)
			free(*conf_str(c, &conf_options[i]));
	free(c);
	*cp = NULL;
}
