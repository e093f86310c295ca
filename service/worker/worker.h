/*
 * worker.h — isoforged's logic: takes build requests from RabbitMQ, records them in the job
 * store, acks them early, runs the pipeline, announces every state on isoforge.events, answers
 * control messages; reconnects to the broker with backoff and resumes builds after a restart.
 */
#ifndef ISOFORGE_WORKER_H
#define ISOFORGE_WORKER_H

#include <stddef.h>

#include <jansson.h>

#include "service/common/config.h"
#include "base/loop.h"
#include "base/util.h"

struct worker;

/*
 * A worker for cfg on loop (both borrowed, must outlive it): opens the job store in
 * cfg->work_dir and recovers the builds a previous run left. Caller frees with worker_free.
 */
struct worker	*worker_new(const struct config *cfg, struct loop *loop, struct err *);
/* Connects (now, and again with backoff whenever the broker goes away) and starts consuming. */
int		 worker_start(struct worker *, struct err *);
/* Stops taking requests; running installs keep running in libvirt (a restart resumes them). */
void		 worker_stop(struct worker *);
void		 worker_free(struct worker **);

/* Bodies of requests and control messages larger than this are refused before parsing. */
#define WORKER_MAX_BODY		(64 * 1024)

/*
 * Parses the body of a control message (pure: what the worker runs on each delivery of its
 * control queue): {"schema": "isoforge.control/2", "action", "build_id"}, no token. Returns
 * the message (caller json_decref()s) with the fields borrowed from it, or NULL with the reason.
 */
json_t		*worker_control_parse(const void *body, size_t len, const char **action,
		    const char **build_id, struct err *);

/* Builds this worker is running now. */
int		 worker_running(const struct worker *);

#endif
