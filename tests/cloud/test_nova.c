/* test_nova.c — Nova flavors against the minicloud: by id, by name, missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/util.h"
#include "tests/cloud/clients_common.h"

static struct http_client	*http;
static struct keystone		*alice;
static struct nova		*nova;

static void
test_by_id_and_name(void **state)
{
	struct nova_flavor	*f;
	struct err		 e;

	(void)state;
	err_clear(&e);
	f = nova_flavor_get(nova, getenv("ISOFORGE_FLAVOR_TINY"), &e);
	assert_non_null(f);
	assert_string_equal(f->name, "isoforge.tiny");
	assert_int_equal(f->vcpus, 1);
	assert_int_equal(f->ram_mib, 256);
	assert_int_equal(f->disk_gib, 2);
	assert_true(json_is_object(f->extra_specs));
	nova_flavor_free(&f);
	f = nova_flavor_get(nova, "isoforge.tiny", &e);
	assert_non_null(f);
	assert_string_equal(f->id, getenv("ISOFORGE_FLAVOR_TINY"));
	nova_flavor_free(&f);
	f = nova_flavor_get(nova, "isoforge.nodisk", &e);
	assert_non_null(f);
	assert_int_equal(f->disk_gib, 0);
	nova_flavor_free(&f);
	assert_null(f);
}

/* An extra spec set by the admin comes back with the flavor. */
static void
test_extra_specs(void **state)
{
	struct keystone		*admin = cloud_session(http, "ADMIN_");
	struct nova_flavor	*f;
	struct http_resp	 resp;
	struct err		 e;
	const char		*body = "{\"extra_specs\": {\"isoforge:test\": \"yes\"}}";
	char			*url;

	(void)state;
	err_clear(&e);
	url = xasprintf("%s/flavors/%s/os-extra_specs", getenv("NOVA_URL"),
	    getenv("ISOFORGE_FLAVOR_SMALL"));
	assert_int_equal(cloud_request(admin, "POST", url, body, &resp, &e), 0);
	http_resp_free(&resp);
	f = nova_flavor_get(nova, "isoforge.small", &e);
	assert_non_null(f);
	assert_string_equal(json_string_value(json_object_get(f->extra_specs, "isoforge:test")),
	    "yes");
	nova_flavor_free(&f);
	free(url);
	keystone_free(&admin);
}

static void
test_missing(void **state)
{
	struct err	 e;

	(void)state;
	err_clear(&e);
	assert_null(nova_flavor_get(nova, "no-such-flavor", &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	printf("missing: %s\n", e.msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_by_id_and_name),
		cmocka_unit_test(test_extra_specs),
		cmocka_unit_test(test_missing),
	};
	struct err	 e;
	int		 rc;

	cloud_require();
	http = cloud_http();
	alice = cloud_session(http, "");
	err_clear(&e);
	if ((nova = nova_new(alice, NULL, &e)) == NULL) {
		fprintf(stderr, "nova: %s\n", e.msg);
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	nova_free(&nova);
	keystone_free(&alice);
	http_client_free(&http);
	return rc;
}
