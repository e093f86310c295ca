/*
 * test_chain.c — versions of a chain in the minicloud's Glance stay unique when several
 * workers (threads with their own sessions here) register versions of one chain at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>

#include "service/pipeline/chain.h"
#include "tests/cloud/clients_common.h"

#define NTHREADS	4
#define PER_THREAD	2

struct racer {
	char	 chain[64];
	int	 versions[PER_THREAD];
	char	*ids[PER_THREAD];
	char	 error[1024];
};

static void *
race(void *arg)
{
	struct racer	*r = arg;
	struct http_client *http = cloud_http();
	struct keystone	*ks = cloud_session(http, "");
	struct glance	*g;
	struct err	 err;
	json_t		*body, *img;
	int		 i;

	err_clear(&err);
	g = glance_new(ks, NULL, &err);
	for (i = 0; g != NULL && i < PER_THREAD; i++) {
		body = json_pack("{s:s, s:s, s:s, s:s}", "name", "chain-race", "disk_format",
		    "qcow2", "container_format", "bare", "visibility", "private");
		img = chain_create_image(g, r->chain, body, &r->versions[i], &err);
		json_decref(body);
		if (img == NULL)
			break;
		r->ids[i] = xstrdup(json_string_value(json_object_get(img, "id")));
		json_decref(img);
	}
	if (err.kind != ERR_NONE)
		snprintf(r->error, sizeof(r->error), "%s", err.msg);
	glance_free(&g);
	keystone_free(&ks);
	http_client_free(&http);
	return NULL;
}

static void
test_concurrent_versions_unique(void **state)
{
	struct racer	 r[NTHREADS];
	pthread_t	 t[NTHREADS];
	struct http_client *http;
	struct keystone	*ks;
	struct glance	*g;
	struct err	 err;
	json_t		*list;
	char		 chain[64], uuid[37];
	int		 seen[NTHREADS * PER_THREAD * 4 + 2] = { 0 };
	int		 i, k, v;

	(void)state;
	util_uuid(uuid);
	snprintf(chain, sizeof(chain), "race-%.8s", uuid);
	memset(r, 0, sizeof(r));
	for (i = 0; i < NTHREADS; i++) {
		snprintf(r[i].chain, sizeof(r[i].chain), "%s", chain);
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < NTHREADS; i++) {
		if (r[i].error[0] != '\0')
			fail_msg("racer %d: %s", i, r[i].error);
		for (k = 0; k < PER_THREAD; k++) {
			v = r[i].versions[k];
			printf("# racer %d: version %d (%s)\n", i, v, r[i].ids[k]);
			assert_true(v >= 1 && v < (int)(sizeof(seen) / sizeof(seen[0])));
			if (seen[v]++ != 0)
				fail_msg("version %d given twice", v);
		}
	}
	/* Glance agrees: one image per version, nothing else left in the chain */
	http = cloud_http();
	ks = cloud_session(http, "");
	err_clear(&err);
	g = glance_new(ks, NULL, &err);
	assert_non_null(g);
	list = chain_list(g, chain, &err);
	assert_non_null(list);
	assert_int_equal(json_array_size(list), NTHREADS * PER_THREAD);
	for (i = 1; i < (int)json_array_size(list); i++)
		assert_string_not_equal(
		    json_string_value(json_object_get(json_array_get(list, i - 1), "isoforge_version")),
		    json_string_value(json_object_get(json_array_get(list, i), "isoforge_version")));
	json_decref(list);
	for (i = 0; i < NTHREADS; i++)
		for (k = 0; k < PER_THREAD; k++) {
			glance_image_delete(g, r[i].ids[k], NULL);
			free(r[i].ids[k]);
		}
	glance_free(&g);
	keystone_free(&ks);
	http_client_free(&http);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_versions_unique),
	};

	cloud_require();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
