/* glance.c — Glance v2 through keystone_request; image data streamed with constant memory. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/glance.h"
#include <openssl/evp.h>
#include "base/log.h"

/*
 * Hashing off the transfer thread: libcurl's callback copies each piece into a small ring of
 * slots that one thread per digest hashes (a download: sha512, or md5 for images without the
 * multihash), so receiving, writing and hashing overlap. Memory stays constant:
 * GLANCE_SLOTS x GLANCE_SLOT_SIZE, allocated once per client and reused by each transfer.
 */
#define GLANCE_SLOTS		4
#define GLANCE_SLOT_SIZE	(512u << 10)
#define GLANCE_WRITEBACK	(32LL << 20)	/* start writeback of a download every 32 MiB */

struct glance {
	struct keystone	*ks;
	char		*root;		/* endpoint without "/v2": "next" links are relative to it */
	unsigned char	*slots[GLANCE_SLOTS];	/* the hashing ring, once needed */
};

static void
glance_err_copy(struct err *err, const struct err *e)
{
	if (err != NULL && err->kind == ERR_NONE)
		*err = *e;
}

struct glance *
glance_new(struct keystone *ks, const char *endpoint, struct err *err)
{
	struct glance	*g;
	char		*url;
	size_t		 n;

	if (endpoint != NULL)
		url = xstrdup(endpoint);
	else if ((url = keystone_endpoint(ks, "image", err)) == NULL)
		return NULL;
	n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	if (n >= 3 && strncmp(url + n - 3, "/v2", 3) == 0)
		n -= 3;
	url[n] = '\0';
	g = xcalloc(1, sizeof(*g));
	g->ks = ks;
	g->root = url;
	return g;
}

void
glance_free(struct glance **gp)
{
	struct glance	*g;
	int		 i;

	if (gp == NULL || (g = *gp) == NULL)
		return;
	for (i = 0; i < GLANCE_SLOTS; i++)
		free(g->slots[i]);
	free(g->root);
	free(g);
	*gp = NULL;
}

/*
 * Performs req; on failure fills err, rewording a 404 about image id (Glance hides other
 * projects' private images behind 404) and a 403 about a protected image.
 */
static int
glance_call(struct glance *g, const struct http_req *req, struct http_resp *resp,
    const char *id, struct err *err)
{
	struct err	 e;
	char		*msg;

	err_clear(&e);
	if (keystone_request(g->ks, req, resp, &e) == 0)
		return 0;
	if (id != NULL && e.kind == ERR_NOTFOUND) {
		err_set(err, ERR_NOTFOUND, "glance: image %s not found or not visible to your project",
		    id);
		if (err != NULL)
			err->status = 404;
		return -1;
	}
	msg = http_error_message(resp->body.data, resp->body.len);
	if (e.status == 403 && msg != NULL && strstr(msg, "protected") != NULL) {
		err_set(err, ERR_CONFLICT, "glance: image %s is protected: %s", id ? id : "", msg);
		if (err != NULL)
			err->status = 403;
	} else
		glance_err_copy(err, &e);
	free(msg);
	return -1;
}

/* A JSON call: method on url with an optional JSON body; returns the parsed answer (or an
 * empty object for an empty body), new reference. */
static json_t *
glance_json(struct glance *g, const char *method, const char *url, const char *ctype,
    const json_t *body, const char *id, struct err *err)
{
	struct http_req		 req;
	struct http_resp	 resp;
	const char		*hdrs[2] = { NULL, NULL };
	char			*text = NULL, *ct = NULL;
	json_t			*out = NULL;
	json_error_t		 je;

	http_req_init(&req);
	http_resp_init(&resp);
	req.method = method;
	req.url = url;
	req.idempotent = strcmp(method, "POST") != 0;
	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT);
		req.body = text;
		req.body_len = strlen(text);
		ct = xasprintf("Content-Type: %s", ctype ? ctype : "application/json");
		hdrs[0] = ct;
		req.headers = hdrs;
	}
	if (glance_call(g, &req, &resp, id, err) == -1)
		goto cleanup;
	if (resp.body.len == 0)
		out = json_object();
	else if ((out = json_loadb(resp.body.data, resp.body.len, 0, &je)) == NULL)
		err_set(err, ERR_REMOTE, "glance: %s %s: answer is not JSON: %s", method, url,
		    je.text);
cleanup:
	free(text);
	free(ct);
	http_resp_free(&resp);
	return out;
}

json_t *
glance_image_show(struct glance *g, const char *id, struct err *err)
{
	char	*eid = http_escape(id);
	char	*url = xasprintf("%s/v2/images/%s", g->root, eid);
	json_t	*img;

	img = glance_json(g, "GET", url, NULL, NULL, id, err);
	free(url);
	free(eid);
	return img;
}

int
glance_list_page(const json_t *page, json_t *all, size_t max, const char **next,
    struct err *err)
{
	const json_t	*imgs, *v;
	size_t		 i;

	*next = NULL;
	imgs = json_object_get(page, "images");
	if (!json_is_array(imgs)) {
		err_set(err, ERR_REMOTE, "glance: image list without \"images\"");
		return -1;
	}
	json_array_foreach(imgs, i, v) {
		if (!json_is_object(v)) {
			err_set(err, ERR_REMOTE, "glance: image list: entry %zu is not an object", i);
			return -1;
		}
		if (max > 0 && json_array_size(all) >= max)
			break;
		json_array_append(all, (json_t *)v);
	}
	if (json_array_size(imgs) == 0 || (max > 0 && json_array_size(all) >= max))
		return 0;
	*next = json_string_value(json_object_get(page, "next"));
	/* only a path of this Glance: the link is appended to its root */
	if (*next != NULL && (*next)[0] != '/') {
		err_set(err, ERR_REMOTE, "glance: image list: \"next\" is not a path");
		*next = NULL;
		return -1;
	}
	return 0;
}

json_t *
glance_image_list(struct glance *g, const struct glance_list_opts *o, struct err *err)
{
	struct buf	 q;
	json_t		*all = json_array(), *page = NULL, *v;
	const char	*key, *next;
	const char *const *t;
	char		*url, *ek, *ev;

	buf_init(&q);
	buf_printf(&q, "%s/v2/images?", g->root);
	if (o != NULL) {
		json_object_foreach(o->filters, key, v) {
			if (!json_is_string(v))
				continue;
			ek = http_escape(key);
			ev = http_escape(json_string_value(v));
			buf_printf(&q, "%s=%s&", ek, ev);
			free(ek);
			free(ev);
		}
		if (o->status != NULL) {
			ev = http_escape(o->status);
			buf_printf(&q, "status=%s&", ev);
			free(ev);
		}
		for (t = o->tags; t != NULL && *t != NULL; t++) {
			ev = http_escape(*t);
			buf_printf(&q, "tag=%s&", ev);
			free(ev);
		}
		if (o->sort != NULL) {
			ev = http_escape(o->sort);
			buf_printf(&q, "sort=%s&", ev);
			free(ev);
		}
		if (o->page_size > 0)
			buf_printf(&q, "limit=%d&", o->page_size);
	}
	q.data[--q.len] = '\0';		/* the trailing '&' or '?' */
	url = buf_release(&q);
	for (;;) {
		if ((page = glance_json(g, "GET", url, NULL, NULL, NULL, err)) == NULL)
			goto fail;
		if (glance_list_page(page, all, o != NULL ? o->max : 0, &next, err) != 0)
			goto fail;
		if (next == NULL)
			break;
		free(url);
		url = xasprintf("%s%s", g->root, next);
		json_decref(page);
	}
	json_decref(page);
	free(url);
	return all;
fail:
	json_decref(page);
	json_decref(all);
	free(url);
	return NULL;
}

json_t *
glance_image_create(struct glance *g, const json_t *body, struct err *err)
{
	char	*url = xasprintf("%s/v2/images", g->root);
	json_t	*img;

	img = glance_json(g, "POST", url, NULL, body, NULL, err);
	free(url);
	return img;
}

/* JSON pointer of a top-level member: "/" + name with '~' → "~0" and '/' → "~1". */
static char *
glance_pointer(const char *name)
{
	struct buf	 b;
	const char	*p;

	buf_init(&b);
	buf_puts(&b, "/");
	for (p = name; *p != '\0'; p++) {
		if (*p == '~')
			buf_puts(&b, "~0");
		else if (*p == '/')
			buf_puts(&b, "~1");
		else
			buf_append(&b, p, 1);
	}
	return buf_release(&b);
}

void
glance_patch_op(json_t *ops, const char *op, const char *name, json_t *value)
{
	char	*path = glance_pointer(name);
	json_t	*o = json_pack("{s:s,s:s}", "op", op, "path", path);

	if (value != NULL)
		json_object_set_new(o, "value", value);
	json_array_append_new(ops, o);
	free(path);
}

json_t *
glance_image_update(struct glance *g, const char *id, const json_t *ops, struct err *err)
{
	char	*eid = http_escape(id);
	char	*url = xasprintf("%s/v2/images/%s", g->root, eid);
	json_t	*img;

	img = glance_json(g, "PATCH", url, "application/openstack-images-v2.1-json-patch", ops,
	    id, err);
	free(url);
	free(eid);
	return img;
}

json_t *
glance_image_set_properties(struct glance *g, const char *id, const json_t *props,
    struct err *err)
{
	json_t		*ops = json_array(), *v, *img;
	const char	*key;

	json_object_foreach((json_t *)props, key, v) {
		if (json_is_null(v))
			glance_patch_op(ops, "remove", key, NULL);
		else
			glance_patch_op(ops, "add", key, json_incref(v));
	}
	img = glance_image_update(g, id, ops, err);
	json_decref(ops);
	return img;
}

int
glance_image_set_protected(struct glance *g, const char *id, int protected_, struct err *err)
{
	json_t	*ops = json_array(), *img;

	glance_patch_op(ops, "replace", "protected", json_boolean(protected_));
	img = glance_image_update(g, id, ops, err);
	json_decref(ops);
	if (img == NULL)
		return -1;
	json_decref(img);
	return 0;
}

/* A call without a body in either direction (tags, delete). */
static int
glance_simple(struct glance *g, const char *method, const char *url, const char *id,
    struct err *err)
{
	struct http_req		 req;
	struct http_resp	 resp;
	int			 rc;

	http_req_init(&req);
	http_resp_init(&resp);
	req.method = method;
	req.url = url;
	req.idempotent = 1;
	rc = glance_call(g, &req, &resp, id, err);
	http_resp_free(&resp);
	return rc;
}

static int
glance_tag(struct glance *g, const char *method, const char *id, const char *tag,
    struct err *err)
{
	char	*eid = http_escape(id), *etag = http_escape(tag);
	char	*url = xasprintf("%s/v2/images/%s/tags/%s", g->root, eid, etag);
	int	 rc;

	rc = glance_simple(g, method, url, id, err);
	free(url);
	free(eid);
	free(etag);
	return rc;
}

int
glance_image_tag_add(struct glance *g, const char *id, const char *tag, struct err *err)
{
	return glance_tag(g, "PUT", id, tag, err);
}

int
glance_image_tag_remove(struct glance *g, const char *id, const char *tag, struct err *err)
{
	return glance_tag(g, "DELETE", id, tag, err);
}

int
glance_image_delete(struct glance *g, const char *id, struct err *err)
{
	char	*eid = http_escape(id);
	char	*url = xasprintf("%s/v2/images/%s", g->root, eid);
	int	 rc;

	rc = glance_simple(g, "DELETE", url, id, err);
	free(url);
	free(eid);
	return rc;
}

/* One digest of a stream, computed by its own thread over the ring. */
struct glance_digest {
	struct glance_stream	*s;
	const EVP_MD		*md;		/* NULL = not computed */
	EVP_MD_CTX		*ctx;
	pthread_t		 thread;
	int			 inline_;	/* no thread: the producer hashes (fallback) */
	long long		 done;		/* slots hashed so far */
	char			 hex[129];	/* when finished */
};

#define GLANCE_SHA512	0
#define GLANCE_MD5	1

struct glance_stream {
	struct glance_xfer	*x;		/* caller's, may be NULL */
	int			 hashing;	/* digests running */
	long long		 bytes;
	int			 fd;		/* the temp file of a download, else -1 */
	long long		 synced;	/* download bytes handed to writeback */
	/* The ring: slot k % GLANCE_SLOTS is filled by the producer while k == pushed, then
	 * hashed by each digest; it is free again once all of them have passed it. */
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	unsigned char		**slot;		/* the client's ring */
	size_t			 len[GLANCE_SLOTS];
	long long		 pushed;
	int			 finished;
	struct glance_digest	 dg[2];		/* [GLANCE_SHA512], [GLANCE_MD5]; md NULL = off */
};

static void *
glance_digest_thread(void *arg)
{
	struct glance_digest	*d = arg;
	struct glance_stream	*s = d->s;
	int			 i;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (d->done == s->pushed && !s->finished)
			pthread_cond_wait(&s->cv, &s->mu);
		if (d->done == s->pushed)
			break;
		i = (int)(d->done % GLANCE_SLOTS);
		pthread_mutex_unlock(&s->mu);
		if (EVP_DigestUpdate(d->ctx, s->slot[i], s->len[i]) != 1)
			fatalx("digest update failed");
		pthread_mutex_lock(&s->mu);
		d->done++;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Starts the digests that are on, each on its thread. */
static void
glance_digests_start(struct glance_stream *s)
{
	struct glance_digest	*d;
	int			 i;

	s->pushed = 0;
	s->finished = 0;
	s->len[0] = 0;
	for (i = 0; i < 2; i++) {
		d = &s->dg[i];
		if (d->md == NULL)
			continue;
		d->s = s;
		d->done = 0;
		d->hex[0] = '\0';
		d->inline_ = 0;
		if ((d->ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(d->ctx, d->md, NULL) != 1) {
			/* e.g. md5 in FIPS mode: not computed, so what needs it fails verification */
			log_warnx("cannot initialise %s: not computed", EVP_MD_get0_name(d->md));
			EVP_MD_CTX_free(d->ctx);
			d->ctx = NULL;
			d->md = NULL;
			continue;
		}
		/* without a thread (a resource limit), hash in the producer: slower, still right */
		if (pthread_create(&d->thread, NULL, glance_digest_thread, d) != 0) {
			log_warnx("no thread for %s: hashing inline", EVP_MD_get0_name(d->md));
			d->inline_ = 1;
		}
	}
	s->hashing = 1;
}

/* Hashes what is left, stops the threads, finishes the digests into dg[].hex (keep = 0: a
 * digest thrown away). */
static void
glance_digests_stop(struct glance_stream *s, int keep)
{
	struct glance_digest	*d;
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 n;
	int			 i;

	if (!s->hashing)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->len[s->pushed % GLANCE_SLOTS] > 0)
		s->pushed++;
	s->finished = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (i = 0; i < 2; i++) {
		d = &s->dg[i];
		if (d->md == NULL)
			continue;
		if (!d->inline_)
			pthread_join(d->thread, NULL);
		if (EVP_DigestFinal_ex(d->ctx, md, &n) != 1)
			fatalx("digest final failed");
		if (keep)
			util_hex(md, n, d->hex);
		EVP_MD_CTX_free(d->ctx);
		d->ctx = NULL;
	}
	s->hashing = 0;
}

/*
 * Sets up s to compute sha512 and/or md5 of what passes, each on its own thread, so that
 * hashing overlaps receiving and writing. Hashing in libcurl's callback instead spends ~12 %
 * less CPU (no copy into the ring, no wake-ups) but serialises the two: measured no faster on
 * a saturated machine with Glance on the same cores, slower wherever a core is free.
 */
static void
glance_stream_init(struct glance_stream *s, struct glance *g, struct glance_xfer *x, int fd,
    int sha512, int md5)
{
	int	 i;

	memset(s, 0, sizeof(*s));
	s->x = x;
	s->fd = fd;
	if (sha512)
		s->dg[GLANCE_SHA512].md = EVP_sha512();
	if (md5)
		s->dg[GLANCE_MD5].md = EVP_md5();
	if (!sha512 && !md5)
		return;
	for (i = 0; i < GLANCE_SLOTS; i++)
		if (g->slots[i] == NULL)
			g->slots[i] = xmalloc(GLANCE_SLOT_SIZE);
	s->slot = g->slots;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	glance_digests_start(s);
}

/* The lowest count of slots hashed by the digests; s->mu held. */
static long long
glance_ring_done(const struct glance_stream *s)
{
	long long	 done = s->pushed;
	int		 i;

	for (i = 0; i < 2; i++)
		if (s->dg[i].md != NULL && !s->dg[i].inline_ && s->dg[i].done < done)
			done = s->dg[i].done;
	return done;
}

static void
glance_stream_data(void *arg, const void *data, size_t n)
{
	struct glance_stream	*s = arg;
	const unsigned char	*p = data;
	size_t			 k;
	int			 fill;

	s->bytes += (long long)n;
	if (s->fd >= 0 && s->bytes - s->synced >= GLANCE_WRITEBACK) {
		/* Let the disk catch up while we receive, so the final fdatasync is short. */
		(void)sync_file_range(s->fd, s->synced, s->bytes - s->synced, SYNC_FILE_RANGE_WRITE);
		s->synced = s->bytes;
	}
	if (!s->hashing)
		return;
	for (k = 0; k < 2; k++)
		if (s->dg[k].md != NULL && s->dg[k].inline_ &&
		    EVP_DigestUpdate(s->dg[k].ctx, data, n) != 1)
			fatalx("digest update failed");
	/* Only this thread moves pushed and touches the slot being filled. */
	fill = (int)(s->pushed % GLANCE_SLOTS);
	while (n > 0) {
		k = GLANCE_SLOT_SIZE - s->len[fill];
		if (k > n)
			k = n;
		memcpy(s->slot[fill] + s->len[fill], p, k);
		s->len[fill] += k;
		p += k;
		n -= k;
		if (s->len[fill] < GLANCE_SLOT_SIZE)
			break;
		pthread_mutex_lock(&s->mu);
		s->pushed++;
		pthread_cond_broadcast(&s->cv);
		/* Wait until every digest is done with the slot we fill next. */
		while (s->pushed - glance_ring_done(s) >= GLANCE_SLOTS)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
		fill = (int)(s->pushed % GLANCE_SLOTS);
		s->len[fill] = 0;
	}
}

/* A retried download starts over: empty file, fresh digests. */
static int
glance_stream_restart(void *arg)
{
	struct glance_stream	*s = arg;

	if (s->fd >= 0 && (ftruncate(s->fd, 0) == -1 || lseek(s->fd, 0, SEEK_SET) == -1))
		return -1;
	if (s->hashing) {
		glance_digests_stop(s, 0);
		glance_digests_start(s);
	}
	s->bytes = 0;
	s->synced = 0;
	return 0;
}

/* Hashes what is left and finishes the digests; sha and md5 get their hex, or "" when that
 * digest was not computed. */
static void
glance_stream_finish(struct glance_stream *s, char sha[129], char md5[33])
{
	glance_digests_stop(s, 1);
	memcpy(sha, s->dg[GLANCE_SHA512].hex, 129);
	memcpy(md5, s->dg[GLANCE_MD5].hex, 32);
	md5[32] = '\0';
}

/* Stops the threads when still running (the ring stays with the client). */
static void
glance_stream_free(struct glance_stream *s)
{
	glance_digests_stop(s, 0);
	if (s->slot != NULL) {
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
		s->slot = NULL;
	}
}

static int
glance_stream_progress(void *arg, long long done, long long total)
{
	struct glance_stream	*s = arg;

	return s->x->progress(s->x->arg, done, total);
}

/* 1 when a and b are both set and differ. */
static int
glance_differs(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) != 0;
}

/*
 * Compares digests (any may be NULL: not known) with the image's os_hash_value (when its
 * algorithm is sha512) and checksum; what differs is named in err.
 */
static int
glance_check_hashes(const json_t *img, const char *id, const char *sha, const char *md5,
    struct err *err)
{
	const char	*want_sha = json_string_value(json_object_get(img, "os_hash_value"));
	const char	*algo = json_string_value(json_object_get(img, "os_hash_algo"));
	const char	*want_md5 = json_string_value(json_object_get(img, "checksum"));

	if (algo != NULL && strcmp(algo, "sha512") != 0)
		want_sha = NULL;
	if (want_sha == NULL && want_md5 == NULL && (sha != NULL || md5 != NULL))
		log_warnx("glance: image %s carries no hash to verify against", id);
	if (glance_differs(sha, want_sha)) {
		err_set(err, ERR_IO, "glance: image %s: hash mismatch: sha512 is %.16s..., "
		    "os_hash_value says %.16s...", id, sha, want_sha);
		return -1;
	}
	if (glance_differs(md5, want_md5)) {
		err_set(err, ERR_IO, "glance: image %s: hash mismatch: md5 is %s, checksum says %s",
		    id, md5, want_md5);
		return -1;
	}
	return 0;
}

int
glance_image_upload(struct glance *g, const char *id, int fd, long long size,
    struct glance_xfer *x, struct err *err)
{
	struct glance_stream	 s;
	struct http_req		 req;
	struct http_resp	 resp;
	char			*eid = http_escape(id);
	char			*url = xasprintf("%s/v2/images/%s/file", g->root, eid);
	json_t			*img = NULL;
	const char		*status;
	char			 sha[129], md5[33];
	int			 rc = -1, hash = x != NULL && x->hash;

	glance_stream_init(&s, g, x, -1, hash, hash);
	http_req_init(&req);
	http_resp_init(&resp);
	req.method = "PUT";
	req.url = url;
	req.upload_fd = fd;
	req.upload_len = size;
	req.on_data = glance_stream_data;
	req.on_restart = glance_stream_restart;
	req.arg = &s;
	if (x != NULL && x->progress != NULL)
		req.progress = glance_stream_progress;
	/* Not idempotent: after a failed upload Glance may have moved the image on. */
	if (glance_call(g, &req, &resp, id, err) == -1)
		goto cleanup;
	if (x != NULL)
		x->bytes = s.bytes;
	if (hash) {
		glance_stream_finish(&s, sha, md5);
		memcpy(x->sha512, sha, sizeof(sha));
		memcpy(x->md5, md5, sizeof(md5));
	}
	/* What Glance made of it: active, our size, the digests we know. */
	if ((img = glance_image_show(g, id, err)) == NULL)
		goto cleanup;
	status = json_string_value(json_object_get(img, "status"));
	if (status == NULL || strcmp(status, "active") != 0) {
		err_set(err, ERR_REMOTE, "glance: image %s is %s after the upload", id,
		    status ? status : "without status");
		goto cleanup;
	}
	if (json_integer_value(json_object_get(img, "size")) != s.bytes) {
		err_set(err, ERR_IO, "glance: image %s: sent %lld bytes, Glance stored %lld", id,
		    s.bytes, (long long)json_integer_value(json_object_get(img, "size")));
		goto cleanup;
	}
	if (hash && glance_check_hashes(img, id, sha, md5, err) == -1)
		goto cleanup;
	if (x != NULL && glance_check_hashes(img, id, x->expect_sha512, x->expect_md5, err) == -1)
		goto cleanup;
	rc = 0;
cleanup:
	glance_stream_free(&s);
	json_decref(img);
	http_resp_free(&resp);
	free(url);
	free(eid);
	return rc;
}

int
glance_image_upload_file(struct glance *g, const char *id, const char *path,
    struct glance_xfer *x, struct err *err)
{
	struct stat	 st;
	int		 fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		err_set(err, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		err_set(err, ERR_IO, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	rc = glance_image_upload(g, id, fd, S_ISREG(st.st_mode) ? (long long)st.st_size : -1, x,
	    err);
	close(fd);
	return rc;
}

/* The directory part of path ("." when none); caller frees. */
static char *
glance_dirname(const char *path)
{
	const char	*slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xasprintf("%.*s", (int)(slash - path), path);
}

/* Makes a rename in the directory of path durable. */
static int
glance_sync_dir(const char *path, struct err *err)
{
	char	*dir = glance_dirname(path);
	int	 fd, rc = -1;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 || fsync(fd) == -1)
		err_set(err, ERR_IO, "%s: %s", dir, strerror(errno));
	else
		rc = 0;
	if (fd >= 0)
		close(fd);
	free(dir);
	return rc;
}

int
glance_image_download(struct glance *g, const char *id, const char *path,
    struct glance_xfer *x, struct err *err)
{
	struct glance_stream	 s;
	struct http_req		 req;
	struct http_resp	 resp;
	struct err		 de;
	const char		*hdrs[] = { "Accept: application/octet-stream, application/json", NULL };
	const char		*status, *algo;
	char			*eid = http_escape(id);
	char			*url = xasprintf("%s/v2/images/%s/file", g->root, eid);
	char			*tmp = xasprintf("%s.XXXXXX.part", path);
	json_t			*img = NULL, *size;
	char			 sha[129], md5[33];
	double			 t0, t1, t2;
	int			 rc = -1, fd = -1, made = 0, want_sha, want_md5;

	memset(&s, 0, sizeof(s));
	err_clear(&de);
	http_req_init(&req);
	http_resp_init(&resp);
	if ((img = glance_image_show(g, id, err)) == NULL)
		goto cleanup;
	status = json_string_value(json_object_get(img, "status"));
	if (status == NULL || strcmp(status, "active") != 0) {
		err_set(err, ERR_CONFLICT, "glance: image %s is %s, not active", id,
		    status ? status : "without status");
		goto cleanup;
	}
	/* The multihash when the image has one; md5 (checksum) only for images older than it,
	 * or when asked: it is superseded, and each digest costs a core at full speed. */
	algo = json_string_value(json_object_get(img, "os_hash_algo"));
	want_sha = algo != NULL && strcmp(algo, "sha512") == 0 &&
	    json_is_string(json_object_get(img, "os_hash_value"));
	want_md5 = (x != NULL && x->also_md5) ||
	    (!want_sha && json_is_string(json_object_get(img, "checksum")));
	if (!want_sha && !want_md5)
		log_warnx("glance: image %s carries no hash to verify against", id);
	if ((fd = mkostemps(tmp, 5, O_CLOEXEC)) == -1) {
		err_set(err, ERR_IO, "%s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	made = 1;
	glance_stream_init(&s, g, x, fd, want_sha, want_md5);
	req.url = url;
	req.headers = hdrs;
	req.download_fd = fd;
	req.idempotent = 1;
	req.on_data = glance_stream_data;
	req.on_restart = glance_stream_restart;
	req.arg = &s;
	if (x != NULL && x->progress != NULL)
		req.progress = glance_stream_progress;
	t0 = util_now();
	if (glance_call(g, &req, &resp, id, err) == -1)
		goto cleanup;
	glance_stream_finish(&s, sha, md5);
	if (x != NULL) {
		memcpy(x->sha512, sha, sizeof(sha));
		memcpy(x->md5, md5, sizeof(md5));
		x->bytes = s.bytes;
	}
	size = json_object_get(img, "size");
	if (json_is_integer(size) && json_integer_value(size) != s.bytes) {
		err_set(err, ERR_IO, "glance: image %s: got %lld bytes, its size is %lld", id,
		    s.bytes, (long long)json_integer_value(size));
		goto cleanup;
	}
	if (glance_check_hashes(img, id, want_sha ? sha : NULL, want_md5 ? md5 : NULL,
	    err) == -1)
		goto cleanup;
	/* Durable before it gets its name: no half-written file is ever found at path. */
	t1 = util_now();
	if (fdatasync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		err_set(err, ERR_IO, "%s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	fd = -1;
	t2 = util_now();
	if (rename(tmp, path) == -1) {
		err_set(err, ERR_IO, "rename %s: %s", path, strerror(errno));
		goto cleanup;
	}
	made = 0;
	/* The name's own durability: the file under it is complete either way. */
	if (glance_sync_dir(path, &de) == -1)
		log_warnx("glance: image %s: %s", id, de.msg);
	log_debug("glance: image %s: %lld bytes received and verified (%s%s%s) in %.3f s, "
	    "fdatasync %.3f s, rename and directory sync %.3f s", id, s.bytes,
	    want_sha ? "sha512" : "", want_sha && want_md5 ? ", " : "", want_md5 ? "md5" : "",
	    t1 - t0, t2 - t1, util_now() - t2);
	rc = 0;
cleanup:
	glance_stream_free(&s);
	if (fd >= 0)
		close(fd);
	if (rc == -1 && made)
		unlink(tmp);
	json_decref(img);
	http_resp_free(&resp);
	free(tmp);
	free(url);
	free(eid);
	return rc;
}
