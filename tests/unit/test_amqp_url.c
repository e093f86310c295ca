/* test_amqp_url.c — transport URLs as OpenStack writes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "service/common/amqp.h"

static void
test_one_host(void **state)
{
	struct mq_url	*u;
	struct err	 err;

	(void)state;
	err_clear(&err);
	assert_int_equal(mq_url_parse("rabbit://isoforge:p%40ss%2Fw@10.0.0.5:5673/", &u, &err), 0);
	assert_int_equal(u->nhosts, 1);
	assert_string_equal(u->hosts[0].host, "10.0.0.5");
	assert_int_equal(u->hosts[0].port, 5673);
	assert_string_equal(u->hosts[0].user, "isoforge");
	assert_string_equal(u->hosts[0].pass, "p@ss/w");
	assert_string_equal(u->vhost, "/");
	mq_url_free(&u);
	assert_null(u);
	mq_url_free(&u);
}

static void
test_cluster_vhost_defaults(void **state)
{
	struct mq_url	*u;
	struct err	 err;

	(void)state;
	err_clear(&err);
	assert_int_equal(mq_url_parse("rabbit://a:1@h1,b:2@h2:5680,[::1]:5681/openstack", &u,
	    &err), 0);
	assert_int_equal(u->nhosts, 3);
	assert_string_equal(u->hosts[0].host, "h1");
	assert_int_equal(u->hosts[0].port, 5672);
	assert_string_equal(u->hosts[1].user, "b");
	assert_int_equal(u->hosts[1].port, 5680);
	assert_string_equal(u->hosts[2].host, "::1");
	assert_string_equal(u->hosts[2].user, "guest");
	assert_int_equal(u->hosts[2].port, 5681);
	assert_string_equal(u->vhost, "openstack");
	mq_url_free(&u);
	assert_int_equal(mq_url_parse("amqp://h", &u, &err), 0);
	assert_string_equal(u->vhost, "/");
	mq_url_free(&u);
}

/* TLS as oslo.messaging writes it (?ssl=1) and as amqps://; the port defaults to 5671 then. */
static void
test_tls(void **state)
{
	static const struct {
		const char	*url;
		int		 tls;
		int		 port;
		const char	*vhost;
	} cases[] = {
		{ "rabbit://u:p@h/?ssl=1", 1, 5671, "/" },
		{ "rabbit://u:p@h:5000/nova?ssl=true", 1, 5000, "nova" },
		{ "rabbit://u:p@h?ssl=1", 1, 5671, "/" },
		{ "rabbit://u:p@h/?ssl=0", 0, 5672, "/" },
		{ "rabbit://u:p@h/?ssl=1&", 1, 5671, "/" },
		{ "amqps://u:p@h/", 1, 5671, "/" },
		{ "amqps://u:p@h:5999/v?ssl=no", 0, 5999, "v" },
		{ "rabbit://u:p@h/", 0, 5672, "/" },
	};
	struct mq_url	*u;
	struct err	 err;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err_clear(&err);
		if (mq_url_parse(cases[i].url, &u, &err) != 0)
			fail_msg("%s: %s", cases[i].url, err.msg);
		assert_int_equal(u->tls, cases[i].tls);
		assert_int_equal(u->hosts[0].port, cases[i].port);
		assert_string_equal(u->hosts[0].host, "h");
		assert_string_equal(u->hosts[0].pass, "p");
		assert_string_equal(u->vhost, cases[i].vhost);
		assert_null(u->ca_file);
		mq_url_free(&u);
	}
	/* a cluster over TLS: every host gets the TLS port */
	assert_int_equal(mq_url_parse("rabbit://a:1@h1,b:2@h2:5680/?ssl=1", &u, &err), 0);
	assert_int_equal(u->nhosts, 2);
	assert_int_equal(u->hosts[0].port, 5671);
	assert_int_equal(u->hosts[1].port, 5680);
	mq_url_free(&u);
}

static void
test_bad(void **state)
{
	static const char *bad[] = {
		"http://h/", "rabbit:///", "rabbit://u:p@h:99999/", "rabbit://u:p@h:x/",
		"rabbit://u:p%zz@h/", "rabbit://u:p@h1,/", "rabbit://u:p@h/?ssl=2",
		"rabbit://u:p@h/?ssl=yes&ssl_version=p%zzTLS", "rabbit://u:p@h/?password=s3cret",
		"amqps://u:p@h:0/", "rabbits://u:p@h/",
	};
	struct mq_url	*u;
	struct err	 err;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&err);
		if (mq_url_parse(bad[i], &u, &err) == 0)
			fail_msg("accepted %s", bad[i]);
		assert_null(u);
		assert_int_equal(err.kind, ERR_INVAL);
		/* never echo credentials, nor values of unknown options */
		assert_null(strstr(err.msg, "p%zz"));
		assert_null(strstr(err.msg, "s3cret"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_host),
		cmocka_unit_test(test_cluster_vhost_defaults),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
