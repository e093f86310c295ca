/* cloud.c — the pipeline's cloud drivers: resolving, fetching and registering as the requester. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "drivers/glance.h"
#include "drivers/http.h"
#include "drivers/keystone.h"
#include "drivers/nova.h"
#include "service/pipeline/chain.h"
#include "service/pipeline/cloud.h"
#include "service/pipeline/isocache.h"
#include "base/log.h"
#include "base/util.h"

/* isoforge's service user from cfg, scoped to trust_id or (NULL) to its own project. */
static struct keystone *
cloud_keystone(const struct config *cfg, struct http_client **httpp, const char *trust_id,
    struct err *err)
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
	a.trust_id = trust_id;
	ks = keystone_new(*httpp, &a, err);
	return ks;
}

struct keystone *
cloud_service_keystone(const struct config *cfg, struct http_client **httpp, struct err *err)
{
	return cloud_keystone(cfg, httpp, NULL, err);
}

struct keystone *
cloud_trust_keystone(const struct config *cfg, struct http_client **httpp,
    const char *trust_id, struct err *err)
{
	if (trust_id == NULL || *trust_id == '\0') {
		err_set(err, ERR_AUTH, "no trust to act for the requester with");
		return NULL;
	}
	return cloud_keystone(cfg, httpp, trust_id, err);
}

void
cloud_init(struct cloud *c, const struct config *cfg, const char *trust_id)
{
	const char	*secret;
	unsigned int	 n = sizeof(c->chain_key);

	memset(c, 0, sizeof(*c));
	c->cfg = cfg;
	c->trust_id = trust_id != NULL ? xstrdup(trust_id) : NULL;
	c->stop_fd = -1;
	c->iso_fd = c->virtio_fd = -1;
	/* the operator's chain_key, else one derived from what only isoforge's services know */
	secret = cfg->chain_key != NULL ? cfg->chain_key :
	    cfg->password != NULL ? cfg->password : "";
	if (HMAC(EVP_sha256(), "isoforge chain versions", 23, (const unsigned char *)secret,
	    strlen(secret), c->chain_key, &n) == NULL)
		fatalx("HMAC-SHA256 failed");
}

void
cloud_set_stop_fd(struct cloud *c, int fd)
{
	c->stop_fd = fd;
	if (c->http != NULL)
		http_client_set_cancel_fd(c->http, fd);
}

int
cloud_open(struct cloud *c, struct err *err)
{
	const struct keystone_token_info	*info;

	if (c->user != NULL)
		return 0;
	if (c->trust_id == NULL) {
		err_set(err, ERR_AUTH, "no trust to act for the requester with");
		return -1;
	}
	if (c->service == NULL &&
	    (c->service = cloud_service_keystone(c->cfg, &c->http, err)) == NULL)
		return -1;
	http_client_set_cancel_fd(c->http, c->stop_fd);
	/* isoforge's credentials + the trust: Keystone says who and which project (the trust's) */
	if ((c->user = cloud_trust_keystone(c->cfg, &c->http, c->trust_id, err)) == NULL)
		return -1;
	if ((info = keystone_info(c->user, err)) == NULL) {
		keystone_free(&c->user);
		return -1;
	}
	if (info->project_id == NULL) {
		err_set(err, ERR_AUTH, "trust: its token is not scoped to a project");
		keystone_free(&c->user);
		return -1;
	}
	c->project_id = xstrdup(info->project_id);
	c->user_id = info->user_id != NULL ? xstrdup(info->user_id) : NULL;
	if ((c->glance = glance_new(c->user, c->cfg->glance_endpoint, err)) == NULL ||
	    (c->nova = nova_new(c->user, c->cfg->nova_endpoint, err)) == NULL)
		return -1;
	return 0;
}

/* An ISO image visible to the requester: disk_format iso and active. New reference. */
static json_t *
cloud_iso(struct cloud *c, const char *field, const char *id, struct err *err)
{
	struct err	 e;
	json_t		*img;
	const char	*fmt, *status;

	err_clear(&e);
	if ((img = glance_image_show(c->glance, id, &e)) == NULL) {
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

/* The hash a Glance image is verified and cached by: its sha512, else its md5. */
static const char *
cloud_image_hash(const json_t *img)
{
	const char	*algo = json_string_value(json_object_get(img, "os_hash_algo"));
	const char	*hash = json_string_value(json_object_get(img, "os_hash_value"));

	if (hash != NULL && algo != NULL && strcmp(algo, "sha512") == 0)
		return hash;
	return json_string_value(json_object_get(img, "checksum"));
}

static int	cloud_resolve_flavor(struct cloud *, struct build *, struct err *);

/*
 * A derived build's base: an active qcow2 or raw image the requester can see. Its
 * properties (the OS, hw_*) choose the profile as an ISO's do; it is the new image's parent,
 * in its chain, with its source ISO.
 */
static int
cloud_resolve_base(struct cloud *c, struct build *b, struct err *err)
{
	struct err	 e;
	const char	*fmt, *status, *s;

	err_clear(&e);
	if ((c->base = glance_image_show(c->glance, b->from_ref, &e)) == NULL) {
		err_set(err, e.kind, "from_image: %s", e.msg);
		return -1;
	}
	fmt = json_string_value(json_object_get(c->base, "disk_format"));
	status = json_string_value(json_object_get(c->base, "status"));
	if (fmt == NULL || (strcmp(fmt, "qcow2") != 0 && strcmp(fmt, "raw") != 0)) {
		err_set(err, ERR_INVAL, "from_image: image %s has disk_format %s, not qcow2 or "
		    "raw", b->from_ref, fmt != NULL ? fmt : "(none)");
		return -1;
	}
	if (status == NULL || strcmp(status, "active") != 0) {
		err_set(err, ERR_CONFLICT, "from_image: image %s is %s, not active", b->from_ref,
		    status != NULL ? status : "(no status)");
		return -1;
	}
	json_decref(b->iso_props);
	b->iso_props = json_incref(c->base);
	if (b->parent == NULL)
		b->parent = xstrdup(b->from_ref);
	if (b->chain == NULL && (s = json_string_value(json_object_get(c->base,
	    "isoforge_chain"))) != NULL)
		b->chain = xstrdup(s);
	if ((s = json_string_value(json_object_get(c->base, "isoforge_source_iso"))) != NULL) {
		free(b->iso_ref);
		b->iso_ref = xstrdup(s);
	}
	if ((s = json_string_value(json_object_get(c->base, "isoforge_source_iso_hash"))) != NULL) {
		free(b->iso_hash);
		b->iso_hash = xstrdup(s);
	}
	return 0;
}

/*
 * resolving: the sessions, the ISO (disk_format iso, active, visible to the requester's
 * project), the virtio-win ISO (auto = cfg's), the parent image, the flavor (with a root disk).
 */
static int
source_glance_resolve(void *ctx, struct build *b, struct err *err)
{
	struct cloud	*c = ctx;
	struct err	 e;
	const char	*virtio = b->virtio_win_ref, *hash;

	if (b->flavor_ref == NULL) {
		err_set(err, ERR_INVAL, "flavor: missing");
		return -1;
	}
	if (cloud_open(c, err) != 0)
		return -1;
	build_field(b, "project_id", c->project_id);
	build_field(b, "user_id", c->user_id);
	if (b->from_ref != NULL)
		return cloud_resolve_base(c, b, err) == 0 ? cloud_resolve_flavor(c, b, err) : -1;
	if ((c->iso = cloud_iso(c, "iso_image", b->iso_ref, err)) == NULL)
		return -1;
	json_decref(b->iso_props);
	b->iso_props = json_incref(c->iso);
	free(b->iso_hash);
	b->iso_hash = (hash = cloud_image_hash(c->iso)) != NULL ? xstrdup(hash) : NULL;
	if (virtio != NULL && strcmp(virtio, "auto") == 0) {
		virtio = c->cfg->virtio_win_image;
		if (virtio == NULL) {
			err_set(err, ERR_INVAL, "virtio_win_image: auto, but this worker has no "
			    "[builds] virtio_win_image");
			return -1;
		}
	}
	if (virtio != NULL) {
		if ((c->virtio = cloud_iso(c, "virtio_win_image", virtio, err)) == NULL)
			return -1;
		free(b->virtio_win_ref);
		b->virtio_win_ref = xstrdup(json_string_value(json_object_get(c->virtio, "id")));
	}
	if (b->parent != NULL) {
		err_clear(&e);
		if ((c->parent = glance_image_show(c->glance, b->parent, &e)) == NULL) {
			err_set(err, e.kind, "parent_image: %s", e.msg);
			return -1;
		}
	}
	return cloud_resolve_flavor(c, b, err);
}

/* The flavor (with a root disk, within [builds] max_disk_gib): the build's size. */
static int
cloud_resolve_flavor(struct cloud *c, struct build *b, struct err *err)
{
	struct err	 e;

	err_clear(&e);
	if ((c->flavor = nova_flavor_get(c->nova, b->flavor_ref, &e)) == NULL) {
		err_set(err, e.kind, "flavor: %s", e.msg);
		return -1;
	}
	if (c->flavor->disk_gib == 0) {
		err_set(err, ERR_INVAL, "flavor: %s has no root disk (disk 0): the image's size "
		    "comes from it", c->flavor->name);
		return -1;
	}
	if (c->flavor->disk_gib > (unsigned)c->cfg->max_disk_gib) {
		err_set(err, ERR_INVAL, "flavor: %s has a %u GiB root disk, more than builds here "
		    "may have ([builds] max_disk_gib = %ld)", c->flavor->name, c->flavor->disk_gib,
		    c->cfg->max_disk_gib);
		return -1;
	}
	b->flavor.vcpus = c->flavor->vcpus;
	b->flavor.ram_mib = c->flavor->ram_mib;
	b->flavor.disk_gib = c->flavor->disk_gib;
	return 0;
}


/* Fetches one Glance ISO into the cache, named by its sha512 (or md5); returns the path. */
static char *
cloud_fetch_one(struct cloud *c, const json_t *img, const char *suffix, int *fdp,
    struct err *err)
{
	struct stat	 st;
	const char	*hash = cloud_image_hash(img);
	const char	*id = json_string_value(json_object_get(img, "id"));
	json_int_t	 size = json_integer_value(json_object_get(img, "size"));
	char		*path;

	if (hash == NULL) {
		err_set(err, ERR_INVAL, "image %s has no hash to verify a download with", id);
		return NULL;
	}
	/* it names a file: only what a hash can look like */
	if (!isocache_name_ok(hash)) {
		err_set(err, ERR_INVAL, "image %s: its hash is not one (not 32-128 hex digits)", id);
		return NULL;
	}
	path = xasprintf("%s/%s.%s", c->cfg->cache_dir, hash, suffix);
	/* only verified downloads are renamed into the cache: a present file is whole */
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (json_int_t)st.st_size == size) {
		log_info("image %s: in the cache (%s)", id, path);
	} else {
		log_info("image %s: fetching %lld bytes into %s", id, (long long)size, path);
		if (glance_image_download(c->glance, id, path, NULL, err) != 0) {
			free(path);
			return NULL;
		}
	}
	/* held until the build ends: the cache's eviction leaves it alone */
	if ((*fdp = isocache_hold(path, err)) == -1) {
		free(path);
		return NULL;
	}
	if (isocache_evict(c->cfg->cache_dir, (long long)c->cfg->cache_max_gib << 30, err) == -1) {
		free(path);
		return NULL;
	}
	return path;
}

/* fetching: each ISO into cache_dir/<hash>.iso unless there, verified by Glance's hash. */
static int
source_glance_fetch(void *ctx, struct build *b, struct err *err)
{
	struct cloud	*c = ctx;

	free(b->iso);
	if (c->base != NULL) {
		free(b->base);
		b->base = cloud_fetch_one(c, c->base, "img", &c->iso_fd, err);
		return b->base != NULL ? 0 : -1;
	}
	if ((b->iso = cloud_fetch_one(c, c->iso, "iso", &c->iso_fd, err)) == NULL)
		return -1;
	if (c->virtio != NULL) {
		free(b->virtio_win);
		if ((b->virtio_win = cloud_fetch_one(c, c->virtio, "iso", &c->virtio_fd,
		    err)) == NULL)
			return -1;
	}
	return 0;
}

const struct source_ops source_glance_ops = {
	.name = "glance",
	.resolve = source_glance_resolve,
	.fetch = source_glance_fetch,
};

json_t *
cloud_image_body(const struct build *b, const json_t *props)
{
	json_t		*body, *v;
	const char	*k;

	body = json_pack("{s:s, s:s, s:s, s:s}", "name", b->name, "disk_format", "qcow2",
	    "container_format", "bare", "visibility",
	    b->visibility != NULL ? b->visibility : "private");
	json_object_foreach((json_t *)props, k, v) {
		if (json_is_string(v))
			json_object_set(body, k, v);
		else if (json_is_integer(v) && (strcmp(k, "min_disk") == 0 ||
		    strcmp(k, "min_ram") == 0))
			json_object_set(body, k, v);	/* Glance's own integer fields */
		else if (json_is_integer(v))
			json_object_set_new(body, k, json_sprintf("%lld",
			    (long long)json_integer_value(v)));
	}
	/* the chain settles those two */
	json_object_del(body, "isoforge_chain");
	json_object_del(body, "isoforge_version");
	if (b->tags != NULL && json_array_size(b->tags) > 0)
		json_object_set(body, "tags", b->tags);
	return body;
}

/* Upload attempts (each a new image: an upload is not idempotent), deletions of an image. */
#define WS_REGISTER_TRIES	3
#define WS_DELETE_TRIES		5

/* Whether a failed Glance call may succeed when made again (network, timeout, 5xx). */
static int
cloud_transient(const struct err *e)
{
	return e->kind == ERR_NET || e->kind == ERR_TIMEOUT ||
	    (e->kind == ERR_REMOTE && e->status >= 500);
}

/* Deletes an image the build made, and forgets it once it is gone. */
static int
cloud_remove_made(struct cloud *c, struct build *b, const char *id)
{
	if (cloud_delete_image(c, id, NULL) != 0)
		return -1;
	build_resource(b, "glance_image", id, 0);
	return 0;
}

/*
 * Deletes the images of the build that are not active (half-made: queued, saving, killed),
 * also one whose creation Glance did while its answer was lost. Best effort.
 */
static void
cloud_sweep(struct cloud *c, struct build *b)
{
	struct glance_list_opts	 o;
	struct err		 e;
	json_t			*imgs, *img;
	const char		*id, *status;
	size_t			 i;

	memset(&o, 0, sizeof(o));
	o.filters = json_pack("{s:s}", "isoforge_build_id", b->id);
	err_clear(&e);
	imgs = glance_image_list(c->glance, &o, &e);
	json_decref(o.filters);
	if (imgs == NULL) {
		log_warnx("build %s: images not listed: %s", b->id, e.msg);
		return;
	}
	json_array_foreach(imgs, i, img) {
		id = json_string_value(json_object_get(img, "id"));
		status = json_string_value(json_object_get(img, "status"));
		if (id == NULL || (status != NULL && strcmp(status, "active") == 0))
			continue;
		if (cloud_remove_made(c, b, id) == 0)
			log_info("build %s: half-made image %s (%s) deleted", b->id, id,
			    status != NULL ? status : "?");
	}
	json_decref(imgs);
}

/* One attempt of registry_glance_add: create, record, upload; on failure the image is
 * deleted (*deleted says whether that worked). Returns the id (caller frees). */
static char *
cloud_register_once(struct cloud *c, struct build *b, const char *file, const json_t *props,
    int *deleted, struct err *err)
{
	json_t		*body, *img;
	char		*id;

	*deleted = 1;
	body = cloud_image_body(b, props);
	img = chain_create_image(c->glance, &(struct chain_key){ c->chain_key,
	    sizeof(c->chain_key) }, c->project_id, b->chain, body, &b->version, err);
	json_decref(body);
	if (img == NULL)
		return NULL;
	id = xstrdup(json_string_value(json_object_get(img, "id")));
	json_decref(img);
	/* known before its data is sent: a crash from here on leaves it to be deleted */
	build_resource(b, "glance_image", id, 1);
	log_info("build %s: image %s is version %d of chain %s; uploading", b->id, id,
	    b->version, b->chain);
	if (glance_image_upload_file(c->glance, id, file, NULL, err) != 0) {
		*deleted = cloud_remove_made(c, b, id) == 0;
		free(id);
		return NULL;
	}
	return id;
}

/* Upload attempts (each a new image: an upload is not idempotent), deletions of an image. */
#define CLOUD_REGISTER_TRIES	3
#define CLOUD_DELETE_TRIES	5

/*
 * uploading: creates the image as the next version of the chain and streams the file. An
 * upload cut short (network, timeout, 5xx) is tried again with a new image, once the
 * half-made one is deleted: an image's data can be uploaded only once. Whatever fails for
 * good ends with no image of the build left but active ones (best effort: Glance may be
 * away for longer than the deletions are tried).
 */
static int
registry_glance_add(void *ctx, struct build *b, const char *file, const json_t *props,
    struct err *err)
{
	struct cloud	*c = ctx;
	struct err	 e;
	char		*id;
	int		 attempt, deleted;

	/* an earlier run's upload, cut by a crash, left a half-made image */
	if (b->resume != BUILD_QUEUED)
		cloud_sweep(c, b);
	for (attempt = 1; ; attempt++) {
		err_clear(&e);
		id = cloud_register_once(c, b, file, props, &deleted, &e);
		if (id != NULL) {
			free(b->image_id);
			b->image_id = id;
			return 0;
		}
		cloud_sweep(c, b);
		if (!cloud_transient(&e) || !deleted || attempt >= CLOUD_REGISTER_TRIES)
			break;
		log_warnx("build %s: upload attempt %d failed: %s; trying again in %d s",
		    b->id, attempt, e.msg, 2 * attempt);
		if (util_wait_fd(c->stop_fd, 2.0 * attempt)) {
			err_clear(&e);
			err_set(&e, ERR_CANCELLED, "stopped before upload attempt %d", attempt + 1);
			break;
		}
	}
	if (attempt > 1)
		err_set(err, e.kind, "%s (after %d attempts)", e.msg, attempt);
	else
		err_set(err, e.kind, "%s", e.msg);
	if (err != NULL && err->status == 0)
		err->status = e.status;
	return -1;
}

/* Another run may have built this build_id already (a redelivered request): look in Glance. */
static char *
registry_glance_find_built(void *ctx, const struct build *b, struct err *err)
{
	struct cloud		*c = ctx;
	struct glance_list_opts	 o;
	json_t			*imgs;
	char			*id = NULL;

	memset(&o, 0, sizeof(o));
	o.filters = json_pack("{s:s}", "isoforge_build_id", b->id);
	o.status = "active";
	imgs = glance_image_list(c->glance, &o, err);
	json_decref(o.filters);
	if (imgs != NULL && json_array_size(imgs) > 0)
		id = xstrdup(json_string_value(json_object_get(json_array_get(imgs, 0), "id")));
	json_decref(imgs);
	return id;
}

static json_t *
registry_glance_get(void *ctx, const char *id, struct err *err)
{
	struct cloud	*c = ctx;

	if (cloud_open(c, err) != 0)
		return NULL;
	return glance_image_show(c->glance, id, err);
}

static int
registry_glance_remove(void *ctx, const char *id, struct err *err)
{
	struct cloud	*c = ctx;

	if (cloud_open(c, err) != 0)
		return -1;
	return cloud_delete_image(c, id, err);
}

const struct registry_ops registry_glance_ops = {
	.name = "glance",
	.find_built = registry_glance_find_built,
	.add = registry_glance_add,
	.get = registry_glance_get,
	.remove = registry_glance_remove,
};

/* Deletes an image, again after 1, 2, 4, 8 s while Glance can't be reached or fails (5xx). */
int
cloud_delete_image(struct cloud *c, const char *id, struct err *err)
{
	struct err	 e;
	int		 attempt;

	for (attempt = 1; ; attempt++) {
		err_clear(&e);
		if (glance_image_delete(c->glance, id, &e) == 0 || e.kind == ERR_NOTFOUND)
			return 0;
		if (!cloud_transient(&e) || attempt >= CLOUD_DELETE_TRIES ||
		    util_wait_fd(c->stop_fd, (double)(1U << (attempt - 1))))
			break;
	}
	log_warnx("image %s not deleted: %s", id, e.msg);
	err_set(err, e.kind, "%s", e.msg);
	return -1;
}

int
cloud_delete_trust(struct cloud *c, const char *trust_id, struct err *err)
{
	struct err	 e;

	err_clear(&e);
	if (c->service == NULL &&
	    (c->service = cloud_service_keystone(c->cfg, &c->http, &e)) == NULL) {
		err_set(err, e.kind, "%s", e.msg);
		return -1;
	}
	if (keystone_trust_delete(c->service, trust_id, &e) == 0)
		return 0;
	/* a cloud where isoforge is no admin: the trust's own token is the trustor's */
	if (e.kind == ERR_AUTH && c->user != NULL &&
	    c->trust_id != NULL && strcmp(c->trust_id, trust_id) == 0) {
		err_clear(&e);
		if (keystone_trust_delete(c->user, trust_id, &e) == 0)
			return 0;
	}
	err_set(err, e.kind, "trust: not deleted: %s", e.msg);
	return -1;
}

void
cloud_close(struct cloud *c)
{
	nova_flavor_free(&c->flavor);
	json_decref(c->base);
	if (c->iso_fd != -1)
		close(c->iso_fd);
	if (c->virtio_fd != -1)
		close(c->virtio_fd);
	json_decref(c->parent);
	json_decref(c->virtio);
	json_decref(c->iso);
	free(c->user_id);
	free(c->project_id);
	nova_free(&c->nova);
	glance_free(&c->glance);
	keystone_free(&c->user);
	keystone_free(&c->service);
	http_client_free(&c->http);
	free(c->trust_id);
	explicit_bzero(c->chain_key, sizeof(c->chain_key));
	memset(c, 0, sizeof(*c));
	c->stop_fd = -1;
	c->iso_fd = c->virtio_fd = -1;
}
