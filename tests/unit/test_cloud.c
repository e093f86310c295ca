/* test_worker_steps.c — the Glance image body a worker registers (pure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "service/worker/worker_steps.h"

static void
test_image_body(void **state)
{
	static const char body[] =
	    "{\"schema\": \"isoforge.build/1\", \"token\": \"t\", \"name\": \"win\", "
	    "\"iso_image\": \"11111111-1111-4111-8111-111111111111\", \"flavor\": \"f\", "
	    "\"os\": {\"distro\": \"win2k19\", \"version\": \"2019\"}, "
	    "\"parent_image\": \"22222222-2222-4222-8222-222222222222\", "
	    "\"image\": {\"visibility\": \"shared\", \"properties\": {\"hw_disk_bus\": \"ide\", "
	    "\"note\": \"x\"}, \"tags\": [\"golden\"]}}";
	struct build_request	*req;
	struct err		 err;
	json_t			*iso, *virtio, *nova, *b;

	(void)state;
	err_clear(&err);
	req = request_parse(body, strlen(body), REQUEST_FULL, &err);
	if (req == NULL)
		fail_msg("%s", err.msg);
	iso = json_pack("{s:s, s:s}", "id", "11111111-1111-4111-8111-111111111111",
	    "os_hash_value", "abc123");
	virtio = json_pack("{s:s}", "id", "33333333-3333-4333-8333-333333333333");
	nova = json_pack("{s:s, s:s, s:i, s:i, s:s}", "hw_disk_bus", "virtio", "hw_vif_model",
	    "e1000", "min_disk", 40, "min_ram", 2048, "base_image_ref", "x");
	b = ws_image_body(req, "44444444-4444-4444-8444-444444444444", iso, virtio, nova,
	    "2026-11-22T00:00:00Z");
	assert_string_equal(json_string_value(json_object_get(b, "name")), "win");
	assert_string_equal(json_string_value(json_object_get(b, "disk_format")), "qcow2");
	assert_string_equal(json_string_value(json_object_get(b, "container_format")), "bare");
	assert_string_equal(json_string_value(json_object_get(b, "visibility")), "shared");
	/* Nova's properties win over the user's */
	assert_string_equal(json_string_value(json_object_get(b, "hw_disk_bus")), "virtio");
	assert_string_equal(json_string_value(json_object_get(b, "note")), "x");
	assert_int_equal(json_integer_value(json_object_get(b, "min_disk")), 40);
	assert_int_equal(json_integer_value(json_object_get(b, "min_ram")), 2048);
	assert_string_equal(json_string_value(json_object_get(b, "os_distro")), "win2k19");
	assert_string_equal(json_string_value(json_object_get(b, "os_version")), "2019");
	assert_string_equal(json_string_value(json_object_get(b, "isoforge_parent")),
	    "22222222-2222-4222-8222-222222222222");
	assert_string_equal(json_string_value(json_object_get(b, "isoforge_build_id")),
	    "44444444-4444-4444-8444-444444444444");
	assert_string_equal(json_string_value(json_object_get(b, "isoforge_source_iso")),
	    "11111111-1111-4111-8111-111111111111");
	assert_string_equal(json_string_value(json_object_get(b, "isoforge_source_iso_hash")),
	    "abc123");
	assert_string_equal(json_string_value(json_object_get(b, "isoforge_virtio_win")),
	    "33333333-3333-4333-8333-333333333333");
	assert_string_equal(json_string_value(json_object_get(b, "isoforge_built_at")),
	    "2026-11-22T00:00:00Z");
	assert_string_equal(json_string_value(json_array_get(json_object_get(b, "tags"), 0)),
	    "golden");
	/* never written, whoever asks; the chain sets chain and version itself */
	assert_null(json_object_get(b, "base_image_ref"));
	assert_null(json_object_get(b, "isoforge_version"));
	assert_null(json_object_get(b, "token"));
	json_decref(b);
	json_decref(nova);
	json_decref(virtio);
	json_decref(iso);
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
