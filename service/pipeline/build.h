/*
 * build.h — the one build pipeline that `isoforge local build` and the worker both run
 * (DESIGN.md "The build pipeline"):
 *
 *   queued → resolving → fetching → assembling → installing → [customizing] → snapshotting →
 *   uploading → active          (any state → failed | cancelled)
 *
 * What differs between a local build and a worker's stands behind three driver tables:
 * where the media come from (struct source_ops: files | Glance + the ISO cache), where the
 * image goes (struct registry_ops: the local store | Glance) and who is told (struct
 * notifier_ops: a terminal | the job store and events).
 *
 * Threads: build_run runs on a build thread of its own and blocks (HTTP, qemu-img, the
 * install). The event loop runs on its own thread; everything libvirt is done there through
 * loop_call, and the build thread waits on the build's condition for what the loop reports
 * (the install's outcome). build_request_finish/cancel/stop may be called from any thread.
 */
#ifndef ISOFORGE_BUILD_H
#define ISOFORGE_BUILD_H

#include <pthread.h>
#include <signal.h>

#include <jansson.h>

#include "base/loop.h"
#include "base/util.h"
#include "drivers/hash.h"
#include "drivers/ssh.h"
#include "drivers/virt.h"
#include "isoboot/isoboot.h"

/* The inactivity watchdog of an unattended install when nothing says otherwise (seconds). */
#define BUILD_DEFAULT_INACTIVITY	900
#define BUILD_DEFAULT_PROGRESS		60

enum build_state {
	BUILD_QUEUED = 0,
	BUILD_RESOLVING,
	BUILD_FETCHING,
	BUILD_ASSEMBLING,
	BUILD_INSTALLING,
	BUILD_CUSTOMIZING,
	BUILD_SNAPSHOTTING,
	BUILD_UPLOADING,
	BUILD_ACTIVE,		/* terminal: the image is registered */
	BUILD_FAILED,		/* terminal */
	BUILD_CANCELLED		/* terminal */
};

/* "queued", "resolving", ... "active", "failed", "cancelled". */
const char	*build_state_name(enum build_state);
/* The state of that name, or -1. */
int		 build_state_from_name(const char *);
int		 build_state_terminal(enum build_state);
/* Rough progress of a state (0–100), for events and lists. */
int		 build_state_progress(enum build_state);

struct build;
struct answers_result;

/* A report of the running install (every progress interval; see struct notifier_ops). */
struct build_activity {
	int		 first;		/* the install's start: nothing measured yet */
	double		 elapsed_s;	/* since the install started */
	long long	 written;	/* bytes the guest wrote to its root disk; -1 unknown */
	const char	*console;	/* the serial console's last non-empty line, or "" */
	const char	*serial_log;	/* where the serial console goes (the builder's path) */
	const char	*text;		/* elapsed, written and console as one line */
};

/*
 * Where the media come from. resolve (resolving) checks what the request names and fills
 * the build: iso_ref/virtio_win_ref as written on the image, iso_props (the ISO image's own
 * properties, for the profile rule), the flavor's size, the parent; fetch (fetching; NULL =
 * nothing to fetch) makes the media local files: iso, virtio_win (absolute) and iso_hash.
 */
struct source_ops {
	const char	*name;			/* "file" | "glance" */
	int		(*resolve)(void *ctx, struct build *, struct err *);
	int		(*fetch)(void *ctx, struct build *, struct err *);
};

/*
 * Where built images go. add registers file as the next version of the build's chain (never
 * handed out twice) with props (everything but isoforge_chain and isoforge_version, which the
 * registry settles with the version) and sets the build's image_id and version; what it
 * creates is told to the notifier (build_resource) before its data is sent, and a half-made
 * image is removed when add fails. find_built (may be NULL): an image an earlier run of this
 * very build registered (a request delivered twice), or NULL. get: the image's record.
 * remove: deletes an image the build created (clean-up after a crash).
 */
struct registry_ops {
	const char	*name;			/* "local" | "glance" */
	char		*(*find_built)(void *ctx, const struct build *, struct err *);
	int		(*add)(void *ctx, struct build *, const char *file, const json_t *props,
			    struct err *);
	json_t		*(*get)(void *ctx, const char *id, struct err *);
	int		(*remove)(void *ctx, const char *id, struct err *);
};

/*
 * Who is told. state: a state change, called before the build goes on (the worker records it
 * in the job store, then announces it): -1 fails the build (it could not be recorded). field:
 * something the build learnt ("project_id", "user_id", "domain", "image_id", "console" —
 * JSON with the VNC password: never print it); value NULL clears. resource: something to
 * clean up should the process die (kind "dir" | "domain" | "glance_image"), added or gone.
 * progress: within a state, 0..100. Any member may be NULL. Called on the build thread,
 * but for console (loop thread).
 */
struct notifier_ops {
	int		(*state)(void *ctx, struct build *, enum build_state, const char *message,
			    struct err *);
	void		(*field)(void *ctx, struct build *, const char *name, const char *value);
	void		(*resource)(void *ctx, struct build *, const char *kind, const char *value,
			    int added);
	void		(*progress)(void *ctx, struct build *, double pct);
	/*
	 * installing: the serial log's path at the start (first), then a report every
	 * progress_interval_s. NULL: the path goes to the log, and each report is announced as
	 * an installing state with text as its message (the worker's events).
	 */
	void		(*activity)(void *ctx, struct build *, const struct build_activity *);
};

/* How a running build is asked to stop (build_request_stop). */
enum build_stop {
	BUILD_STOP_NONE = 0,
	BUILD_STOP_CANCEL,	/* the requester cancels: end cancelled, clean up */
	BUILD_STOP_ABANDON	/* the process stops: leave everything as it is, to be resumed */
};

/* struct build's console: auto = VNC for an interactive install, none for an unattended one */
enum { BUILD_CONSOLE_AUTO, BUILD_CONSOLE_VNC, BUILD_CONSOLE_NONE };

struct build {
	char			 id[128];	/* a UUID, or --build-id of plan */
	pthread_mutex_t		 mu;		/* the fields marked "under mu" */
	pthread_cond_t		 cv;		/* the install's outcome, a stop */

	enum build_state	 state;
	char			*message;	/* last state's message (the failure's reason) */

	/* ---- the request (strings owned by the build); build_apply_request fills them ---- */
	char			*name;		/* image name (required) */
	char			*chain;		/* default: name */
	char			*parent;	/* isoforge_parent (image id) or NULL */
	char			*iso_ref;	/* the ISO as the request names it: a file or a
						 * Glance image id; isoforge_source_iso */
	char			*virtio_win_ref; /* file | Glance id | "auto" | NULL */
	char			*flavor_ref;	/* Nova flavor id or name (Glance source) */
	char			*os_type, *os_distro, *os_version;
	char			*profile_name;	/* explicit profile, else the profile rule */
	char			*firmware;	/* NULL | bios | uefi (explicit) */
	char			*machine;	/* NULL | pc | q35 | pc-q35-X ... (explicit) */
	struct isoboot_flavor	 flavor;	/* the source fills what it learns */
	char			*install_mode;	/* interactive | unattended */
	double			 timeout_s;	/* install timeout; 0 = none */
	double			 finish_grace_s; /* ACPI shutdown → destroy; default 60 */
	double			 progress_interval_s; /* installing: a report every so often
						 * (notifier activity); 0 = none; default 60 */
	double			 inactivity_timeout_s; /* installing: no disk writes and no
						 * console output for so long fails the build
						 * (with a screenshot); 0 = off; < 0 = the default:
						 * BUILD_DEFAULT_INACTIVITY when unattended, else off */
	int			 compress;	/* qemu-img convert -c */
	char			*visibility;	/* Glance visibility; NULL = private */
	json_t			*properties;	/* extra image properties (strings) or NULL */
	json_t			*tags;		/* Glance tags (array) or NULL */
	int			 unattended;	/* answer files (service/pipeline/answers.h) */
	json_t			*answers;	/* install.answers or NULL (holds passwords) */
	char			*ssh_pubkey;	/* the build's ephemeral public key, or NULL */
	char			*answers_salt;	/* crypt(3) salt of the answer files; NULL random */
	json_t			*customize;	/* scripts and files (customize.h), or NULL */
	char			*from_ref;	/* a derived build's base image: a file or a Glance
						 * id (instead of an ISO), or NULL */

	/* ---- the builder host (set by the caller) ---- */
	char			*domain_type;	/* "kvm" | "qemu"; NULL = kvm */
	char			*vnc_listen;	/* NULL = 127.0.0.1 */
	char			*vnc_password_fixed; /* NULL = a new random one (plan: fixed) */
	int			 console;	/* BUILD_CONSOLE_*: the install's VNC console */
	char			*guest_network;	/* drivers/guestnet.h policy; NULL = isolated */
	char			*guest_deny;	/* its denied CIDRs; NULL = the default ranges */
	char			*owner;		/* written in the domain's metadata (the worker's
						 * host name: its restarts find its domains) */
	char			*templates;	/* NULL = templates_dir() */
	char			*work_root;	/* work dirs go to WORK_ROOT/<id> */
	char			*work_dir;	/* NULL = WORK_ROOT/<id> */
	char			*root_disk;	/* NULL = WORK_DIR/root.qcow2 */
	char			*log_dir;	/* the serial log is kept there at the end */
	char			*floppy;	/* an extra floppy image or NULL */
	char			**extra_cdroms;	/* NULL-terminated extra CD-ROM images or NULL */
	int			 autodestroy;	/* the guest dies with our libvirt connection */
	double			 step_timeout_s; /* qemu-img convert and the like; 0 = none */
	enum build_state	 resume;	/* QUEUED: a new build; INSTALLING: watch the
						 * domain an earlier run started; SNAPSHOTTING:
						 * its install is over, snapshot its disk */

	int			 disk_only;	/* the plan boots the installed disk alone */

	/* ---- what resolving and fetching find ---- */
	char			*base;		/* a derived build's base image file (absolute) */
	json_t			*iso_props;	/* the ISO image's properties, or NULL */
	char			*iso;		/* the OS ISO file (absolute) */
	char			*iso_hash;	/* sha512 hex (or Glance's checksum) */
	struct hash_job		*iso_hash_job;	/* iso_hash being computed (a local ISO: while
						 * it installs), taken before the upload */
	char			*virtio_win;	/* the virtio-win file (absolute) or NULL */

	/* ---- what the steps make (owned by the build) ---- */
	char			*serial_log;	/* during the build: in work_dir; after: log_dir */
	char			*screenshot;	/* the watchdog's screenshot (PNG), or NULL */
	char			*snapshot;	/* the converted image, until registered */
	char			*domain_name;
	char			 vnc_password[9];
	struct isoboot_plan	*plan;
	struct ssh_key		*ssh_key;	/* customizing: the build's ephemeral key */
	char			*customize_log;	/* the scripts' output: work_dir, then log_dir */
	struct answers_result	*answers_out;	/* unattended: what assembling made */
	struct virt_domain	*dom;
	char			 image_sha512[129];
	char			 image_md5[33];
	int			 version;
	char			*image_id;
	json_t			*image_properties; /* what was registered (Nova + lineage) */
	double			 started_at, install_started_at;

	/* ---- the drivers and the loop (borrowed) ---- */
	const struct source_ops	*source;
	void			*source_ctx;
	const struct registry_ops *registry;
	void			*registry_ctx;
	const struct notifier_ops *notifier;
	void			*notifier_ctx;
	struct loop		*loop;
	struct virt		*virt;

	/* ---- the install, between the loop thread and the build thread (under mu) ---- */
	enum virt_outcome	 outcome;
	char			*outcome_reason;
	int			 timed_out;
	int			 timeout_timer;	/* loop thread only */
	enum build_stop		 stop;
	int			 finish_requested;
	/* written once on a stop: children (qemu-img) and transfers watch it */
	int			 stop_fd;
	volatile sig_atomic_t	 stop_flag;
};

/* A new build (state queued) with id, or a new UUID when id is NULL; caller frees. */
struct build	*build_new(const char *id);
/* Frees the build (not its domain or files: build_cleanup does that). */
void		 build_free(struct build **);

/* The build's request fields from a parsed request (struct build_request). */
struct build_request;
void	build_apply_request(struct build *, const struct build_request *);

/*
 * The one place a state changes: records it (and the message), then tells the notifier.
 * Returns what the notifier returns (-1: the state could not be recorded; e filled).
 */
int	build_set_state(struct build *, enum build_state, struct err *, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
/* Tells the notifier something the build learnt / made (see struct notifier_ops). */
void	build_field(struct build *, const char *name, const char *value);
void	build_resource(struct build *, const char *kind, const char *value, int added);

/*
 * The whole pipeline, on the calling (build) thread: resolving, fetching, assembling,
 * installing, snapshotting, uploading, the clean-up, then the terminal state: active, failed
 * (with the reason) or cancelled. With resume == INSTALLING it looks up the media and flavor
 * again without announcing it, finds the domain an earlier run started and watches it; with
 * resume == SNAPSHOTTING (an earlier run's install is over) it snapshots the root disk that is
 * still there and uploads again — unless that earlier run's image is there already.
 * Returns 0 when active. A build abandoned (BUILD_STOP_ABANDON) returns -1 in the state it
 * was in, its domain and files left for a later run.
 */
int	build_run(struct build *);

/*
 * The plan the build's domain is made from: the work paths (unless given), the OS profile by
 * the one rule — the explicit profile, else the request's os (any of it given), else the ISO
 * image's os_type/os_distro/os_version, else linux; then the ISO's hw_* properties override
 * it; then the explicit machine and firmware — and isoboot's block-device plan; for an
 * unattended build its answer media (service/pipeline/answers.h). Reads the profile and, for
 * answers, the ISO; with make, writes the answer media into the work dir (assembling), else
 * nothing (`isoforge plan`, a resumed build). Used by assembling and by `isoforge plan`.
 */
int	build_make_plan(struct build *, int make, struct err *);
/* The domain XML of the plan (base template + plan); caller frees (it holds the VNC password). */
char	*build_domain_xml(const struct build *, struct err *);
/* Nova's properties of the plan, with os_distro/os_version (pure; new reference). */
json_t	*build_nova_properties(const struct build *);
/* Every property the registered image gets but isoforge_chain/_version, which the registry
 * settles: Nova's, the request's extra properties (never overriding those, never os_glance_*,
 * isoforge_*, base_image_ref, instance_uuid, image_type) and the lineage. New reference. */
json_t	*build_image_properties(const struct build *, const char *built_at);

/* Asks the install to end as done (ACPI shutdown, destroy after finish_grace_s). Any thread. */
void	build_request_finish(struct build *);
/* Asks the build to stop (cancel or abandon; see enum build_stop). Any thread. */
void	build_request_stop(struct build *, enum build_stop);
/* The stop asked so far. */
enum build_stop build_stopping(struct build *);
/* Console of the running install (the password only when asked); see virt_console_get. */
int	build_console(struct build *, int want_password, struct virt_console *, struct err *);

/* The built image's record from the registry (new reference) or NULL. */
json_t	*build_image_record(struct build *, struct err *);

#endif
