/* test_config.c — isoforge.conf: the sample parses, errors name FILE:LINE, dumps mask secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/common/config.h"

static const char *minimal =
    "[DEFAULT]\n"
    "transport_url = rabbit://isoforge:s3cret@127.0.0.1:5672/\n"
    "[keystone_authtoken]\n"
    "auth_url = http://127.0.0.1:5000/v3\n"
    "username = isoforge\n"
    "password = hunter2pw\n"
    "project_name = service\n";

/* Parses minimal + extra; returns the config or NULL with err filled. */
static struct config *
parse_with(const char *extra, struct err *err)
{
	struct config	*c;
	char		*text;

	text = xasprintf("%s%s", minimal, extra);
	err_clear(err);
	c = config_parse(text, "test.conf", err);
	free(text);
	return c;
}

static void
test_sample_parses(void **state)
{
	struct config	*c;
	struct err	 err;
	const char	*top = getenv("ISOFORGE_TOP");
	char		*path;

	(void)state;
	err_clear(&err);
	path = xasprintf("%s/etc/isoforge.conf.sample", top != NULL ? top : ".");
	c = config_load(path, &err);
	if (c == NULL)
		fail_msg("%s", err.msg);
	assert_string_equal(c->transport_url, "rabbit://isoforge:RABBIT_PASS@controller:5672/");
	assert_string_equal(c->username, "isoforge");
	assert_string_equal(c->user_domain_name, "Default");
	assert_int_equal(c->max_builds, 2);
	assert_int_equal(c->install_timeout, 14400);
	assert_string_equal(c->work_dir, "/var/lib/isoforge");
	assert_string_equal(c->libvirt_uri, "qemu:///system");
	assert_null(c->glance_endpoint);
	assert_null(c->virtio_win_image);
	/* the default guest network: isolated, the private and reserved ranges denied */
	assert_string_equal(c->guest_network, "isolated");
	assert_non_null(strstr(c->guest_deny, "10.0.0.0/8"));
	assert_non_null(strstr(c->guest_deny, "fc00::/7"));
	config_free(&c);
	assert_null(c);
	config_free(&c);
	free(path);
}

static void
test_defaults_and_values(void **state)
{
	struct config	*c;
	struct err	 err;

	(void)state;
	c = parse_with("[builds]\nmax_builds = 5\nvnc_listen = ::\nguest_network = bridge:br0\n"
	    "guest_deny = 10.0.0.0/8 192.0.2.7, 2001:db8::/32\n"
	    "[glance]\nendpoint = http://g:9292\n[DEFAULT]\ndebug = yes\n", &err);
	if (c == NULL)
		fail_msg("%s", err.msg);
	assert_int_equal(c->max_builds, 5);
	assert_string_equal(c->vnc_listen, "::");
	assert_string_equal(c->guest_network, "bridge:br0");
	assert_string_equal(c->guest_deny, "10.0.0.0/8 192.0.2.7, 2001:db8::/32");
	assert_string_equal(c->glance_endpoint, "http://g:9292");
	assert_int_equal(c->debug, 1);
	assert_int_equal(c->heartbeat, 60);
	assert_non_null(c->host);
	assert_string_equal(c->interface, "public");
	config_free(&c);
}

/* Each bad file is refused with a message holding the expected text. */
static void
test_errors_name_file_line(void **state)
{
	static const struct {
		const char	*extra;
		const char	*want;
	} cases[] = {
		{ "[builds]\nmax_buidls = 3\n", "test.conf:9: [builds] max_buidls: unknown option" },
		{ "[builds]\nmax_builds = many\n", "test.conf:9: [builds] max_builds: must be an integer" },
		{ "[builds]\nmax_builds = 0\n", "test.conf:9: [builds] max_builds: must be between 1 and 64" },
		{ "[builds]\nvnc_listen = example.org\n", "test.conf:9: [builds] vnc_listen: must be an IPv4" },
		{ "[builds]\nwork_dir = relative/dir\n", "test.conf:9: [builds] work_dir: must be an absolute path" },
		{ "[libvirt]\ndomain_type = xen\n", "test.conf:9: [libvirt] domain_type: must be one of auto|kvm|qemu" },
		{ "[DEFAULT]\ndebug = maybe\n", "test.conf:9: [DEFAULT] debug: must be true or false" },
		{ "[rabbit]\nhost = x\n", "test.conf:9: unknown section [rabbit]" },
		{ "[keystone_authtoken]\nusername = again\n", "test.conf:9: [keystone_authtoken] username: set twice (first at line 5)" },
		{ "[glance]\nendpoint = glance:9292\n", "test.conf:9: [glance] endpoint: must be an http:// or https:// URL" },
		{ "[builds]\nvirtio_win_image = virtio-win.iso\n", "test.conf:9: [builds] virtio_win_image: must be a Glance image id" },
		{ "[builds]\nguest_network = user\n", "test.conf:9: [builds] guest_network: 'user': not one of isolated, none, network:NAME, bridge:NAME" },
		{ "[builds]\nguest_network = bridge:a-bridge-too-long\n", "[builds] guest_network: 'bridge:a-bridge-too-long': the name must be 1 to 15" },
		{ "[builds]\nguest_deny = 10.1.0.0/8\n", "test.conf:9: [builds] guest_deny: '10.1.0.0/8' has bits set past its /8" },
		{ "[builds]\nguest_deny = 10.0.0.0/33\n", "[builds] guest_deny: '10.0.0.0/33': the prefix length must be 0 to 32" },
		{ "[builds]\nguest_deny = 10.0.0.0/8, intranet\n", "[builds] guest_deny: 'intranet' is not an IPv4 or IPv6" },
		{ "[builds\n", "test.conf:8: missing" },
		{ "[api]\nbind_port = 0\n", "test.conf:9: [api] bind_port: must be between 1 and 65535" },
		{ "[api]\nhost = a/b\n", "test.conf:9: [api] host: may only hold letters" },
		{ "[api]\npolicy_write = member;admin\n", "test.conf:9: [api] policy_write: must be role names" },
		{ "[api]\nmax_body = 10\n", "test.conf:9: [api] max_body: must be between 1024" },
	};
	struct config	*c;
	struct err	 err;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = parse_with(cases[i].extra, &err);
		if (c != NULL)
			fail_msg("case %zu accepted: %s", i, cases[i].extra);
		if (strstr(err.msg, cases[i].want) == NULL)
			fail_msg("case %zu: got '%s', want '%s'", i, err.msg, cases[i].want);
		assert_int_equal(err.kind, ERR_INVAL);
	}
	err_clear(&err);
	c = config_parse("[DEFAULT]\ntransport_url = http://x/\n", "t.conf", &err);
	assert_null(c);
	assert_non_null(strstr(err.msg, "t.conf:2: [DEFAULT] transport_url: must start with rabbit://"));
	err_clear(&err);
	c = config_parse("[DEFAULT]\ntransport_url = rabbit://u:p@h:1/\n", "t.conf", &err);
	assert_null(c);
	assert_string_equal(err.msg, "t.conf: [keystone_authtoken] auth_url: missing (required)");
	err_clear(&err);
	assert_null(config_load("/nonexistent/isoforge.conf", &err));
	assert_int_not_equal(err.kind, ERR_NONE);
}

static void
test_mask_url(void **state)
{
	static const char *cases[][2] = {
		{ "rabbit://u:pw@h:5672/", "rabbit://u:***@h:5672/" },
		{ "rabbit://u:pw@h1:1,v:qq@h2:2/vh", "rabbit://u:***@h1:1,v:***@h2:2/vh" },
		{ "rabbit://h:5672/", "rabbit://h:5672/" },
		{ "amqp://guest@h", "amqp://guest@h" },
		{ "rabbit://u:a%40b@h:1", "rabbit://u:***@h:1" },
	};
	char	*m;
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		m = config_mask_url(cases[i][0]);
		assert_string_equal(m, cases[i][1]);
		free(m);
	}
}

static void
test_dump_masks_secrets(void **state)
{
	struct config	*c;
	struct err	 err;
	char		*out = NULL;
	size_t		 len = 0;
	FILE		*f;

	(void)state;
	c = parse_with("", &err);
	assert_non_null(c);
	f = open_memstream(&out, &len);
	config_dump(c, f);
	fclose(f);
	assert_null(strstr(out, "hunter2pw"));
	assert_null(strstr(out, "s3cret"));
	assert_non_null(strstr(out, "password = ***\n"));
	assert_non_null(strstr(out, "transport_url = rabbit://isoforge:***@127.0.0.1:5672/\n"));
	assert_non_null(strstr(out, "max_builds = 2\n"));
	/* the dump is itself a valid configuration (but for the masked values) */
	config_free(&c);
	err_clear(&err);
	c = config_parse(out, "dump", &err);
	if (c == NULL)
		fail_msg("%s", err.msg);
	assert_string_equal(c->password, "***");
	config_free(&c);
	free(out);
}

/* [api]: isoforge-api's defaults are OpenStack's roles and bounded bodies. */
static void
test_api_defaults(void **state)
{
	struct config	*c;
	struct err	 err;

	(void)state;
	c = parse_with("[api]\nbind_port = 8779\npolicy_read = reader, auditor\n", &err);
	assert_non_null(c);
	assert_string_equal(c->api_bind_host, "127.0.0.1");
	assert_int_equal(c->api_bind_port, 8779);
	assert_null(c->api_host);
	assert_string_equal(c->api_state_dir, "/var/lib/isoforge-api");
	assert_int_equal(c->api_max_body, 65536);
	assert_int_equal(c->api_max_depth, 16);
	assert_int_equal(c->api_token_cache_size, 1024);
	assert_int_equal(c->api_trust_margin, 7200);
	assert_string_equal(c->api_policy_read, "reader, auditor");
	assert_string_equal(c->api_policy_write, "member,admin");
	assert_string_equal(c->api_policy_admin, "admin");
	config_free(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample_parses),
		cmocka_unit_test(test_defaults_and_values),
		cmocka_unit_test(test_errors_name_file_line),
		cmocka_unit_test(test_mask_url),
		cmocka_unit_test(test_dump_masks_secrets),
		cmocka_unit_test(test_api_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
