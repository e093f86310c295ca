/* test_loop.c — the epoll loop: watches, shared fds, timers, removal from callbacks, signals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "base/loop.h"

struct counter {
	struct loop	*l;
	int		 calls;
	int		 freed;
	int		 last_events;
	int		 remove_self;
};

static void
on_fd(int id, int fd, int events, void *arg)
{
	struct counter	*c = arg;
	char		 ch;

	c->calls++;
	c->last_events = events;
	if (events & LOOP_READ)
		(void)!read(fd, &ch, 1);
	if (c->remove_self)
		loop_watch_remove(c->l, id);
}

static void
on_free(void *arg)
{
	((struct counter *)arg)->freed++;
}

static void
on_timer(int id, void *arg)
{
	struct counter *c = arg;

	c->calls++;
	if (c->remove_self)
		loop_timer_remove(c->l, id);
}

static void
on_signal(int signo, void *arg)
{
	struct counter *c = arg;

	c->calls++;
	c->last_events = signo;
	loop_quit(c->l);
}

static void
test_watch_read_and_remove(void **state)
{
	struct loop	*l = loop_new(NULL);
	struct counter	 a = { 0 }, b = { 0 };
	int		 p[2], ida, idb;

	(void)state;
	assert_non_null(l);
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	a.l = b.l = l;
	/* two watches on one fd: both see the event */
	ida = loop_watch_add(l, p[0], LOOP_READ, on_fd, &a, on_free);
	idb = loop_watch_add(l, p[0], LOOP_READ, on_fd, &b, on_free);
	assert_true(ida > 0 && idb > 0 && ida != idb);
	assert_int_equal(write(p[1], "xy", 2), 2);
	assert_int_equal(loop_run_once(l, 1000, NULL), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_true(a.last_events & LOOP_READ);

	/* a watch removed from its own callback is freed after dispatch, once */
	a.remove_self = 1;
	assert_int_equal(write(p[1], "z", 1), 1);
	assert_int_equal(loop_run_once(l, 1000, NULL), 0);
	assert_int_equal(a.freed, 1);
	assert_int_equal(loop_watch_remove(l, ida), -1);

	/* disabled events: nothing arrives within the wait */
	loop_watch_update(l, idb, 0);
	assert_int_equal(write(p[1], "w", 1), 1);
	b.calls = 0;
	assert_int_equal(loop_run_once(l, 50, NULL), 0);
	assert_int_equal(b.calls, 0);
	loop_watch_update(l, idb, LOOP_READ);
	assert_int_equal(loop_run_once(l, 1000, NULL), 0);
	assert_int_equal(b.calls, 1);

	/* hang-up is reported even without asking */
	close(p[1]);
	while (read(p[0], &(char){0}, 1) > 0)
		;
	b.calls = 0;
	assert_int_equal(loop_run_once(l, 1000, NULL), 0);
	assert_true(b.last_events & LOOP_HANGUP);
	loop_free(&l);
	assert_null(l);
	assert_int_equal(b.freed, 1);
	close(p[0]);
}

static void
test_timers(void **state)
{
	struct loop	*l = loop_new(NULL);
	struct counter	 fast = { 0 }, once = { 0 }, off = { 0 };
	double		 start;
	int		 idoff;

	(void)state;
	fast.l = once.l = off.l = l;
	once.remove_self = 1;
	loop_timer_add(l, 10, on_timer, &fast, on_free);
	loop_timer_add(l, 0, on_timer, &once, on_free);
	idoff = loop_timer_add(l, -1, on_timer, &off, on_free);
	start = util_now();
	while (util_now() - start < 0.2)
		assert_int_equal(loop_run_once(l, 200, NULL), 0);
	assert_true(fast.calls >= 5 && fast.calls <= 25);
	assert_int_equal(once.calls, 1);
	assert_int_equal(once.freed, 1);
	assert_int_equal(off.calls, 0);
	loop_timer_update(l, idoff, 0);
	assert_int_equal(loop_run_once(l, 100, NULL), 0);
	assert_int_equal(off.calls, 1);
	loop_free(&l);
	assert_int_equal(fast.freed, 1);
	assert_int_equal(off.freed, 1);
}

static void
test_signal_and_quit(void **state)
{
	struct loop	*l = loop_new(NULL);
	struct counter	 c = { 0 };

	(void)state;
	c.l = l;
	assert_int_equal(loop_signal_add(l, SIGUSR1, on_signal, &c, NULL), 0);
	kill(getpid(), SIGUSR1);
	assert_int_equal(loop_run(l, NULL), 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.last_events, SIGUSR1);
	assert_true(loop_quitting(l));
	loop_free(&l);
}

struct call_test {
	struct loop	*l;
	pthread_t	 loop_thread;
	int		 ran_on_loop;	/* fn ran on the loop's thread */
	int		 calls;
	int		 done;		/* the caller thread returned from loop_call */
};

static void
call_fn(void *arg)
{
	struct call_test	*t = arg;

	t->ran_on_loop = pthread_equal(pthread_self(), t->loop_thread) && loop_in_thread(t->l);
	t->calls++;
}

static void *
caller(void *arg)
{
	struct call_test	*t = arg;

	loop_call(t->l, call_fn, t);
	/* loop_call returned: fn ran, on the loop thread, before we were woken */
	assert_int_equal(t->calls, 1);
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	loop_wakeup(t->l);
	return NULL;
}

/* loop_call from another thread runs fn on the loop thread and waits for it; from the loop
 * thread it runs at once. An idle loop with a pending call wakes up (no timer needed). */
static void
test_call_from_thread(void **state)
{
	struct call_test	 t;
	struct err		 err;
	pthread_t		 th;
	int			 turns = 0;

	(void)state;
	memset(&t, 0, sizeof(t));
	err_clear(&err);
	t.l = loop_new(&err);
	assert_non_null(t.l);
	t.loop_thread = pthread_self();
	assert_true(loop_in_thread(t.l));
	loop_call(t.l, call_fn, &t);		/* on the loop thread: at once */
	assert_int_equal(t.calls, 1);
	assert_true(t.ran_on_loop);
	t.calls = 0;
	t.ran_on_loop = 0;
	assert_int_equal(pthread_create(&th, NULL, caller, &t), 0);
	while (!__atomic_load_n(&t.done, __ATOMIC_SEQ_CST)) {
		/* no timers, no watches: only the call's wakeup ends each wait */
		assert_int_equal(loop_run_once(t.l, 10000, &err), 0);
		assert_true(++turns < 10);
	}
	pthread_join(th, NULL);
	assert_int_equal(t.calls, 1);
	assert_true(t.ran_on_loop);
	loop_free(&t.l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_watch_read_and_remove),
		cmocka_unit_test(test_timers),
		cmocka_unit_test(test_signal_and_quit),
		cmocka_unit_test(test_call_from_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
