/* proc.c — fork + execvp of argv arrays, output through pipes, poll with timeout and cancel. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/proc.h"

#define PROC_LINE_MAX	4096
#define PROC_TICK_MS	100

enum { PROC_RUNNING, PROC_TERMED, PROC_KILLED };

/* The table of running children (each entry lives on its proc_run_opts caller's stack). */
struct proc_entry {
	pid_t			 pid;
	struct proc_entry	*next;
};
static pthread_mutex_t	 proc_table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct proc_entry *proc_table;

static void
proc_table_add(struct proc_entry *pe)
{
	pthread_mutex_lock(&proc_table_lock);
	pe->next = proc_table;
	proc_table = pe;
	pthread_mutex_unlock(&proc_table_lock);
}

static void
proc_table_del(struct proc_entry *pe)
{
	struct proc_entry	**pp;

	pthread_mutex_lock(&proc_table_lock);
	for (pp = &proc_table; *pp != NULL; pp = &(*pp)->next)
		if (*pp == pe) {
			*pp = pe->next;
			break;
		}
	pthread_mutex_unlock(&proc_table_lock);
}

int
proc_signal_all(int sig)
{
	struct proc_entry	*pe;
	int			 n = 0;

	pthread_mutex_lock(&proc_table_lock);
	for (pe = proc_table; pe != NULL; pe = pe->next, n++)
		(void)kill(-pe->pid, sig);
	pthread_mutex_unlock(&proc_table_lock);
	return n;
}

int
proc_count(void)
{
	struct proc_entry	*pe;
	int			 n = 0;

	pthread_mutex_lock(&proc_table_lock);
	for (pe = proc_table; pe != NULL; pe = pe->next)
		n++;
	pthread_mutex_unlock(&proc_table_lock);
	return n;
}

/* Output of one pipe: what is kept, and the line being assembled for on_line. */
struct proc_stream {
	int		 fd;
	int		 num;		/* 1 stdout, 2 stderr */
	struct buf	*keep;
	size_t		 max;
	int		 tail;		/* keep the last max bytes instead of the first */
	int		*truncated;
	char		 line[PROC_LINE_MAX + 1];
	size_t		 linelen;
};

void
proc_result_free(struct proc_result *res)
{
	if (res == NULL)
		return;
	buf_free(&res->out);
	buf_free(&res->err);
}

const char *
proc_stderr_tail(const struct proc_result *res, char *out, size_t max)
{
	const char	*s = res->err.data ? res->err.data : "";
	size_t		 len = res->err.len, start, i, o = 0;

	if (max == 0)
		return "";
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' ||
	    s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	/* walk back while the rendered text ("\n" → "; ", "\r" dropped) still fits */
	for (start = len, o = 0; start > 0; start--) {
		size_t	 w = s[start - 1] == '\n' ? 2 : s[start - 1] == '\r' ? 0 : 1;

		if (o + w > max - 1)
			break;
		o += w;
	}
	o = 0;
	/* start at a line boundary when the cut fell inside a line and a later line exists */
	if (start > 0 && s[start - 1] != '\n') {
		for (i = start; i < len && s[i - 1] != '\n'; i++)
			;
		if (i < len)
			start = i;
	}
	for (i = start; i < len && o + 1 < max; i++) {
		if (s[i] == '\r')
			continue;
		if (s[i] == '\n') {
			if (o + 3 >= max)
				break;
			out[o++] = ';';
			out[o++] = ' ';
			continue;
		}
		out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

/* Moves fd to a number above 2 (close-on-exec), so the child's dup2 onto 0-2 can't clobber it. */
static int
proc_fd_above2(int fd)
{
	int	 nfd;

	if (fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

/* In the child: only async-signal-safe calls from here to exec. */
static void __attribute__((noreturn))
proc_child(char *const argv[], const char *cwd, pid_t parent, int in, int out, int errfd,
    int report)
{
	struct sigaction sa;
	struct rlimit	 rl;
	sigset_t	 none;
	int		 sig, e, fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	(void)setpgid(0, 0);
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(127);
	if (dup2(in, 0) == -1 || dup2(out, 1) == -1 || dup2(errfd, 2) == -1)
		goto fail;
	if (report != 3) {
		if (dup3(report, 3, O_CLOEXEC) == -1)
			goto fail;
		report = 3;
	}
	/* nothing of ours but 0-2 and the report pipe (close-on-exec) survives exec */
	if (syscall(SYS_close_range, 4U, ~0U, 0U) == -1) {
		if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur > 65536)
			rl.rlim_cur = 65536;
		for (fd = 4; fd < (int)rl.rlim_cur; fd++)
			(void)close(fd);
	}
	if (cwd != NULL && chdir(cwd) == -1)
		goto fail;
	execvp(argv[0], argv);
fail:
	e = errno;
	(void)!write(report, &e, sizeof(e));
	_exit(127);
}

/* Takes in what is readable on s; -1 at EOF (the fd is closed then), 0 otherwise. */
static int
proc_stream_read(struct proc_stream *s, const struct proc_opts *o)
{
	char	 chunk[16384];
	ssize_t	 n;
	size_t	 i;

	n = read(s->fd, chunk, sizeof(chunk));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		if (o->on_line != NULL && s->linelen > 0) {
			s->line[s->linelen] = '\0';
			o->on_line(o->arg, s->num, s->line);
			s->linelen = 0;
		}
		close(s->fd);
		s->fd = -1;
		return -1;
	}
	if (s->tail) {
		buf_append(s->keep, chunk, (size_t)n);
		/* amortised: trim only when twice the bound is reached */
		if (s->keep->len > 2 * s->max) {
			memmove(s->keep->data, s->keep->data + s->keep->len - s->max, s->max);
			s->keep->len = s->max;
			s->keep->data[s->max] = '\0';
		}
	} else if (s->keep->len < s->max) {
		size_t	 room = s->max - s->keep->len;

		buf_append(s->keep, chunk, (size_t)n < room ? (size_t)n : room);
		if ((size_t)n > room)
			*s->truncated = 1;
	} else
		*s->truncated = 1;
	if (o->on_line == NULL)
		return 0;
	for (i = 0; i < (size_t)n; i++) {
		if (chunk[i] == '\n' || chunk[i] == '\r') {
			if (s->linelen > 0) {
				s->line[s->linelen] = '\0';
				o->on_line(o->arg, s->num, s->line);
			}
			s->linelen = 0;
			continue;
		}
		s->line[s->linelen++] = chunk[i];
		if (s->linelen == PROC_LINE_MAX) {
			s->line[s->linelen] = '\0';
			o->on_line(o->arg, s->num, s->line);
			s->linelen = 0;
		}
	}
	return 0;
}

/* Signals the child's process group, and the child itself while it is not reaped (its pid
 * can't be reused before that). */
static void
proc_signal(pid_t pid, int sig, int reaped)
{
	(void)kill(-pid, sig);
	if (!reaped)
		(void)kill(pid, sig);
}

static int
proc_cancel_requested(const struct proc_opts *o)
{
	struct pollfd	 p;

	if (o->cancel != NULL && *o->cancel)
		return 1;
	if (o->cancel_fd > 0) {
		p.fd = o->cancel_fd;
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP)))
			return 1;
	}
	return 0;
}

/* Fills err from a finished result; 0 when the child succeeded. */
static int
proc_judge(const char *prog, const struct proc_opts *o, const struct proc_result *r,
    struct err *e)
{
	char	 tail[640];

	proc_stderr_tail(r, tail, sizeof(tail));
	if (r->cancelled) {
		err_set(e, ERR_CANCELLED, "%s: cancelled", prog);
		return -1;
	}
	if (r->timed_out) {
		err_set(e, ERR_TIMEOUT, "%s: timed out after %.0f s%s%s", prog, o->timeout_s,
		    tail[0] ? ": " : "", tail);
		return -1;
	}
	if (r->exited && (r->exit_status == 0 || (r->exit_status < 32 &&
	    (o->ok_status_mask & (1U << r->exit_status)))))
		return 0;
	if (r->exited)
		err_set(e, ERR_IO, "%s exited with status %d%s%s", prog, r->exit_status,
		    tail[0] ? ": " : "", tail);
	else
		err_set(e, ERR_IO, "%s killed by signal %d (%s)%s%s", prog, r->signal,
		    strsignal(r->signal), tail[0] ? ": " : "", tail);
	return -1;
}

int
proc_run_opts(char *const argv[], const struct proc_opts *opts, struct proc_result *resp,
    struct err *e)
{
	struct proc_opts	 o = *opts;
	struct proc_result	 local, *r = resp ? resp : &local;
	struct proc_stream	 st[2];
	struct pollfd		 pfd[4];
	struct proc_entry	 entry = { -1, NULL };
	sigset_t		 all, saved;
	double			 start, deadline = 0, next = 0;
	pid_t			 pid = -1, parent = getpid();
	int			 outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, rep[2] = { -1, -1 };
	int			 devnull = -1, pidfd = -1, status, exec_errno = 0, reaped = 0;
	int			 phase = PROC_RUNNING, rc = -1, i, n;
	ssize_t			 got;

	memset(st, 0, sizeof(st));
	st[0].fd = st[1].fd = -1;
	memset(r, 0, sizeof(*r));
	buf_init(&r->out);
	buf_init(&r->err);
	r->exit_status = -1;
	if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0') {
		err_set(e, ERR_INVAL, "proc: empty argv");
		goto cleanup;
	}
	if (o.grace_s <= 0)
		o.grace_s = 5;
	if (o.out_max == 0)
		o.out_max = 4 << 20;
	if (o.err_max == 0)
		o.err_max = 8 << 10;

	if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1 ||
	    pipe2(outp, O_CLOEXEC) == -1 || pipe2(errp, O_CLOEXEC) == -1 ||
	    pipe2(rep, O_CLOEXEC) == -1) {
		err_set(e, ERR_IO, "%s: pipe: %s", argv[0], strerror(errno));
		goto cleanup;
	}
	devnull = proc_fd_above2(devnull);
	for (i = 0; i < 2; i++) {
		outp[i] = proc_fd_above2(outp[i]);
		errp[i] = proc_fd_above2(errp[i]);
		rep[i] = proc_fd_above2(rep[i]);
	}
	if (devnull == -1 || outp[0] == -1 || outp[1] == -1 || errp[0] == -1 ||
	    errp[1] == -1 || rep[0] == -1 || rep[1] == -1) {
		err_set(e, ERR_IO, "%s: dup: %s", argv[0], strerror(errno));
		goto cleanup;
	}

	start = util_now();
	/* no handler of ours may run in the child before its dispositions are reset */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	if ((pid = fork()) == 0)
		proc_child(argv, o.cwd, parent, devnull, outp[1], errp[1], rep[1]);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (pid == -1) {
		err_set(e, ERR_IO, "%s: fork: %s", argv[0], strerror(errno));
		goto cleanup;
	}
	(void)setpgid(pid, pid);	/* also here: no race with a kill(-pid) below */
	entry.pid = pid;
	proc_table_add(&entry);
	close(outp[1]);
	close(errp[1]);
	close(rep[1]);
	close(devnull);
	outp[1] = errp[1] = rep[1] = devnull = -1;

	/* the report pipe closes at exec (close-on-exec) or carries execvp's errno */
	while ((got = read(rep[0], &exec_errno, sizeof(exec_errno))) == -1 && errno == EINTR)
		;
	if (got != sizeof(exec_errno))
		exec_errno = 0;

	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (o.timeout_s > 0)
		deadline = start + o.timeout_s;
	st[0].fd = outp[0];
	st[0].num = 1;
	st[0].keep = &r->out;
	st[0].max = o.out_max;
	st[0].truncated = &r->out_truncated;
	st[1].fd = errp[0];
	st[1].num = 2;
	st[1].keep = &r->err;
	st[1].max = o.err_max;
	st[1].tail = 1;
	st[1].truncated = &r->out_truncated;	/* unused for a tail */
	outp[0] = errp[0] = -1;

	while (st[0].fd != -1 || st[1].fd != -1 || !reaped) {
		double	 now = util_now(), wait_s = -1;
		int	 timeout_ms, term = 0;

		if (phase == PROC_RUNNING) {
			if (!reaped && proc_cancel_requested(&o))
				r->cancelled = term = 1;
			else if (!reaped && deadline > 0 && now >= deadline)
				r->timed_out = term = 1;
			else if (reaped) {
				/*
				 * A grandchild holds the pipes open after the child is gone: wait
				 * the grace time for EOF, then kill its process group.
				 */
				phase = PROC_TERMED;
				next = now + o.grace_s;
			}
			if (term) {
				proc_signal(pid, SIGTERM, reaped);
				phase = PROC_TERMED;
				next = now + o.grace_s;
			}
		}
		if (phase == PROC_TERMED && now >= next) {
			proc_signal(pid, SIGKILL, reaped);
			phase = PROC_KILLED;
			next = now + 1;
		} else if (phase == PROC_KILLED && next > 0 && now >= next) {
			if (reaped)
				break;	/* pipes held by something outside the group */
			next = 0;
		}

		if (phase != PROC_RUNNING && next > 0)
			wait_s = next - now;
		else if (phase == PROC_RUNNING && deadline > 0)
			wait_s = deadline - now;
		if ((o.cancel != NULL || (pidfd == -1 && !reaped)) &&
		    (wait_s < 0 || wait_s > PROC_TICK_MS / 1000.0))
			wait_s = PROC_TICK_MS / 1000.0;
		timeout_ms = wait_s < 0 ? -1 : (int)(wait_s * 1000) + 1;

		n = 0;
		for (i = 0; i < 2; i++) {
			if (st[i].fd == -1)
				continue;
			pfd[n].fd = st[i].fd;
			pfd[n].events = POLLIN;
			pfd[n++].revents = 0;
		}
		if (pidfd != -1 && !reaped) {
			pfd[n].fd = pidfd;
			pfd[n].events = POLLIN;
			pfd[n++].revents = 0;
		}
		if (o.cancel_fd > 0 && phase == PROC_RUNNING && !reaped) {
			pfd[n].fd = o.cancel_fd;
			pfd[n].events = POLLIN;
			pfd[n++].revents = 0;
		}
		if (poll(pfd, (nfds_t)n, timeout_ms) == -1 && errno != EINTR) {
			err_set(e, ERR_IO, "%s: poll: %s", argv[0], strerror(errno));
			(void)kill(-pid, SIGKILL);
			(void)kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
				;
			goto cleanup;
		}
		for (i = 0; i < 2; i++) {
			struct pollfd	*p;
			int		 k;

			if (st[i].fd == -1)
				continue;
			for (k = 0, p = NULL; k < n; k++)
				if (pfd[k].fd == st[i].fd)
					p = &pfd[k];
			if (p != NULL && (p->revents & (POLLIN | POLLHUP | POLLERR)))
				(void)proc_stream_read(&st[i], &o);
		}
		if (!reaped) {
			pid_t	 w = waitpid(pid, &status, WNOHANG);

			if (w == pid) {
				reaped = 1;
				/* its pid may be reused from now on: out of the table */
				proc_table_del(&entry);
				entry.pid = -1;
			}
			else if (w == -1 && errno != EINTR) {
				err_set(e, ERR_INTERNAL, "%s: waitpid %ld: %s (someone else "
				    "reaped it)", argv[0], (long)pid, strerror(errno));
				goto cleanup;
			}
			if (reaped) {
				if (WIFEXITED(status)) {
					r->exited = 1;
					r->exit_status = WEXITSTATUS(status);
				} else if (WIFSIGNALED(status))
					r->signal = WTERMSIG(status);
			}
		}
	}
	r->elapsed_s = util_now() - start;
	if (exec_errno != 0) {
		err_set(e, exec_errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: cannot run: %s",
		    argv[0], exec_errno == ENOENT ? "program not found" : strerror(exec_errno));
		goto cleanup;
	}
	rc = proc_judge(argv[0], &o, r, e);
cleanup:
	if (entry.pid != -1)
		proc_table_del(&entry);
	for (i = 0; i < 2; i++) {
		if (st[i].fd != -1)
			close(st[i].fd);
		if (outp[i] != -1)
			close(outp[i]);
		if (errp[i] != -1)
			close(errp[i]);
		if (rep[i] != -1)
			close(rep[i]);
	}
	if (devnull != -1)
		close(devnull);
	if (pidfd != -1)
		close(pidfd);
	if (r->err.len > o.err_max) {
		memmove(r->err.data, r->err.data + r->err.len - o.err_max, o.err_max);
		r->err.len = o.err_max;
		r->err.data[o.err_max] = '\0';
	}
	if (r == &local)
		proc_result_free(&local);
	return rc;
}

int
proc_run(char *const argv[], double timeout_s, struct proc_result *res, struct err *e)
{
	struct proc_opts	 o;

	memset(&o, 0, sizeof(o));
	o.timeout_s = timeout_s;
	return proc_run_opts(argv, &o, res, e);
}
