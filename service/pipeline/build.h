/* build.h — one build's pipeline, shared by `isoforge local build` and the worker:
 * resolving → [fetching] → assembling → installing → snapshotting → registering → active
 * (any state → failed | cancelled). The caller owns the loop, the libvirt connection and the
 * registry; the steps are plain functions it calls in order. */
#ifndef ISOFORGE_BUILD_H
#define ISOFORGE_BUILD_H

#include <jansson.h>

#include "drivers/virt.h"
#include "isoboot/isoboot.h"
#include "base/loop.h"
#include "base/util.h"

enum build_state {
	BUILD_QUEUED = 0,
	BUILD_RESOLVING,
	BUILD_FETCHING,
	BUILD_ASSEMBLING,
	BUILD_INSTALLING,
	BUILD_CUSTOMIZING,
	BUILD_SNAPSHOTTING,
	BUILD_REGISTERING,	/* the worker's "uploading" */
	BUILD_ACTIVE,		/* terminal: the image is registered */
	BUILD_FAILED,		/* terminal */
	BUILD_CANCELLED		/* terminal */
};

/* "queued", "resolving", ... "active", "failed", "cancelled". */
const char	*build_state_name(enum build_state);
/* The state of that name, or -1. */
int		 build_state_from_name(const char *);
int		 build_state_terminal(enum build_state);

/*
 * Where built images go. Drivers of one kind share one table (DESIGN.md): the local one is
 * registry_local_ops over drivers/localstore (ctx: struct localstore *); the worker adds a
 * Glance one.
 */
struct registry_ops {
	const char	*name;		/* "local" | "glance" */
	/* Reserves the next version of chain (never handed out twice). */
	int		(*next_version)(void *ctx, const char *chain, int *version, struct err *);
	/* Registers image_file (moved in / uploaded) with meta {"name", "min_disk", "min_ram",
	 * "properties"{...}}; *id gets the new image id (caller frees). */
	int		(*add)(void *ctx, const char *image_file, json_t *meta, char **id,
			    struct err *);
	/* The registered image's record (new reference), e.g. for --json output. */
	json_t		*(*get)(void *ctx, const char *id, struct err *);
};

struct registry {
	const struct registry_ops	*ops;
	void				*ctx;
};

extern const struct registry_ops registry_local_ops;

struct build;
struct answers_result;

/* The end of an install started with build_install_start: rc 0 (done) or -1 with e. */
typedef void (*build_install_done_cb)(struct build *, int rc, const struct err *e, void *arg);

/* Told about every state change (after it happened); message may be NULL. */
typedef void (*build_state_cb)(struct build *, enum build_state, const char *message,
    void *arg);
/* Progress inside a state (0..100; the snapshot's convert). */
typedef void (*build_progress_cb)(struct build *, double pct, void *arg);

struct build {
	char			 id[64];
	enum build_state	 state;
	char			*message;	/* last state's message (failure reason) */

	/* the request: set by the caller before build_resolve (strings owned by the build) */
	char			*name;		/* image name */
	char			*chain;		/* default: name */
	char			*parent;	/* isoforge_parent (image id) or NULL */
	char			*iso;		/* OS ISO file (absolute after resolving) */
	char			*iso_ref;	/* isoforge_source_iso: Glance id; default the path */
	char			*iso_hash;	/* sha512 hex; computed by build_resolve when NULL */
	char			*virtio_win;	/* virtio-win file or NULL */
	char			*virtio_win_ref; /* isoforge_virtio_win; default the path or "none" */
	char			*os_type, *os_distro, *os_version;
	char			*profile_name;	/* NULL: chosen from the OS triple */
	char			*firmware;	/* NULL | bios | uefi */
	char			*machine;	/* NULL (the profile's) | pc | q35 | pc-q35-X ... */
	struct isoboot_flavor	 flavor;	/* disk_gib required */
	double			 timeout_s;	/* install timeout; 0 = none */
	double			 finish_grace_s; /* ACPI shutdown → destroy; default 60 */
	int			 compress;	/* qemu-img convert -c */
	int			 autodestroy;	/* the guest dies with our libvirt connection */
	char			*domain_type;	/* "kvm" | "qemu" (see virt_probe_kvm) */
	char			*vnc_listen;	/* NULL = 127.0.0.1 */
	char			*templates;	/* templates dir; NULL = templates_dir() */
	json_t			*properties;	/* extra image properties (strings) or NULL */
	char			*work_root;	/* work dirs go to WORK_ROOT/<id>; required */
	char			*log_dir;	/* the serial log is kept there (else in work_root) */
	int			 unattended;	/* answer files (service/pipeline/answers.h) */
	json_t			*answers;	/* install.answers or NULL (holds passwords) */
	char			*ssh_pubkey;	/* the build's ephemeral public key, or NULL */

	/* what the steps make (owned by the build) */
	char			*work_dir;
	char			*root_disk;
	char			*serial_log;	/* during the build: in work_dir; after: log_dir */
	char			*snapshot;	/* converted image, until registered */
	char			*domain_name;
	char			 vnc_password[9];
	struct isoboot_plan	*plan;
	struct answers_result	*answers_out;	/* unattended: what assembling made */
	struct virt_domain	*dom;
	enum virt_outcome	 outcome;
	char			*outcome_reason;
	char			 image_sha512[129];
	char			 image_md5[33];
	int			 version;
	char			*image_id;
	json_t			*image_properties; /* what was registered (Nova + lineage) */
	double			 started_at, install_started_at;

	/* runtime */
	struct loop		*loop;
	struct virt		*virt;
	int			 cancel_requested;
	int			 finish_requested;
	int			 timed_out;
	int			 timeout_timer;
	build_install_done_cb	 install_done;
	void			*install_done_arg;
	build_state_cb		 on_state;
	build_progress_cb	 on_progress;
	void			*cb_arg;
};

/* A new build (state queued) with id, or a new UUID when id is NULL; caller frees. */
struct build	*build_new(const char *id, struct loop *, struct virt *);
/* Frees the build (not its domain or files: build_cleanup does that). */
void		 build_free(struct build **);

/* The one place a state changes: records it (and message), then tells on_state. */
void	build_set_state(struct build *, enum build_state, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* resolving: checks the media files and flavor, makes paths absolute, hashes the ISO,
 * loads the profile. */
int	build_resolve(struct build *, struct err *);
/* assembling: work dir, qemu-img create of the root disk (flavor disk GiB), isoboot plan →
 * domain XML, define (a stale domain of the same name is removed first). */
int	build_assemble(struct build *, struct err *);
/*
 * After a restart (the worker's): the paths, the plan and a handle on the domain an earlier
 * run of this build assembled and started (nothing is created; the root disk must be there).
 * Then watch the domain with virt_watch.
 */
int	build_reattach(struct build *, struct err *);
/*
 * installing: starts the domain and runs the loop until its outcome: guest power-off (or a
 * finish) → 0; destroyed, crashed, paused, timeout → -1 (ERR_TIMEOUT / ERR_IO); cancel →
 * -1 with ERR_CANCELLED.
 */
int	build_install(struct build *, struct err *);
/* The same without running the loop (the worker's many builds share one loop): starts the
 * domain and returns; done is called once, from the loop, with the outcome. */
int	build_install_start(struct build *, build_install_done_cb done, void *arg, struct err *);
/* Console of the running install (the password only when asked); see virt_console_get. */
int	build_console(struct build *, int want_password, struct virt_console *, struct err *);
/* Asks the install to end as done (ACPI shutdown, destroy after finish_grace_s). */
void	build_request_finish(struct build *);
/* Asks the build to stop: during the install the domain is destroyed; other steps check it
 * between steps. Safe from loop callbacks (signals, AMQP). */
void	build_request_cancel(struct build *);
/* snapshotting: qemu-img convert -O qcow2 [-c] of the root disk, sha512 + md5 of the result. */
int	build_snapshot(struct build *, struct err *);
/* registering: next version of the chain, Nova + lineage properties, registry add. */
int	build_register(struct build *, const struct registry *, struct err *);
/* Undefines the domain and removes the work files whatever the state; the serial log moves to
 * log_dir. Safe to call more than once. */
void	build_cleanup(struct build *);

/*
 * Runs the whole pipeline (resolve, assemble, install, snapshot, register, cleanup) and sets
 * the terminal state: active, failed (with the reason) or cancelled. Returns 0 when active.
 */
int	build_run(struct build *, const struct registry *, struct err *);

/* The properties a build writes (pure; for tests): Nova's from the plan, os_distro/os_version,
 * lineage, extra properties minus the keys isoforge never writes. New reference. */
json_t	*build_image_properties(const struct build *, const char *built_at);

#endif
