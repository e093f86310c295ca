/* proc.h — child processes from argv arrays (never a shell), with a timeout and a cancel. */
#ifndef ISOFORGE_PROC_H
#define ISOFORGE_PROC_H

#include <signal.h>
#include <stddef.h>

#include "base/util.h"

/*
 * How to run a child. Zero-initialise and set what matters; every field has a default.
 * The child gets /dev/null as stdin, pipes as stdout and stderr, no other fd of ours, default
 * signal dispositions, its own process group (a timeout or cancel signals the whole group) and
 * SIGTERM when the calling thread dies.
 */
struct proc_opts {
	double		 timeout_s;	/* 0: none; else SIGTERM, grace, SIGKILL */
	double		 grace_s;	/* SIGTERM → SIGKILL; 0: 5 s */
	size_t		 out_max;	/* stdout bytes kept (the first); 0: 4 MiB */
	size_t		 err_max;	/* stderr bytes kept (the last); 0: 8 KiB */
	/*
	 * Called for every non-empty line of stdout (stream 1) or stderr (stream 2), lines ending
	 * in '\n' or '\r' (qemu-img -p redraws its progress with '\r'); line is NUL-terminated,
	 * lines over 4 KiB come in pieces. Output is captured in the result as well.
	 */
	void		(*on_line)(void *arg, int stream, const char *line);
	void		*arg;
	/* The child is stopped (as on a timeout) once *cancel is non-zero or cancel_fd is
	 * readable (an eventfd or a pipe); NULL and -1 (or 0 in a zeroed struct: never) disable. */
	const volatile sig_atomic_t *cancel;
	int		 cancel_fd;	/* > 0 to use */
	/* Bit n set: exit status n is success, too (qemu-img compare exits 1 on "different").
	 * Status 0 always is. */
	unsigned	 ok_status_mask;
	const char	*cwd;		/* NULL: ours */
};

/* What happened. Filled by proc_run* also when they fail; release with proc_result_free. */
struct proc_result {
	int		 exited;	/* 1: exit_status is valid */
	int		 exit_status;	/* WEXITSTATUS, or -1 */
	int		 signal;	/* the signal that ended it, or 0 */
	int		 timed_out;
	int		 cancelled;
	int		 out_truncated;	/* stdout was longer than out_max */
	double		 elapsed_s;
	struct buf	 out;		/* stdout, the first out_max bytes */
	struct buf	 err;		/* stderr, the last err_max bytes */
};

/*
 * Runs argv[0] (looked up in PATH) with argv, waits for EOF on stdout and stderr and for the
 * child itself (waitpid on its pid only, so another thread's SIGCHLD handling cannot take it,
 * unless it reaps with waitpid(-1) or ignores SIGCHLD). Returns 0 when it exited with status 0
 * (or one in ok_status_mask); else -1 with err naming the program, what ended it and the tail
 * of its stderr: ERR_NOTFOUND (no such program), ERR_TIMEOUT, ERR_CANCELLED, ERR_IO.
 * res may be NULL; when not, the caller releases it with proc_result_free, also on failure.
 * Synchronous; safe to call from several threads at once.
 */
int	 proc_run_opts(char *const argv[], const struct proc_opts *, struct proc_result *,
	    struct err *);
/* proc_run_opts with default options and a timeout (0: none). */
int	 proc_run(char *const argv[], double timeout_s, struct proc_result *, struct err *);
/* Sends sig to the process group of every child running now (e.g. SIGTERM at shutdown);
 * returns how many. Not for signal handlers: set a cancel flag there. */
int	 proc_signal_all(int sig);
/* How many children are running now. */
int	 proc_count(void);
/* Frees the buffers of a result (NULL-safe; the struct itself is the caller's). */
void	 proc_result_free(struct proc_result *);
/* The last stderr line(s) of a result, trimmed, newlines as "; ", at most max bytes: for error
 * messages. Returns a pointer into buf. */
const char *proc_stderr_tail(const struct proc_result *, char *buf, size_t max);

#endif
