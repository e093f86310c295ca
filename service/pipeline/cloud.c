/* worker_steps.c — resolving, fetching and registering, acting for the requester. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/glance.h"
#include "drivers/http.h"
#include "drivers/keystone.h"
#include "drivers/nova.h"
#include "service/pipeline/chain.h"
#include "base/log.h"
#include "base/util.h"
#include "service/worker/worker_steps.h"

struct keystone *
ws_service_session(const struct config *cfg, struct http_client **httpp, struct err *err)
{
	struct keystone_auth	 a;
	struct http_opts	 o;
	struct keystone		*ks;

	memset(&o, 0, sizeof(o));
	o.ca_file = cfg->cafile;
	o.user_agent = "isoforged";
	if (*httpp == NULL && (*httpp = http_client_new(&o)) == NULL) {
		err_set(err, ERR_INTERNAL, "no HTTP client");
		return NULL;
	}
	memset(&a, 0, sizeof(a));
	a.auth_url = cfg->auth_url;
	a.username = cfg->username;
	a.password = cfg->password;
	a.project_name = cfg->project_name;
	a.user_domain_name = cfg->user_domain_name;
	a.project_domain_name = cfg->project_domain_name;
	a.region = cfg->region_name;
	a.interface = cfg->interface;
	ks = keystone_new(*httpp, &a, err);
	return ks;
}

int
ws_open(struct ws *ws, const struct config *cfg, const char *token, struct err *err)
{
	const struct keystone_token_info	*info;

	memset(ws, 0, sizeof(*ws));
	ws->cfg = cfg;
	if ((ws->service = ws_service_session(cfg, &ws->http, err)) == NULL)
		return -1;
	/* validates the token through the service session: the project comes from Keystone */
	if ((ws->user = keystone_new_for_user(ws->service, token, err)) == NULL)
		return -1;
	if ((info = keystone_info(ws->user, err)) == NULL)
		return -1;
	if (info->project_id == NULL) {
		err_set(err, ERR_AUTH, "token: not scoped to a project");
		return -1;
	}
	ws->project_id = xstrdup(info->project_id);
	ws->user_id = info->user_id != NULL ? xstrdup(info->user_id) : NULL;
	if ((ws->glance = glance_new(ws->user, cfg->glance_endpoint, err)) == NULL ||
	    (ws->nova = nova_new(ws->user, cfg->nova_endpoint, err)) == NULL)
		return -1;
	return 0;
}

/* An ISO image visible to the requester: disk_format iso and active. New reference. */
static json_t *
ws_iso(struct ws *ws, const char *field, const char *id, struct err *err)
{
	struct err	 e;
	json_t		*img;
	const char	*fmt, *status;

	err_clear(&e);
	if ((img = glance_image_show(ws->glance, id, &e)) == NULL) {
		err_set(err, e.kind, "%s: %s", field, e.msg);
		return NULL;
	}
	fmt = json_string_value(json_object_get(img, "disk_format"));
	status = json_string_value(json_object_get(img, "status"));
	if (fmt == NULL || strcmp(fmt, "iso") != 0) {
		err_set(err, ERR_INVAL, "%s: image %s has disk_format %s, not iso", field, id,
		    fmt != NULL ? fmt : "(none)");
		goto fail;
	}
	if (status == NULL || strcmp(status, "active") != 0) {
		err_set(err, ERR_CONFLICT, "%s: image %s is %s, not active", field, id,
		    status != NULL ? status : "(no status)");
		goto fail;
	}
	return img;
fail:
	json_decref(img);
	return NULL;
}

int
ws_resolve(struct ws *ws, const struct build_request *req, struct err *err)
{
	struct err	 e;
	const char	*virtio = req->virtio_win_image;

	if ((ws->iso = ws_iso(ws, "iso_image", req->iso_image, err)) == NULL)
		return -1;
	if (virtio != NULL && strcmp(virtio, "auto") == 0) {
		virtio = ws->cfg->virtio_win_image;
		if (virtio == NULL) {
			err_set(err, ERR_INVAL, "virtio_win_image: auto, but this worker has no "
			    "[builds] virtio_win_image");
			return -1;
		}
	}
	if (virtio != NULL && (ws->virtio = ws_iso(ws, "virtio_win_image", virtio, err)) == NULL)
		return -1;
	if (req->parent_image != NULL) {
		err_clear(&e);
		if ((ws->parent = glance_image_show(ws->glance, req->parent_image, &e)) == NULL) {
			err_set(err, e.kind, "parent_image: %s", e.msg);
			return -1;
		}
	}
	err_clear(&e);
	if ((ws->flavor = nova_flavor_get(ws->nova, req->flavor, &e)) == NULL) {
		err_set(err, e.kind, "flavor: %s", e.msg);
		return -1;
	}
	if (ws->flavor->disk_gib == 0) {
		err_set(err, ERR_INVAL, "flavor: %s has no root disk (disk 0): the image's size "
		    "comes from it", ws->flavor->name);
		return -1;
	}
	return 0;
}

/* Fetches one Glance ISO into the cache, named by its sha512 (or md5); returns the path. */
static char *
ws_fetch_one(struct ws *ws, const json_t *img, struct err *err)
{
	struct stat	 st;
	const char	*hash, *id = json_string_value(json_object_get(img, "id"));
	const char	*algo = json_string_value(json_object_get(img, "os_hash_algo"));
	json_int_t	 size = json_integer_value(json_object_get(img, "size"));
	char		*path;

	hash = json_string_value(json_object_get(img, "os_hash_value"));
	if (hash == NULL || algo == NULL || strcmp(algo, "sha512") != 0) {
		/* an image from before Glance hashed with sha512: its md5 still names it */
		if ((hash = json_string_value(json_object_get(img, "checksum"))) == NULL) {
			err_set(err, ERR_INVAL, "image %s has no hash to verify a download with", id);
			return NULL;
		}
	}
	if (util_mkdirs(ws->cfg->cache_dir, err) != 0)
		return NULL;
	path = xasprintf("%s/%s.iso", ws->cfg->cache_dir, hash);
	/* only verified downloads are renamed into the cache: a present file is whole */
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (json_int_t)st.st_size == size) {
		log_info("image %s: in the cache (%s)", id, path);
		return path;
	}
	log_info("image %s: fetching %lld bytes into %s", id, (long long)size, path);
	if (glance_image_download(ws->glance, id, path, NULL, err) != 0) {
		free(path);
		return NULL;
	}
	return path;
}

int
ws_fetch(struct ws *ws, struct err *err)
{
	if ((ws->iso_path = ws_fetch_one(ws, ws->iso, err)) == NULL)
		return -1;
	if (ws->virtio != NULL && (ws->virtio_path = ws_fetch_one(ws, ws->virtio, err)) == NULL)
		return -1;
	return 0;
}

json_t *
ws_image_body(const struct build_request *req, const char *build_id, const json_t *iso,
    const json_t *virtio, const json_t *nova_props, const char *built_at)
{
	json_t		*b, *v;
	const char	*k, *s;

	b = json_pack("{s:s, s:s, s:s, s:s}", "name", req->name, "disk_format", "qcow2",
	    "container_format", "bare", "visibility",
	    req->visibility != NULL ? req->visibility : "private");
	/* the user's own first, so isoforge's and Nova's can't be overridden */
	if (req->properties != NULL)
		json_object_foreach(req->properties, k, v)
			if (json_is_string(v))
				json_object_set(b, k, v);
	if (nova_props != NULL)
		json_object_foreach((json_t *)nova_props, k, v) {
			if (json_is_string(v))
				json_object_set(b, k, v);
			else if (json_is_integer(v) && (strcmp(k, "min_disk") == 0 ||
			    strcmp(k, "min_ram") == 0))
				json_object_set(b, k, v);	/* Glance's own integer fields */
			else if (json_is_integer(v))
				json_object_set_new(b, k, json_sprintf("%lld",
				    (long long)json_integer_value(v)));
		}
	if (req->os_distro != NULL)
		json_object_set_new(b, "os_distro", json_string(req->os_distro));
	if (req->os_version != NULL)
		json_object_set_new(b, "os_version", json_string(req->os_version));
	if (req->parent_image != NULL)
		json_object_set_new(b, "isoforge_parent", json_string(req->parent_image));
	json_object_set_new(b, "isoforge_build_id", json_string(build_id));
	json_object_set_new(b, "isoforge_source_iso", json_string(req->iso_image));
	if ((s = json_string_value(json_object_get(iso, "os_hash_value"))) != NULL ||
	    (s = json_string_value(json_object_get(iso, "checksum"))) != NULL)
		json_object_set_new(b, "isoforge_source_iso_hash", json_string(s));
	if (virtio != NULL)
		json_object_set(b, "isoforge_virtio_win", json_object_get(virtio, "id"));
	json_object_set_new(b, "isoforge_built_at", json_string(built_at));
	if (req->tags != NULL && json_array_size(req->tags) > 0)
		json_object_set(b, "tags", req->tags);
	/* never, whoever asked */
	json_object_del(b, "base_image_ref");
	json_object_del(b, "instance_uuid");
	json_object_del(b, "image_type");
	return b;
}

/* Upload attempts (each a new image: an upload is not idempotent), deletions of an image. */
#define WS_REGISTER_TRIES	3
#define WS_DELETE_TRIES		5

/* Whether a failed Glance call may succeed when made again (network, timeout, 5xx). */
static int
ws_transient(const struct err *e)
{
	return e->kind == ERR_NET || e->kind == ERR_TIMEOUT ||
	    (e->kind == ERR_REMOTE && e->status >= 500);
}

/*
 * Deletes the images of build_id that are not active (half-made: queued, saving, killed),
 * also one whose creation Glance did while its answer was lost. Best effort.
 */
static void
ws_sweep(struct ws *ws, const char *build_id)
{
	struct glance_list_opts	 o;
	struct err		 e;
	json_t			*imgs, *img;
	const char		*id, *status;
	size_t			 i;

	memset(&o, 0, sizeof(o));
	o.filters = json_pack("{s:s}", "isoforge_build_id", build_id);
	err_clear(&e);
	imgs = glance_image_list(ws->glance, &o, &e);
	json_decref(o.filters);
	if (imgs == NULL) {
		log_warnx("build %s: images not listed: %s", build_id, e.msg);
		return;
	}
	json_array_foreach(imgs, i, img) {
		id = json_string_value(json_object_get(img, "id"));
		status = json_string_value(json_object_get(img, "status"));
		if (id == NULL || (status != NULL && strcmp(status, "active") == 0))
			continue;
		if (ws_delete_image(ws, id, NULL) == 0)
			log_info("build %s: half-made image %s (%s) deleted", build_id, id,
			    status != NULL ? status : "?");
	}
	json_decref(imgs);
}

/* One attempt of ws_register: create, record, upload; on failure the image is deleted. */
static char *
ws_register_once(struct ws *ws, const struct build_request *req, const char *build_id,
    const char *file, const json_t *nova_props, int *version,
    int (*created)(void *, const char *), void *arg, int *deleted, struct err *err)
{
	json_t		*body, *img;
	char		 stamp[32], *id;
	const char	*chain = req->chain != NULL ? req->chain : req->name;

	*deleted = 1;
	util_utc_stamp(stamp);
	body = ws_image_body(req, build_id, ws->iso, ws->virtio, nova_props, stamp);
	img = chain_create_image(ws->glance, chain, body, version, err);
	json_decref(body);
	if (img == NULL)
		return NULL;
	id = xstrdup(json_string_value(json_object_get(img, "id")));
	json_decref(img);
	if (created != NULL && created(arg, id) != 0)
		log_warnx("build %s: image %s not recorded in the job store", build_id, id);
	log_info("build %s: image %s is version %d of chain %s; uploading", build_id, id,
	    *version, chain);
	if (glance_image_upload_file(ws->glance, id, file, NULL, err) != 0) {
		*deleted = ws_delete_image(ws, id, NULL) == 0;
		free(id);
		return NULL;
	}
	return id;
}

/*
 * An upload cut short (network, timeout, 5xx) is tried again with a new image, once the
 * half-made one is deleted: an image's data can be uploaded only once. Whatever fails for
 * good ends with no image of the build left but active ones (best effort: Glance may be
 * away for longer than the deletions are tried).
 */
char *
ws_register(struct ws *ws, const struct build_request *req, const char *build_id,
    const char *file, const json_t *nova_props, int *version,
    int (*created)(void *, const char *), void *arg, struct err *err)
{
	struct err	 e;
	char		*id;
	int		 attempt, deleted, fresh = err != NULL && err->kind == ERR_NONE;

	for (attempt = 1; ; attempt++) {
		err_clear(&e);
		id = ws_register_once(ws, req, build_id, file, nova_props, version, created, arg,
		    &deleted, &e);
		if (id != NULL)
			return id;
		ws_sweep(ws, build_id);
		if (!ws_transient(&e) || !deleted || attempt >= WS_REGISTER_TRIES)
			break;
		log_warnx("build %s: upload attempt %d failed: %s; trying again in %d s",
		    build_id, attempt, e.msg, 2 * attempt);
		sleep(2 * (unsigned)attempt);
	}
	if (attempt > 1)
		err_set(err, e.kind, "%s (after %d attempts)", e.msg, attempt);
	else
		err_set(err, e.kind, "%s", e.msg);
	if (fresh)
		err->status = e.status;
	return NULL;
}

/* Deletes an image, again after 1, 2, 4, 8 s while Glance can't be reached or fails (5xx). */
int
ws_delete_image(struct ws *ws, const char *id, struct err *err)
{
	struct err	 e;
	int		 attempt;

	for (attempt = 1; ; attempt++) {
		err_clear(&e);
		if (glance_image_delete(ws->glance, id, &e) == 0 || e.kind == ERR_NOTFOUND)
			return 0;
		if (!ws_transient(&e) || attempt >= WS_DELETE_TRIES)
			break;
		sleep(1U << (attempt - 1));
	}
	log_warnx("image %s not deleted: %s", id, e.msg);
	err_set(err, e.kind, "%s", e.msg);
	return -1;
}

void
ws_close(struct ws *ws)
{
	free(ws->virtio_path);
	free(ws->iso_path);
	nova_flavor_free(&ws->flavor);
	json_decref(ws->parent);
	json_decref(ws->virtio);
	json_decref(ws->iso);
	free(ws->user_id);
	free(ws->project_id);
	nova_free(&ws->nova);
	glance_free(&ws->glance);
	keystone_free(&ws->user);
	keystone_free(&ws->service);
	http_client_free(&ws->http);
	memset(ws, 0, sizeof(*ws));
}
