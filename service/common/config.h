/* config.h — isoforged's configuration file (isoforge.conf), in the INI dialect of OpenStack. */
#ifndef ISOFORGE_CONFIG_H
#define ISOFORGE_CONFIG_H

#include <stdio.h>

#include "base/util.h"

/*
 * The effective configuration. Every field is described by one row of the option table in
 * config.c (section, name, type, default, validator); strings are owned by the struct.
 */
struct config {
	/* [DEFAULT] */
	char	*transport_url;		/* rabbit://user:pass@host:port/vhost[,...][?ssl=1] */
	char	*amqp_ca_file;		/* [oslo_messaging_rabbit] ssl_ca_file: CAs for TLS */
	char	*host;			/* this worker's name (default: the host name) */
	long	 heartbeat;		/* AMQP heartbeat, seconds (0 = off) */
	int	 debug;
	char	*log_file;		/* NULL = standard error */
	/* [keystone_authtoken]: isoforge's own service user */
	char	*auth_url;
	char	*auth_type;
	char	*username;
	char	*password;
	char	*project_name;
	char	*user_domain_name;
	char	*project_domain_name;
	char	*region_name;
	char	*interface;
	char	*cafile;
	/* [glance], [nova]: endpoint overrides (NULL = from the Keystone catalog) */
	char	*glance_endpoint;
	char	*nova_endpoint;
	/* [libvirt] */
	char	*libvirt_uri;
	char	*domain_type;		/* auto | kvm | qemu */
	/* [builds] */
	char	*work_dir;
	char	*cache_dir;
	long	 max_builds;
	long	 install_timeout;	/* seconds */
	long	 finish_grace;
	long	 progress_interval;	/* seconds between an install's progress events; 0 none */
	long	 inactivity_timeout;	/* an unattended install's watchdog; 0 off */
	long	 cleanup_retry;
	long	 cache_max_gib;		/* the ISO cache's bound */
	long	 max_disk_gib;		/* a flavor's root disk at most */		/* seconds between clean-up attempts of leftovers */		/* seconds from ACPI shutdown to destroy on finish */
	char	*vnc_listen;
	char	*virtio_win_image;	/* Glance id, or NULL */
	char	*chain_key;		/* keys the ids of chain versions; NULL: from password */
	char	*guest_network;		/* drivers/guestnet.h: isolated | none | network:N | bridge:N */
	char	*guest_deny;		/* CIDRs an isolated guest may not reach, or "none" */
	/* [api]: isoforge-api */
	char	*api_bind_host;
	long	 api_bind_port;
	char	*api_host;		/* this API process's name: its queue isoforge.api.<host> */
	char	*api_public_url;	/* base of links; NULL = http://bind_host:bind_port */
	char	*api_state_dir;		/* the builds view (builds.db) */
	long	 api_max_body;		/* bytes */
	long	 api_max_depth;		/* JSON nesting */
	long	 api_token_cache_size;	/* validated tokens kept */
	long	 api_token_cache_ttl;	/* seconds a validation is trusted at most */
	long	 api_threads;		/* HTTP worker threads */
	long	 api_trust_margin;	/* seconds a trust outlives the build's timeouts */
	char	*api_policy_read;	/* roles (comma-separated) that may read */
	char	*api_policy_write;	/* roles that may create and act */
	char	*api_policy_admin;	/* roles that see every project */
	/* [console]: the browser console (service/console/, docs/console.md) */
	char	*console_key;		/* signs tokens, makes VNC passwords; NULL: from password */
	long	 console_token_ttl;	/* seconds a console token is valid */
	char	*console_bind_host;	/* isoforge-novncproxy listens here */
	long	 console_bind_port;
	char	*console_base_url;	/* the proxy as browsers reach it */
	char	*console_novnc_dir;	/* noVNC's files */
	long	 console_max_connections;
	long	 console_idle_timeout;	/* seconds without traffic before a console is closed */
};

/* A configuration holding every default (no file read); caller frees with config_free. */
struct config *config_defaults(void);
/*
 * Reads and checks FILE: unknown sections or keys, bad values, a key set twice and missing
 * required keys are errors naming FILE:LINE (or FILE). Caller frees with config_free.
 */
struct config *config_load(const char *path, struct err *);
/* The same from text already in memory; filename is used in messages. */
struct config *config_parse(const char *text, const char *filename, struct err *);
/* Prints the effective configuration as an INI file, passwords and URL passwords masked. */
void	 config_dump(const struct config *, FILE *);
void	 config_free(struct config **);

/* Returns url with the password of each user:pass@ part replaced by "***"; caller frees. */
char	*config_mask_url(const char *url);

#endif
