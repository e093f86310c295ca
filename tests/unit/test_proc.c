/* test_proc.c — child processes: status, stderr in errors, timeout, cancel, fds, lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/proc.h"

/*
 * The test program doubles as the child whose behaviour the tests need ("self MODE ..."),
 * so no shell is involved.
 */
static char self[4096];

static int
child_main(int argc, char **argv)
{
	const char	*mode = argv[2];
	int		 i;

	if (strcmp(mode, "fail") == 0) {	/* fail STATUS LINE... : lines to stderr */
		for (i = 4; i < argc; i++)
			fprintf(stderr, "%s\n", argv[i]);
		return atoi(argv[3]);
	}
	if (strcmp(mode, "noise") == 0) {
		for (i = 0; i < 3000; i++)
			fprintf(stderr, "noise line %d\n", i);
		fprintf(stderr, "the last word\n");
		return 2;
	}
	if (strcmp(mode, "stubborn") == 0) {	/* ignores SIGTERM, and so does its child */
		signal(SIGTERM, SIG_IGN);
		if (fork() == 0)
			sleep(30);
		sleep(30);
		return 0;
	}
	if (strcmp(mode, "mixed") == 0) {
		printf("out\n");
		fflush(stdout);
		fprintf(stderr, "err\n");
		printf("tail");
		return 0;
	}
	if (strcmp(mode, "slow") == 0) {
		usleep(200 * 1000);
		printf("done\n");
		return 0;
	}
	return 99;
}

static void
test_exit_status_and_output(void **state)
{
	char *const		 ok[] = { "printf", "hello\\nworld\\n", NULL };
	char *const		 bad[] = { self, "--child", "fail", "3", "first", "real problem", NULL };
	struct proc_result	 r;
	struct err		 e;

	(void)state;
	err_clear(&e);
	assert_int_equal(proc_run(ok, 10, &r, &e), 0);
	assert_int_equal(r.exited, 1);
	assert_int_equal(r.exit_status, 0);
	assert_string_equal(r.out.data, "hello\nworld\n");
	proc_result_free(&r);

	assert_int_equal(proc_run(bad, 10, &r, &e), -1);
	assert_int_equal(r.exit_status, 3);
	assert_int_equal(e.kind, ERR_IO);
	assert_non_null(strstr(e.msg, "exited with status 3: first; real problem"));
	assert_non_null(strstr(e.msg, "first; real problem"));
	proc_result_free(&r);
	proc_result_free(&r);	/* twice is fine */
}

static void
test_ok_status_mask(void **state)
{
	char *const		 argv[] = { "false", NULL };
	struct proc_opts	 o;
	struct proc_result	 r;
	struct err		 e;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.ok_status_mask = 1U << 1;
	err_clear(&e);
	assert_int_equal(proc_run_opts(argv, &o, &r, &e), 0);
	assert_int_equal(r.exit_status, 1);
	assert_int_equal(e.kind, ERR_NONE);
	proc_result_free(&r);
}

static void
test_stderr_tail_is_bounded(void **state)
{
	char *const		 argv[] = { self, "--child", "noise", NULL };
	struct proc_opts	 o;
	struct proc_result	 r;
	struct err		 e;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.err_max = 1024;
	err_clear(&e);
	assert_int_equal(proc_run_opts(argv, &o, &r, &e), -1);
	assert_true(r.err.len <= 1024);
	assert_non_null(strstr(r.err.data, "the last word\n"));
	assert_non_null(strstr(e.msg, "the last word"));
	assert_true(strlen(e.msg) < sizeof(e.msg) - 1);
	proc_result_free(&r);
}

static void
test_timeout_kills(void **state)
{
	char *const		 argv[] = { "sleep", "30", NULL };
	struct proc_result	 r;
	struct err		 e;

	(void)state;
	err_clear(&e);
	assert_int_equal(proc_run(argv, 0.5, &r, &e), -1);
	assert_int_equal(e.kind, ERR_TIMEOUT);
	assert_true(r.timed_out);
	assert_int_equal(r.signal, SIGTERM);
	assert_true(r.elapsed_s < 3);
	assert_non_null(strstr(e.msg, "sleep: timed out"));
	proc_result_free(&r);
}

static void
test_timeout_escalates_to_sigkill(void **state)
{
	char *const		 argv[] = { self, "--child", "stubborn", NULL };
	struct proc_opts	 o;
	struct proc_result	 r;
	struct err		 e;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.timeout_s = 0.3;
	o.grace_s = 0.3;
	err_clear(&e);
	assert_int_equal(proc_run_opts(argv, &o, &r, &e), -1);
	assert_int_equal(e.kind, ERR_TIMEOUT);
	assert_int_equal(r.signal, SIGKILL);
	assert_true(r.elapsed_s < 3);	/* the grandchild sleep was killed with its group */
	proc_result_free(&r);
}

static volatile sig_atomic_t cancel_flag;

static void *
cancel_later(void *arg)
{
	(void)arg;
	usleep(300 * 1000);
	cancel_flag = 1;
	return NULL;
}

static void
test_cancel_flag_and_fd(void **state)
{
	char *const		 argv[] = { "sleep", "30", NULL };
	struct proc_opts	 o;
	struct proc_result	 r;
	struct err		 e;
	pthread_t		 t;
	int			 p[2];

	(void)state;
	memset(&o, 0, sizeof(o));
	o.cancel = &cancel_flag;
	cancel_flag = 0;
	assert_int_equal(pthread_create(&t, NULL, cancel_later, NULL), 0);
	err_clear(&e);
	assert_int_equal(proc_run_opts(argv, &o, &r, &e), -1);
	pthread_join(t, NULL);
	assert_int_equal(e.kind, ERR_CANCELLED);
	assert_true(r.cancelled);
	assert_true(r.elapsed_s < 3);
	proc_result_free(&r);

	memset(&o, 0, sizeof(o));
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	o.cancel_fd = p[0];
	err_clear(&e);
	assert_int_equal(proc_run_opts(argv, &o, &r, &e), -1);
	assert_int_equal(e.kind, ERR_CANCELLED);
	assert_true(r.elapsed_s < 3);
	proc_result_free(&r);
	close(p[0]);
	close(p[1]);
}

static void
test_missing_program(void **state)
{
	char *const		 argv[] = { "isoforge-no-such-program", "x", NULL };
	struct proc_result	 r;
	struct err		 e;

	(void)state;
	err_clear(&e);
	assert_int_equal(proc_run(argv, 5, &r, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_string_equal(e.msg, "isoforge-no-such-program: cannot run: program not found");
	proc_result_free(&r);
}

static void
test_no_fd_leaks(void **state)
{
	char *const		 argv[] = { "ls", "/proc/self/fd", NULL };
	struct proc_result	 r;
	struct err		 e;
	char			*line, *save = NULL;
	int			 leak, count = 0;

	(void)state;
	/* an fd of ours without close-on-exec, as a careless library might leave one */
	leak = open("/dev/null", O_RDONLY);
	assert_true(leak > 2);
	err_clear(&e);
	assert_int_equal(proc_run(argv, 10, &r, &e), 0);
	/* ls sees 0, 1, 2 and the directory it is reading (3), nothing else */
	for (line = strtok_r(r.out.data, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		count++;
		assert_true(atoi(line) <= 3);
	}
	assert_int_equal(count, 4);
	proc_result_free(&r);
	close(leak);
}

struct lines {
	int	 n;
	char	 seen[16][64];
	int	 stream[16];
};

static void
on_line(void *arg, int stream, const char *line)
{
	struct lines	*l = arg;

	if (l->n < 16) {
		snprintf(l->seen[l->n], sizeof(l->seen[0]), "%s", line);
		l->stream[l->n++] = stream;
	}
}

static void
test_line_callback(void **state)
{
	char *const		 argv[] = { "printf", "    (0.00/100%%)\\r    (12.34/100%%)\\r"
	    "    (100.00/100%%)\\r\\n", NULL };
	char *const		 argv2[] = { self, "--child", "mixed", NULL };
	struct proc_opts	 o;
	struct proc_result	 r;
	struct lines		 l;
	struct err		 e;

	(void)state;
	memset(&o, 0, sizeof(o));
	memset(&l, 0, sizeof(l));
	o.on_line = on_line;
	o.arg = &l;
	err_clear(&e);
	assert_int_equal(proc_run_opts(argv, &o, &r, &e), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.seen[0], "    (0.00/100%)");
	assert_string_equal(l.seen[1], "    (12.34/100%)");
	assert_string_equal(l.seen[2], "    (100.00/100%)");
	assert_int_equal(l.stream[1], 1);
	proc_result_free(&r);

	memset(&l, 0, sizeof(l));
	assert_int_equal(proc_run_opts(argv2, &o, &r, &e), 0);
	assert_int_equal(l.n, 3);
	/* the unterminated last line arrives at EOF */
	assert_int_equal(l.stream[0] + l.stream[1] + l.stream[2], 1 + 2 + 1);
	assert_string_equal(r.err.data, "err\n");
	assert_string_equal(r.out.data, "out\ntail");
	proc_result_free(&r);
}

static void
test_stdout_bound_and_null_result(void **state)
{
	char *const		 argv[] = { "head", "-c", "100000", "/dev/zero", NULL };
	struct proc_opts	 o;
	struct proc_result	 r;
	struct err		 e;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.out_max = 1000;
	err_clear(&e);
	assert_int_equal(proc_run_opts(argv, &o, &r, &e), 0);
	assert_int_equal(r.out.len, 1000);
	assert_true(r.out_truncated);
	proc_result_free(&r);
	assert_int_equal(proc_run(argv, 10, NULL, &e), 0);
}

struct par {
	int	 rc;
	char	 out[32];
};

static void *
par_run(void *arg)
{
	struct par		*p = arg;
	char *const		 argv[] = { self, "--child", "slow", NULL };
	struct proc_result	 r;
	struct err		 e;

	err_clear(&e);
	p->rc = proc_run(argv, 10, &r, &e);
	snprintf(p->out, sizeof(p->out), "%s", r.out.data ? r.out.data : "");
	proc_result_free(&r);
	return NULL;
}

static void
test_threads(void **state)
{
	pthread_t	 t[4];
	struct par	 p[4];
	int		 i;

	(void)state;
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, par_run, &p[i]), 0);
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(p[i].rc, 0);
		assert_string_equal(p[i].out, "done\n");
	}
}

static void *
run_sleep(void *arg)
{
	char *const		 argv[] = { "sleep", "30", NULL };
	struct err		*e = arg;

	proc_run(argv, 20, NULL, e);
	return NULL;
}

static void
test_signal_all(void **state)
{
	pthread_t	 t;
	struct err	 e;
	int		 i;

	(void)state;
	err_clear(&e);
	assert_int_equal(proc_count(), 0);
	assert_int_equal(pthread_create(&t, NULL, run_sleep, &e), 0);
	for (i = 0; i < 100 && proc_count() == 0; i++)
		usleep(20 * 1000);
	assert_int_equal(proc_count(), 1);
	assert_int_equal(proc_signal_all(SIGTERM), 1);
	pthread_join(t, NULL);
	assert_int_equal(proc_count(), 0);
	assert_int_equal(e.kind, ERR_IO);
	assert_string_equal(e.msg, "sleep killed by signal 15 (Terminated)");
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_status_and_output),
		cmocka_unit_test(test_ok_status_mask),
		cmocka_unit_test(test_stderr_tail_is_bounded),
		cmocka_unit_test(test_timeout_kills),
		cmocka_unit_test(test_timeout_escalates_to_sigkill),
		cmocka_unit_test(test_cancel_flag_and_fd),
		cmocka_unit_test(test_missing_program),
		cmocka_unit_test(test_no_fd_leaks),
		cmocka_unit_test(test_line_callback),
		cmocka_unit_test(test_stdout_bound_and_null_result),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_signal_all),
	};

	ssize_t	 n;

	if (argc > 2 && strcmp(argv[1], "--child") == 0)
		return child_main(argc, argv);
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0)
		return 1;
	self[n] = '\0';
	return cmocka_run_group_tests(tests, NULL, NULL);
}
