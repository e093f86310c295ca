/* test_clients.c — the pure parts of the http/keystone/glance/nova clients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/glance.h"
#include "drivers/http.h"
#include "drivers/keystone.h"
#include "drivers/nova.h"
#include "service/cli/osenv.h"

static void
test_error_message(void **state)
{
	const char	*glance = "{\"message\": \"No image found with ID x<br /><br />\\n\", "
			    "\"code\": \"404 Not Found\", \"title\": \"Not Found\"}";
	const char	*ks = "{\"error\":{\"code\":401,\"message\":\"The request you have made "
			    "requires authentication.\",\"title\":\"Unauthorized\"}}";
	const char	*nova = "{\"itemNotFound\": {\"code\": 404, \"message\": \"Flavor x could "
			    "not be found.\"}}";
	const char	*html = "<html><body><h1>500</h1>  oops\n</body></html>";
	char		*m;

	(void)state;
	m = http_error_message(glance, strlen(glance));
	assert_string_equal(m, "No image found with ID x");
	free(m);
	m = http_error_message(ks, strlen(ks));
	assert_string_equal(m, "The request you have made requires authentication.");
	free(m);
	m = http_error_message(nova, strlen(nova));
	assert_string_equal(m, "Flavor x could not be found.");
	free(m);
	m = http_error_message(html, strlen(html));
	assert_string_equal(m, "500 oops");
	free(m);
	assert_null(http_error_message("", 0));
	m = http_escape("a b/c~");
	assert_string_equal(m, "a%20b%2Fc~");
	free(m);
}

static void
test_auth_body(void **state)
{
	struct keystone_auth	 a;
	struct err		 e;
	json_t			*b;
	char			*s;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.username = "alice";
	a.password = "pw";
	a.user_domain_name = "Default";
	a.project_name = "alpha";
	a.project_domain_id = "default";
	err_clear(&e);
	b = keystone_auth_body(&a, &e);
	assert_non_null(b);
	s = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":"
	    "{\"user\":{\"domain\":{\"name\":\"Default\"},\"name\":\"alice\",\"password\":\"pw\"}}},"
	    "\"scope\":{\"project\":{\"domain\":{\"id\":\"default\"},\"name\":\"alpha\"}}}}");
	free(s);
	json_decref(b);

	memset(&a, 0, sizeof(a));
	a.app_cred_id = "ac1";
	a.app_cred_secret = "sec";
	b = keystone_auth_body(&a, &e);
	s = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"auth\":{\"identity\":{\"application_credential\":{\"id\":\"ac1\","
	    "\"secret\":\"sec\"},\"methods\":[\"application_credential\"]}}}");
	free(s);
	json_decref(b);

	memset(&a, 0, sizeof(a));
	a.username = "alice";
	assert_null(keystone_auth_body(&a, &e));
	assert_int_equal(e.kind, ERR_INVAL);

	/* A trust: its scope replaces the project's. */
	memset(&a, 0, sizeof(a));
	a.user_id = "u-iso";
	a.password = "pw";
	a.project_name = "service";
	a.trust_id = "t123";
	b = keystone_auth_body(&a, &e);
	s = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":"
	    "{\"user\":{\"id\":\"u-iso\",\"password\":\"pw\"}}},"
	    "\"scope\":{\"OS-TRUST:trust\":{\"id\":\"t123\"}}}}");
	free(s);
	json_decref(b);
	/* Keystone refuses a scope in an application-credential login. */
	memset(&a, 0, sizeof(a));
	a.app_cred_id = "ac1";
	a.app_cred_secret = "sec";
	a.trust_id = "t123";
	err_clear(&e);
	assert_null(keystone_auth_body(&a, &e));
	assert_int_equal(e.kind, ERR_INVAL);
}

static void
test_catalog_and_token(void **state)
{
	const char	*text = "{\"token\": {\"expires_at\": \"2030-01-01T00:00:00.000000Z\","
	    "\"user\": {\"id\": \"u1\", \"name\": \"alice\", \"domain\": {\"id\": \"default\"}},"
	    "\"project\": {\"id\": \"p1\", \"name\": \"alpha\", \"domain\": {\"id\": \"default\"}},"
	    "\"roles\": [{\"id\": \"r1\", \"name\": \"member\"}, {\"id\": \"r2\", \"name\": \"reader\"}],"
	    "\"catalog\": [{\"type\": \"image\", \"endpoints\": ["
	    "{\"interface\": \"internal\", \"region_id\": \"RegionOne\", \"url\": \"http://int:9292\"},"
	    "{\"interface\": \"public\", \"region_id\": \"RegionTwo\", \"url\": \"http://two:9292/\"},"
	    "{\"interface\": \"public\", \"region_id\": \"RegionOne\", \"url\": \"http://one:9292/\"}]}]}}";
	struct keystone_token_info	*i;
	struct err			 e;
	json_t				*root = json_loads(text, 0, NULL);
	char				*u;

	(void)state;
	err_clear(&e);
	i = keystone_token_info_parse(root, &e);
	assert_non_null(i);
	assert_string_equal(i->user_id, "u1");
	assert_string_equal(i->project_name, "alpha");
	assert_int_equal(i->nroles, 2);
	assert_true(keystone_token_info_has_role(i, "reader"));
	assert_false(keystone_token_info_has_role(i, "admin"));
	assert_int_equal((long long)i->expires, 1893456000LL);
	u = keystone_catalog_find(i->catalog, "image", NULL, "RegionOne", &e);
	assert_string_equal(u, "http://one:9292");
	free(u);
	u = keystone_catalog_find(i->catalog, "image", "internal", NULL, &e);
	assert_string_equal(u, "http://int:9292");
	free(u);
	assert_null(keystone_catalog_find(i->catalog, "compute", NULL, NULL, &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	keystone_token_info_free(&i);
	assert_null(i);
	json_decref(root);
}

static void
test_patch_and_flavor(void **state)
{
	json_t			*ops = json_array(), *fl;
	struct nova_flavor	*f;
	struct err		 e;
	char			*s;

	(void)state;
	glance_patch_op(ops, "add", "isoforge_chain", json_string("x"));
	glance_patch_op(ops, "remove", "a/b~c", NULL);
	s = json_dumps(ops, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "[{\"op\":\"add\",\"path\":\"/isoforge_chain\",\"value\":\"x\"},"
	    "{\"op\":\"remove\",\"path\":\"/a~1b~0c\"}]");
	free(s);
	json_decref(ops);

	fl = json_loads("{\"id\": \"f1\", \"name\": \"tiny\", \"vcpus\": 1, \"ram\": 256, "
	    "\"disk\": 2, \"swap\": \"\", \"OS-FLV-EXT-DATA:ephemeral\": 0, "
	    "\"extra_specs\": {\"hw:cpu_policy\": \"shared\"}}", 0, NULL);
	err_clear(&e);
	f = nova_flavor_parse(fl, &e);
	assert_non_null(f);
	assert_int_equal(f->vcpus, 1);
	assert_int_equal(f->ram_mib, 256);
	assert_int_equal(f->disk_gib, 2);
	assert_int_equal(f->swap_mib, 0);
	assert_string_equal(json_string_value(json_object_get(f->extra_specs, "hw:cpu_policy")),
	    "shared");
	nova_flavor_free(&f);
	assert_null(f);
	json_decref(fl);
}

static void
test_osenv(void **state)
{
	struct keystone_auth	 a;
	struct err		 e;

	(void)state;
	setenv("OS_AUTH_URL", "http://k:5000/v3", 1);
	setenv("OS_USERNAME", "alice", 1);
	setenv("OS_PASSWORD", "pw", 1);
	setenv("OS_PROJECT_NAME", "alpha", 1);
	setenv("OS_USER_DOMAIN_NAME", "Default", 1);
	setenv("OS_REGION_NAME", "RegionOne", 1);
	setenv("ALT_OS_USERNAME", "bob", 1);
	setenv("ALT_OS_PASSWORD", "pw2", 1);
	setenv("ALT_OS_PROJECT_NAME", "beta", 1);
	unsetenv("OS_INTERFACE");
	err_clear(&e);
	assert_int_equal(osenv_auth("", &a, &e), 0);
	assert_string_equal(a.username, "alice");
	assert_string_equal(a.user_domain_name, "Default");
	assert_null(a.interface);
	assert_int_equal(osenv_auth("ALT_", &a, &e), 0);
	assert_string_equal(a.username, "bob");
	assert_string_equal(a.project_name, "beta");
	assert_string_equal(a.auth_url, "http://k:5000/v3");	/* falls back to the main one */
	assert_string_equal(a.user_domain_name, "Default");
	assert_string_equal(a.region, "RegionOne");
	unsetenv("ALT_OS_PASSWORD");
	assert_int_equal(osenv_auth("ALT_", &a, &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
	err_clear(&e);
	setenv("OS_INTERFACE", "sideways", 1);
	assert_int_equal(osenv_auth("", &a, &e), -1);
	unsetenv("OS_INTERFACE");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_message),
		cmocka_unit_test(test_auth_body),
		cmocka_unit_test(test_catalog_and_token),
		cmocka_unit_test(test_patch_and_flavor),
		cmocka_unit_test(test_osenv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
