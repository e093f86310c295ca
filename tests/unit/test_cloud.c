/* test_cloud.c — the Glance image body a worker's build registers (pure): the request's
 * fields, the pipeline's properties (Nova's from the real plan, the lineage), nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "service/pipeline/cloud.h"
#include "service/pipeline/request.h"

static void
test_image_body(void **state)
{
	static const char body[] =
	    "{\"schema\": \"isoforge.build/2\", \"trust_id\": \"t\", \"name\": \"win\", "
	    "\"iso_image\": \"11111111-1111-4111-8111-111111111111\", \"flavor\": \"f\", "
	    "\"os\": {\"distro\": \"win2k19\", \"version\": \"2019\"}, "
	    "\"virtio_win_image\": \"33333333-3333-4333-8333-333333333333\", "
	    "\"parent_image\": \"22222222-2222-4222-8222-222222222222\", "
	    "\"image\": {\"visibility\": \"shared\", \"properties\": {\"hw_disk_bus\": \"ide\", "
	    "\"note\": \"x\"}, \"tags\": [\"golden\"]}}";
	struct build_request	*req;
	struct build		*b;
	struct err		 err;
	json_t			*props, *j;
	const char		*top = getenv("ISOFORGE_TOP");

	(void)state;
	err_clear(&err);
	req = request_parse(body, strlen(body), REQUEST_FULL, &err);
	if (req == NULL)
		fail_msg("%s", err.msg);
	b = build_new("44444444-4444-4444-8444-444444444444");
	build_apply_request(b, req);
	/* what resolving and fetching fill for a Glance build */
	b->templates = xasprintf("%s/templates", top != NULL ? top : ".");
	b->work_root = xstrdup("/var/lib/isoforge/builds");
	b->iso = xstrdup("/cache/abc123.iso");
	b->virtio_win = xstrdup("/cache/def456.iso");
	b->iso_hash = xstrdup("abc123");
	b->flavor.disk_gib = 40;
	b->flavor.ram_mib = 2048;
	if (build_make_plan(b, 0, &err) != 0)
		fail_msg("%s", err.msg);
	props = build_image_properties(b, "2026-11-22T00:00:00Z");
	j = cloud_image_body(b, props);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "win");
	assert_string_equal(json_string_value(json_object_get(j, "disk_format")), "qcow2");
	assert_string_equal(json_string_value(json_object_get(j, "container_format")), "bare");
	assert_string_equal(json_string_value(json_object_get(j, "visibility")), "shared");
	/* Nova's properties (the windows profile the OS chose: virtio disk) win over the user's */
	assert_string_equal(json_string_value(json_object_get(j, "hw_disk_bus")), "virtio");
	assert_string_equal(json_string_value(json_object_get(j, "hw_vif_model")), "e1000");
	assert_string_equal(json_string_value(json_object_get(j, "note")), "x");
	assert_int_equal(json_integer_value(json_object_get(j, "min_disk")), 40);
	assert_int_equal(json_integer_value(json_object_get(j, "min_ram")), 2048);
	assert_string_equal(json_string_value(json_object_get(j, "os_distro")), "win2k19");
	assert_string_equal(json_string_value(json_object_get(j, "os_version")), "2019");
	assert_string_equal(json_string_value(json_object_get(j, "isoforge_parent")),
	    "22222222-2222-4222-8222-222222222222");
	assert_string_equal(json_string_value(json_object_get(j, "isoforge_build_id")),
	    "44444444-4444-4444-8444-444444444444");
	assert_string_equal(json_string_value(json_object_get(j, "isoforge_source_iso")),
	    "11111111-1111-4111-8111-111111111111");
	assert_string_equal(json_string_value(json_object_get(j, "isoforge_source_iso_hash")),
	    "abc123");
	assert_string_equal(json_string_value(json_object_get(j, "isoforge_virtio_win")),
	    "33333333-3333-4333-8333-333333333333");
	assert_string_equal(json_string_value(json_object_get(j, "isoforge_built_at")),
	    "2026-11-22T00:00:00Z");
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "tags"), 0)),
	    "golden");
	/* never written, whoever asks; the chain sets chain and version itself */
	assert_null(json_object_get(j, "base_image_ref"));
	assert_null(json_object_get(j, "isoforge_version"));
	assert_null(json_object_get(j, "isoforge_chain"));
	assert_null(json_object_get(j, "token"));
	assert_null(json_object_get(j, "trust_id"));
	json_decref(j);
	json_decref(props);
	build_free(&b);
	request_free(&req);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_image_body),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
