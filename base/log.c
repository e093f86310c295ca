/* log.c — timestamped log lines to stderr; fatal() exits. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

static const char	*log_progname = "isoforge";
static int		 log_verbose;
static char		*log_path;	/* the log file, or NULL: standard error as it is */

void
log_init(const char *progname, int verbose)
{
	log_progname = progname;
	log_verbose = verbose;
}

/* Points standard error at log_path (appending); the old file is closed by dup2. */
static int
log_attach(struct err *e)
{
	int	 fd;

	if ((fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) == -1) {
		err_set(e, ERR_IO, "log file %s: %s", log_path, strerror(errno));
		return -1;
	}
	fflush(stderr);
	if (dup2(fd, STDERR_FILENO) == -1) {
		err_set(e, ERR_IO, "log file %s: dup2: %s", log_path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
log_open(const char *path, struct err *e)
{
	free(log_path);
	log_path = xstrdup(path);
	return log_attach(e);
}

int
log_reopen(struct err *e)
{
	if (log_path == NULL)
		return 0;
	return log_attach(e);
}

void
log_setverbose(int verbose)
{
	log_verbose = verbose;
}

int
log_getverbose(void)
{
	return log_verbose;
}

/* Writes one line: time, program, level, message, and strerror(errnum) when errnum != 0. */
static void
vlog(const char *level, int errnum, const char *fmt, va_list ap)
{
	char		 msg[2048], stamp[32];
	struct timespec	 ts;
	struct tm	 tm;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	if (errnum != 0)
		fprintf(stderr, "%s.%03ldZ %s %s: %s: %s\n", stamp,
		    ts.tv_nsec / 1000000, log_progname, level, msg, strerror(errnum));
	else
		fprintf(stderr, "%s.%03ldZ %s %s: %s\n", stamp,
		    ts.tv_nsec / 1000000, log_progname, level, msg);
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	vlog("warning", saved, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog("warning", 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog("info", 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (log_verbose < 1)
		return;
	va_start(ap, fmt);
	vlog("debug", 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	vlog("fatal", saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog("fatal", 0, fmt, ap);
	va_end(ap);
	exit(1);
}
