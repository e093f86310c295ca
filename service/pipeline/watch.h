/*
 * watch.h — what an install shows while it runs: the serial console's last line (read from
 * the tail of the serial log, cleaned of control characters and escapes) and the progress
 * text of the install's reports (build.c: every progress interval, and its inactivity
 * watchdog). Pure but for watch_serial_tail, which reads a file.
 */
#ifndef ISOFORGE_WATCH_H
#define ISOFORGE_WATCH_H

#include <stddef.h>

/* How much of the serial log's end is read, and the longest line shown (bytes, with NUL). */
#define WATCH_TAIL		8192
#define WATCH_LINE_MAX		161

/*
 * The last non-empty line of buf (len bytes; a line ends at LF or CR, the last may have no
 * end): escape sequences (CSI, OSC, ESC x) and control characters removed (a tab is a space,
 * a backspace takes the character before it away), invalid UTF-8 dropped, spaces trimmed,
 * cut at a character boundary to fit out (outsz bytes with the NUL; "..." marks a cut).
 * Returns the length written ("" when there is none).
 */
size_t	watch_last_line(const char *buf, size_t len, char *out, size_t outsz);

/*
 * The last line (watch_last_line) of the file's last WATCH_TAIL bytes, and its size in *size.
 * -1 when it can't be read (out is "", *size -1): not there yet, say.
 */
int	watch_serial_tail(const char *path, char *out, size_t outsz, long long *size);

/* "45 s", "12m05s", "3h02m". */
void	watch_duration(double s, char *out, size_t outsz);
/* "0 B", "512 B", "12.0 KiB", "1.2 GiB" (1024-based); "unknown" for a negative n. */
void	watch_bytes(long long n, char *out, size_t outsz);

/*
 * A progress report as one line: `12m05s, 1.2 GiB written to the root disk, console:
 * "LINE"` (written < 0: "disk writes unknown"; no line: `console: nothing yet`). Caller frees.
 */
char	*watch_progress_text(double elapsed_s, long long written, const char *line);

#endif
