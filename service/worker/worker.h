/*
 * worker.h — isoforged's logic: takes build requests from RabbitMQ, records them in the job
 * store, acks them early, runs the pipeline, announces every state on isoforge.events, answers
 * control messages; reconnects to the broker with backoff and resumes builds after a restart.
 */
#ifndef ISOFORGE_WORKER_H
#define ISOFORGE_WORKER_H

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

/* Builds this worker is running now. */
int		 worker_running(const struct worker *);

#endif
