/* chain.c — the next version of a chain in Glance, claimed by creating its keyed id (chain.h). */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "drivers/glance.h"
#include "service/pipeline/chain.h"
#include "base/log.h"
#include "base/util.h"

/* Claims tried before giving up: each 409 means a number taken (by a racer, or deleted). */
#define CHAIN_MAX_CLAIMS	256

/* The isoforge_version of a Glance image, 0 when it has none (or a bad one). */
static int
chain_image_version(const json_t *img)
{
	const char	*s = json_string_value(json_object_get(img, "isoforge_version"));
	char		*end;
	long		 v;

	if (s == NULL)
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < 1 || v > 1000000000)
		return 0;
	return (int)v;
}

int
chain_max_version(const json_t *images)
{
	const json_t	*img;
	size_t		 i;
	int		 v, max = 0;

	json_array_foreach(images, i, img) {
		/* a killed image's number is not given again either */
		v = chain_image_version(img);
		if (v > max)
			max = v;
	}
	return max;
}

void
chain_version_id(const struct chain_key *k, const char *project, const char *chain, int v,
    char out[37])
{
	unsigned char	 md[EVP_MAX_MD_SIZE], msg_v[16];
	unsigned int	 n = 0;
	struct buf	 msg;
	char		 hex[33];

	buf_init(&msg);
	buf_append(&msg, project, strlen(project) + 1);
	buf_append(&msg, chain, strlen(chain) + 1);
	snprintf((char *)msg_v, sizeof(msg_v), "%d", v);
	buf_puts(&msg, (const char *)msg_v);
	if (HMAC(EVP_sha256(), k->key, (int)k->len, (const unsigned char *)msg.data, msg.len, md,
	    &n) == NULL || n < 16)
		fatalx("HMAC-SHA256 failed");
	buf_free(&msg);
	/* RFC 9562 version 8 (vendor-specific), variant 10 */
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	util_hex(md, 16, hex);
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

json_t *
chain_list(struct glance *g, const char *owner, const char *chain, struct err *err)
{
	struct glance_list_opts	 o;
	json_t			*imgs, *sorted, *img;
	size_t			 i, j, n;

	memset(&o, 0, sizeof(o));
	o.filters = json_pack("{s:s}", "isoforge_chain", chain);
	if (owner != NULL)
		json_object_set_new(o.filters, "owner", json_string(owner));
	imgs = glance_image_list(g, &o, err);
	json_decref(o.filters);
	if (imgs == NULL)
		return NULL;
	/* insertion sort by version: chains are short */
	sorted = json_array();
	json_array_foreach(imgs, i, img) {
		n = json_array_size(sorted);
		for (j = 0; j < n; j++)
			if (chain_image_version(json_array_get(sorted, j)) > chain_image_version(img))
				break;
		json_array_insert(sorted, j, img);
	}
	json_decref(imgs);
	return sorted;
}

json_t *
chain_create_image(struct glance *g, const struct chain_key *key, const char *project,
    const char *chain, const json_t *body, int *version, struct err *err)
{
	struct err	 e;
	json_t		*req, *imgs, *img = NULL;
	char		 id[37], num[16];
	int		 v, claim;

	*version = 0;
	if ((imgs = chain_list(g, project, chain, err)) == NULL)
		return NULL;
	v = chain_max_version(imgs) + 1;
	json_decref(imgs);
	req = json_deep_copy(body);
	json_object_set_new(req, "isoforge_chain", json_string(chain));
	for (claim = 0; claim < CHAIN_MAX_CLAIMS; claim++, v++) {
		chain_version_id(key, project, chain, v, id);
		snprintf(num, sizeof(num), "%d", v);
		json_object_set_new(req, "id", json_string(id));
		json_object_set_new(req, "isoforge_version", json_string(num));
		err_clear(&e);
		if ((img = glance_image_create(g, req, &e)) != NULL) {
			*version = v;
			break;
		}
		if (e.kind != ERR_CONFLICT) {
			err_set(err, e.kind, "%s", e.msg);
			break;
		}
		/* taken: by a build that claimed it first, or by an image deleted since */
		log_debug("chain %s: version %d is taken, trying %d", chain, v, v + 1);
	}
	if (img == NULL && claim == CHAIN_MAX_CLAIMS)
		err_set(err, ERR_CONFLICT, "chain %s: %d versions in a row are taken", chain,
		    CHAIN_MAX_CLAIMS);
	json_decref(req);
	return img;
}
