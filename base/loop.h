/* loop.h — a small epoll event loop: fd watches, timers, signals, a wakeup from other threads. */
#ifndef ISOFORGE_LOOP_H
#define ISOFORGE_LOOP_H

#include "base/util.h"

/* Events of a watch (the same bits as libvirt's VIR_EVENT_HANDLE_*). */
#define LOOP_READ	0x1
#define LOOP_WRITE	0x2
#define LOOP_ERROR	0x4
#define LOOP_HANGUP	0x8

struct loop;

/* Called with the events that happened (LOOP_* bits). */
typedef void (*loop_fd_cb)(int id, int fd, int events, void *arg);
typedef void (*loop_timer_cb)(int id, void *arg);
typedef void (*loop_signal_cb)(int signo, void *arg);
/* Frees a watch's or timer's arg once it is removed (may be NULL). */
typedef void (*loop_free_cb)(void *arg);

/* A new loop; caller frees with loop_free. The calling thread is the loop's own thread: the
 * one that runs it (loop_run) and the only one its callbacks run on. */
struct loop	*loop_new(struct err *);
/* Removes every watch and timer (calling their free callbacks) and frees the loop. */
void		 loop_free(struct loop **);

/*
 * Watches fd for events (LOOP_READ | LOOP_WRITE; errors and hang-ups are always reported).
 * Several watches may share one fd. Returns the watch id (>= 1) or -1.
 */
int	loop_watch_add(struct loop *, int fd, int events, loop_fd_cb, void *arg, loop_free_cb);
/* Changes the events of a watch (0 = none, the watch stays). */
void	loop_watch_update(struct loop *, int id, int events);
/* Removes a watch; its free callback runs later, from the loop, never inside this call. */
int	loop_watch_remove(struct loop *, int id);

/*
 * Adds a timer firing every interval_ms milliseconds (0 = at each iteration of the loop,
 * -1 = disabled). Returns the timer id (>= 1) or -1.
 */
int	loop_timer_add(struct loop *, int interval_ms, loop_timer_cb, void *arg, loop_free_cb);
/* Re-arms a timer with a new interval, counted from now. */
void	loop_timer_update(struct loop *, int id, int interval_ms);
/* Removes a timer; its free callback runs later, from the loop. */
int	loop_timer_remove(struct loop *, int id);

/*
 * Delivers signo through the loop (signalfd): the signal is blocked in the calling thread,
 * so call this before any thread starts. One callback per signal.
 */
int	loop_signal_add(struct loop *, int signo, loop_signal_cb, void *arg, struct err *);

/* Runs one iteration: waits at most max_ms (-1 = until something happens), dispatches. */
int	loop_run_once(struct loop *, int max_ms, struct err *);
/* Runs until loop_quit. */
int	loop_run(struct loop *, struct err *);
/* Makes loop_run return after the current iteration. */
void	loop_quit(struct loop *);
/* 1 once loop_quit was called (cleared by loop_run when it starts). */
int	loop_quitting(struct loop *);
/* Wakes the loop up from another thread (or a callback): the current wait returns. */
void	loop_wakeup(struct loop *);
/*
 * Runs fn(arg) on the loop's thread and returns once it ran: at once when called from that
 * thread, else queued and run by the loop's next iteration (the caller waits, so the loop
 * must be running). For code that may only run on the loop thread (libvirt calls).
 */
void	loop_call(struct loop *, void (*fn)(void *), void *arg);
/* 1 when called on the loop's own thread. */
int	loop_in_thread(const struct loop *);

#endif
