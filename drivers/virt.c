/* virt.c — libvirt: event impl on our loop, connection with reconnect, domain outcomes, consoles. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include "drivers/virt.h"
#include "base/log.h"

struct virt {
	struct loop		 *loop;
	char			 *uri;
	virConnectPtr		  conn;
	int			  lifecycle_id;	/* connection-wide lifecycle callback, -1 none */
	int			  close_registered;
	int			  reconnect_timer;	/* loop timer id, 0 none */
	int			  generation;
	struct virt_domain	**doms;		/* watched domains */
	size_t			  ndoms;
};

struct virt_domain {
	struct virt		*v;
	char			*name;
	virDomainPtr		 dom;
	int			 watched;	/* in v->doms */
	int			 finishing;
	int			 cancelling;
	int			 grace_timer;
	int			 deliver_timer;
	int			 pause_timer;
	int			 pause_detail;
	int			 autodestroy;
	enum virt_outcome	 outcome;
	char			*reason;
	virt_outcome_cb		 cb;
	void			*arg;
};

static struct loop *virt_loop;

/* How long a pause may stand before it counts, so a crash that pauses first is told as one. */
#define VIRT_PAUSE_SETTLE_MS	1000

/* The one place a virError becomes a struct err. */
static void
virt_error(struct err *e, const char *what)
{
	const virError	*ve = virGetLastError();
	enum err_kind	 kind = ERR_IO;

	if (ve == NULL) {
		err_set(e, ERR_IO, "%s: unknown libvirt error", what);
		return;
	}
	switch (ve->code) {
	case VIR_ERR_NO_DOMAIN:
	case VIR_ERR_NO_NETWORK:
	case VIR_ERR_NO_SUPPORT:
		kind = ERR_NOTFOUND;
		break;
	case VIR_ERR_OPERATION_INVALID:
	case VIR_ERR_OPERATION_FAILED:
		kind = ERR_CONFLICT;
		break;
	case VIR_ERR_XML_ERROR:
	case VIR_ERR_XML_DETAIL:
	case VIR_ERR_INVALID_ARG:
	case VIR_ERR_CONFIG_UNSUPPORTED:
		kind = ERR_INVAL;
		break;
	case VIR_ERR_NO_CONNECT:
	case VIR_ERR_RPC:
	case VIR_ERR_SYSTEM_ERROR:
	case VIR_ERR_AUTH_FAILED:
		kind = ve->domain == VIR_FROM_RPC || ve->domain == VIR_FROM_REMOTE ?
		    ERR_NET : ERR_IO;
		break;
	default:
		break;
	}
	err_set(e, kind, "%s: %s", what, ve->message ? ve->message : "libvirt error");
	virResetLastError();
}

/* libvirt prints every error to stderr by default; we report them through struct err. */
static void
virt_silent(void *arg, virErrorPtr ve)
{
	(void)arg;
	(void)ve;
}

/* ---- libvirt's event implementation on base/loop ---- */

struct virt_ev {
	virEventHandleCallback	 hcb;
	virEventTimeoutCallback	 tcb;
	void			*opaque;
	virFreeCallback		 ff;
};

static void
virt_ev_free(void *arg)
{
	struct virt_ev *ev = arg;

	if (ev->ff != NULL)
		ev->ff(ev->opaque);
	free(ev);
}

static void
virt_ev_fd(int id, int fd, int events, void *arg)
{
	struct virt_ev *ev = arg;

	ev->hcb(id, fd, events, ev->opaque);
}

static void
virt_ev_timer(int id, void *arg)
{
	struct virt_ev *ev = arg;

	ev->tcb(id, ev->opaque);
}

static int
virt_add_handle(int fd, int events, virEventHandleCallback cb, void *opaque, virFreeCallback ff)
{
	struct virt_ev	*ev = xcalloc(1, sizeof(*ev));
	int		 id;

	ev->hcb = cb;
	ev->opaque = opaque;
	ev->ff = ff;
	if ((id = loop_watch_add(virt_loop, fd, events, virt_ev_fd, ev, virt_ev_free)) == -1)
		free(ev);
	return id;
}

static void
virt_update_handle(int id, int events)
{
	loop_watch_update(virt_loop, id, events);
}

static int
virt_remove_handle(int id)
{
	return loop_watch_remove(virt_loop, id);
}

static int
virt_add_timeout(int ms, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
	struct virt_ev	*ev = xcalloc(1, sizeof(*ev));
	int		 id;

	ev->tcb = cb;
	ev->opaque = opaque;
	ev->ff = ff;
	if ((id = loop_timer_add(virt_loop, ms, virt_ev_timer, ev, virt_ev_free)) == -1)
		free(ev);
	return id;
}

static void
virt_update_timeout(int id, int ms)
{
	loop_timer_update(virt_loop, id, ms);
}

static int
virt_remove_timeout(int id)
{
	return loop_timer_remove(virt_loop, id);
}

int
virt_event_init(struct loop *l, struct err *e)
{
	if (virt_loop != NULL) {
		if (virt_loop == l)
			return 0;
		err_set(e, ERR_INTERNAL, "libvirt events already run on another loop");
		return -1;
	}
	virt_loop = l;
	/* a libvirtd that goes away must be a closed connection, not a dead process */
	signal(SIGPIPE, SIG_IGN);
	virSetErrorFunc(NULL, virt_silent);
	virEventRegisterImpl(virt_add_handle, virt_update_handle, virt_remove_handle,
	    virt_add_timeout, virt_update_timeout, virt_remove_timeout);
	if (virInitialize() == -1) {
		virt_error(e, "virInitialize");
		return -1;
	}
	return 0;
}

/* ---- outcomes ---- */

static void
virt_deliver_cb(int id, void *arg)
{
	struct virt_domain *d = arg;

	loop_timer_remove(d->v->loop, id);
	d->deliver_timer = 0;
	if (d->cb != NULL)
		d->cb(d, d->outcome, d->reason, d->arg);
}

/* Records the outcome once and calls the owner's callback from the loop, outside libvirt's. */
static void
virt_set_outcome(struct virt_domain *d, enum virt_outcome o, const char *reason)
{
	if (d->outcome != VIRT_RUNNING)
		return;
	d->outcome = o;
	d->reason = xstrdup(reason);
	log_debug("domain %s: outcome %d (%s)", d->name, (int)o, reason);
	if (d->grace_timer) {
		loop_timer_remove(d->v->loop, d->grace_timer);
		d->grace_timer = 0;
	}
	if (d->pause_timer) {
		loop_timer_remove(d->v->loop, d->pause_timer);
		d->pause_timer = 0;
	}
	if (d->cb != NULL && d->deliver_timer == 0)
		d->deliver_timer = loop_timer_add(d->v->loop, 0, virt_deliver_cb, d, NULL);
}

static const char *
virt_suspended_reason(int detail)
{
	switch (detail) {
	case VIR_DOMAIN_EVENT_SUSPENDED_PAUSED:		return "paused";
	case VIR_DOMAIN_EVENT_SUSPENDED_IOERROR:	return "paused: disk I/O error";
	case VIR_DOMAIN_EVENT_SUSPENDED_WATCHDOG:	return "paused: watchdog fired";
	case VIR_DOMAIN_EVENT_SUSPENDED_API_ERROR:	return "paused: libvirt API error";
	default:					return "paused (emulation failure or migration)";
	}
}

/* A pause that lasted VIRT_PAUSE_SETTLE_MS without a crash or a resume fails the install. */
static void
virt_pause_cb(int id, void *arg)
{
	struct virt_domain	*d = arg;
	int			 state, reason;

	loop_timer_remove(d->v->loop, id);
	d->pause_timer = 0;
	if (d->outcome != VIRT_RUNNING || d->cancelling)
		return;
	if (d->dom == NULL || virDomainGetState(d->dom, &state, &reason, 0) == -1) {
		virResetLastError();
		virt_set_outcome(d, VIRT_FAILED, virt_suspended_reason(d->pause_detail));
		return;
	}
	if (state == VIR_DOMAIN_CRASHED ||
	    (state == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_CRASHED))
		virt_set_outcome(d, VIRT_FAILED, "guest crashed (kernel panic)");
	else if (state == VIR_DOMAIN_PAUSED)
		virt_set_outcome(d, VIRT_FAILED, virt_suspended_reason(d->pause_detail));
}

/* Maps a stop (event detail or shut-off state reason, same meaning) to an outcome. */
static void
virt_stopped(struct virt_domain *d, int how)
{
	switch (how) {
	case 0:	/* shut down by the guest */
		if (d->finishing)
			virt_set_outcome(d, VIRT_FINISHED, "guest shut down on request");
		else
			virt_set_outcome(d, VIRT_POWEROFF, "guest powered off");
		break;
	case 1:	/* destroyed */
		if (d->cancelling)
			virt_set_outcome(d, VIRT_CANCELLED, "cancelled");
		else if (d->finishing)
			virt_set_outcome(d, VIRT_FINISHED, "destroyed after the shutdown grace period");
		else
			virt_set_outcome(d, VIRT_FAILED, "domain destroyed");
		break;
	case 2:
		virt_set_outcome(d, VIRT_FAILED, "guest crashed");
		break;
	case 3:
		virt_set_outcome(d, VIRT_FAILED, "emulator failed");
		break;
	default:
		virt_set_outcome(d, VIRT_FAILED, "domain stopped (saved, migrated or restored)");
		break;
	}
}

static struct virt_domain *
virt_watched(struct virt *v, const char *name)
{
	size_t	 i;

	for (i = 0; i < v->ndoms; i++)
		if (strcmp(v->doms[i]->name, name) == 0)
			return v->doms[i];
	return NULL;
}

static int
virt_lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct virt		*v = opaque;
	struct virt_domain	*d;
	const char		*name = virDomainGetName(dom);

	(void)conn;
	log_debug("domain %s: lifecycle event %d detail %d", name ? name : "?", event, detail);
	if (name == NULL || (d = virt_watched(v, name)) == NULL)
		return 0;
	switch (event) {
	case VIR_DOMAIN_EVENT_STOPPED:
		switch (detail) {
		case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:	virt_stopped(d, 0); break;
		case VIR_DOMAIN_EVENT_STOPPED_DESTROYED:	virt_stopped(d, 1); break;
		case VIR_DOMAIN_EVENT_STOPPED_CRASHED:	virt_stopped(d, 2); break;
		case VIR_DOMAIN_EVENT_STOPPED_FAILED:	virt_stopped(d, 3); break;
		default:				virt_stopped(d, 4); break;
		}
		break;
	case VIR_DOMAIN_EVENT_SUSPENDED:
		/*
		 * A guest panic pauses the vCPUs before libvirt reports the crash: wait a
		 * moment so the crash, not the pause, is the reason given.
		 */
		if (!d->cancelling && d->pause_timer == 0) {
			d->pause_detail = detail;
			d->pause_timer = loop_timer_add(v->loop, VIRT_PAUSE_SETTLE_MS,
			    virt_pause_cb, d, NULL);
		}
		break;
	case VIR_DOMAIN_EVENT_CRASHED:
		virt_set_outcome(d, VIRT_FAILED, "guest crashed (kernel panic)");
		break;
	default:
		break;
	}
	return 0;
}

/* Looks at a watched domain's current state (after a reconnect) and derives an outcome. */
static void
virt_check_state(struct virt_domain *d)
{
	int	 state, reason;

	if (d->dom == NULL || virDomainGetState(d->dom, &state, &reason, 0) == -1) {
		virResetLastError();
		virt_set_outcome(d, VIRT_FAILED, "domain vanished while libvirtd was away");
		return;
	}
	switch (state) {
	case VIR_DOMAIN_SHUTOFF:
		switch (reason) {
		case VIR_DOMAIN_SHUTOFF_SHUTDOWN:	virt_stopped(d, 0); break;
		case VIR_DOMAIN_SHUTOFF_DESTROYED:	virt_stopped(d, 1); break;
		case VIR_DOMAIN_SHUTOFF_CRASHED:	virt_stopped(d, 2); break;
		case VIR_DOMAIN_SHUTOFF_FAILED:		virt_stopped(d, 3); break;
		default:				virt_stopped(d, 4); break;
		}
		break;
	case VIR_DOMAIN_PAUSED:
		if (!d->cancelling)
			virt_set_outcome(d, VIRT_FAILED, reason == VIR_DOMAIN_PAUSED_CRASHED ?
			    "guest crashed (kernel panic)" : "paused");
		break;
	case VIR_DOMAIN_CRASHED:
		virt_set_outcome(d, VIRT_FAILED, "guest crashed");
		break;
	default:
		break;
	}
}

/* ---- connection ---- */

static void virt_close_cb(virConnectPtr, int, void *);

static void
virt_disconnect(struct virt *v)
{
	size_t	 i;

	if (v->conn == NULL)
		return;
	for (i = 0; i < v->ndoms; i++)
		if (v->doms[i]->dom != NULL) {
			virDomainFree(v->doms[i]->dom);
			v->doms[i]->dom = NULL;
		}
	if (v->lifecycle_id >= 0)
		(void)virConnectDomainEventDeregisterAny(v->conn, v->lifecycle_id);
	if (v->close_registered)
		(void)virConnectUnregisterCloseCallback(v->conn, virt_close_cb);
	v->lifecycle_id = -1;
	v->close_registered = 0;
	virResetLastError();
	virConnectClose(v->conn);
	v->conn = NULL;
}

static int
virt_connect(struct virt *v, struct err *e)
{
	size_t	 i;

	if ((v->conn = virConnectOpen(v->uri)) == NULL) {
		virt_error(e, v->uri ? v->uri : "virConnectOpen");
		return -1;
	}
	if (virConnectSetKeepAlive(v->conn, 5, 3) == -1)
		virResetLastError();
	if (virConnectRegisterCloseCallback(v->conn, virt_close_cb, v, NULL) == 0)
		v->close_registered = 1;
	else
		virResetLastError();
	v->lifecycle_id = virConnectDomainEventRegisterAny(v->conn, NULL,
	    VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(virt_lifecycle_cb), v, NULL);
	if (v->lifecycle_id < 0) {
		virt_error(e, "registering lifecycle events");
		virt_disconnect(v);
		return -1;
	}
	v->generation++;
	/* Domains watched before a reconnect: fresh handles, and whatever happened meanwhile. */
	for (i = 0; i < v->ndoms; i++) {
		struct virt_domain *d = v->doms[i];

		d->dom = virDomainLookupByName(v->conn, d->name);
		if (d->dom == NULL)
			virResetLastError();
		if (d->outcome == VIRT_RUNNING && d->cb != NULL)
			virt_check_state(d);
	}
	return 0;
}

static void
virt_reconnect_cb(int id, void *arg)
{
	struct virt	*v = arg;
	struct err	 e;

	err_clear(&e);
	virt_disconnect(v);
	if (virt_connect(v, &e) == -1) {
		log_debug("libvirt reconnect: %s", e.msg);
		loop_timer_update(v->loop, id, 1000);
		return;
	}
	log_info("reconnected to libvirt %s", v->uri ? v->uri : "(default)");
	loop_timer_remove(v->loop, id);
	v->reconnect_timer = 0;
}

/* libvirtd went away (restart): reconnect from the loop, not from inside libvirt's callback. */
static void
virt_close_cb(virConnectPtr conn, int reason, void *opaque)
{
	struct virt	*v = opaque;

	(void)conn;
	log_warnx("libvirt connection closed (reason %d); reconnecting", reason);
	if (v->reconnect_timer == 0)
		v->reconnect_timer = loop_timer_add(v->loop, 200, virt_reconnect_cb, v, NULL);
}

struct virt *
virt_open(struct loop *l, const char *uri, struct err *e)
{
	struct virt	*v;

	if (virt_loop == NULL && virt_event_init(l, e) == -1)
		return NULL;
	v = xcalloc(1, sizeof(*v));
	v->loop = l;
	v->lifecycle_id = -1;
	v->uri = uri ? xstrdup(uri) : NULL;
	if (virt_connect(v, e) == -1) {
		virt_free(&v);
		return NULL;
	}
	return v;
}

void
virt_free(struct virt **vp)
{
	struct virt	*v;

	if (vp == NULL || (v = *vp) == NULL)
		return;
	while (v->ndoms > 0) {
		struct virt_domain *d = v->doms[0];

		virt_domain_free(&d);
	}
	if (v->reconnect_timer)
		loop_timer_remove(v->loop, v->reconnect_timer);
	virt_disconnect(v);
	free(v->doms);
	free(v->uri);
	free(v);
	*vp = NULL;
}

const char *
virt_uri(const struct virt *v)
{
	return v->uri;
}

int
virt_connected(const struct virt *v)
{
	return v->conn != NULL && v->reconnect_timer == 0 && virConnectIsAlive(v->conn) == 1;
}

int
virt_generation(const struct virt *v)
{
	return v->generation;
}

static int
virt_need_conn(struct virt *v, struct err *e)
{
	if (v->conn == NULL || v->reconnect_timer != 0) {
		err_set(e, ERR_NET, "not connected to libvirt %s", v->uri ? v->uri : "");
		return -1;
	}
	return 0;
}

/* ---- domains ---- */

static struct virt_domain *
virt_domain_wrap(struct virt *v, virDomainPtr dom)
{
	struct virt_domain	*d = xcalloc(1, sizeof(*d));

	d->v = v;
	d->dom = dom;
	d->name = xstrdup(virDomainGetName(dom));
	v->doms = xrealloc(v->doms, (v->ndoms + 1) * sizeof(*v->doms));
	v->doms[v->ndoms++] = d;
	d->watched = 1;
	return d;
}

struct virt_domain *
virt_define(struct virt *v, const char *xml, struct err *e)
{
	virDomainPtr	 dom;

	if (virt_need_conn(v, e) == -1)
		return NULL;
	if ((dom = virDomainDefineXML(v->conn, xml)) == NULL) {
		virt_error(e, "defining the domain");
		return NULL;
	}
	return virt_domain_wrap(v, dom);
}

struct virt_domain *
virt_lookup(struct virt *v, const char *name, struct err *e)
{
	virDomainPtr	 dom;

	if (virt_need_conn(v, e) == -1)
		return NULL;
	if ((dom = virDomainLookupByName(v->conn, name)) == NULL) {
		virt_error(e, name);
		return NULL;
	}
	return virt_domain_wrap(v, dom);
}

const char *
virt_domain_name(const struct virt_domain *d)
{
	return d->name;
}

int
virt_start(struct virt_domain *d, virt_outcome_cb cb, void *arg, struct err *e)
{
	if (virt_need_conn(d->v, e) == -1)
		return -1;
	d->cb = cb;
	d->arg = arg;
	if (virDomainCreateWithFlags(d->dom, d->autodestroy ? VIR_DOMAIN_START_AUTODESTROY : 0)
	    == -1) {
		d->cb = NULL;
		virt_error(e, "starting the domain");
		return -1;
	}
	return 0;
}

int
virt_watch(struct virt_domain *d, virt_outcome_cb cb, void *arg, struct err *e)
{
	if (virt_need_conn(d->v, e) == -1)
		return -1;
	d->cb = cb;
	d->arg = arg;
	/* events from here on; what happened before we looked is in the domain's state */
	if (d->outcome == VIRT_RUNNING)
		virt_check_state(d);
	else if (d->deliver_timer == 0)
		d->deliver_timer = loop_timer_add(d->v->loop, 0, virt_deliver_cb, d, NULL);
	return 0;
}

void
virt_domain_autodestroy(struct virt_domain *d, int on)
{
	d->autodestroy = on;
}

static void
virt_grace_cb(int id, void *arg)
{
	struct virt_domain	*d = arg;

	loop_timer_remove(d->v->loop, id);
	d->grace_timer = 0;
	if (d->outcome != VIRT_RUNNING || d->dom == NULL)
		return;
	log_info("domain %s did not shut down in time: destroying it", d->name);
	if (virDomainDestroy(d->dom) == -1) {
		struct err e;

		err_clear(&e);
		virt_error(&e, "destroy");
		log_warnx("domain %s: %s", d->name, e.msg);
	}
}

int
virt_finish(struct virt_domain *d, double grace_s, struct err *e)
{
	if (d->outcome != VIRT_RUNNING)
		return 0;
	if (virt_need_conn(d->v, e) == -1)
		return -1;
	d->finishing = 1;
	if (virDomainShutdownFlags(d->dom, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN) == -1) {
		struct err	 se;

		/* a guest that ignores ACPI (or is already stopping) gets the grace period anyway */
		err_clear(&se);
		virt_error(&se, "shutdown");
		log_debug("domain %s: %s", d->name, se.msg);
	}
	if (d->grace_timer == 0)
		d->grace_timer = loop_timer_add(d->v->loop, (int)(grace_s * 1000), virt_grace_cb,
		    d, NULL);
	return 0;
}

int
virt_cancel(struct virt_domain *d, struct err *e)
{
	int	 state, reason;

	if (d->outcome != VIRT_RUNNING)
		return 0;
	d->cancelling = 1;
	if (virt_need_conn(d->v, e) == -1)
		return -1;
	if (virDomainGetState(d->dom, &state, &reason, 0) == 0 && state == VIR_DOMAIN_SHUTOFF) {
		virt_set_outcome(d, VIRT_CANCELLED, "cancelled");
		return 0;
	}
	virResetLastError();
	if (virDomainDestroy(d->dom) == -1) {
		virt_error(e, "destroying the domain");
		return -1;
	}
	return 0;
}

enum virt_outcome
virt_domain_outcome(const struct virt_domain *d, const char **reason)
{
	if (reason != NULL)
		*reason = d->reason;
	return d->outcome;
}

/* Evaluates an XPath expression to a string; NULL when empty. Caller frees. */
static char *
virt_xpath_string(xmlXPathContextPtr ctx, const char *expr)
{
	xmlXPathObjectPtr	 obj;
	char			*s = NULL;

	obj = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
	if (obj != NULL && obj->type == XPATH_STRING && obj->stringval != NULL &&
	    obj->stringval[0] != '\0')
		s = xstrdup((const char *)obj->stringval);
	xmlXPathFreeObject(obj);
	return s;
}

char *
virt_domain_ipv4(struct virt_domain *d, struct err *e)
{
	virDomainInterfacePtr	*ifs = NULL;
	char			*addr = NULL;
	int			 n, i;
	unsigned		 k;

	if (virt_need_conn(d->v, e) == -1)
		return NULL;
	n = virDomainInterfaceAddresses(d->dom, &ifs, VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, 0);
	if (n < 0) {
		virt_error(e, "the guest's addresses");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		for (k = 0; addr == NULL && k < ifs[i]->naddrs; k++)
			if (ifs[i]->addrs[k].type == VIR_IP_ADDR_TYPE_IPV4 &&
			    ifs[i]->addrs[k].addr != NULL)
				addr = xstrdup(ifs[i]->addrs[k].addr);
		virDomainInterfaceFree(ifs[i]);
	}
	free(ifs);
	if (addr == NULL)
		err_set(e, ERR_NOTFOUND, "domain %s: no DHCP lease yet", d->name);
	return addr;
}

int
virt_block_written(struct virt_domain *d, const char *disk, long long *written, struct err *e)
{
	virDomainBlockStatsStruct	 st;

	*written = -1;
	if (virt_need_conn(d->v, e) == -1)
		return -1;
	memset(&st, 0, sizeof(st));
	if (virDomainBlockStats(d->dom, disk, &st, sizeof(st)) == -1) {
		virt_error(e, "the root disk's statistics");
		return -1;
	}
	*written = st.wr_bytes;
	return 0;
}

/* virStreamRecvAll's sink: the screenshot into a bounded buffer. */
static int
virt_screenshot_sink(virStreamPtr st, const char *data, size_t n, void *opaque)
{
	struct buf	*b = opaque;

	(void)st;
	if (b->len + n > VIRT_SCREENSHOT_MAX)
		return -1;
	buf_append(b, data, n);
	return (int)n;
}

int
virt_screenshot(struct virt_domain *d, struct buf *out, char **mime, struct err *e)
{
	virStreamPtr	 st = NULL;
	char		*type = NULL;
	int		 rc = -1;

	buf_init(out);
	*mime = NULL;
	if (virt_need_conn(d->v, e) == -1)
		return -1;
	if ((st = virStreamNew(d->v->conn, 0)) == NULL) {
		virt_error(e, "screenshot: a stream");
		return -1;
	}
	if ((type = virDomainScreenshot(d->dom, st, 0, 0)) == NULL) {
		virt_error(e, "screenshot");
		goto cleanup;
	}
	if (virStreamRecvAll(st, virt_screenshot_sink, out) == -1) {
		if (out->len + 1 > VIRT_SCREENSHOT_MAX)
			err_set(e, ERR_IO, "screenshot: larger than %d bytes", VIRT_SCREENSHOT_MAX);
		else
			virt_error(e, "screenshot: receiving it");
		virStreamAbort(st);
		goto cleanup;
	}
	if (virStreamFinish(st) == -1) {
		virt_error(e, "screenshot: the stream's end");
		goto cleanup;
	}
	*mime = xstrdup(type);
	rc = 0;
cleanup:
	if (rc == -1)
		buf_free(out);
	free(type);
	virStreamFree(st);
	return rc;
}

int
virt_console_get(struct virt_domain *d, int want_password, struct virt_console *c,
    struct err *e)
{
	xmlDocPtr		 doc = NULL;
	xmlXPathContextPtr	 ctx = NULL;
	char			*xml = NULL, *port = NULL;
	int			 rc = -1;

	memset(c, 0, sizeof(*c));
	c->port = -1;
	if (virt_need_conn(d->v, e) == -1)
		return -1;
	xml = virDomainGetXMLDesc(d->dom, want_password ? VIR_DOMAIN_XML_SECURE : 0);
	if (xml == NULL) {
		virt_error(e, "reading the domain XML");
		goto cleanup;
	}
	doc = xmlReadMemory(xml, (int)strlen(xml), "domain.xml", NULL, XML_PARSE_NONET);
	if (doc == NULL || (ctx = xmlXPathNewContext(doc)) == NULL) {
		err_set(e, ERR_INTERNAL, "libvirt returned unreadable domain XML");
		goto cleanup;
	}
	port = virt_xpath_string(ctx, "string(/domain/devices/graphics[@type='vnc'][1]/@port)");
	c->host = virt_xpath_string(ctx,
	    "string(/domain/devices/graphics[@type='vnc'][1]/listen[@type='address'][1]/@address)");
	if (c->host == NULL)
		c->host = virt_xpath_string(ctx,
		    "string(/domain/devices/graphics[@type='vnc'][1]/@listen)");
	if (want_password)
		c->password = virt_xpath_string(ctx,
		    "string(/domain/devices/graphics[@type='vnc'][1]/@passwd)");
	if (port != NULL)
		c->port = atoi(port);
	if (c->host == NULL)
		c->host = xstrdup("127.0.0.1");
	rc = 0;
cleanup:
	if (xml != NULL) {
		/* it may hold the password */
		explicit_bzero(xml, strlen(xml));
		free(xml);
	}
	free(port);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	return rc;
}

void
virt_console_clear(struct virt_console *c)
{
	free(c->host);
	if (c->password != NULL) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	memset(c, 0, sizeof(*c));
	c->port = -1;
}

/* Destroys (when active) and undefines dom; "no such domain" counts as done. */
static int
virt_domain_remove(virDomainPtr dom, struct err *e)
{
	const virError	*ve;

	if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) == -1) {
		ve = virGetLastError();
		if (ve == NULL || (ve->code != VIR_ERR_NO_DOMAIN &&
		    ve->code != VIR_ERR_OPERATION_INVALID)) {
			virt_error(e, "destroying the domain");
			return -1;
		}
	}
	virResetLastError();
	if (virDomainIsPersistent(dom) == 1 &&
	    virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_NVRAM |
	    VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
	    VIR_DOMAIN_UNDEFINE_TPM) == -1) {
		ve = virGetLastError();
		if (ve == NULL || ve->code != VIR_ERR_NO_DOMAIN) {
			virt_error(e, "undefining the domain");
			return -1;
		}
	}
	virResetLastError();
	return 0;
}

int
virt_undefine(struct virt_domain *d, struct err *e)
{
	if (virt_need_conn(d->v, e) == -1)
		return -1;
	if (d->dom == NULL)
		return virt_remove_by_name(d->v, d->name, e);
	d->cancelling = d->outcome == VIRT_RUNNING ? 1 : d->cancelling;
	return virt_domain_remove(d->dom, e);
}

int
virt_remove_by_name(struct virt *v, const char *name, struct err *e)
{
	virDomainPtr	 dom;
	int		 rc;

	if (virt_need_conn(v, e) == -1)
		return -1;
	if ((dom = virDomainLookupByName(v->conn, name)) == NULL) {
		virResetLastError();
		return 0;
	}
	rc = virt_domain_remove(dom, e);
	virDomainFree(dom);
	return rc;
}

int
virt_exists(struct virt *v, const char *name, struct err *e)
{
	virDomainPtr	 dom;
	const virError	*ve;

	if (virt_need_conn(v, e) == -1)
		return -1;
	if ((dom = virDomainLookupByName(v->conn, name)) != NULL) {
		virDomainFree(dom);
		return 1;
	}
	ve = virGetLastError();
	if (ve != NULL && ve->code == VIR_ERR_NO_DOMAIN) {
		virResetLastError();
		return 0;
	}
	virt_error(e, name);
	return -1;
}

void
virt_domain_free(struct virt_domain **dp)
{
	struct virt_domain	*d;
	struct virt		*v;
	size_t			 i;

	if (dp == NULL || (d = *dp) == NULL)
		return;
	v = d->v;
	for (i = 0; i < v->ndoms; i++)
		if (v->doms[i] == d) {
			v->doms[i] = v->doms[--v->ndoms];
			break;
		}
	if (d->grace_timer)
		loop_timer_remove(v->loop, d->grace_timer);
	if (d->deliver_timer)
		loop_timer_remove(v->loop, d->deliver_timer);
	if (d->pause_timer)
		loop_timer_remove(v->loop, d->pause_timer);
	if (d->dom != NULL)
		virDomainFree(d->dom);
	free(d->name);
	free(d->reason);
	free(d);
	*dp = NULL;
}

/* ---- KVM probe ---- */

void
virt_probe_bootsector(unsigned char out[512])
{
	/*
	 * Real-mode code: read PIIX4 PM's PMBASE (PCI 00:01.3, register 0x40) through
	 * 0xcf8/0xcfc, write SLP_EN with SLP_TYP 0 (S5) to PM1a_CNT (PMBASE + 4): QEMU powers
	 * off. Then halt forever.
	 */
	static const unsigned char code[] = {
		0xfa,					/* cli */
		0x66, 0xb8, 0x40, 0x0b, 0x00, 0x80,	/* mov eax, 0x80000b40 */
		0xba, 0xf8, 0x0c,			/* mov dx, 0xcf8 */
		0x66, 0xef,				/* out dx, eax */
		0xba, 0xfc, 0x0c,			/* mov dx, 0xcfc */
		0x66, 0xed,				/* in eax, dx */
		0x25, 0xc0, 0xff,			/* and ax, 0xffc0 */
		0x05, 0x04, 0x00,			/* add ax, 4 */
		0x89, 0xc2,				/* mov dx, ax */
		0xb8, 0x00, 0x20,			/* mov ax, 0x2000 */
		0xef,					/* out dx, ax */
		0xf4,					/* hlt */
		0xeb, 0xfd,				/* jmp hlt */
	};

	memset(out, 0, 512);
	memcpy(out, code, sizeof(code));
	out[510] = 0x55;
	out[511] = 0xaa;
}

char *
virt_probe_xml(const char *name, const char *domain_type, const char *disk)
{
	xmlDocPtr	 doc = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr	 dom, os, type, devs, n;
	xmlChar		*mem = NULL;
	char		*xml;
	int		 len = 0;

	dom = xmlNewNode(NULL, (const xmlChar *)"domain");
	xmlDocSetRootElement(doc, dom);
	xmlNewProp(dom, (const xmlChar *)"type", (const xmlChar *)domain_type);
	xmlNewTextChild(dom, NULL, (const xmlChar *)"name", (const xmlChar *)name);
	n = xmlNewTextChild(dom, NULL, (const xmlChar *)"memory", (const xmlChar *)"32");
	xmlNewProp(n, (const xmlChar *)"unit", (const xmlChar *)"MiB");
	xmlNewTextChild(dom, NULL, (const xmlChar *)"vcpu", (const xmlChar *)"1");
	os = xmlNewChild(dom, NULL, (const xmlChar *)"os", NULL);
	type = xmlNewTextChild(os, NULL, (const xmlChar *)"type", (const xmlChar *)"hvm");
	xmlNewProp(type, (const xmlChar *)"machine", (const xmlChar *)"pc");
	n = xmlNewChild(os, NULL, (const xmlChar *)"boot", NULL);
	xmlNewProp(n, (const xmlChar *)"dev", (const xmlChar *)"hd");
	n = xmlNewChild(dom, NULL, (const xmlChar *)"features", NULL);
	xmlNewChild(n, NULL, (const xmlChar *)"acpi", NULL);
	/*
	 * The CPU builds get under KVM (isoboot): nested KVM can run a guest with qemu's own
	 * CPU model and still refuse host-passthrough ("failed to set MSR 0x10a"), so the probe
	 * must ask for what a build asks for.
	 */
	if (strcmp(domain_type, "kvm") == 0) {
		n = xmlNewChild(dom, NULL, (const xmlChar *)"cpu", NULL);
		xmlNewProp(n, (const xmlChar *)"mode", (const xmlChar *)"host-passthrough");
	}
	xmlNewTextChild(dom, NULL, (const xmlChar *)"on_poweroff", (const xmlChar *)"destroy");
	xmlNewTextChild(dom, NULL, (const xmlChar *)"on_reboot", (const xmlChar *)"destroy");
	xmlNewTextChild(dom, NULL, (const xmlChar *)"on_crash", (const xmlChar *)"destroy");
	devs = xmlNewChild(dom, NULL, (const xmlChar *)"devices", NULL);
	n = xmlNewChild(devs, NULL, (const xmlChar *)"disk", NULL);
	xmlNewProp(n, (const xmlChar *)"type", (const xmlChar *)"file");
	xmlNewProp(n, (const xmlChar *)"device", (const xmlChar *)"disk");
	type = xmlNewChild(n, NULL, (const xmlChar *)"driver", NULL);
	xmlNewProp(type, (const xmlChar *)"name", (const xmlChar *)"qemu");
	xmlNewProp(type, (const xmlChar *)"type", (const xmlChar *)"raw");
	type = xmlNewChild(n, NULL, (const xmlChar *)"source", NULL);
	xmlNewProp(type, (const xmlChar *)"file", (const xmlChar *)disk);
	type = xmlNewChild(n, NULL, (const xmlChar *)"target", NULL);
	xmlNewProp(type, (const xmlChar *)"dev", (const xmlChar *)"hda");
	xmlNewProp(type, (const xmlChar *)"bus", (const xmlChar *)"ide");
	n = xmlNewChild(devs, NULL, (const xmlChar *)"controller", NULL);
	xmlNewProp(n, (const xmlChar *)"type", (const xmlChar *)"usb");
	xmlNewProp(n, (const xmlChar *)"model", (const xmlChar *)"none");
	n = xmlNewChild(devs, NULL, (const xmlChar *)"memballoon", NULL);
	xmlNewProp(n, (const xmlChar *)"model", (const xmlChar *)"none");
	xmlDocDumpMemory(doc, &mem, &len);
	xml = xstrdup((const char *)mem);
	xmlFree(mem);
	xmlFreeDoc(doc);
	return xml;
}

int
virt_probe_kvm(struct virt *v, const char *workdir, double timeout_s, int *works,
    struct err *e)
{
	unsigned char		 sector[512];
	char			 name[64], rnd[9];
	char			*disk = NULL, *xml = NULL;
	virDomainPtr		 dom = NULL;
	struct virt_domain	*d = NULL;
	struct err		 ce;
	double			 deadline;
	int			 rc = -1;

	*works = 0;
	if (virt_need_conn(v, e) == -1)
		return -1;
	util_password(rnd, 8);
	snprintf(name, sizeof(name), "isoforge-kvmprobe-%s", rnd);
	disk = xasprintf("%s/kvmprobe-%s.img", workdir, rnd);
	virt_probe_bootsector(sector);
	if (util_write_file(disk, sector, sizeof(sector), 0644, e) == -1)
		goto cleanup;
	xml = virt_probe_xml(name, "kvm", disk);

	/* Watch the name before the domain exists, so the first event is not missed. */
	d = xcalloc(1, sizeof(*d));
	d->v = v;
	d->name = xstrdup(name);
	v->doms = xrealloc(v->doms, (v->ndoms + 1) * sizeof(*v->doms));
	v->doms[v->ndoms++] = d;
	if ((dom = virDomainCreateXML(v->conn, xml, VIR_DOMAIN_START_AUTODESTROY)) == NULL) {
		err_clear(&ce);
		virt_error(&ce, "kvm probe");
		log_info("KVM probe: cannot start a KVM guest (%s): using TCG", ce.msg);
		rc = 0;
		goto cleanup;
	}
	deadline = util_now() + timeout_s;
	while (d->outcome == VIRT_RUNNING && util_now() < deadline)
		if (loop_run_once(v->loop, (int)((deadline - util_now()) * 1000) + 1, e) == -1)
			goto cleanup;
	*works = d->outcome == VIRT_POWEROFF;
	log_info("KVM probe: %s", *works ? "KVM works" :
	    d->outcome == VIRT_RUNNING ? "guest did not power off in time: using TCG" :
	    "guest failed under KVM: using TCG");
	if (d->reason != NULL && !*works)
		log_debug("KVM probe outcome: %s", d->reason);
	rc = 0;
cleanup:
	if (dom != NULL) {
		if (virDomainIsActive(dom) == 1)
			(void)virDomainDestroy(dom);
		virResetLastError();
		virDomainFree(dom);
	}
	virt_domain_free(&d);
	if (disk != NULL)
		(void)unlink(disk);
	free(disk);
	free(xml);
	return rc;
}

int
virt_domain_type(struct virt *v, const char *want, const char *cache_dir, const char *workdir,
    double timeout_s, const char **out, struct err *e)
{
	char		*path, *text = NULL, *boot = NULL, *line;
	struct err	 pe;
	size_t		 n;
	int		 works = 0;

	if (want != NULL && strcmp(want, "qemu") == 0) {
		*out = "qemu";
		return 0;
	}
	err_clear(&pe);
	/* named by what it probes: answers of an earlier probe (without the builds' CPU) are void */
	path = xasprintf("%s/kvm-probe.host-passthrough", cache_dir);
	boot = util_read_file("/proc/sys/kernel/random/boot_id", 128, NULL, &pe);
	if (boot != NULL)
		boot[strcspn(boot, "\n")] = '\0';
	n = boot != NULL ? strlen(boot) : 0;
	if (boot != NULL && (text = util_read_file(path, 256, NULL, NULL)) != NULL &&
	    strncmp(text, boot, n) == 0 && text[n] == ' ') {
		works = text[n + 1] == '1';
		log_debug("KVM probe (cached): %s", works ? "works" : "fails");
	} else {
		err_clear(&pe);
		if (virt_probe_kvm(v, workdir, timeout_s, &works, &pe) == -1) {
			log_warnx("KVM probe: %s; using TCG", pe.msg);
			works = 0;
		} else if (boot != NULL) {
			line = xasprintf("%s %d\n", boot, works);
			err_clear(&pe);
			if (util_mkdirs(cache_dir, &pe) == -1 ||
			    util_write_file(path, line, strlen(line), 0644, &pe) == -1)
				log_debug("kvm-probe cache: %s", pe.msg);
			free(line);
		}
	}
	free(text);
	free(boot);
	free(path);
	if (!works && want != NULL && strcmp(want, "kvm") == 0) {
		err_set(e, ERR_INVAL, "domain type kvm: a KVM guest does not run here (the probe "
		    "failed); use auto or qemu (TCG)");
		return -1;
	}
	*out = works ? "kvm" : "qemu";
	return 0;
}

/* The text of the first element named name below node (any namespace), or NULL; caller frees. */
static char *
virt_xml_text(xmlNodePtr node, const char *name)
{
	xmlNodePtr	 n;
	xmlChar		*t;
	char		*s;

	for (n = node; n != NULL; n = n->next) {
		if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST name) == 0) {
			t = xmlNodeGetContent(n);
			s = xstrdup(t != NULL ? (const char *)t : "");
			xmlFree(t);
			return s;
		}
		if (n->children != NULL && (s = virt_xml_text(n->children, name)) != NULL)
			return s;
	}
	return NULL;
}

/* The owner written in a domain's metadata element of namespace xmlns, or NULL. */
static char *
virt_domain_owner(virDomainPtr dom, const char *xmlns)
{
	xmlDocPtr	 doc;
	char		*md, *owner = NULL;

	if ((md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xmlns, 0)) == NULL) {
		virResetLastError();
		return NULL;
	}
	doc = xmlReadMemory(md, (int)strlen(md), "metadata.xml", NULL, XML_PARSE_NONET |
	    XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc != NULL)
		owner = virt_xml_text(xmlDocGetRootElement(doc), "owner");
	xmlFreeDoc(doc);
	free(md);
	return owner;
}

int
virt_list_owned(struct virt *v, const char *prefix, const char *xmlns, const char *owner,
    char ***namesp, size_t *np, struct err *e)
{
	virDomainPtr	*doms = NULL;
	const char	*name;
	char		**names, *who;
	size_t		 n = 0;
	int		 nd, i;

	*namesp = NULL;
	*np = 0;
	if (virt_need_conn(v, e) == -1)
		return -1;
	if ((nd = virConnectListAllDomains(v->conn, &doms, 0)) < 0) {
		virt_error(e, "listing domains");
		return -1;
	}
	names = xcalloc((size_t)nd + 1, sizeof(*names));
	for (i = 0; i < nd; i++) {
		name = virDomainGetName(doms[i]);
		if (name != NULL && strncmp(name, prefix, strlen(prefix)) == 0 &&
		    (who = virt_domain_owner(doms[i], xmlns)) != NULL) {
			if (strcmp(who, owner) == 0)
				names[n++] = xstrdup(name);
			free(who);
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	*namesp = names;
	*np = n;
	return 0;
}

/* ---- networks ---- */

/* A handle on the network name, or NULL: *missing says whether it is just not there. */
static virNetworkPtr
virt_network_get(struct virt *v, const char *name, int *missing, struct err *e)
{
	virNetworkPtr	 net;
	const virError	*ve;

	*missing = 0;
	if ((net = virNetworkLookupByName(v->conn, name)) != NULL)
		return net;
	ve = virGetLastError();
	if (ve != NULL && ve->code == VIR_ERR_NO_NETWORK) {
		virResetLastError();
		*missing = 1;
		return NULL;
	}
	virt_error(e, name);
	return NULL;
}

int
virt_network_state(struct virt *v, const char *name, enum virt_net_state *state, char **xml,
    struct err *e)
{
	virNetworkPtr	 net;
	int		 missing, active, rc = -1;

	*state = VIRT_NET_ABSENT;
	if (xml != NULL)
		*xml = NULL;
	if (virt_need_conn(v, e) == -1)
		return -1;
	if ((net = virt_network_get(v, name, &missing, e)) == NULL)
		return missing ? 0 : -1;
	if ((active = virNetworkIsActive(net)) == -1) {
		virt_error(e, name);
		goto cleanup;
	}
	*state = active ? VIRT_NET_ACTIVE : VIRT_NET_INACTIVE;
	if (active && xml != NULL && (*xml = virNetworkGetXMLDesc(net, 0)) == NULL) {
		virt_error(e, name);
		goto cleanup;
	}
	rc = 0;
cleanup:
	virNetworkFree(net);
	return rc;
}

int
virt_network_create(struct virt *v, const char *xml, struct err *e)
{
	virNetworkPtr	 net;
	int		 rc = -1;

	if (virt_need_conn(v, e) == -1)
		return -1;
	if ((net = virNetworkDefineXML(v->conn, xml)) == NULL) {
		virt_error(e, "defining the network");
		return -1;
	}
	if (virNetworkCreate(net) == -1) {
		virt_error(e, "starting the network");
		/* half made is worse than absent: the next try picks again */
		(void)virNetworkUndefine(net);
		virResetLastError();
		goto cleanup;
	}
	/* after a reboot the network is there before the first build asks */
	if (virNetworkSetAutostart(net, 1) == -1)
		virResetLastError();
	rc = 0;
cleanup:
	virNetworkFree(net);
	return rc;
}

int
virt_network_start(struct virt *v, const char *name, struct err *e)
{
	virNetworkPtr	 net;
	int		 missing, rc = 0;

	if (virt_need_conn(v, e) == -1)
		return -1;
	if ((net = virt_network_get(v, name, &missing, e)) == NULL) {
		if (missing)
			err_set(e, ERR_NOTFOUND, "network %s: not defined", name);
		return -1;
	}
	if (virNetworkIsActive(net) != 1 && virNetworkCreate(net) == -1) {
		virt_error(e, name);
		rc = -1;
	}
	virNetworkFree(net);
	return rc;
}

int
virt_network_remove(struct virt *v, const char *name, struct err *e)
{
	virNetworkPtr	 net;
	int		 missing, rc = -1;

	if (virt_need_conn(v, e) == -1)
		return -1;
	if ((net = virt_network_get(v, name, &missing, e)) == NULL)
		return missing ? 0 : -1;
	if (virNetworkIsActive(net) == 1 && virNetworkDestroy(net) == -1) {
		virt_error(e, name);
		goto cleanup;
	}
	virResetLastError();
	if (virNetworkIsPersistent(net) == 1 && virNetworkUndefine(net) == -1) {
		virt_error(e, name);
		goto cleanup;
	}
	virResetLastError();
	rc = 0;
cleanup:
	virNetworkFree(net);
	return rc;
}
