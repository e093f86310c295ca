/* test_keystone.c — Keystone v3 against the minicloud: password and application-credential
 * logins, catalog, token validation, renewal after a 401, acting for a user with a service
 * token, and the errors (bad password, connection refused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/proc.h"
#include "base/util.h"
#include "tests/cloud/clients_common.h"

static struct http_client	*http;

static void
test_password_names_and_catalog(void **state)
{
	struct keystone				*ks = cloud_session(http, "");
	const struct keystone_token_info	*i;
	struct err				 e;
	char					*url;

	(void)state;
	err_clear(&e);
	i = keystone_info(ks, &e);
	assert_non_null(i);
	assert_string_equal(i->user_name, "alice");
	assert_string_equal(i->project_name, "alpha");
	assert_true(i->nroles > 0);
	assert_true(i->expires > time(NULL));
	url = keystone_endpoint(ks, "image", &e);
	assert_non_null(url);
	assert_string_equal(url, getenv("GLANCE_URL"));
	free(url);
	url = keystone_endpoint(ks, "compute", &e);
	assert_non_null(url);
	assert_string_equal(url, getenv("NOVA_URL"));
	free(url);
	assert_null(keystone_endpoint(ks, "no-such-type", &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	keystone_free(&ks);
	assert_null(ks);
}

static void
test_password_ids(void **state)
{
	struct keystone		*ks = cloud_session(http, ""), *ks2;
	struct keystone_auth	 a;
	struct err		 e;

	(void)state;
	err_clear(&e);
	memset(&a, 0, sizeof(a));
	a.auth_url = getenv("OS_AUTH_URL");
	a.user_id = keystone_info(ks, &e)->user_id;
	a.project_id = keystone_info(ks, &e)->project_id;
	a.password = getenv("OS_PASSWORD");
	ks2 = keystone_new(http, &a, &e);
	assert_non_null(ks2);
	assert_non_null(keystone_token(ks2, &e));
	assert_string_equal(keystone_info(ks2, &e)->project_name, "alpha");
	keystone_free(&ks2);
	keystone_free(&ks);
}

static void
test_bad_password(void **state)
{
	struct keystone_auth	 a;
	struct keystone		*ks;
	struct err		 e;

	(void)state;
	err_clear(&e);
	assert_int_equal(osenv_auth("", &a, &e), 0);
	a.password = "wrong-password";
	ks = keystone_new(http, &a, &e);
	assert_non_null(ks);
	assert_null(keystone_token(ks, &e));
	assert_int_equal(e.kind, ERR_AUTH);
	assert_int_equal(e.status, 401);
	assert_non_null(strstr(e.msg, "authentication failed"));
	printf("bad password: %s\n", e.msg);
	keystone_free(&ks);
}

static void
test_validate_other_token(void **state)
{
	struct keystone			*svc = cloud_service_session(http);
	struct keystone			*bob = cloud_session(http, "ALT_");
	struct keystone_token_info	*i;
	struct err			 e;

	(void)state;
	err_clear(&e);
	i = keystone_validate(svc, keystone_token(bob, &e), 0, 0, &e);
	assert_non_null(i);
	assert_string_equal(i->user_name, "bob");
	assert_string_equal(i->project_name, "beta");
	assert_true(i->nroles > 0);
	assert_null(i->catalog);
	keystone_token_info_free(&i);
	assert_null(keystone_validate(svc, "gAAAAABnot-a-real-token", 0, 0, &e));
	assert_int_equal(e.kind, ERR_AUTH);
	printf("bad token: %s\n", e.msg);
	keystone_free(&bob);
	keystone_free(&svc);
}

/* Revokes the session's own token behind its back: the next call gets a 401, renews, works. */
static void
test_renew_after_401(void **state)
{
	struct keystone			*svc = cloud_service_session(http);
	struct keystone			*bob = cloud_session(http, "ALT_");
	struct keystone_token_info	*i;
	struct http_req			 req;
	struct http_resp		 resp;
	struct err			 e;
	char				*url, *old, *subj;
	const char			*hdrs[2] = { NULL, NULL };

	(void)state;
	err_clear(&e);
	old = strdup(keystone_token(svc, &e));
	url = xasprintf("%s/auth/tokens", getenv("OS_AUTH_URL"));
	subj = xasprintf("X-Subject-Token: %s", old);
	hdrs[0] = subj;
	http_req_init(&req);
	http_resp_init(&resp);
	req.method = "DELETE";
	req.url = url;
	req.headers = hdrs;
	assert_int_equal(keystone_request(svc, &req, &resp, &e), 0);
	assert_int_equal(resp.status, 204);
	http_resp_free(&resp);
	/* The cached token is dead now; validation must renew it and succeed. */
	i = keystone_validate(svc, keystone_token(bob, &e), 0, 0, &e);
	assert_non_null(i);
	assert_string_equal(i->user_name, "bob");
	assert_string_not_equal(keystone_token(svc, &e), old);
	keystone_token_info_free(&i);
	free(subj);
	free(url);
	free(old);
	keystone_free(&bob);
	keystone_free(&svc);
}

static void
test_application_credential(void **state)
{
	struct keystone		*ks = cloud_session(http, ""), *ac;
	struct keystone_auth	 a;
	struct http_resp	 resp;
	struct err		 e;
	char			 name[64], uuid[37];
	char			*url, *body, *del;
	json_t			*root, *cred;

	(void)state;
	err_clear(&e);
	util_uuid(uuid);
	snprintf(name, sizeof(name), "test-%s", uuid);
	url = xasprintf("%s/users/%s/application_credentials", getenv("OS_AUTH_URL"),
	    keystone_info(ks, &e)->user_id);
	body = xasprintf("{\"application_credential\": {\"name\": \"%s\"}}", name);
	assert_int_equal(cloud_request(ks, "POST", url, body, &resp, &e), 0);
	root = json_loads(resp.body.data, 0, NULL);
	cred = json_object_get(root, "application_credential");
	assert_non_null(cred);
	http_resp_free(&resp);

	memset(&a, 0, sizeof(a));
	a.auth_url = getenv("OS_AUTH_URL");
	a.app_cred_id = json_string_value(json_object_get(cred, "id"));
	a.app_cred_secret = json_string_value(json_object_get(cred, "secret"));
	ac = keystone_new(http, &a, &e);
	assert_non_null(ac);
	assert_non_null(keystone_token(ac, &e));
	assert_string_equal(keystone_info(ac, &e)->user_name, "alice");
	assert_string_equal(keystone_info(ac, &e)->project_name, "alpha");
	keystone_free(&ac);

	/* By name + user, with a wrong secret: 401. */
	a.app_cred_id = NULL;
	a.app_cred_name = name;
	a.username = "alice";
	a.user_domain_name = "Default";
	a.app_cred_secret = "wrong";
	ac = keystone_new(http, &a, &e);
	assert_null(keystone_token(ac, &e));
	assert_int_equal(e.kind, ERR_AUTH);
	keystone_free(&ac);

	del = xasprintf("%s/%s", url, json_string_value(json_object_get(cred, "id")));
	err_clear(&e);
	assert_int_equal(cloud_request(ks, "DELETE", del, NULL, &resp, &e), 0);
	http_resp_free(&resp);
	json_decref(root);
	free(del);
	free(body);
	free(url);
	keystone_free(&ks);
}

/* isoforge acting for bob: bob's token + the service token; Glance sees bob's project. */
static void
test_for_user_with_service_token(void **state)
{
	struct keystone	*svc = cloud_service_session(http);
	struct keystone	*bob = cloud_session(http, "ALT_");
	struct keystone	*as_bob;
	struct glance	*g;
	struct err	 e;
	json_t		*img, *list;
	char		*id;

	(void)state;
	err_clear(&e);
	as_bob = keystone_new_for_user(svc, keystone_token(bob, &e), &e);
	assert_non_null(as_bob);
	assert_string_equal(keystone_info(as_bob, &e)->project_name, "beta");
	g = glance_new(as_bob, NULL, &e);
	assert_non_null(g);
	id = cloud_image_new(g, "made-for-bob");
	img = glance_image_show(g, id, &e);
	assert_non_null(img);
	assert_string_equal(json_string_value(json_object_get(img, "owner")),
	    keystone_info(as_bob, &e)->project_id);
	json_decref(img);
	list = glance_image_list(g, NULL, &e);
	assert_non_null(list);
	json_decref(list);
	assert_int_equal(glance_image_delete(g, id, &e), 0);
	assert_null(keystone_new_for_user(svc, "not-a-token", &e));
	assert_int_equal(e.kind, ERR_AUTH);
	free(id);
	glance_free(&g);
	keystone_free(&as_bob);
	keystone_free(&bob);
	keystone_free(&svc);
}

/* Hours later: bob's token has expired. Alone it is refused (401); with isoforge's service token
 * Glance accepts it, and the image is still made in bob's project. */
static void
test_expired_user_token_with_service_token(void **state)
{
	struct keystone		*svc = cloud_service_session(http);
	struct keystone		*bob = cloud_session(http, "ALT_"), *as_bob;
	struct proc_result	 res;
	struct http_req		 req;
	struct http_resp	 resp;
	struct glance		*g;
	struct err		 e;
	const char		*hdrs[2] = { NULL, NULL };
	char			*argv[6], *expired, *h, *url, *id;
	json_t			*img;

	(void)state;
	err_clear(&e);
	argv[0] = xasprintf("%s/tests/cloud/minicloud", getenv("ISOFORGE_TOP") ?
	    getenv("ISOFORGE_TOP") : ".");
	argv[1] = "expire-token";
	argv[2] = (char *)cloud_dir();
	argv[3] = (char *)keystone_token(bob, &e);
	argv[4] = "120";
	argv[5] = NULL;
	memset(&res, 0, sizeof(res));
	if (proc_run(argv, 60, &res, &e) == -1)
		fail_msg("expire-token: %s", e.msg);
	expired = xstrndup(res.out.data, strcspn(res.out.data, "\n"));
	proc_result_free(&res);

	/* Alone: 401. */
	h = xasprintf("X-Auth-Token: %s", expired);
	hdrs[0] = h;
	url = xasprintf("%s/v2/images", getenv("GLANCE_URL"));
	http_req_init(&req);
	http_resp_init(&resp);
	req.url = url;
	req.headers = hdrs;
	assert_int_equal(http_request(http, &req, &resp, &e), -1);
	assert_int_equal(e.kind, ERR_AUTH);
	assert_int_equal(e.status, 401);
	http_resp_free(&resp);

	/* With the service token. */
	err_clear(&e);
	as_bob = keystone_new_for_user(svc, expired, &e);
	if (as_bob == NULL)
		fail_msg("for user: %s", e.msg);
	assert_true(keystone_info(as_bob, &e)->expires < time(NULL));
	g = glance_new(as_bob, NULL, &e);
	assert_non_null(g);
	id = cloud_image_new(g, "bob-hours-later");
	img = glance_image_show(g, id, &e);
	assert_non_null(img);
	assert_string_equal(json_string_value(json_object_get(img, "owner")),
	    keystone_info(bob, &e)->project_id);
	json_decref(img);
	assert_int_equal(glance_image_delete(g, id, &e), 0);
	free(id);
	glance_free(&g);
	keystone_free(&as_bob);
	free(url);
	free(h);
	free(expired);
	free(argv[0]);
	keystone_free(&bob);
	keystone_free(&svc);
}

static void
test_connection_refused(void **state)
{
	struct sockaddr_in	 sa;
	socklen_t		 len = sizeof(sa);
	struct http_opts	 o;
	struct http_client	*h;
	struct keystone_auth	 a;
	struct keystone		*ks;
	struct err		 e;
	double			 t0;
	char			*url;
	int			 s;

	(void)state;
	/* A port nobody listens on: bind one, read it back, close it. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
	close(s);
	url = xasprintf("http://127.0.0.1:%d/v3", ntohs(sa.sin_port));
	memset(&o, 0, sizeof(o));
	o.retries = 2;
	o.backoff_s = 0.1;
	h = http_client_new(&o);
	memset(&a, 0, sizeof(a));
	a.auth_url = url;
	a.username = "alice";
	a.password = "x";
	err_clear(&e);
	ks = keystone_new(h, &a, &e);
	t0 = util_now();
	assert_null(keystone_token(ks, &e));
	assert_int_equal(e.kind, ERR_NET);
	assert_true(util_now() - t0 >= 0.3);	/* two retries: 0.1 + 0.2 s */
	assert_true(util_now() - t0 < 5);
	printf("refused: %s\n", e.msg);
	keystone_free(&ks);
	http_client_free(&h);
	free(url);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password_names_and_catalog),
		cmocka_unit_test(test_password_ids),
		cmocka_unit_test(test_bad_password),
		cmocka_unit_test(test_validate_other_token),
		cmocka_unit_test(test_renew_after_401),
		cmocka_unit_test(test_application_credential),
		cmocka_unit_test(test_for_user_with_service_token),
		cmocka_unit_test(test_expired_user_token_with_service_token),
		cmocka_unit_test(test_connection_refused),
	};
	int	 rc;

	cloud_require();
	http = cloud_http();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	http_client_free(&http);
	return rc;
}
