/*
 * test_worker_register.c — the worker's registering step against the minicloud: the image is
 * created as the requester (their project owns it, private), with Nova's and the lineage
 * properties, as the next version of its chain, verified; all through alice's Keystone trust
 * to isoforge (trust-scoped tokens from isoforge's own credentials), also when the token in
 * use is revoked mid-build (a new one is obtained) and from a second session on the same trust
 * (a restarted worker); a failed upload leaves no image; a deleted trust opens no session.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/wait.h>
#include <unistd.h>

#include "service/common/config.h"
#include "service/pipeline/chain.h"
#include "service/pipeline/cloud.h"
#include "service/pipeline/request.h"
#include "tests/cloud/clients_common.h"

static struct config	*cfg;
static char		*qcow2;
static char		*iso_id;
static struct http_client *http;
static struct keystone	*alice;
static struct glance	*alice_g;

static void
must(int rc, struct err *err)
{
	if (rc != 0)
		fail_msg("%s", err->msg);
}

/* Revokes token (DELETE /v3/auth/tokens) as Keystone's admin. */
static void
revoke_token(const char *token)
{
	struct keystone	*admin = cloud_session(http, "ADMIN_");
	struct http_req	 req;
	struct http_resp resp;
	struct err	 err;
	const char	*hdrs[2];
	char		*url, *subj;

	url = xasprintf("%s/auth/tokens", getenv("OS_AUTH_URL"));
	subj = xasprintf("X-Subject-Token: %s", token);
	hdrs[0] = subj;
	hdrs[1] = NULL;
	http_req_init(&req);
	http_resp_init(&resp);
	req.method = "DELETE";
	req.url = url;
	req.headers = hdrs;
	err_clear(&err);
	must(keystone_request(admin, &req, &resp, &err), &err);
	http_resp_free(&resp);
	free(subj);
	free(url);
	keystone_free(&admin);
}

static int
setup(void **state)
{
	struct err	 err;
	char		*text, *isofile;
	char		*argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", NULL, "64M", NULL };
	const char	*tmp = getenv("TEST_TMP") != NULL ? getenv("TEST_TMP") : "/tmp";

	(void)state;
	err_clear(&err);
	text = xasprintf("[DEFAULT]\ntransport_url = rabbit://x:y@127.0.0.1:1/\n"
	    "[keystone_authtoken]\nauth_url = %s\nusername = %s\npassword = \"%s\"\n"
	    "project_name = %s\n[builds]\nwork_dir = %s/work\ncache_dir = %s/cache\n",
	    getenv("OS_AUTH_URL"), getenv("ISOFORGE_SERVICE_USERNAME"),
	    getenv("ISOFORGE_SERVICE_PASSWORD"), getenv("ISOFORGE_SERVICE_PROJECT_NAME"), tmp, tmp);
	cfg = config_parse(text, "test", &err);
	free(text);
	if (cfg == NULL)
		fail_msg("%s", err.msg);
	qcow2 = xasprintf("%s/disk.qcow2", tmp);
	argv[5] = qcow2;
	if (fork() == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	wait(NULL);
	http = cloud_http();
	alice = cloud_session(http, "");
	alice_g = glance_new(alice, NULL, &err);
	assert_non_null(alice_g);
	/* the source ISO the lineage names */
	isofile = xasprintf("%s/src.iso", tmp);
	must(cloud_fake_iso(alice_g, isofile, "t-register-src", &iso_id, &err), &err);
	free(isofile);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	glance_image_delete(alice_g, iso_id, NULL);
	free(iso_id);
	glance_free(&alice_g);
	keystone_free(&alice);
	http_client_free(&http);
	config_free(&cfg);
	free(qcow2);
	return 0;
}

/* A request as a worker would have it (trust given). */
static struct build_request *
request(const char *trust, const char *chain)
{
	struct build_request	*r;
	struct err		 err;
	json_t			*o;
	char			*s;

	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:{s:{s:s}, s:[s]}}",
	    "schema", "isoforge.build/2", "trust_id", trust, "name", "t-register",
	    "iso_image", iso_id, "flavor", "isoforge.tiny", "chain", chain,
	    "os", "distro", "debian12", "image", "properties", "owner_note", "x",
	    "tags", "t-register");
	s = json_dumps(o, 0);
	json_decref(o);
	err_clear(&err);
	r = request_parse(s, strlen(s), REQUEST_FULL, &err);
	free(s);
	if (r == NULL)
		fail_msg("%s", err.msg);
	return r;
}

/* The pipeline's notifier, as far as registering tells it: the image created. */
static void
on_resource(void *ctx, struct build *b, const char *kind, const char *value, int added)
{
	(void)b;
	if (strcmp(kind, "glance_image") == 0 && added)
		snprintf(ctx, 64, "%s", value);
}

static const struct notifier_ops test_notifier = { .resource = on_resource };

/*
 * A build of req resolved by the Glance source as a worker's is, with notifier ctx
 * created; the properties are those the pipeline writes plus extra (may be NULL).
 */
static struct build *
resolved_build(const struct build_request *req, const char *build_id, struct cloud *c,
    char *created, json_t **props)
{
	struct build	*b = build_new(build_id);
	struct err	 err;
	json_t		*extra;

	err_clear(&err);
	build_apply_request(b, req);
	if (b->chain == NULL)
		b->chain = xstrdup(b->name);
	b->notifier = &test_notifier;
	b->notifier_ctx = created;
	must(source_glance_ops.resolve(c, b, &err), &err);
	*props = build_image_properties(b, "2026-11-29T00:00:00Z");
	extra = json_pack("{s:s, s:s, s:i, s:i}", "hw_disk_bus", "virtio", "hw_vif_model",
	    "virtio", "min_disk", 1, "min_ram", 512);
	json_object_update(*props, extra);
	json_decref(extra);
	return b;
}

static void
register_one(const char *trust, const char *chain, const char *build_id, int want_version,
    int revoke, char **idp)
{
	struct build_request	*req;
	struct build		*b;
	struct cloud		 c;
	struct err		 err;
	json_t			*props, *img;
	const char		*project;
	char			 created[64] = "";

	err_clear(&err);
	req = request(trust, chain);
	cloud_init(&c, cfg, req->trust_id);
	b = resolved_build(req, build_id, &c, created, &props);
	/* the trust-scoped token acts as alice, in alice's project */
	assert_string_equal(c.user_id, keystone_info(alice, &err)->user_id);
	assert_string_equal(c.project_id, keystone_info(alice, &err)->project_id);
	if (revoke)
		revoke_token(keystone_token(c.user, &err));
	if (registry_glance_ops.add(&c, b, qcow2, props, &err) != 0)
		fail_msg("%s", err.msg);
	*idp = xstrdup(b->image_id);
	assert_string_equal(created, *idp);
	assert_int_equal(b->version, want_version);
	img = glance_image_show(alice_g, *idp, &err);
	assert_non_null(img);
	project = keystone_info(alice, &err)->project_id;
	assert_string_equal(json_string_value(json_object_get(img, "owner")), project);
	assert_string_equal(json_string_value(json_object_get(img, "status")), "active");
	assert_string_equal(json_string_value(json_object_get(img, "visibility")), "private");
	assert_string_equal(json_string_value(json_object_get(img, "hw_disk_bus")), "virtio");
	assert_int_equal(json_integer_value(json_object_get(img, "min_disk")), 1);
	assert_string_equal(json_string_value(json_object_get(img, "os_distro")), "debian12");
	assert_string_equal(json_string_value(json_object_get(img, "owner_note")), "x");
	assert_string_equal(json_string_value(json_object_get(img, "isoforge_chain")), chain);
	assert_string_equal(json_string_value(json_object_get(img, "isoforge_build_id")), build_id);
	assert_string_equal(json_string_value(json_object_get(img, "isoforge_source_iso")), iso_id);
	assert_non_null(json_string_value(json_object_get(img, "isoforge_source_iso_hash")));
	assert_non_null(json_string_value(json_object_get(img, "isoforge_built_at")));
	assert_non_null(json_string_value(json_object_get(img, "os_hash_value")));
	assert_null(json_object_get(img, "base_image_ref"));
	json_decref(img);
	json_decref(props);
	build_free(&b);
	cloud_close(&c);
	request_free(&req);
}

static void
test_register_versions_as_user(void **state)
{
	struct err	 err;
	struct cloud	 c;
	char		*a, *b, *trust, chain[64], uuid[37];

	(void)state;
	util_uuid(uuid);
	snprintf(chain, sizeof(chain), "t-reg-%.8s", uuid);
	err_clear(&err);
	trust = cloud_trust(alice);
	register_one(trust, chain, "cccccccc-0000-4000-8000-000000000001", 1, 0, &a);
	/* the token in use revoked before the upload (as one expiring would): a new one */
	register_one(trust, chain, "cccccccc-0000-4000-8000-000000000002", 2, 1, &b);
	glance_image_delete(alice_g, a, NULL);
	glance_image_delete(alice_g, b, NULL);
	/* once the trust is deleted, it opens no session */
	must(keystone_trust_delete(alice, trust, &err), &err);
	cloud_init(&c, cfg, trust);
	assert_int_equal(cloud_open(&c, &err), -1);
	assert_int_equal(err.kind, ERR_AUTH);
	printf("# deleted trust: %s\n", err.msg);
	cloud_close(&c);
	free(trust);
	free(a);
	free(b);
}

static void
test_failed_upload_leaves_nothing(void **state)
{
	struct build_request	*req;
	struct build		*b;
	struct cloud		 c;
	struct err		 err;
	json_t			*list, *props;
	char			 created[64] = "", chain[64], uuid[37], *trust;

	(void)state;
	util_uuid(uuid);
	snprintf(chain, sizeof(chain), "t-regfail-%.8s", uuid);
	err_clear(&err);
	trust = cloud_trust(alice);
	req = request(trust, chain);
	cloud_init(&c, cfg, req->trust_id);
	b = resolved_build(req, "cccccccc-0000-4000-8000-000000000003", &c, created, &props);
	assert_int_equal(registry_glance_ops.add(&c, b, "/nonexistent/disk", props, &err), -1);
	assert_null(b->image_id);
	assert_int_not_equal(err.kind, ERR_NONE);
	assert_true(created[0] != '\0');	/* it was created, then deleted */
	list = chain_list(c.glance, NULL, chain, &err);
	assert_non_null(list);
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	json_decref(props);
	build_free(&b);
	assert_int_equal(cloud_delete_trust(&c, trust, &err), 0);
	free(trust);
	cloud_close(&c);
	request_free(&req);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_versions_as_user),
		cmocka_unit_test(test_failed_upload_leaves_nothing),
	};

	cloud_require();
	return cmocka_run_group_tests(tests, setup, teardown);
}
