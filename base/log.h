/* log.h — logging in the OpenBSD daemons' manner: one line per event, to stderr. */
#ifndef ISOFORGE_LOG_H
#define ISOFORGE_LOG_H

#include <stdarg.h>

#include "base/util.h"

/* Sets the program name shown in each line and the verbosity (0 info, 1+ debug). */
void	log_init(const char *progname, int verbose);
void	log_setverbose(int verbose);
/* Logs to the file at path from now on (standard error is pointed at it, appending, 0640). */
int	log_open(const char *path, struct err *);
/* Opens the log file again (after logrotate moved it; SIGHUP); no-op without a log file.
 * Lines being written meanwhile go to the old file or the new one, never lost. */
int	log_reopen(struct err *);
int	log_getverbose(void);

/* log_warn appends strerror(errno); log_warnx does not. */
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
