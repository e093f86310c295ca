/* jobstore.h — the worker's durable record of its builds (SQLite, WAL, in work_dir). */
#ifndef ISOFORGE_JOBSTORE_H
#define ISOFORGE_JOBSTORE_H

#include <stddef.h>

#include <jansson.h>

#include "base/util.h"
#include "service/pipeline/build.h"

/*
 * One build as stored. No bearer token, ever: the build acts for the requester through the
 * Keystone trust whose id it keeps (apart from the request, the canonical request JSON without
 * it); the trust is also one of its resources until it is deleted.
 */
struct job {
	char		*build_id;
	enum build_state	 state;
	char		*request;	/* canonical JSON, no trust id */
	char		*trust_id;	/* the requester's trust to isoforge (NULL: none) */
	char		*project_id;	/* from the trust-scoped token, never the message */
	char		*user_id;
	char		*message;	/* last transition's message */
	char		*domain;	/* libvirt domain name, once defined */
	char		*image_id;	/* Glance (or local store) image id, once created */
	char		*version;	/* the image's isoforge_version, once registered */
	char		*console;	/* JSON: {"host","port","password"} while installing */
	char		 created_at[32];
	char		 updated_at[32];
	json_t		*resources;	/* [{"kind","value"}]: what to clean up */
};

struct jobstore;

/* Opens (creating, mode 0600) the SQLite job store at path; caller closes with jobstore_close. */
int	 jobstore_open(const char *path, struct jobstore **, struct err *);
void	 jobstore_close(struct jobstore **);

/*
 * Records a new build in state queued (with a first transition) and, in the same transaction,
 * its trust_id (may be NULL) as a resource of kind "trust" to delete when it ends. Returns 0
 * when added, 1 when build_id is already known (nothing is changed: a repeated request is a
 * no-op), -1 on error.
 */
int	 jobstore_add(struct jobstore *, const char *build_id, const char *request_json,
	    const char *trust_id, const char *project_id, const char *user_id, struct err *);
/*
 * Moves a build to state (recording the transition with its time and message); a terminal
 * build can't move (ERR_CONFLICT).
 */
int	 jobstore_set_state(struct jobstore *, const char *build_id, enum build_state,
	    const char *message, struct err *);
/* Sets one of the fields "domain", "image_id", "version", "console", "project_id", "user_id"
 * (NULL clears). */
int	 jobstore_set_field(struct jobstore *, const char *build_id, const char *field,
	    const char *value, struct err *);
/* Remembers something the build created (kind: file, dir, domain, glance_image, trust ...). */
int	 jobstore_add_resource(struct jobstore *, const char *build_id, const char *kind,
	    const char *value, struct err *);
/* Forgets it once it is cleaned up. */
int	 jobstore_remove_resource(struct jobstore *, const char *build_id, const char *kind,
	    const char *value, struct err *);

/* Returns the build (ERR_NOTFOUND when unknown); caller frees with job_free. */
struct job *jobstore_get(struct jobstore *, const char *build_id, struct err *);
/* All builds (only the non-terminal ones when active_only), oldest first; free with jobs_free. */
int	 jobstore_list(struct jobstore *, int active_only, struct job ***jobs, size_t *n,
	    struct err *);
/* The transitions of a build: [{"state","at","message"}]; caller decrefs. */
json_t	*jobstore_history(struct jobstore *, const char *build_id, struct err *);

/* A build as JSON for status replies and the CLI (never a trust id nor a console password);
 * caller decrefs. */
json_t	*job_to_json(const struct job *);
void	 job_free(struct job **);
void	 jobs_free(struct job ***, size_t n);

/* What a restarted worker does with a build it finds in the store. */
enum job_resume {
	RESUME_NONE,		/* terminal: nothing to do */
	RESUME_WATCH,		/* the install still runs in libvirt: watch it again */
	RESUME_SNAPSHOT,	/* the install is done and its disk is there: snapshot and upload
				 * again (a half-made image removed) */
	RESUME_RESTART,		/* nothing irreversible happened yet: run the build again */
	RESUME_FAIL		/* can't know what happened: fail it and clean up */
};

/* What of a build is still there after a restart (jobstore_recover's question). */
#define JOB_HAS_DOMAIN	0x1	/* its domain is in libvirt (running, or stopped: the watch
				 * derives how it ended from its state) */
#define JOB_HAS_DISK	0x2	/* its root disk is in its work dir */

enum job_resume	 jobstore_resume_action(enum build_state, int has);
const char	*job_resume_name(enum job_resume);

/*
 * On start-up: decides for each non-terminal build (asking present(arg, job) what of it is
 * still there: JOB_HAS_* bits), records RESUME_FAIL builds as failed and RESUME_RESTART builds
 * as queued again before returning, and hands back every non-terminal build with its action
 * (free with jobs_free; actions with free).
 */
int	 jobstore_recover(struct jobstore *, int (*present)(void *, const struct job *),
	    void *arg, struct job ***jobs, enum job_resume **actions, size_t *n, struct err *);

#endif
