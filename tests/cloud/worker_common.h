/* worker_common.h — shared by the cloud tests that run isoforged against the minicloud's
 * RabbitMQ (test_worker_amqp, test_worker_bus): the worker's process and configuration, the
 * queues. Header-only, after <cmocka.h> (it asserts); clients_common.h stays free of cmocka for
 * bench/transfer. */
#ifndef ISOFORGE_TESTS_WORKER_COMMON_H
#define ISOFORGE_TESTS_WORKER_COMMON_H

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "service/common/amqp.h"
#include "base/util.h"

extern char	**environ;

/* getenv, with an empty value as unset. */
static inline const char *
cloud_env(const char *name)
{
	const char	*v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static inline void
cloud_must(int rc, struct err *err)
{
	if (rc != 0)
		fail_msg("%s", err->msg);
}

/* Number of consumers on queue (passive declare). */
static inline int
cloud_queue_consumers(struct mq_conn *c, const char *queue)
{
	amqp_queue_declare_ok_t	*ok;

	ok = amqp_queue_declare(c->conn, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0,
	    amqp_empty_table);
	assert_int_equal(amqp_get_rpc_reply(c->conn).reply_type, AMQP_RESPONSE_NORMAL);
	return (int)ok->consumer_count;
}

static inline void
cloud_queue_purge(struct mq_conn *c, const char *queue)
{
	amqp_queue_purge(c->conn, 1, amqp_cstring_bytes(queue));
	assert_int_equal(amqp_get_rpc_reply(c->conn).reply_type, AMQP_RESPONSE_NORMAL);
}

/* Starts $ISOFORGE_BIN/isoforged -d -c conf, its stderr appended to log; returns its pid. */
static inline pid_t
cloud_worker_spawn(const char *conf, const char *log)
{
	posix_spawn_file_actions_t	 fa;
	char				*bin, *argv[5];
	const char			*bindir = cloud_env("ISOFORGE_BIN");
	pid_t				 pid;

	bin = xasprintf("%s/isoforged", bindir != NULL ? bindir : "build/san");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	argv[0] = bin;
	argv[1] = "-d";
	argv[2] = "-c";
	argv[3] = (char *)conf;
	argv[4] = NULL;
	assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	free(bin);
	return pid;
}

/* Waits up to tenths * 0.1 s for a consumer on the build queue (the worker is ready). */
static inline void
cloud_worker_wait_ready(struct mq_conn *c, int tenths)
{
	int	 i;

	for (i = 0; i < tenths && cloud_queue_consumers(c, MQ_QUEUE_BUILD) == 0; i++)
		usleep(100 * 1000);
	assert_true(cloud_queue_consumers(c, MQ_QUEUE_BUILD) >= 1);
}

/* SIGTERM to *pid (if any, then 0); it must exit 0 (no sanitizer report). Returns how long
 * it took. */
static inline double
cloud_worker_stop(pid_t *pid)
{
	double	 t0 = util_now();
	int	 status;

	if (*pid <= 0)
		return 0;
	kill(*pid, SIGTERM);
	assert_int_equal(waitpid(*pid, &status, 0), *pid);
	*pid = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	return util_now() - t0;
}

/*
 * Writes the worker's configuration to path: transport url, host name, work_dir tmp/work,
 * cache_dir tmp/cache, the minicloud's service user, libvirt's test driver, then extra lines
 * (a section and its keys) or NULL.
 */
static inline void
cloud_worker_conf(const char *path, const char *url, const char *host, const char *tmp,
    const char *work, const char *extra)
{
	FILE	*f;

	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[DEFAULT]\ntransport_url = %s\nheartbeat = 5\nhost = %s\n"
	    "[keystone_authtoken]\nauth_url = %s\nusername = %s\npassword = \"%s\"\n"
	    "project_name = %s\n"
	    /* libvirt's own test driver (in-process): start-up checks pass, no build runs */
	    "[libvirt]\nuri = test:///default\ndomain_type = qemu\n"
	    "[builds]\nwork_dir = %s/%s\ncache_dir = %s/cache\nmax_builds = 2\n%s", url, host,
	    cloud_env("OS_AUTH_URL") != NULL ? cloud_env("OS_AUTH_URL") :
	    "http://127.0.0.1:5000/v3",
	    cloud_env("ISOFORGE_SERVICE_USERNAME") != NULL ?
	    cloud_env("ISOFORGE_SERVICE_USERNAME") : "isoforge",
	    cloud_env("ISOFORGE_SERVICE_PASSWORD") != NULL ?
	    cloud_env("ISOFORGE_SERVICE_PASSWORD") : "x",
	    cloud_env("ISOFORGE_SERVICE_PROJECT_NAME") != NULL ?
	    cloud_env("ISOFORGE_SERVICE_PROJECT_NAME") : "service",
	    tmp, work, tmp, extra != NULL ? extra : "");
	fclose(f);
}

/* Publishes body on the isoforge exchange with key and message_id id (persistent, JSON),
 * waiting up to timeout_s for the broker's confirm. */
static inline void
cloud_publish(struct mq_conn *c, const char *key, const char *id, const char *body,
    size_t len, double timeout_s)
{
	amqp_basic_properties_t	 p;
	struct err		 err;

	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
	    AMQP_BASIC_MESSAGE_ID_FLAG;
	p.content_type = amqp_cstring_bytes("application/json");
	p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	p.message_id = amqp_cstring_bytes(id);
	err_clear(&err);
	cloud_must(mq_publish(c, MQ_EXCHANGE, key, &p, body, len, 1, timeout_s, &err), &err);
}

/* One message from queue by basic.get, waiting up to wait_s; 0 when none came. */
static inline int
cloud_get_one(struct mq_conn *c, const char *queue, amqp_message_t *msg, double wait_s)
{
	amqp_rpc_reply_t	 r;
	int			 i;

	for (i = 0; i < wait_s * 10; i++) {
		r = amqp_basic_get(c->conn, 1, amqp_cstring_bytes(queue), 1);
		assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
		if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
			r = amqp_read_message(c->conn, 1, msg, 0);
			assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
			return 1;
		}
		usleep(100 * 1000);
	}
	return 0;
}

#endif
