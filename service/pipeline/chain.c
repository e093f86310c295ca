/* chain.c — next version of a chain in Glance, settled by creation order (see chain.h). */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "drivers/glance.h"
#include "service/pipeline/chain.h"
#include "base/log.h"
#include "base/util.h"

/* A bound on the settling rounds: each round at least one contender settles. */
#define CHAIN_MAX_ROUNDS	32
/* Glance's created_at has whole seconds: wait past our second before judging (chain.h). */
#define CHAIN_SETTLE_S		1.1

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

/* Images that failed or are gone hold no version. */
static int
chain_image_counts(const json_t *img)
{
	const char	*status = json_string_value(json_object_get(img, "status"));

	return status == NULL || (strcmp(status, "killed") != 0 && strcmp(status, "deleted") != 0 &&
	    strcmp(status, "pending_delete") != 0);
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

int
chain_holds_version(const json_t *images, const char *id, const char *created_at, int v)
{
	const json_t	*img;
	const char	*oid, *ocreated;
	size_t		 i;
	int		 c;

	json_array_foreach(images, i, img) {
		oid = json_string_value(json_object_get(img, "id"));
		ocreated = json_string_value(json_object_get(img, "created_at"));
		if (oid == NULL || strcmp(oid, id) == 0 || !chain_image_counts(img) ||
		    chain_image_version(img) != v)
			continue;
		/* ISO 8601 UTC stamps of one format compare as strings */
		c = strcmp(ocreated != NULL ? ocreated : "", created_at);
		if (c < 0 || (c == 0 && strcmp(oid, id) < 0))
			return 0;
	}
	return 1;
}

json_t *
chain_list(struct glance *g, const char *chain, struct err *err)
{
	struct glance_list_opts	 o;
	json_t			*imgs, *sorted, *img;
	size_t			 i, j, n;

	memset(&o, 0, sizeof(o));
	o.filters = json_pack("{s:s}", "isoforge_chain", chain);
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

/* Deletes image id, logging (not failing) when Glance refuses. */
static void
chain_delete(struct glance *g, const char *chain, const char *id)
{
	struct err	 e;

	err_clear(&e);
	if (glance_image_delete(g, id, &e) != 0)
		log_warnx("chain %s: image %s left behind: %s", chain, id, e.msg);
}

json_t *
chain_create_image(struct glance *g, const char *chain, const json_t *body, int *version,
    struct err *err)
{
	json_t		*req = NULL, *img = NULL, *imgs = NULL;
	const char	*id, *created;
	char		 num[16];
	double		 made;
	int		 v, round;

	*version = 0;
	if ((imgs = chain_list(g, chain, err)) == NULL)
		return NULL;
	v = chain_max_version(imgs) + 1;
	json_decref(imgs);
	imgs = NULL;
	req = json_deep_copy(body);
	json_object_set_new(req, "isoforge_chain", json_string(chain));
	for (round = 0; round < CHAIN_MAX_ROUNDS; round++) {
		/* each claim is a new image: its created_at is the time of the claim */
		snprintf(num, sizeof(num), "%d", v);
		json_object_set_new(req, "isoforge_version", json_string(num));
		if ((img = glance_image_create(g, req, err)) == NULL)
			goto fail;
		made = util_now();
		id = json_string_value(json_object_get(img, "id"));
		created = json_string_value(json_object_get(img, "created_at"));
		if (id == NULL || created == NULL) {
			err_set(err, ERR_REMOTE, "glance: a created image without id or created_at");
			goto fail;
		}
		/*
		 * Look only once Glance's clock (created_at has whole seconds) has left our
		 * second: a claim we can't see yet is then stamped strictly later than ours,
		 * and its maker will see ours and move on.
		 */
		while (util_now() - made < CHAIN_SETTLE_S)
			usleep((useconds_t)((CHAIN_SETTLE_S - (util_now() - made)) * 1e6) + 1000);
		if ((imgs = chain_list(g, chain, err)) == NULL)
			goto fail;
		if (chain_holds_version(imgs, id, created, v)) {
			json_decref(imgs);
			json_decref(req);
			*version = v;
			return img;
		}
		/* an earlier claim holds this number: withdraw ours, claim the next free one */
		v = chain_max_version(imgs) + 1;
		json_decref(imgs);
		imgs = NULL;
		log_debug("chain %s: version %s claimed earlier by another image, trying %d", chain,
		    num, v);
		chain_delete(g, chain, id);
		json_decref(img);
		img = NULL;
	}
	err_set(err, ERR_CONFLICT, "chain %s: no version settled after %d rounds", chain,
	    CHAIN_MAX_ROUNDS);
fail:
	if (img != NULL && (id = json_string_value(json_object_get(img, "id"))) != NULL)
		chain_delete(g, chain, id);
	json_decref(imgs);
	json_decref(img);
	json_decref(req);
	return NULL;
}
