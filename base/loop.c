/* loop.c — an epoll loop with watches, timers, signals (signalfd) and a wakeup (eventfd). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/log.h"
#include "base/loop.h"

struct loop_watch {
	int		 id;
	int		 fd;
	int		 events;
	int		 deleted;
	int		 fresh;		/* not yet given to epoll (its fd number may be reused) */
	loop_fd_cb	 cb;
	void		*arg;
	loop_free_cb	 ff;
};

struct loop_timer {
	int		 id;
	int		 interval;	/* ms; -1 disabled, 0 every iteration */
	int		 deleted;
	double		 deadline;	/* ms, monotonic */
	loop_timer_cb	 cb;
	void		*arg;
	loop_free_cb	 ff;
};

/* What epoll currently holds for one fd. */
struct loop_fdreg {
	int		 fd;
	uint32_t	 events;
	int		 seen;
};

struct loop_sig {
	int		 signo;
	loop_signal_cb	 cb;
	void		*arg;
};

/* A function another thread asked the loop thread to run (loop_call). */
struct loop_call {
	void		(*fn)(void *);
	void		*arg;
	int		 done;		/* under the loop's lock */
	struct loop_call *next;
};

struct loop {
	pthread_mutex_t	 lock;
	pthread_cond_t	 called;	/* a loop_call is done */
	pthread_t	 thread;	/* the loop's own thread: the one that made it */
	pthread_t	 owner;		/* the thread inside loop_run_once */
	struct loop_call *calls;	/* under lock: queued, oldest first */
	struct loop_call **calls_tail;
	int		 running;
	int		 quit;
	int		 epfd;
	int		 wakefd;
	int		 sigfd;
	sigset_t	 sigmask;
	struct loop_sig	*sigs;
	size_t		 nsigs;
	struct loop_watch *watches;
	size_t		 nwatches;
	struct loop_timer *timers;
	size_t		 ntimers;
	struct loop_fdreg *regs;
	size_t		 nregs;
	int		 next_id;
	int		 need_cleanup;
};

static double
loop_now_ms(void)
{
	return util_now() * 1000.0;
}

/* Writes to the eventfd so a thread blocked in epoll_wait sees changes made elsewhere. */
static void
loop_poke(struct loop *l)
{
	uint64_t one = 1;

	if (l->running && !pthread_equal(l->owner, pthread_self()))
		(void)!write(l->wakefd, &one, sizeof(one));
}

struct loop *
loop_new(struct err *e)
{
	struct loop		*l;
	struct epoll_event	 ev;

	l = xcalloc(1, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->called, NULL);
	l->thread = pthread_self();
	l->calls_tail = &l->calls;
	l->sigfd = -1;
	l->next_id = 1;
	sigemptyset(&l->sigmask);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epfd == -1 || l->wakefd == -1) {
		err_set(e, ERR_IO, "epoll/eventfd: %s", strerror(errno));
		loop_free(&l);
		return NULL;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = l->wakefd;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) == -1) {
		err_set(e, ERR_IO, "epoll_ctl: %s", strerror(errno));
		loop_free(&l);
		return NULL;
	}
	return l;
}

void
loop_free(struct loop **lp)
{
	struct loop	*l;
	size_t		 i;

	if (lp == NULL || (l = *lp) == NULL)
		return;
	for (i = 0; i < l->nwatches; i++)
		if (l->watches[i].ff != NULL)
			l->watches[i].ff(l->watches[i].arg);
	for (i = 0; i < l->ntimers; i++)
		if (l->timers[i].ff != NULL)
			l->timers[i].ff(l->timers[i].arg);
	if (l->sigfd != -1) {
		close(l->sigfd);
		pthread_sigmask(SIG_UNBLOCK, &l->sigmask, NULL);
	}
	if (l->epfd != -1)
		close(l->epfd);
	if (l->wakefd != -1)
		close(l->wakefd);
	free(l->watches);
	free(l->timers);
	free(l->regs);
	free(l->sigs);
	pthread_cond_destroy(&l->called);
	pthread_mutex_destroy(&l->lock);
	free(l);
	*lp = NULL;
}

int
loop_watch_add(struct loop *l, int fd, int events, loop_fd_cb cb, void *arg, loop_free_cb ff)
{
	struct loop_watch	*w;
	int			 id;

	if (fd < 0)
		return -1;
	pthread_mutex_lock(&l->lock);
	l->watches = xrealloc(l->watches, (l->nwatches + 1) * sizeof(*l->watches));
	w = &l->watches[l->nwatches++];
	memset(w, 0, sizeof(*w));
	id = w->id = l->next_id++;
	w->fd = fd;
	w->events = events;
	w->fresh = 1;
	w->cb = cb;
	w->arg = arg;
	w->ff = ff;
	loop_poke(l);
	pthread_mutex_unlock(&l->lock);
	return id;
}

void
loop_watch_update(struct loop *l, int id, int events)
{
	size_t	 i;

	pthread_mutex_lock(&l->lock);
	for (i = 0; i < l->nwatches; i++)
		if (l->watches[i].id == id && !l->watches[i].deleted) {
			l->watches[i].events = events;
			break;
		}
	loop_poke(l);
	pthread_mutex_unlock(&l->lock);
}

/*
 * Takes fd out of epoll now, while its owner still has it open: once closed, a copy of the file
 * elsewhere (a forked child) would keep it in epoll under a number that a new file may get.
 */
static void
loop_unregister_fd(struct loop *l, int fd)
{
	size_t	 i;

	for (i = 0; i < l->nwatches; i++)
		if (!l->watches[i].deleted && l->watches[i].fd == fd)
			return;
	for (i = 0; i < l->nregs; i++)
		if (l->regs[i].fd == fd) {
			(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
			l->regs[i] = l->regs[--l->nregs];
			return;
		}
}

int
loop_watch_remove(struct loop *l, int id)
{
	size_t	 i;
	int	 rc = -1;

	pthread_mutex_lock(&l->lock);
	for (i = 0; i < l->nwatches; i++)
		if (l->watches[i].id == id && !l->watches[i].deleted) {
			l->watches[i].deleted = 1;
			l->need_cleanup = 1;
			loop_unregister_fd(l, l->watches[i].fd);
			rc = 0;
			break;
		}
	loop_poke(l);
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int
loop_timer_add(struct loop *l, int interval_ms, loop_timer_cb cb, void *arg, loop_free_cb ff)
{
	struct loop_timer	*t;
	int			 id;

	pthread_mutex_lock(&l->lock);
	l->timers = xrealloc(l->timers, (l->ntimers + 1) * sizeof(*l->timers));
	t = &l->timers[l->ntimers++];
	memset(t, 0, sizeof(*t));
	id = t->id = l->next_id++;
	t->interval = interval_ms;
	t->deadline = loop_now_ms() + (interval_ms > 0 ? interval_ms : 0);
	t->cb = cb;
	t->arg = arg;
	t->ff = ff;
	loop_poke(l);
	pthread_mutex_unlock(&l->lock);
	return id;
}

void
loop_timer_update(struct loop *l, int id, int interval_ms)
{
	size_t	 i;

	pthread_mutex_lock(&l->lock);
	for (i = 0; i < l->ntimers; i++)
		if (l->timers[i].id == id && !l->timers[i].deleted) {
			l->timers[i].interval = interval_ms;
			l->timers[i].deadline = loop_now_ms() +
			    (interval_ms > 0 ? interval_ms : 0);
			break;
		}
	loop_poke(l);
	pthread_mutex_unlock(&l->lock);
}

int
loop_timer_remove(struct loop *l, int id)
{
	size_t	 i;
	int	 rc = -1;

	pthread_mutex_lock(&l->lock);
	for (i = 0; i < l->ntimers; i++)
		if (l->timers[i].id == id && !l->timers[i].deleted) {
			l->timers[i].deleted = 1;
			l->need_cleanup = 1;
			rc = 0;
			break;
		}
	loop_poke(l);
	pthread_mutex_unlock(&l->lock);
	return rc;
}

int
loop_signal_add(struct loop *l, int signo, loop_signal_cb cb, void *arg, struct err *e)
{
	struct epoll_event	 ev;
	int			 fd;

	pthread_mutex_lock(&l->lock);
	sigaddset(&l->sigmask, signo);
	if (pthread_sigmask(SIG_BLOCK, &l->sigmask, NULL) != 0 ||
	    (fd = signalfd(l->sigfd, &l->sigmask, SFD_CLOEXEC | SFD_NONBLOCK)) == -1) {
		pthread_mutex_unlock(&l->lock);
		err_set(e, ERR_IO, "signalfd: %s", strerror(errno));
		return -1;
	}
	if (l->sigfd == -1) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.fd = fd;
		if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
			close(fd);
			pthread_mutex_unlock(&l->lock);
			err_set(e, ERR_IO, "epoll_ctl: %s", strerror(errno));
			return -1;
		}
		l->sigfd = fd;
	}
	l->sigs = xrealloc(l->sigs, (l->nsigs + 1) * sizeof(*l->sigs));
	l->sigs[l->nsigs].signo = signo;
	l->sigs[l->nsigs].cb = cb;
	l->sigs[l->nsigs].arg = arg;
	l->nsigs++;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static uint32_t
loop_to_epoll(int events)
{
	uint32_t ev = 0;

	if (events & LOOP_READ)
		ev |= EPOLLIN;
	if (events & LOOP_WRITE)
		ev |= EPOLLOUT;
	return ev;
}

static int
loop_from_epoll(uint32_t ev)
{
	int events = 0;

	if (ev & (EPOLLIN | EPOLLPRI))
		events |= LOOP_READ;
	if (ev & EPOLLOUT)
		events |= LOOP_WRITE;
	if (ev & EPOLLERR)
		events |= LOOP_ERROR;
	if (ev & EPOLLHUP)
		events |= LOOP_HANGUP;
	return events;
}

/*
 * Brings epoll in line with the watches: one registration per fd, the union of its events.
 * A new watch always (re)registers its fd: the fd number may belong to a new file now, and
 * epoll forgot the old one when it was closed.
 */
static void
loop_sync_fds(struct loop *l)
{
	struct epoll_event	 ev;
	size_t			 i, j;
	uint32_t		 want;
	int			 fresh;

	for (j = 0; j < l->nregs; j++)
		l->regs[j].seen = 0;
	for (i = 0; i < l->nwatches; i++) {
		struct loop_watch *w = &l->watches[i];

		if (w->deleted)
			continue;
		for (j = 0; j < l->nregs; j++)
			if (l->regs[j].fd == w->fd)
				break;
		if (j < l->nregs && l->regs[j].seen)
			continue;	/* done for this fd */
		want = 0;
		fresh = 0;
		for (size_t k = i; k < l->nwatches; k++)
			if (!l->watches[k].deleted && l->watches[k].fd == w->fd) {
				want |= loop_to_epoll(l->watches[k].events);
				fresh |= l->watches[k].fresh;
				l->watches[k].fresh = 0;
			}
		memset(&ev, 0, sizeof(ev));
		ev.events = want;
		ev.data.fd = w->fd;
		if (j == l->nregs) {
			if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) == -1 &&
			    (errno != EEXIST ||
			    epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) == -1)) {
				log_debug("loop: watch fd %d: %s", w->fd, strerror(errno));
				continue;
			}
			l->regs = xrealloc(l->regs, (l->nregs + 1) * sizeof(*l->regs));
			l->regs[j].fd = w->fd;
			l->nregs++;
		} else if (l->regs[j].events != want || fresh) {
			if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) == -1 &&
			    errno == ENOENT)
				(void)epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev);
		}
		l->regs[j].events = want;
		l->regs[j].seen = 1;
	}
	/* fds no watch wants any more; EBADF when the owner already closed it is fine. */
	for (j = 0; j < l->nregs; ) {
		if (l->regs[j].seen) {
			j++;
			continue;
		}
		(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->regs[j].fd, NULL);
		l->regs[j] = l->regs[--l->nregs];
	}
}

/* Drops removed watches and timers, calling their free callbacks without the lock held. */
static void
loop_cleanup(struct loop *l)
{
	loop_free_cb	 ff;
	void		*arg;
	size_t		 i;

	pthread_mutex_lock(&l->lock);
	while (l->need_cleanup) {
		l->need_cleanup = 0;
		for (i = 0; i < l->nwatches; i++) {
			if (!l->watches[i].deleted)
				continue;
			ff = l->watches[i].ff;
			arg = l->watches[i].arg;
			l->watches[i] = l->watches[--l->nwatches];
			l->need_cleanup = 1;
			if (ff != NULL) {
				pthread_mutex_unlock(&l->lock);
				ff(arg);
				pthread_mutex_lock(&l->lock);
			}
			break;
		}
		if (l->need_cleanup)
			continue;
		for (i = 0; i < l->ntimers; i++) {
			if (!l->timers[i].deleted)
				continue;
			ff = l->timers[i].ff;
			arg = l->timers[i].arg;
			/* keep timer order: the oldest fire first */
			memmove(&l->timers[i], &l->timers[i + 1],
			    (l->ntimers - i - 1) * sizeof(*l->timers));
			l->ntimers--;
			l->need_cleanup = 1;
			if (ff != NULL) {
				pthread_mutex_unlock(&l->lock);
				ff(arg);
				pthread_mutex_lock(&l->lock);
			}
			break;
		}
	}
	pthread_mutex_unlock(&l->lock);
}

/* Milliseconds until the next timer is due (-1 none), capped by max_ms when >= 0. */
static int
loop_wait_ms(struct loop *l, int max_ms)
{
	double	 now = loop_now_ms(), next = -1, d;
	size_t	 i;
	int	 ms;

	for (i = 0; i < l->ntimers; i++) {
		if (l->timers[i].deleted || l->timers[i].interval < 0)
			continue;
		d = l->timers[i].deadline - now;
		if (d < 0)
			d = 0;
		if (next < 0 || d < next)
			next = d;
	}
	if (next < 0)
		ms = max_ms;
	else {
		ms = (int)(next + 0.999);
		if (max_ms >= 0 && max_ms < ms)
			ms = max_ms;
	}
	return ms;
}

static void
loop_dispatch_signals(struct loop *l)
{
	struct signalfd_siginfo	 si;
	loop_signal_cb		 cb;
	void			*arg;
	size_t			 i;

	while (read(l->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		cb = NULL;
		arg = NULL;
		pthread_mutex_lock(&l->lock);
		for (i = 0; i < l->nsigs; i++)
			if (l->sigs[i].signo == (int)si.ssi_signo) {
				cb = l->sigs[i].cb;
				arg = l->sigs[i].arg;
			}
		pthread_mutex_unlock(&l->lock);
		if (cb != NULL)
			cb((int)si.ssi_signo, arg);
	}
}

/* Calls the callback of every live watch on fd, the lock released around each call. */
static void
loop_dispatch_fd(struct loop *l, int fd, int revents)
{
	size_t		 i, n;
	loop_fd_cb	 cb;
	void		*arg;
	int		 id, ev;

	pthread_mutex_lock(&l->lock);
	n = l->nwatches;
	for (i = 0; i < n && i < l->nwatches; i++) {
		struct loop_watch *w = &l->watches[i];

		if (w->deleted || w->fd != fd)
			continue;
		ev = revents & (w->events | LOOP_ERROR | LOOP_HANGUP);
		if (ev == 0)
			continue;
		cb = w->cb;
		arg = w->arg;
		id = w->id;
		pthread_mutex_unlock(&l->lock);
		cb(id, fd, ev, arg);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
}

/* Fires the timers that are due, each once. */
static void
loop_dispatch_timers(struct loop *l)
{
	size_t		 i, n;
	double		 now;
	loop_timer_cb	 cb;
	void		*arg;
	int		 id;

	pthread_mutex_lock(&l->lock);
	now = loop_now_ms();
	n = l->ntimers;
	for (i = 0; i < n && i < l->ntimers; i++) {
		struct loop_timer *t = &l->timers[i];

		if (t->deleted || t->interval < 0 || t->deadline > now)
			continue;
		t->deadline = now + t->interval;
		cb = t->cb;
		arg = t->arg;
		id = t->id;
		pthread_mutex_unlock(&l->lock);
		cb(id, arg);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
}

/* Runs the functions other threads queued with loop_call, oldest first, and wakes them. */
static void
loop_dispatch_calls(struct loop *l)
{
	struct loop_call	*c;

	pthread_mutex_lock(&l->lock);
	while ((c = l->calls) != NULL) {
		if ((l->calls = c->next) == NULL)
			l->calls_tail = &l->calls;
		pthread_mutex_unlock(&l->lock);
		c->fn(c->arg);
		pthread_mutex_lock(&l->lock);
		c->done = 1;
		pthread_cond_broadcast(&l->called);
	}
	pthread_mutex_unlock(&l->lock);
}

void
loop_call(struct loop *l, void (*fn)(void *), void *arg)
{
	struct loop_call	 c;

	if (pthread_equal(pthread_self(), l->thread)) {
		fn(arg);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.fn = fn;
	c.arg = arg;
	pthread_mutex_lock(&l->lock);
	*l->calls_tail = &c;
	l->calls_tail = &c.next;
	pthread_mutex_unlock(&l->lock);
	loop_wakeup(l);
	pthread_mutex_lock(&l->lock);
	while (!c.done)
		pthread_cond_wait(&l->called, &l->lock);
	pthread_mutex_unlock(&l->lock);
}

int
loop_in_thread(const struct loop *l)
{
	return pthread_equal(pthread_self(), l->thread);
}

int
loop_run_once(struct loop *l, int max_ms, struct err *e)
{
	struct epoll_event	 evs[32];
	uint64_t		 v;
	int			 n, i, ms;

	pthread_mutex_lock(&l->lock);
	l->owner = pthread_self();
	l->running = 1;
	loop_sync_fds(l);
	ms = loop_wait_ms(l, max_ms);
	pthread_mutex_unlock(&l->lock);

	n = epoll_wait(l->epfd, evs, 32, ms);

	pthread_mutex_lock(&l->lock);
	l->running = 0;
	pthread_mutex_unlock(&l->lock);
	if (n == -1) {
		if (errno == EINTR)
			return 0;
		err_set(e, ERR_IO, "epoll_wait: %s", strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (evs[i].data.fd == l->wakefd) {
			while (read(l->wakefd, &v, sizeof(v)) > 0)
				;
			continue;
		}
		if (evs[i].data.fd == l->sigfd && l->sigfd != -1) {
			loop_dispatch_signals(l);
			continue;
		}
		loop_dispatch_fd(l, evs[i].data.fd, loop_from_epoll(evs[i].events));
	}
	loop_dispatch_timers(l);
	loop_dispatch_calls(l);
	loop_cleanup(l);
	return 0;
}

int
loop_run(struct loop *l, struct err *e)
{
	__atomic_store_n(&l->quit, 0, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&l->quit, __ATOMIC_SEQ_CST))
		if (loop_run_once(l, -1, e) == -1)
			return -1;
	return 0;
}

void
loop_quit(struct loop *l)
{
	uint64_t one = 1;

	__atomic_store_n(&l->quit, 1, __ATOMIC_SEQ_CST);	/* any thread */
	(void)!write(l->wakefd, &one, sizeof(one));
}

int
loop_quitting(struct loop *l)
{
	return __atomic_load_n(&l->quit, __ATOMIC_SEQ_CST);
}

void
loop_wakeup(struct loop *l)
{
	uint64_t one = 1;

	(void)!write(l->wakefd, &one, sizeof(one));
}
