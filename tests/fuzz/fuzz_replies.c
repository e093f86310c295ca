/*
 * fuzz_replies.c — the pure parsers of what OpenStack answers (drivers/): the first byte of the
 * input picks the parser, the rest is the reply body. Keystone's token body and catalog,
 * Nova's flavor, a page of Glance's image list and the versions of a chain in it, and the
 * error message of any error body (http_error_message, on the raw bytes).
 */
#include <jansson.h>

#include "drivers/glance.h"
#include "drivers/http.h"
#include "drivers/keystone.h"
#include "drivers/nova.h"
#include "service/pipeline/chain.h"
#include "tests/fuzz/fuzz.h"

/* Keystone: POST/GET /v3/auth/tokens → token info; its catalog → an endpoint. */
static void
fuzz_keystone(const json_t *body)
{
	struct keystone_token_info	*info;
	struct err			 err;
	char				*url;

	err_clear(&err);
	info = keystone_token_info_parse(body, &err);
	keystone_token_info_has_role(info, "member");
	keystone_token_info_free(&info);
	err_clear(&err);
	url = keystone_catalog_find(json_object_get(json_object_get(body, "token"), "catalog"),
	    "image", NULL, NULL, &err);
	free(url);
	err_clear(&err);
	url = keystone_catalog_find(json_object_get(body, "catalog"), "compute", "internal",
	    "RegionOne", &err);
	free(url);
}

/* Nova: GET /flavors/{id} ({"flavor": {...}}) and GET /flavors/detail ({"flavors": [...]}). */
static void
fuzz_nova(const json_t *body)
{
	struct nova_flavor	*f;
	struct err		 err;
	const json_t		*v;
	size_t			 i;

	err_clear(&err);
	f = nova_flavor_parse(json_object_get(body, "flavor"), &err);
	nova_flavor_free(&f);
	json_array_foreach(json_object_get(body, "flavors"), i, v) {
		err_clear(&err);
		f = nova_flavor_parse(v, &err);
		nova_flavor_free(&f);
	}
}

/* Glance: one page of GET /v2/images, and the chain's highest version among its images. */
static void
fuzz_glance(const json_t *body)
{
	struct err	 err;
	json_t		*all = json_array();
	const char	*next;

	err_clear(&err);
	if (glance_list_page(body, all, 0, &next, &err) == 0 && next != NULL && next[0] != '/')
		abort();
	chain_max_version(all);
	json_array_clear(all);
	err_clear(&err);
	glance_list_page(body, all, 2, &next, &err);
	if (json_array_size(all) > 2)
		abort();
	json_decref(all);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t		*body;
	char		*msg;

	if (size < 1)
		return 0;
	if (data[0] == 'e') {
		msg = http_error_message((const char *)data + 1, size - 1);
		free(msg);
		return 0;
	}
	if ((body = json_loadb((const char *)data + 1, size - 1, 0, NULL)) == NULL)
		return 0;
	switch (data[0]) {
	case 'k':
		fuzz_keystone(body);
		break;
	case 'n':
		fuzz_nova(body);
		break;
	case 'g':
		fuzz_glance(body);
		break;
	default:
		fuzz_keystone(body);
		fuzz_nova(body);
		fuzz_glance(body);
		break;
	}
	json_decref(body);
	return 0;
}
