/* local.c — the embedded default's drivers: media from local files, the local image store. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "drivers/hash.h"
#include "drivers/localstore.h"
#include "service/pipeline/build.h"
#include "service/pipeline/local.h"

char *
local_media_path(const char *what, const char *path, struct err *e)
{
	char		 real[PATH_MAX];
	struct stat	 st;

	if (realpath(path, real) == NULL) {
		err_set(e, ERR_NOTFOUND, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	if (stat(real, &st) == -1 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
		err_set(e, ERR_INVAL, "%s %s: not a file", what, path);
		return NULL;
	}
	return xstrdup(real);
}

/*
 * resolving, for files: the ISO and virtio-win must be regular files (their absolute paths
 * are what the image records as its sources), the ISO's sha512 is computed. The flavor is
 * what the caller set.
 */
/*
 * A derived build's base: an image file; when it is one of a local store (its record
 * ID.json beside it), its properties (the OS, hw_*, the lineage) carry over and it is the
 * new image's parent, in its chain.
 */
static int
source_file_base(struct build *b, struct err *e)
{
	json_t		*rec, *props;
	char		*path;
	const char	*s;
	size_t		 n;

	free(b->base);
	if ((b->base = local_media_path("base image", b->from_ref, e)) == NULL)
		return -1;
	n = strlen(b->base);
	if (n < 6 || strcmp(b->base + n - 6, ".qcow2") != 0)
		return 0;
	path = xasprintf("%.*s.json", (int)(n - 6), b->base);
	rec = json_load_file(path, 0, NULL);
	free(path);
	if (rec == NULL)
		return 0;
	props = json_object_get(rec, "properties");
	json_decref(b->iso_props);
	b->iso_props = json_incref(props);
	if (b->parent == NULL && (s = json_string_value(json_object_get(rec, "id"))) != NULL)
		b->parent = xstrdup(s);
	if (b->chain == NULL && (s = json_string_value(json_object_get(props,
	    "isoforge_chain"))) != NULL)
		b->chain = xstrdup(s);
	if ((s = json_string_value(json_object_get(props, "isoforge_source_iso"))) != NULL) {
		free(b->iso_ref);
		b->iso_ref = xstrdup(s);
	}
	if ((s = json_string_value(json_object_get(props, "isoforge_source_iso_hash"))) != NULL) {
		free(b->iso_hash);
		b->iso_hash = xstrdup(s);
	}
	json_decref(rec);
	return 0;
}

static int
source_file_resolve(void *ctx, struct build *b, struct err *e)
{
	(void)ctx;
	if (b->from_ref != NULL)
		return source_file_base(b, e);
	free(b->iso);
	if ((b->iso = local_media_path("ISO", b->iso_ref, e)) == NULL)
		return -1;
	free(b->iso_ref);
	b->iso_ref = xstrdup(b->iso);
	if (b->virtio_win_ref != NULL) {
		free(b->virtio_win);
		if ((b->virtio_win = local_media_path("virtio-win", b->virtio_win_ref, e)) == NULL)
			return -1;
		free(b->virtio_win_ref);
		b->virtio_win_ref = xstrdup(b->virtio_win);
	}
	/* the image's isoforge_source_iso_hash: needed at the upload, computed while it installs
	 * (a DVD's sha512 takes seconds) */
	if (b->iso_hash == NULL && b->iso_hash_job == NULL)
		b->iso_hash_job = hash_file_start(b->iso);
	return 0;
}

const struct source_ops source_file_ops = {
	.name = "file",
	.resolve = source_file_resolve,
	.fetch = NULL,
};

/* Registers the snapshot in the store as the next version of the build's chain. */
static int
registry_local_add(void *ctx, struct build *b, const char *file, const json_t *props,
    struct err *e)
{
	json_t	*meta, *p;
	char	*id = NULL;
	int	 rc;

	if (localstore_next_version(ctx, b->chain, &b->version, e) == -1)
		return -1;
	p = json_deep_copy(props);
	json_object_set_new(p, "isoforge_chain", json_string(b->chain));
	json_object_set_new(p, "isoforge_version", json_sprintf("%d", b->version));
	meta = json_pack("{s:s, s:o}", "name", b->name, "properties", p);
	if (b->visibility != NULL)
		json_object_set_new(meta, "visibility", json_string(b->visibility));
	if (b->tags != NULL)
		json_object_set(meta, "tags", b->tags);
	rc = localstore_add(ctx, file, meta, &id, e);
	json_decref(meta);
	if (rc == 0) {
		free(b->image_id);
		b->image_id = id;
	}
	return rc;
}

static json_t *
registry_local_get(void *ctx, const char *id, struct err *e)
{
	return localstore_get(ctx, id, e);
}

static int
registry_local_remove(void *ctx, const char *id, struct err *e)
{
	return localstore_delete(ctx, id, e);
}

const struct registry_ops registry_local_ops = {
	.name = "local",
	.find_built = NULL,
	.add = registry_local_add,
	.get = registry_local_get,
	.remove = registry_local_remove,
};
