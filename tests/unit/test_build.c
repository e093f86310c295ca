/* test_build.c — the pure parts of service/pipeline/build: state names, the properties a build writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "service/pipeline/build.h"

static void
test_state_names(void **state)
{
	int	 s;

	(void)state;
	for (s = BUILD_QUEUED; s <= BUILD_CANCELLED; s++)
		assert_int_equal(build_state_from_name(build_state_name(s)), s);
	assert_string_equal(build_state_name(BUILD_UPLOADING), "uploading");
	assert_int_equal(build_state_from_name("nonsense"), -1);
	assert_true(build_state_terminal(BUILD_ACTIVE));
	assert_true(build_state_terminal(BUILD_FAILED));
	assert_true(build_state_terminal(BUILD_CANCELLED));
	assert_false(build_state_terminal(BUILD_INSTALLING));
}

static int
on_state(void *arg, struct build *b, enum build_state s, const char *msg, struct err *e)
{
	int	*calls = arg;

	(void)b;
	(void)s;
	(void)msg;
	(void)e;
	(*calls)++;
	return 0;
}

static const struct notifier_ops test_notifier = { .state = on_state };

static void
test_set_state_announces(void **state)
{
	struct build	*b = build_new("abc");
	int		 calls = 0;

	(void)state;
	b->notifier = &test_notifier;
	b->notifier_ctx = &calls;
	build_set_state(b, BUILD_FAILED, NULL, "install failed: %s", "guest crashed");
	assert_int_equal(calls, 1);
	assert_int_equal(b->state, BUILD_FAILED);
	assert_string_equal(b->message, "install failed: guest crashed");
	build_set_state(b, BUILD_CANCELLED, NULL, NULL);
	assert_null(b->message);
	build_free(&b);
	assert_null(b);
	build_free(&b);
}

static void
test_properties(void **state)
{
	struct build	*b = build_new("0b6c1a52-0000-4000-8000-000000000001");
	json_t		*p;

	(void)state;
	b->chain = xstrdup("win2019");
	b->version = 3;
	b->parent = xstrdup("parent-id");
	b->iso_ref = xstrdup("/isos/win.iso");
	b->iso_hash = xstrdup("ab12");
	b->os_distro = xstrdup("windows");
	b->os_version = xstrdup("2019");
	b->properties = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "hw_qemu_guest_agent", "yes",
	    "os_glance_importer", "x", "base_image_ref", "x", "instance_uuid", "x",
	    "image_type", "snapshot", "isoforge_version", "99");
	p = build_image_properties(b, "2026-11-22T03:00:00Z");
	/* the registry settles chain and version with the number it claims */
	assert_null(json_object_get(p, "isoforge_chain"));
	assert_null(json_object_get(p, "isoforge_version"));
	assert_string_equal(json_string_value(json_object_get(p, "isoforge_parent")), "parent-id");
	assert_string_equal(json_string_value(json_object_get(p, "isoforge_build_id")), b->id);
	assert_string_equal(json_string_value(json_object_get(p, "isoforge_source_iso")),
	    "/isos/win.iso");
	assert_string_equal(json_string_value(json_object_get(p, "isoforge_source_iso_hash")),
	    "ab12");
	assert_string_equal(json_string_value(json_object_get(p, "isoforge_virtio_win")), "none");
	assert_string_equal(json_string_value(json_object_get(p, "isoforge_built_at")),
	    "2026-11-22T03:00:00Z");
	assert_string_equal(json_string_value(json_object_get(p, "os_distro")), "windows");
	assert_string_equal(json_string_value(json_object_get(p, "os_version")), "2019");
	assert_string_equal(json_string_value(json_object_get(p, "hw_qemu_guest_agent")), "yes");
	assert_null(json_object_get(p, "os_glance_importer"));
	assert_null(json_object_get(p, "base_image_ref"));
	assert_null(json_object_get(p, "instance_uuid"));
	assert_null(json_object_get(p, "image_type"));
	json_decref(p);
	build_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_set_state_announces),
		cmocka_unit_test(test_properties),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
