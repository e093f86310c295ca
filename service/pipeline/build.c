/* build.c — the one pipeline: the steps in order, the install between loop and build thread,
 * the clean-up, the one state-setting function. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "drivers/guestnet.h"
#include "drivers/hash.h"
#include "drivers/png.h"
#include "drivers/qemuimg.h"
#include "service/pipeline/answers.h"
#include "service/pipeline/build.h"
#include "service/pipeline/customize.h"
#include "service/pipeline/request.h"
#include "service/pipeline/templates.h"
#include "service/pipeline/watch.h"

#define BUILD_DEFAULT_GRACE	60.0
#define BUILD_DEFAULT_STEP	3600.0

static const char *const build_state_names[] = {
	[BUILD_QUEUED] = "queued",
	[BUILD_RESOLVING] = "resolving",
	[BUILD_FETCHING] = "fetching",
	[BUILD_ASSEMBLING] = "assembling",
	[BUILD_INSTALLING] = "installing",
	[BUILD_CUSTOMIZING] = "customizing",
	[BUILD_SNAPSHOTTING] = "snapshotting",
	[BUILD_UPLOADING] = "uploading",
	[BUILD_ACTIVE] = "active",
	[BUILD_FAILED] = "failed",
	[BUILD_CANCELLED] = "cancelled",
};

static const int build_state_progresses[] = {
	[BUILD_QUEUED] = 0,
	[BUILD_RESOLVING] = 5,
	[BUILD_FETCHING] = 10,
	[BUILD_ASSEMBLING] = 20,
	[BUILD_INSTALLING] = 30,
	[BUILD_CUSTOMIZING] = 70,
	[BUILD_SNAPSHOTTING] = 80,
	[BUILD_UPLOADING] = 90,
	[BUILD_ACTIVE] = 100,
	[BUILD_FAILED] = 100,
	[BUILD_CANCELLED] = 100,
};

#define NSTATES	(sizeof(build_state_names) / sizeof(build_state_names[0]))

const char *
build_state_name(enum build_state s)
{
	if ((unsigned)s >= NSTATES)
		return "unknown";
	return build_state_names[s];
}

int
build_state_from_name(const char *name)
{
	size_t	 i;

	for (i = 0; i < NSTATES; i++)
		if (strcmp(build_state_names[i], name) == 0)
			return (int)i;
	return -1;
}

int
build_state_terminal(enum build_state s)
{
	return s == BUILD_ACTIVE || s == BUILD_FAILED || s == BUILD_CANCELLED;
}

int
build_state_progress(enum build_state s)
{
	if ((unsigned)s >= NSTATES)
		return 0;
	return build_state_progresses[s];
}

struct build *
build_new(const char *id)
{
	struct build	*b = xcalloc(1, sizeof(*b));
	char		 uuid[37];

	if (id == NULL) {
		util_uuid(uuid);
		id = uuid;
	}
	snprintf(b->id, sizeof(b->id), "%s", id);
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->state = BUILD_QUEUED;
	b->resume = BUILD_QUEUED;
	b->finish_grace_s = BUILD_DEFAULT_GRACE;
	b->progress_interval_s = BUILD_DEFAULT_PROGRESS;
	b->inactivity_timeout_s = -1;
	b->step_timeout_s = BUILD_DEFAULT_STEP;
	b->started_at = util_now();
	if ((b->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1)
		fatal("eventfd");
	return b;
}

/* Frees a NULL-terminated array of strings. */
static void
build_strv_free(char ***vp)
{
	char	**v;
	size_t	  i;

	if ((v = *vp) == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
	*vp = NULL;
}

void
build_free(struct build **bp)
{
	struct build	*b;

	if (bp == NULL || (b = *bp) == NULL)
		return;
	virt_domain_free(&b->dom);
	isoboot_plan_free(&b->plan);
	free(b->message);
	free(b->name);
	free(b->chain);
	free(b->parent);
	free(b->iso_ref);
	free(b->virtio_win_ref);
	free(b->flavor_ref);
	free(b->os_type);
	free(b->os_distro);
	free(b->os_version);
	free(b->profile_name);
	free(b->firmware);
	free(b->machine);
	free(b->install_mode);
	free(b->visibility);
	json_decref(b->properties);
	json_decref(b->tags);
	free(b->domain_type);
	free(b->vnc_listen);
	if (b->vnc_password_fixed != NULL)
		explicit_bzero(b->vnc_password_fixed, strlen(b->vnc_password_fixed));
	free(b->vnc_password_fixed);
	free(b->guest_network);
	free(b->guest_deny);
	free(b->owner);
	free(b->templates);
	free(b->work_root);
	json_decref(b->answers);
	free(b->ssh_pubkey);
	free(b->answers_salt);
	json_decref(b->customize);
	free(b->from_ref);
	free(b->base);
	ssh_key_free(&b->ssh_key);
	free(b->customize_log);
	answers_result_free(b->answers_out);
	free(b->answers_out);
	free(b->work_dir);
	free(b->root_disk);
	free(b->log_dir);
	free(b->floppy);
	build_strv_free(&b->extra_cdroms);
	json_decref(b->iso_props);
	free(b->iso);
	(void)hash_job_wait(&b->iso_hash_job, NULL, NULL, NULL);
	free(b->iso_hash);
	free(b->virtio_win);
	free(b->serial_log);
	free(b->screenshot);
	free(b->snapshot);
	free(b->domain_name);
	free(b->outcome_reason);
	free(b->image_id);
	json_decref(b->image_properties);
	explicit_bzero(b->vnc_password, sizeof(b->vnc_password));
	if (b->stop_fd != -1)
		close(b->stop_fd);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
	*bp = NULL;
}

/* A copy of s, or NULL. */
static char *
build_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void
build_apply_request(struct build *b, const struct build_request *req)
{
	b->name = build_dup(req->name);
	b->chain = build_dup(req->chain);
	b->parent = build_dup(req->parent_image);
	b->iso_ref = build_dup(req->iso_image);
	b->virtio_win_ref = build_dup(req->virtio_win_image);
	b->flavor_ref = build_dup(req->flavor);
	b->os_type = build_dup(req->os_type);
	b->os_distro = build_dup(req->os_distro);
	b->os_version = build_dup(req->os_version);
	b->firmware = build_dup(req->firmware);
	b->install_mode = build_dup(req->install_mode);
	b->unattended = req->install_mode != NULL && strcmp(req->install_mode, "unattended") == 0;
	if (req->answers != NULL)
		b->answers = json_incref(req->answers);
	if (req->customize != NULL)
		b->customize = json_incref(req->customize);
	b->from_ref = build_dup(req->from_image);
	b->timeout_s = (double)req->timeout_s;
	if (req->inactivity_timeout_s >= 0)
		b->inactivity_timeout_s = (double)req->inactivity_timeout_s;
	b->compress = req->compress;
	b->visibility = build_dup(req->visibility);
	if (req->properties != NULL)
		b->properties = json_incref(req->properties);
	if (req->tags != NULL)
		b->tags = json_incref(req->tags);
}

int
build_set_state(struct build *b, enum build_state s, struct err *e, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg = NULL;

	if (fmt != NULL) {
		va_start(ap, fmt);
		msg = xvasprintf(fmt, ap);
		va_end(ap);
	}
	pthread_mutex_lock(&b->mu);
	free(b->message);
	b->message = msg;
	b->state = s;
	pthread_mutex_unlock(&b->mu);
	log_debug("build %s: %s%s%s", b->id, build_state_name(s), msg ? ": " : "",
	    msg ? msg : "");
	if (b->notifier != NULL && b->notifier->state != NULL)
		return b->notifier->state(b->notifier_ctx, b, s, msg, e);
	return 0;
}

void
build_field(struct build *b, const char *name, const char *value)
{
	if (b->notifier != NULL && b->notifier->field != NULL)
		b->notifier->field(b->notifier_ctx, b, name, value);
}

void
build_resource(struct build *b, const char *kind, const char *value, int added)
{
	if (b->notifier != NULL && b->notifier->resource != NULL)
		b->notifier->resource(b->notifier_ctx, b, kind, value, added);
}

enum build_stop
build_stopping(struct build *b)
{
	enum build_stop	 s;

	pthread_mutex_lock(&b->mu);
	s = b->stop;
	pthread_mutex_unlock(&b->mu);
	return s;
}

/* -1 with the reason when the build was asked to stop: checked between steps. */
static int
build_check_stop(struct build *b, struct err *e)
{
	switch (build_stopping(b)) {
	case BUILD_STOP_CANCEL:
		err_set(e, ERR_CANCELLED, "cancelled by the requester");
		return -1;
	case BUILD_STOP_ABANDON:
		err_set(e, ERR_CANCELLED, "the process stopped");
		return -1;
	default:
		return 0;
	}
}

/* ---- resolving, fetching ---- */

static int
build_resolve(struct build *b, struct err *e)
{
	if (b->resume == BUILD_QUEUED &&
	    build_set_state(b, BUILD_RESOLVING, e, NULL) == -1)
		return -1;
	if (b->name == NULL || (b->iso_ref == NULL && b->from_ref == NULL) ||
	    b->work_root == NULL) {
		err_set(e, ERR_INVAL, "a build needs a name, an ISO (or a base image) and a work "
		    "directory");
		return -1;
	}
	/* the build's key reaches the guest through its answer file, or a derived build's
	 * NoCloud volume: an interactive install has neither */
	if (b->customize != NULL && b->from_ref == NULL && !b->unattended) {
		err_set(e, ERR_INVAL, "customize: needs an unattended install (its answer file "
		    "gives the installed system the build's key) or a build from_image");
		return -1;
	}
	if (b->source->resolve(b->source_ctx, b, e) == -1)
		return -1;
	/* a derived build's chain is its base image's (the source set it), else the name */
	if (b->chain == NULL)
		b->chain = xstrdup(b->name);
	if (b->flavor.disk_gib == 0) {
		err_set(e, ERR_INVAL, "disk size: must be at least 1 GiB");
		return -1;
	}
	return build_check_stop(b, e);
}

static int
build_fetch(struct build *b, struct err *e)
{
	if (b->source->fetch == NULL)
		return 0;
	if (b->resume == BUILD_QUEUED && build_set_state(b, BUILD_FETCHING, e, "%s %s into the "
	    "cache", b->from_ref != NULL ? "image" : "ISO", b->from_ref != NULL ? b->from_ref :
	    b->iso_ref) == -1)
		return -1;
	if (b->source->fetch(b->source_ctx, b, e) == -1)
		return -1;
	return build_check_stop(b, e);
}

/* ---- assembling ---- */

/* What a loop_call returns. */
struct build_call {
	struct build	*b;
	int		 rc;
	struct err	 err;
	char		*xml;		/* assembling: the domain to define */
	struct virt_console console;	/* installing: the console once started */
	int		 ended;		/* installing: over before we watched (resuming) */
	double		 timeout_s;	/* starting: the run's timeout (0: none) ... */
	double		 started_at;	/* ... counted from then */
	int		 console_rc;
	struct err	 console_err;
};

/*
 * Loop thread: the guest's network and the host's rules that keep it from the host (before it
 * runs); a domain of this build left by a crashed earlier run removed; ours defined.
 */
static void
build_define_call(void *arg)
{
	struct build_call	*c = arg;
	struct build		*b = c->b;

	c->rc = -1;
	if (guestnet_prepare(b->virt, b->guest_network, b->guest_deny, &c->err) == -1)
		return;
	/* the install's domain, watched until now, makes way for the customizing one */
	virt_domain_free(&b->dom);
	if (virt_remove_by_name(b->virt, b->domain_name, &c->err) == -1)
		return;
	if ((b->dom = virt_define(b->virt, c->xml, &c->err)) == NULL)
		return;
	c->rc = 0;
}

/* Loop thread: the domain an earlier run defined (resuming). */
static void
build_lookup_call(void *arg)
{
	struct build_call	*c = arg;

	c->b->dom = virt_lookup(c->b->virt, c->b->domain_name, &c->err);
	c->rc = c->b->dom != NULL ? 0 : -1;
}


/* The build's ephemeral SSH key pair (memory only); its public line goes to the guest. */
static int
build_ssh_key(struct build *b, struct err *e)
{
	char	*comment = xasprintf("isoforge-build-%.36s", b->id);

	ssh_key_free(&b->ssh_key);
	b->ssh_key = ssh_key_new(SSH_KEY_ED25519, comment, e);
	free(comment);
	if (b->ssh_key == NULL)
		return -1;
	free(b->ssh_pubkey);
	b->ssh_pubkey = xstrdup(ssh_key_authorized(b->ssh_key));
	return 0;
}

/*
 * A derived build's assembling: the root disk is a standalone copy of the base image
 * (qemu-img convert), and the NoCloud volume hands the booting image the build's key; no
 * domain yet (customizing defines the one that boots the disk alone).
 */
static int
build_assemble_derived(struct build *b, struct err *e)
{
	char	*vol;

	/* the root disk: a work file like an installed one (cache=unsafe), no fsync */
	if (qemuimg_convert_ex(b->base, b->root_disk, 0, NULL, NULL, b->stop_fd,
	    b->step_timeout_s, 0, e) == -1)
		return -1;
	if ((vol = customize_nocloud(b->work_dir, b->id, b->ssh_pubkey, e)) == NULL)
		return -1;
	build_strv_free(&b->extra_cdroms);
	b->extra_cdroms = xcalloc(2, sizeof(*b->extra_cdroms));
	b->extra_cdroms[0] = vol;
	return build_check_stop(b, e);
}

/*
 * assembling: the work dir, a blank root disk of the flavor's size, the plan, the domain
 * defined. Resuming an install: the plan again (the same, from the same request) and the
 * domain the earlier run defined, nothing created.
 */
static int
build_assemble(struct build *b, struct err *e)
{
	struct build_call	 c;
	int			 rc = -1, fresh = b->resume == BUILD_QUEUED;

	memset(&c, 0, sizeof(c));
	c.b = b;
	if (fresh && build_set_state(b, BUILD_ASSEMBLING, e, NULL) == -1)
		return -1;
	if (b->virt == NULL) {
		err_set(e, ERR_INTERNAL, "assembling: no libvirt connection");
		return -1;
	}
	if (b->work_dir == NULL)
		b->work_dir = xasprintf("%s/%s", b->work_root, b->id);
	/* a derived build boots its disk alone: no ISO to plan with */
	if (b->base != NULL)
		b->disk_only = 1;
	if (fresh) {
		/* the build's alone: it will hold the tenant's installed system */
		if (util_mkdir_private(b->work_dir, e) == -1)
			return -1;
		build_resource(b, "dir", b->work_dir, 1);
		if (b->vnc_password_fixed == NULL)
			util_password(b->vnc_password, 8);
		/* customizing: a key of the build's own, in the answer file or NoCloud volume */
		if (b->customize != NULL && build_ssh_key(b, e) == -1)
			return -1;
	}
	if (build_make_plan(b, fresh, e) == -1)
		return -1;
	if (!fresh) {
		if (access(b->root_disk, R_OK) == -1) {
			err_set(e, ERR_NOTFOUND, "root disk %s: %s", b->root_disk, strerror(errno));
			return -1;
		}
		if (b->resume != BUILD_INSTALLING)
			return 0;	/* the install is over: its disk is all we need */
		loop_call(b->loop, build_lookup_call, &c);
		if (c.rc == -1)
			err_set(e, c.err.kind, "%s", c.err.msg);
		return c.rc;
	}
	if (b->base != NULL)
		return build_assemble_derived(b, e);
	if (qemuimg_create(b->root_disk, (unsigned long long)b->flavor.disk_gib << 30, e) == -1)
		return -1;
	if ((c.xml = build_domain_xml(b, e)) == NULL)
		return -1;
	if (build_check_stop(b, e) == -1)
		goto cleanup;
	build_field(b, "domain", b->domain_name);
	build_resource(b, "domain", b->domain_name, 1);
	loop_call(b->loop, build_define_call, &c);
	if (c.rc == -1) {
		err_set(e, c.err.kind, "%s", c.err.msg);
		goto cleanup;
	}
	rc = build_check_stop(b, e);
cleanup:
	explicit_bzero(c.xml, strlen(c.xml));	/* holds the VNC password */
	free(c.xml);
	return rc;
}

/* ---- installing ---- */

/* Loop thread: the install ended (libvirt's outcome, or ours when libvirt can't be asked). */
static void
build_end_install(struct build *b, enum virt_outcome o, const char *reason)
{
	if (b->timeout_timer) {
		loop_timer_remove(b->loop, b->timeout_timer);
		b->timeout_timer = 0;
	}
	pthread_mutex_lock(&b->mu);
	if (b->outcome == VIRT_RUNNING) {
		b->outcome = o;
		free(b->outcome_reason);
		b->outcome_reason = xstrdup(reason != NULL ? reason : "");
	}
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void
build_outcome_cb(struct virt_domain *d, enum virt_outcome o, const char *reason, void *arg)
{
	(void)d;
	build_end_install(arg, o, reason);
}

/* Loop thread: destroys the install (cancel, timeout); ends it ourselves when libvirt can't. */
static void
build_destroy_call(void *arg)
{
	struct build	*b = arg;
	struct err	 e;

	if (b->dom == NULL || virt_domain_outcome(b->dom, NULL) != VIRT_RUNNING)
		return;
	err_clear(&e);
	if (virt_cancel(b->dom, &e) == -1) {
		log_warnx("build %s: stopping the install: %s", b->id, e.msg);
		build_end_install(b, VIRT_CANCELLED, "cancelled");
	}
}

/* Loop thread: the guest is asked to shut down (finish). */
static void
build_finish_call(void *arg)
{
	struct build	*b = arg;
	struct err	 e;

	if (b->dom == NULL || virt_domain_outcome(b->dom, NULL) != VIRT_RUNNING)
		return;
	err_clear(&e);
	if (virt_finish(b->dom, b->finish_grace_s, &e) == -1)
		log_warnx("build %s: finish: %s", b->id, e.msg);
}

static void
build_timeout_cb(int id, void *arg)
{
	struct build	*b = arg;

	loop_timer_remove(b->loop, id);
	b->timeout_timer = 0;
	pthread_mutex_lock(&b->mu);
	if (b->outcome != VIRT_RUNNING) {
		pthread_mutex_unlock(&b->mu);
		return;
	}
	b->timed_out = 1;
	pthread_mutex_unlock(&b->mu);
	log_info("build %s: %s timed out", b->id, build_state_name(b->state));
	build_destroy_call(b);
}

/*
 * Loop thread: starts the domain (or watches the one an earlier run started), arms the
 * timeout, reads the console, and acts on a finish or cancel asked meanwhile.
 */
static void
build_start_call(void *arg)
{
	struct build_call	*c = arg;
	struct build		*b = c->b;
	enum build_stop		 stop;
	int			 finish;
	double			 left;

	pthread_mutex_lock(&b->mu);
	b->outcome = VIRT_RUNNING;
	b->timed_out = 0;
	free(b->outcome_reason);
	b->outcome_reason = NULL;
	pthread_mutex_unlock(&b->mu);
	if (b->resume == BUILD_INSTALLING && b->state != BUILD_CUSTOMIZING)
		c->rc = virt_watch(b->dom, build_outcome_cb, b, &c->err);
	else {
		virt_domain_autodestroy(b->dom, b->autodestroy);
		c->rc = virt_start(b->dom, build_outcome_cb, b, &c->err);
	}
	if (c->rc == -1)
		return;
	if (virt_domain_outcome(b->dom, NULL) != VIRT_RUNNING) {
		c->ended = 1;
		return;
	}
	if (c->timeout_s > 0) {
		left = c->timeout_s - (util_now() - c->started_at);
		b->timeout_timer = loop_timer_add(b->loop, left > 1 ? (int)(left * 1000) : 1000,
		    build_timeout_cb, b, NULL);
	}
	memset(&c->console, 0, sizeof(c->console));
	if (b->plan != NULL && b->plan->headless)
		c->console_rc = 0;	/* port 0: no console */
	else
		c->console_rc = virt_console_get(b->dom, 1, &c->console, &c->console_err);
	pthread_mutex_lock(&b->mu);
	stop = b->stop;
	finish = b->finish_requested;
	pthread_mutex_unlock(&b->mu);
	if (stop == BUILD_STOP_CANCEL)
		build_destroy_call(b);
	else if (finish)
		build_finish_call(b);
}

/* Records the console (with its password, for the build's own project) and says where it is. */
static char *
build_console_message(struct build *b, struct build_call *c)
{
	json_t	*j;
	char	*s, *msg;

	if (b->plan != NULL && b->plan->headless)
		return xstrdup("headless: no console (the serial log is kept)");
	if (c->console_rc == -1 || c->console.port <= 0)
		return xasprintf("no console: %s", c->console_err.msg[0] ? c->console_err.msg :
		    "no VNC port");
	j = json_pack("{s:s, s:i, s:s?}", "host", c->console.host, "port", c->console.port,
	    "password", c->console.password);
	s = json_dumps(j, JSON_COMPACT);
	build_field(b, "console", s);
	explicit_bzero(s, strlen(s));
	free(s);
	json_decref(j);
	msg = xasprintf("console on vnc://%s:%d", c->console.host, c->console.port);
	return msg;
}

/* Waits for the running domain's outcome (VIRT_RUNNING when the build is abandoned). */
static enum virt_outcome
build_boot_wait(struct build *b, int *timed_out)
{
	enum virt_outcome	 o;

	pthread_mutex_lock(&b->mu);
	while (b->outcome == VIRT_RUNNING && b->stop != BUILD_STOP_ABANDON)
		pthread_cond_wait(&b->cv, &b->mu);
	o = b->outcome;
	*timed_out = b->timed_out;
	pthread_mutex_unlock(&b->mu);
	return o;
}

/* Loop thread: what the running install has written to its root disk. */
struct build_sample {
	struct build	*b;
	long long	 written;
	int		 rc;
	struct err	 err;
};

static void
build_sample_call(void *arg)
{
	struct build_sample	*s = arg;
	struct build		*b = s->b;

	s->written = -1;
	s->rc = -1;
	if (b->dom == NULL || virt_domain_outcome(b->dom, NULL) != VIRT_RUNNING) {
		err_set(&s->err, ERR_CONFLICT, "the install is not running");
		return;
	}
	s->rc = virt_block_written(b->dom, b->root_disk, &s->written, &s->err);
}

/* Loop thread: the console's screen, as libvirt gives it. */
struct build_shot {
	struct build	*b;
	struct buf	 data;
	char		*mime;
	int		 rc;
	struct err	 err;
};

static void
build_screenshot_call(void *arg)
{
	struct build_shot	*s = arg;

	s->rc = -1;
	if (s->b->dom == NULL) {
		err_set(&s->err, ERR_CONFLICT, "no domain");
		return;
	}
	s->rc = virt_screenshot(s->b->dom, &s->data, &s->mime, &s->err);
}

/*
 * The console's screenshot as a PNG next to where the serial log is kept (LOG_DIR/<id>
 * .screenshot.png, else in the work dir), the build's owner's alone; b->screenshot names it.
 */
static int
build_screenshot(struct build *b, struct err *e)
{
	struct build_shot	 s;
	struct buf		 png;
	const unsigned char	*d;
	char			*path = NULL;
	int			 rc = -1;

	memset(&s, 0, sizeof(s));
	buf_init(&png);
	s.b = b;
	loop_call(b->loop, build_screenshot_call, &s);
	if (s.rc == -1) {
		err_set(e, s.err.kind, "%s", s.err.msg);
		return -1;
	}
	d = (const unsigned char *)s.data.data;
	if (s.data.len >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
		buf_append(&png, s.data.data, s.data.len);
	else if (png_from_ppm(s.data.data, s.data.len, &png, e) == -1)
		goto cleanup;
	if (b->log_dir != NULL) {
		if (util_mkdirs(b->log_dir, e) == -1)
			goto cleanup;
		path = xasprintf("%s/%s.screenshot.png", b->log_dir, b->id);
	} else
		path = xasprintf("%s/screenshot.png", b->work_dir);
	if (util_write_file(path, png.data, png.len, 0600, e) == -1)
		goto cleanup;
	free(b->screenshot);
	b->screenshot = path;
	path = NULL;
	rc = 0;
cleanup:
	free(path);
	free(s.mime);
	buf_free(&s.data);
	buf_free(&png);
	return rc;
}

/* A report of the running install to the notifier (or, without activity, as a state). */
static void
build_report(struct build *b, const struct build_activity *a)
{
	struct err	 e;

	if (b->notifier != NULL && b->notifier->activity != NULL) {
		b->notifier->activity(b->notifier_ctx, b, a);
		return;
	}
	if (a->first) {
		log_info("build %s: serial log %s", b->id, a->serial_log);
		return;
	}
	err_clear(&e);
	if (build_set_state(b, BUILD_INSTALLING, &e, "%s", a->text) == -1)
		log_warnx("build %s: progress not recorded: %s", b->id, e.msg);
}

/* How often the running install is looked at: often enough for its reports and watchdog. */
static double
build_watch_period(const struct build *b, double inactivity)
{
	double	 p = 5;

	if (b->progress_interval_s > 0 && b->progress_interval_s < p)
		p = b->progress_interval_s;
	if (inactivity > 0 && inactivity / 10 < p)
		p = inactivity / 10;
	return p < 0.5 ? 0.5 : p;
}

/* The inactivity watchdog's timeout of this build (resolving the default). */
static double
build_inactivity(const struct build *b)
{
	if (b->inactivity_timeout_s >= 0)
		return b->inactivity_timeout_s;
	return b->unattended ? BUILD_DEFAULT_INACTIVITY : 0;
}

/*
 * Waits for the install's outcome (as build_boot_wait), looking at it meanwhile: the bytes
 * the guest has written to its root disk and the serial log's size and last line; a report
 * every progress interval; and the inactivity watchdog: no disk write and no new console
 * output for the build's inactivity timeout takes a screenshot of the console and destroys
 * the guest (*stall then holds the reason; caller frees).
 */
static enum virt_outcome
build_install_watch(struct build *b, int *timed_out, char **stall)
{
	struct build_sample	 s;
	struct build_activity	 a;
	struct timespec		 ts;
	enum virt_outcome	 o;
	struct err		 e;
	double			 inactivity = build_inactivity(b), period, now, last_active;
	double			 next_report, wait;
	long long		 written = -1, size = -1, seen_written = -1, seen_size = -1;
	char			 line[WATCH_LINE_MAX], *text;
	int			 running, warned = 0;

	*stall = NULL;
	period = build_watch_period(b, inactivity);
	memset(&a, 0, sizeof(a));
	a.first = 1;
	a.serial_log = b->serial_log;
	a.console = "";
	a.text = "";
	a.written = -1;
	if (b->serial_log != NULL)
		build_report(b, &a);
	now = util_now();
	last_active = now;
	next_report = b->progress_interval_s > 0 ? now + b->progress_interval_s : 0;
	for (;;) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)period;
		ts.tv_nsec += (long)((period - (double)(long)period) * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&b->mu);
		while (b->outcome == VIRT_RUNNING && b->stop != BUILD_STOP_ABANDON)
			if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT)
				break;
		o = b->outcome;
		running = o == VIRT_RUNNING && b->stop != BUILD_STOP_ABANDON;
		*timed_out = b->timed_out;
		pthread_mutex_unlock(&b->mu);
		if (!running)
			return o;
		if (*stall != NULL)
			continue;	/* the guest is being destroyed */
		memset(&s, 0, sizeof(s));
		s.b = b;
		loop_call(b->loop, build_sample_call, &s);
		if (s.rc == 0)
			written = s.written;
		else if (!warned++)
			log_warnx("build %s: %s", b->id, s.err.msg);
		line[0] = '\0';
		if (b->serial_log != NULL)
			(void)watch_serial_tail(b->serial_log, line, sizeof(line), &size);
		now = util_now();
		if (written != seen_written || size != seen_size) {
			last_active = now;
			seen_written = written;
			seen_size = size;
		}
		if (next_report > 0 && now >= next_report) {
			text = watch_progress_text(now - b->install_started_at, written, line);
			a.first = 0;
			a.elapsed_s = now - b->install_started_at;
			a.written = written;
			a.console = line;
			a.text = text;
			build_report(b, &a);
			free(text);
			/* the next one on the interval's grid, however long this took */
			while (next_report <= now)
				next_report += b->progress_interval_s;
		}
		wait = now - last_active;
		if (inactivity > 0 && wait >= inactivity) {
			err_clear(&e);
			if (build_screenshot(b, &e) == 0)
				*stall = xasprintf("no disk writes and no console output for %.0f s; "
				    "the console's screenshot: %s", inactivity, b->screenshot);
			else
				*stall = xasprintf("no disk writes and no console output for %.0f s "
				    "(no screenshot: %s)", inactivity, e.msg);
			/* the failure says it (the worker's log has it from there) */
			log_debug("build %s: %s", b->id, *stall);
			loop_call(b->loop, build_destroy_call, b);
		}
	}
}

/*
 * installing: starts the domain on the loop thread and waits for its outcome: a guest
 * power-off (or a finish) → 0; destroyed, crashed, paused → -1 ERR_IO; the timeout →
 * ERR_TIMEOUT; a cancel → ERR_CANCELLED. An abandon returns at once, the guest running on.
 */
static int
build_install(struct build *b, struct err *e)
{
	struct build_call	 c;
	enum virt_outcome	 o;
	char			*msg, *console, *stall = NULL;
	int			 rc = -1, timed_out;

	memset(&c, 0, sizeof(c));
	c.b = b;
	if (build_check_stop(b, e) == -1)
		return -1;
	if (b->install_started_at == 0)
		b->install_started_at = util_now();
	c.timeout_s = b->timeout_s;
	c.started_at = b->install_started_at;
	loop_call(b->loop, build_start_call, &c);
	if (c.rc == -1) {
		err_set(e, c.err.kind, "%s", c.err.msg);
		goto cleanup;
	}
	/* only a worker resumes builds: a local build's guest dies with its process */
	if (c.ended)
		msg = xstrdup("watched again after a restart: the guest stopped while the "
		    "worker was down");
	else {
		console = build_console_message(b, &c);
		/* the path is the builder's: the notifier's to show (build_install_watch) */
		msg = xasprintf("%s%s%s", b->resume == BUILD_INSTALLING ? "watched again after "
		    "a restart; " : "", console, b->serial_log != NULL ? "; serial log kept" : "");
		free(console);
	}
	rc = build_set_state(b, BUILD_INSTALLING, e, "%s", msg);
	free(msg);
	if (rc == -1) {
		build_request_stop(b, BUILD_STOP_CANCEL);
		rc = -1;
	}
	o = build_install_watch(b, &timed_out, &stall);
	if (rc == -1)
		goto cleanup;
	rc = -1;
	build_field(b, "console", NULL);
	switch (o) {
	case VIRT_RUNNING:
		err_set(e, ERR_CANCELLED, "the process stopped");
		break;
	case VIRT_POWEROFF:
	case VIRT_FINISHED:
		log_info("build %s: install done (%s) after %.1f s", b->id, b->outcome_reason,
		    util_now() - b->install_started_at);
		rc = 0;
		break;
	case VIRT_CANCELLED:
		if (stall != NULL)
			err_set(e, ERR_TIMEOUT, "install stalled: %s", stall);
		else if (timed_out)
			err_set(e, ERR_TIMEOUT, "install timed out after %.0f s", b->timeout_s);
		else
			err_set(e, ERR_CANCELLED, "cancelled by the requester");
		break;
	default:
		err_set(e, ERR_IO, "install failed: %s", b->outcome_reason);
		break;
	}
	if (rc == 0)
		rc = build_check_stop(b, e);
cleanup:
	free(stall);
	virt_console_clear(&c.console);
	return rc;
}

/* ---- customizing ---- */

/* Loop thread: the customizing guest's address, once it has a lease. */
struct build_addr {
	struct build	*b;
	char		*ip;
	struct err	 err;
};

static void
build_addr_call(void *arg)
{
	struct build_addr	*a = arg;

	if (a->b->dom != NULL)
		a->ip = virt_domain_ipv4(a->b->dom, &a->err);
}

/* The booting guest's IPv4 address; NULL when it stopped, the build stops or the deadline
 * passes (e). Caller frees. */
static char *
build_guest_address(struct build *b, double deadline, struct err *e)
{
	struct build_addr	 a;
	enum virt_outcome	 o;

	for (;;) {
		memset(&a, 0, sizeof(a));
		a.b = b;
		loop_call(b->loop, build_addr_call, &a);
		if (a.ip != NULL)
			return a.ip;
		pthread_mutex_lock(&b->mu);
		o = b->outcome;
		pthread_mutex_unlock(&b->mu);
		if (o != VIRT_RUNNING) {
			err_set(e, ERR_IO, "customizing: the guest stopped before it had an address");
			return NULL;
		}
		if (util_now() >= deadline) {
			err_set(e, ERR_TIMEOUT, "customizing: the guest got no address (DHCP)");
			return NULL;
		}
		if (util_wait_fd(b->stop_fd, 1.0)) {
			build_check_stop(b, e);
			return NULL;
		}
	}
}

/* A script's output line: the build's customize log and the log. */
struct build_lines {
	struct build	*b;
	const char	*script;
	FILE		*f;
};

static void
build_customize_line(void *arg, int stream, const char *line)
{
	struct build_lines	*l = arg;

	log_info("build %s: %s%s: %s", l->b->id, l->script, stream == 2 ? " (stderr)" : "",
	    line);
	if (l->f != NULL)
		fprintf(l->f, "%s%s: %s\n", l->script, stream == 2 ? " (stderr)" : "", line);
}

/* In the guest: the files, then the scripts in order; the key removed; power-off. */
static int
build_customize_guest(struct build *b, struct ssh_conn *conn, struct err *e)
{
	struct ssh_run_opts	 ro;
	struct ssh_run_result	 res;
	struct build_lines	 l;
	const char		*name, *path, *content;
	char			**env, *text;
	size_t			 i, n, len;
	int			 rc = -1, mode, ok;

	memset(&l, 0, sizeof(l));
	l.b = b;
	l.f = fopen(b->customize_log, "ae");
	env = customize_env(b->customize, b->id);
	/* the files first: scripts may use them */
	for (i = 0; i < customize_nfiles(b->customize); i++) {
		customize_file(b->customize, i, &path, &content, &len, &mode);
		if (ssh_put_data(conn, content, len, path, mode, 60, e) == -1)
			goto cleanup;
	}
	n = customize_nscripts(b->customize);
	for (i = 0; i < n; i++) {
		if (customize_script(b->customize, i, b->templates != NULL ? b->templates :
		    templates_dir(), &name, &text, &len, e) == -1)
			goto cleanup;
		memset(&ro, 0, sizeof(ro));
		ro.on_line = build_customize_line;
		ro.arg = &l;
		ro.env = (const char *const *)env;
		l.script = name;
		memset(&res, 0, sizeof(res));
		ok = ssh_run_script(conn, name, text, len, &ro, &res, e) == 0;
		free(text);
		ssh_run_result_free(&res);
		if (!ok || build_set_state(b, BUILD_CUSTOMIZING, e, "script %s: done (%zu of %zu)",
		    name, i + 1, n) == -1)
			goto cleanup;
	}
	/* the build's key leaves the image it makes */
	if (ssh_remove_key(conn, NULL, NULL, e) == -1 || ssh_poweroff(conn, NULL, 60, e) == -1)
		goto cleanup;
	rc = 0;
cleanup:
	if (l.f != NULL)
		fclose(l.f);
	customize_env_free(&env);
	return rc;
}

/*
 * customizing: the installed disk booted alone (its CD-ROMs gone; a derived build's NoCloud
 * volume with the key) on the guest network, reached over SSH from the builder host with the
 * build's key, the request's scripts run and files copied, the key removed, powered off; all
 * within the step's timeout. A script that fails fails the build with its status and last
 * lines.
 */
static int
build_customize(struct build *b, struct err *e)
{
	struct build_call	 c;
	struct ssh_opts		 so;
	struct ssh_conn		*conn = NULL;
	enum virt_outcome	 o;
	double			 timeout = customize_timeout(b->customize), deadline;
	char			*ip = NULL;
	int			 rc = -1, timed_out;

	memset(&c, 0, sizeof(c));
	c.b = b;
	if (build_set_state(b, BUILD_CUSTOMIZING, e, "booting the installed system alone") == -1)
		return -1;
	free(b->customize_log);
	b->customize_log = xasprintf("%s/customize.log", b->work_dir);
	b->disk_only = 1;
	if (build_make_plan(b, 0, e) == -1 || (c.xml = build_domain_xml(b, e)) == NULL)
		return -1;
	loop_call(b->loop, build_define_call, &c);
	explicit_bzero(c.xml, strlen(c.xml));
	if (c.rc == -1) {
		err_set(e, c.err.kind, "%s", c.err.msg);
		goto cleanup;
	}
	build_field(b, "domain", b->domain_name);
	build_resource(b, "domain", b->domain_name, 1);
	c.timeout_s = timeout;
	c.started_at = util_now();
	deadline = c.started_at + timeout;
	loop_call(b->loop, build_start_call, &c);
	if (c.rc == -1) {
		err_set(e, c.err.kind, "%s", c.err.msg);
		goto cleanup;
	}
	if ((ip = build_guest_address(b, deadline, e)) != NULL) {
		log_info("build %s: customizing the guest at %s", b->id, ip);
		memset(&so, 0, sizeof(so));
		so.host = ip;
		so.port = 22;
		so.key = b->ssh_key;
		so.wait_s = deadline - util_now();
		so.deadline = deadline;
		so.cancel_fd = b->stop_fd;
		if ((conn = ssh_connect(&so, e)) != NULL)
			rc = build_customize_guest(b, conn, e);
		ssh_close(&conn);
	}
	/* failed: the guest goes at once; done: it powers off by itself */
	if (rc == -1)
		loop_call(b->loop, build_destroy_call, b);
	o = build_boot_wait(b, &timed_out);
	if (rc == -1)
		goto cleanup;
	rc = -1;
	if (o == VIRT_RUNNING)
		err_set(e, ERR_CANCELLED, "the process stopped");
	else if (timed_out)
		err_set(e, ERR_TIMEOUT, "customizing timed out after %.0f s", timeout);
	else if (o == VIRT_CANCELLED)
		err_set(e, ERR_CANCELLED, "cancelled by the requester");
	else if (o != VIRT_POWEROFF && o != VIRT_FINISHED)
		err_set(e, ERR_IO, "customizing: the guest %s", b->outcome_reason);
	else
		rc = build_check_stop(b, e);
cleanup:
	free(c.xml);
	free(ip);
	virt_console_clear(&c.console);
	return rc;
}

void
build_request_finish(struct build *b)
{
	pthread_mutex_lock(&b->mu);
	b->finish_requested = 1;
	pthread_mutex_unlock(&b->mu);
	if (b->loop != NULL)
		loop_call(b->loop, build_finish_call, b);
}

void
build_request_stop(struct build *b, enum build_stop how)
{
	uint64_t	 one = 1;

	pthread_mutex_lock(&b->mu);
	if (b->stop != BUILD_STOP_NONE) {
		pthread_mutex_unlock(&b->mu);
		return;
	}
	b->stop = how;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	/* children (qemu-img) and transfers watch stop_fd */
	(void)!write(b->stop_fd, &one, sizeof(one));
	if (how == BUILD_STOP_CANCEL && b->loop != NULL)
		loop_call(b->loop, build_destroy_call, b);
}

struct build_console_call {
	struct build		*b;
	int			 want_password;
	struct virt_console	*c;
	int			 rc;
	struct err		 err;
};

static void
build_console_call(void *arg)
{
	struct build_console_call	*cc = arg;

	if (cc->b->dom == NULL) {
		err_set(&cc->err, ERR_CONFLICT, "build %s has no domain", cc->b->id);
		cc->rc = -1;
		return;
	}
	cc->rc = virt_console_get(cc->b->dom, cc->want_password, cc->c, &cc->err);
}

int
build_console(struct build *b, int want_password, struct virt_console *c, struct err *e)
{
	struct build_console_call	 cc;

	memset(&cc, 0, sizeof(cc));
	memset(c, 0, sizeof(*c));
	cc.b = b;
	cc.want_password = want_password;
	cc.c = c;
	loop_call(b->loop, build_console_call, &cc);
	if (cc.rc == -1)
		err_set(e, cc.err.kind, "%s", cc.err.msg);
	return cc.rc;
}

/* ---- snapshotting, uploading ---- */

static void
build_convert_progress(void *arg, double pct)
{
	struct build	*b = arg;

	if (b->notifier != NULL && b->notifier->progress != NULL)
		b->notifier->progress(b->notifier_ctx, b, pct);
}

/* snapshotting: qemu-img convert -O qcow2 [-c] of the root disk (stoppable, with a timeout). */
static int
build_snapshot(struct build *b, struct err *e)
{
	if (build_set_state(b, BUILD_SNAPSHOTTING, e, NULL) == -1)
		return -1;
	free(b->snapshot);
	b->snapshot = xasprintf("%s/image.qcow2", b->work_dir);
	/* no fsync: a resumed build converts again; the registry keeps (and syncs) its copy */
	if (qemuimg_convert_ex(b->root_disk, b->snapshot, b->compress, build_convert_progress, b,
	    b->stop_fd, b->step_timeout_s, 0, e) == -1)
		return -1;
	/* no digests here: nothing used them (Glance computes its own from what it receives;
	 * the local store hashes while it syncs) */
	return build_check_stop(b, e);
}

/* uploading: the properties, then the registry's next version of the chain. */
static int
build_upload(struct build *b, struct err *e)
{
	char	 stamp[32];

	if (build_set_state(b, BUILD_UPLOADING, e, "version of chain %s", b->chain) == -1)
		return -1;
	if (b->iso_hash_job != NULL) {
		char	 sha[129];

		if (hash_job_wait(&b->iso_hash_job, sha, NULL, e) == -1)
			return -1;
		free(b->iso_hash);
		b->iso_hash = xstrdup(sha);
	}
	util_utc_stamp(stamp);
	json_decref(b->image_properties);
	b->image_properties = build_image_properties(b, stamp);
	if (b->registry->add(b->registry_ctx, b, b->snapshot, b->image_properties, e) == -1)
		return -1;
	/* the registry has the data now */
	free(b->snapshot);
	b->snapshot = NULL;
	json_object_set_new(b->image_properties, "isoforge_chain", json_string(b->chain));
	json_object_set_new(b->image_properties, "isoforge_version",
	    json_sprintf("%d", b->version));
	build_field(b, "image_id", b->image_id);
	return 0;
}

/* ---- the clean-up ---- */

/* Loop thread: undefines the build's domain (destroying it when it runs). */
static void
build_undefine_call(void *arg)
{
	struct build_call	*c = arg;
	struct build		*b = c->b;

	if (b->dom != NULL) {
		c->rc = virt_undefine(b->dom, &c->err);
		virt_domain_free(&b->dom);
	} else
		c->rc = virt_remove_by_name(b->virt, b->domain_name, &c->err);
}

/* Moves the work dir's log *path to LOG_DIR/<id>.suffix (then *path names it there). */
static void
build_keep_log(struct build *b, char **path, const char *suffix)
{
	struct err	 e;
	char		*kept;

	if (*path == NULL || b->log_dir == NULL || access(*path, F_OK) != 0)
		return;
	kept = xasprintf("%s/%s.%s", b->log_dir, b->id, suffix);
	err_clear(&e);
	if (util_mkdirs(b->log_dir, &e) == -1 || rename(*path, kept) == -1) {
		log_warnx("build %s: keeping %s in %s: %s", b->id, suffix, kept,
		    e.msg[0] ? e.msg : strerror(errno));
		free(kept);
		return;
	}
	free(*path);
	*path = kept;
}

/*
 * Undefines the domain and removes the work files, whatever the state; the serial log moves
 * to log_dir. What could not be removed stays recorded (the notifier's resources) and is
 * logged.
 */
static void
build_cleanup(struct build *b)
{
	struct build_call	 c;
	struct err		 e;

	memset(&c, 0, sizeof(c));
	c.b = b;
	/* a resumed build that failed before its plan: its domain and work dir all the same */
	if (b->resume != BUILD_QUEUED && b->domain_name == NULL)
		b->domain_name = xasprintf("isoforge-%s", b->id);
	if (b->resume != BUILD_QUEUED && b->work_dir == NULL && b->work_root != NULL)
		b->work_dir = xasprintf("%s/%s", b->work_root, b->id);
	if (b->domain_name != NULL && b->virt != NULL) {
		loop_call(b->loop, build_undefine_call, &c);
		if (c.rc == -1)
			log_warnx("build %s: removing domain %s: %s", b->id, b->domain_name,
			    c.err.msg);
		else
			build_resource(b, "domain", b->domain_name, 0);
	}
	/* the serial log and the scripts' output stay with the build */
	build_keep_log(b, &b->serial_log, "console.log");
	build_keep_log(b, &b->customize_log, "customize.log");
	if (b->work_dir != NULL && b->work_root != NULL) {
		err_clear(&e);
		if (util_rmtree(b->work_dir, &e) == -1)
			log_warnx("build %s: %s", b->id, e.msg);
		else
			build_resource(b, "dir", b->work_dir, 0);
	}
	free(b->snapshot);
	b->snapshot = NULL;
}

/* An earlier run of this very build registered its image (a request delivered twice). */
static int
build_done_before(struct build *b)
{
	struct err	 e;
	char		*id;

	/* a new build, or one whose upload may have ended just before a crash */
	if (b->registry->find_built == NULL || b->resume == BUILD_INSTALLING)
		return 0;
	err_clear(&e);
	if ((id = b->registry->find_built(b->registry_ctx, b, &e)) == NULL)
		return 0;
	free(b->image_id);
	b->image_id = id;
	build_field(b, "image_id", id);
	return 1;
}

int
build_run(struct build *b)
{
	struct err	 e, se;
	int		 rc;

	err_clear(&e);
	rc = build_resolve(b, &e);
	if (rc == 0 && build_done_before(b)) {
		err_clear(&se);
		(void)build_set_state(b, BUILD_ACTIVE, &se, "built before: image %s", b->image_id);
		return 0;
	}
	if (rc == 0)
		rc = build_fetch(b, &e);
	if (rc == 0)
		rc = build_assemble(b, &e);
	/* a derived build has no install: its disk is a copy of the base image */
	if (rc == 0 && b->resume != BUILD_SNAPSHOTTING && b->base == NULL)
		rc = build_install(b, &e);
	if (rc == 0 && b->resume != BUILD_SNAPSHOTTING && b->customize != NULL)
		rc = build_customize(b, &e);
	if (rc == 0)
		rc = build_snapshot(b, &e);
	if (rc == 0)
		rc = build_upload(b, &e);
	if (rc == -1 && build_stopping(b) == BUILD_STOP_ABANDON) {
		log_info("build %s: left %s for a later run", b->id, build_state_name(b->state));
		return -1;
	}
	build_cleanup(b);
	err_clear(&se);
	if (rc == 0)
		(void)build_set_state(b, BUILD_ACTIVE, &se, "image %s, version %d of chain %s",
		    b->image_id, b->version, b->chain);
	else if (e.kind == ERR_CANCELLED)
		(void)build_set_state(b, BUILD_CANCELLED, &se, "%s", e.msg);
	else
		(void)build_set_state(b, BUILD_FAILED, &se, "%s", e.msg);
	if (se.kind != ERR_NONE)
		log_warnx("build %s: the end not recorded: %s", b->id, se.msg);
	return rc;
}

json_t *
build_image_record(struct build *b, struct err *e)
{
	if (b->image_id == NULL || b->registry == NULL || b->registry->get == NULL) {
		err_set(e, ERR_NOTFOUND, "build %s has no image", b->id);
		return NULL;
	}
	return b->registry->get(b->registry_ctx, b->image_id, e);
}
