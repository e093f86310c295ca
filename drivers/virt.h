/* virt.h — the libvirt driver: connection (reconnecting), domains of builds, lifecycle outcomes
 * delivered through base/loop, consoles, the KVM probe. */
#ifndef ISOFORGE_VIRT_H
#define ISOFORGE_VIRT_H

#include "base/loop.h"
#include "base/util.h"

/* How a watched domain ended. */
enum virt_outcome {
	VIRT_RUNNING = 0,	/* not ended yet */
	VIRT_POWEROFF,		/* the guest powered off: the install is done */
	VIRT_FINISHED,		/* virt_finish ended it (ACPI shutdown, or destroy after the grace) */
	VIRT_FAILED,		/* destroyed by someone else, crashed, paused, failed to run */
	VIRT_CANCELLED		/* virt_cancel destroyed it */
};

struct virt;
struct virt_domain;

/* Called once, from the loop, when a watched domain reaches its outcome; reason says why
 * ("guest powered off", "paused: I/O error", "crashed", ...). */
typedef void (*virt_outcome_cb)(struct virt_domain *, enum virt_outcome, const char *reason,
    void *arg);

struct virt_console {
	char	*host;		/* listen address */
	int	 port;		/* -1 when no VNC port (not running) */
	char	*password;	/* NULL unless asked for; never log it */
};

/*
 * Registers libvirt's event implementation on loop: libvirt's fds and timers become loop
 * watches and timers. Once per process, before virt_open; the loop must outlive libvirt use.
 */
int	virt_event_init(struct loop *, struct err *);

/*
 * Opens uri (NULL = libvirt's default). When libvirtd closes the connection (restart),
 * the driver reconnects from the loop and re-checks every watched domain. Caller frees.
 */
struct virt	*virt_open(struct loop *, const char *uri, struct err *);
void		 virt_free(struct virt **);
const char	*virt_uri(const struct virt *);
/* 1 while connected (as far as the loop has seen: a dead peer is noticed from the loop). */
int		 virt_connected(const struct virt *);
/* How many times the connection was (re)opened: 1 after virt_open, +1 per reconnect. */
int		 virt_generation(const struct virt *);

/*
 * Defines a persistent domain from xml and returns a handle on it (not started); caller frees
 * with virt_domain_free (which does not undefine).
 */
struct virt_domain *virt_define(struct virt *, const char *xml, struct err *);
/* A handle on an existing domain by name; caller frees. */
struct virt_domain *virt_lookup(struct virt *, const char *name, struct err *);
const char	*virt_domain_name(const struct virt_domain *);

/*
 * Starts the domain and watches it: cb runs once from the loop with the outcome.
 * The lifecycle callback is in place before the start, so no event is missed.
 */
int	virt_start(struct virt_domain *, virt_outcome_cb, void *arg, struct err *);
/*
 * Watches a domain that already runs (started by an earlier process: a restarted worker):
 * cb runs once from the loop with the outcome. When the domain stopped meanwhile, the outcome
 * is derived at once from its state (shut off by the guest: VIRT_POWEROFF; destroyed,
 * crashed, paused: VIRT_FAILED), so domains are defined persistent (virt_define) to stay
 * inspectable after they stop.
 */
int	virt_watch(struct virt_domain *, virt_outcome_cb, void *arg, struct err *);
/* With on, virt_start starts the domain so that libvirtd destroys it when this connection
 * closes (the process died): for a build nobody else can pick up (isoforge local build). */
void	virt_domain_autodestroy(struct virt_domain *, int on);
/* Asks the guest to shut down (ACPI); destroys it when it has not stopped after grace_s.
 * The outcome is then VIRT_FINISHED (or VIRT_POWEROFF when the guest was already stopping). */
int	virt_finish(struct virt_domain *, double grace_s, struct err *);
/* Destroys a running domain; the outcome is VIRT_CANCELLED. */
int	virt_cancel(struct virt_domain *, struct err *);
/* The outcome so far (VIRT_RUNNING until cb ran) and its reason (may be NULL). */
enum virt_outcome virt_domain_outcome(const struct virt_domain *, const char **reason);

/*
 * The guest's IPv4 address from its DHCP lease on a libvirt network (its NIC's), or NULL
 * (ERR_NOTFOUND: no lease yet). Caller frees.
 */
char	*virt_domain_ipv4(struct virt_domain *, struct err *);
/*
 * Bytes the guest has written to its disk (libvirt's block statistics; disk: its target, e.g.
 * "vda", or its source file), -1 when the hypervisor does not count them.
 */
int	virt_block_written(struct virt_domain *, const char *disk, long long *written,
	    struct err *);
/* The largest screenshot virt_screenshot takes. */
#define VIRT_SCREENSHOT_MAX	(64 * 1024 * 1024)
/*
 * The guest's screen (its first head) as the hypervisor gives it: out (caller buf_free()s) and
 * *mime ("image/x-portable-pixmap" for qemu; caller frees). Blocks until it is received.
 */
int	virt_screenshot(struct virt_domain *, struct buf *out, char **mime, struct err *);
/*
 * Console address from the live XML; the password only when want_password (the XML is read
 * with VIR_DOMAIN_XML_SECURE only then). Caller frees with virt_console_clear.
 */
int	virt_console_get(struct virt_domain *, int want_password, struct virt_console *,
	    struct err *);
void	virt_console_clear(struct virt_console *);

/* Destroys the domain when it runs and undefines it (and its NVRAM); a missing domain is fine. */
int	virt_undefine(struct virt_domain *, struct err *);
/* Destroys and undefines a domain by name, when it exists (clean-up of a stale build). */
int	virt_remove_by_name(struct virt *, const char *name, struct err *);
/*
 * The domains (defined or running) whose name starts with prefix and whose <metadata>
 * element of namespace xmlns has an <owner> of owner: *names (NULL-terminated, *n of them;
 * caller frees each and the array).
 */
int	virt_list_owned(struct virt *, const char *prefix, const char *xmlns, const char *owner,
	    char ***names, size_t *n, struct err *);
/* 1 when a domain of that name exists (defined or running), 0 when not, -1 on error. */
int	virt_exists(struct virt *, const char *name, struct err *);
void	virt_domain_free(struct virt_domain **);

/*
 * Boots a tiny guest (a 512-byte boot sector that powers off through ACPI) as
 * <domain type='kvm'> and reports whether it powered off within timeout_s: *works = 1, else 0
 * (KVM fails here with an emulation failure: the guest ends paused). workdir holds the disk
 * for the duration of the call.
 */
int	virt_probe_kvm(struct virt *, const char *workdir, double timeout_s, int *works,
	    struct err *);

/*
 * The domain type to build with (*out, a static string): "qemu" when want is "qemu"; else the
 * probe (virt_probe_kvm) decides: "kvm" when its guest runs under KVM; otherwise "qemu" (TCG)
 * for want "auto" (or NULL), and an error for want "kvm" (a wrong configuration). The probe's
 * answer is kept in CACHE_DIR/kvm-probe.host-passthrough for the rest of the host's boot.
 * Runs the loop: call it from the loop's thread before the loop runs.
 */
int	virt_domain_type(struct virt *, const char *want, const char *cache_dir,
	    const char *workdir, double timeout_s, const char **out, struct err *);

/* The probe's boot sector (512 bytes); pure, for tests. */
void	virt_probe_bootsector(unsigned char out[512]);
/* The probe's domain XML (type "kvm" with the host-passthrough CPU builds get, or "qemu";
 * 32 MiB, the raw disk on IDE, no devices
 * beyond it); pure, also used by tests for a tiny guest. Caller frees. */
char	*virt_probe_xml(const char *name, const char *domain_type, const char *disk);

/* ---- networks (the guest network policy's, drivers/guestnet.h) ---- */

enum virt_net_state { VIRT_NET_ABSENT = 0, VIRT_NET_INACTIVE, VIRT_NET_ACTIVE };

/* A libvirt network's state; when it is active and xml is not NULL, *xml gets its live XML
 * (caller frees). */
int	virt_network_state(struct virt *, const char *name, enum virt_net_state *, char **xml,
	    struct err *);
/* Defines a persistent network from xml, marks it autostart and starts it. One that does not
 * start is undefined again (the error says why: e.g. its subnet is in use). */
int	virt_network_create(struct virt *, const char *xml, struct err *);
/* Starts a defined, inactive network. */
int	virt_network_start(struct virt *, const char *name, struct err *);
/* Destroys (when active) and undefines a network; a missing one is fine. */
int	virt_network_remove(struct virt *, const char *name, struct err *);

#endif
