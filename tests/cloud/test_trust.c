/* test_trust.c — Keystone trusts against the minicloud: alice (member + reader in alpha) trusts
 * isoforge's service user; isoforge, with its own password and the trust id, gets tokens that
 * act as alice in alpha (user, project, roles; an image it makes is alpha's); deleting the
 * trust (as admin, or with the trust's own token) revokes it: no new trust token, the old one no
 * longer validates, a second delete is done too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/util.h"
#include "tests/cloud/clients_common.h"

static struct http_client	*http;

/* isoforge's service user with trust_id: a trust-scoped session (not authenticated yet). */
static struct keystone *
trust_session(const char *trust_id)
{
	struct keystone_auth	 a;
	struct keystone		*ks;
	struct err		 e;

	memset(&a, 0, sizeof(a));
	a.auth_url = getenv("OS_AUTH_URL");
	a.username = getenv("ISOFORGE_SERVICE_USERNAME");
	a.password = getenv("ISOFORGE_SERVICE_PASSWORD");
	a.user_domain_name = "Default";
	a.project_name = getenv("ISOFORGE_SERVICE_PROJECT_NAME");	/* ignored for the trust */
	a.project_domain_name = "Default";
	a.region = getenv("OS_REGION_NAME");
	a.trust_id = trust_id;
	err_clear(&e);
	ks = keystone_new(http, &a, &e);
	assert_non_null(ks);
	return ks;
}

/* alice's trust to isoforge on alpha, member + reader, for an hour; caller frees. */
static char *
alice_trust(struct keystone *alice, struct keystone *svc)
{
	char *const	 roles[] = { "member", "reader", NULL };
	struct err	 e;
	char		*id;

	err_clear(&e);
	id = keystone_trust_create(alice, keystone_info(svc, &e)->user_id, NULL, roles,
	    time(NULL) + 3600, &e);
	if (id == NULL)
		fprintf(stderr, "trust create: %s\n", e.msg);
	assert_non_null(id);
	return id;
}

static void
test_trust_acts_as_alice(void **state)
{
	struct keystone				*alice = cloud_session(http, "");
	struct keystone				*svc = cloud_service_session(http), *ts, *ts2;
	const struct keystone_token_info	*ai, *ti;
	struct keystone_token_info		*vi;
	struct glance				*g;
	struct err				 e;
	json_t					*img;
	char					*trust, *img_id, *old;

	(void)state;
	err_clear(&e);
	trust = alice_trust(alice, svc);
	ai = keystone_info(alice, &e);
	ts = trust_session(trust);
	ti = keystone_info(ts, &e);
	assert_non_null(ti);
	assert_string_equal(ti->user_id, ai->user_id);		/* impersonation: alice */
	assert_string_equal(ti->project_id, ai->project_id);	/* the trust's project */
	assert_true(keystone_token_info_has_role(ti, "member"));
	assert_true(keystone_token_info_has_role(ti, "reader"));
	assert_false(keystone_token_info_has_role(ti, "admin"));	/* not isoforge's roles */
	/* The token acts as alice: Glance makes the image alpha's. */
	g = glance_new(ts, NULL, &e);
	assert_non_null(g);
	img_id = cloud_image_new(g, "made-through-a-trust");
	img = glance_image_show(g, img_id, &e);
	assert_non_null(img);
	assert_string_equal(json_string_value(json_object_get(img, "owner")), ai->project_id);
	json_decref(img);
	assert_int_equal(glance_image_delete(g, img_id, &e), 0);
	free(img_id);
	glance_free(&g);
	old = xstrdup(keystone_token(ts, &e));

	/* isoforge's service user (admin in the minicloud) deletes it; twice is fine. */
	assert_int_equal(keystone_trust_delete(svc, trust, &e), 0);
	assert_int_equal(keystone_trust_delete(svc, trust, &e), 0);
	ts2 = trust_session(trust);
	assert_null(keystone_token(ts2, &e));
	assert_int_equal(e.kind, ERR_AUTH);
	printf("after delete: %s\n", e.msg);
	err_clear(&e);
	vi = keystone_validate(svc, old, 0, 0, &e);
	assert_null(vi);
	assert_int_equal(e.kind, ERR_AUTH);
	explicit_bzero(old, strlen(old));
	free(old);
	keystone_free(&ts2);
	keystone_free(&ts);
	free(trust);
	keystone_free(&svc);
	keystone_free(&alice);
}

/* The trust's own token is alice's (impersonation): Keystone lets the trustor delete it. */
static void
test_trust_deleted_with_its_own_token(void **state)
{
	struct keystone	*alice = cloud_session(http, "");
	struct keystone	*svc = cloud_service_session(http), *ts, *ts2;
	struct err	 e;
	char		*trust;

	(void)state;
	err_clear(&e);
	trust = alice_trust(alice, svc);
	ts = trust_session(trust);
	assert_non_null(keystone_token(ts, &e));
	assert_int_equal(keystone_trust_delete(ts, trust, &e), 0);
	ts2 = trust_session(trust);
	assert_null(keystone_token(ts2, &e));
	assert_int_equal(e.kind, ERR_AUTH);
	keystone_free(&ts2);
	keystone_free(&ts);
	free(trust);
	keystone_free(&svc);
	keystone_free(&alice);
}

/* A trust for the user session of keystone_new_for_user (the API's way: the user's token,
 * validated by the service), and what Keystone refuses. */
static void
test_trust_refusals(void **state)
{
	char *const	 roles[] = { "member", NULL }, *const admin[] = { "admin", NULL };
	struct keystone	*alice = cloud_session(http, ""), *bob = cloud_session(http, "ALT_");
	struct keystone	*svc = cloud_service_session(http), *as_alice;
	struct err	 e;
	char		*trust;
	const char	*iso;

	(void)state;
	err_clear(&e);
	iso = keystone_info(svc, &e)->user_id;
	as_alice = keystone_new_for_user(svc, keystone_token(alice, &e), &e);
	assert_non_null(as_alice);
	trust = keystone_trust_create(as_alice, iso, NULL, roles, time(NULL) + 600, &e);
	assert_non_null(trust);
	assert_int_equal(keystone_trust_delete(svc, trust, &e), 0);
	free(trust);
	/* A role alice does not hold. */
	assert_null(keystone_trust_create(alice, iso, NULL, admin, time(NULL) + 600, &e));
	printf("admin role: %s\n", e.msg);
	/* bob cannot delegate alpha. */
	err_clear(&e);
	assert_null(keystone_trust_create(bob, iso, keystone_info(alice, &e)->project_id, roles,
	    time(NULL) + 600, &e));
	printf("another project: %s\n", e.msg);
	/* two trusts of the same second (builds asked for at once) don't clash in Keystone */
	{
		char	*t1, *t2;
		time_t	 when = time(NULL) + 900;

		err_clear(&e);
		t1 = keystone_trust_create(alice, iso, NULL, roles, when, &e);
		t2 = keystone_trust_create(alice, iso, NULL, roles, when, &e);
		if (t2 == NULL)
			fprintf(stderr, "second trust: %s\n", e.msg);
		assert_non_null(t1);
		assert_non_null(t2);
		assert_string_not_equal(t1, t2);
		assert_int_equal(keystone_trust_delete(svc, t1, &e), 0);
		assert_int_equal(keystone_trust_delete(svc, t2, &e), 0);
		free(t1);
		free(t2);
	}
	err_clear(&e);
	assert_null(keystone_trust_create(alice, iso, NULL, NULL, 0, &e));
	assert_int_equal(e.kind, ERR_INVAL);
	err_clear(&e);
	assert_int_equal(keystone_trust_delete(svc, "../users", &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
	keystone_free(&as_alice);
	keystone_free(&svc);
	keystone_free(&bob);
	keystone_free(&alice);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trust_acts_as_alice),
		cmocka_unit_test(test_trust_deleted_with_its_own_token),
		cmocka_unit_test(test_trust_refusals),
	};
	int	 rc;

	cloud_require();
	http = cloud_http();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	http_client_free(&http);
	return rc;
}
