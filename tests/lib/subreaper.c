/*
 * subreaper — runs a command as a child subreaper (prctl PR_SET_CHILD_SUBREAPER).
 *
 * libvirtd daemonizes each qemu (fork, setsid, fork), so qemu is an orphan. On these machines
 * PID 1 reaps orphans late, and libvirt waits for the qemu pid to vanish before it reports
 * Stopped: ~1.8 s per guest. Run under this wrapper, orphans are reparented here and reaped at
 * once. SIGTERM/SIGINT/SIGHUP are forwarded to the command. When the command ends, any orphan
 * still alive (a qemu libvirtd left behind) gets SIGTERM, then SIGKILL after 5 s. Exits with the
 * command's status.
 *
 * Usage: subreaper COMMAND [ARG...]
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t subreaper_child;

/* Forwards a termination signal to the command. */
static void
subreaper_forward(int sig)
{
	if (subreaper_child > 0)
		kill(subreaper_child, sig);
}

/* Signals every process whose parent is this one; returns how many there were. */
static int
subreaper_signal_children(int sig)
{
	DIR *d;
	struct dirent *de;
	char path[64], line[512], *p;
	FILE *f;
	int n = 0, ppid;
	long pid;

	if ((d = opendir("/proc")) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		pid = strtol(de->d_name, &p, 10);
		if (*p != '\0' || pid <= 0)
			continue;
		if (snprintf(path, sizeof(path), "/proc/%ld/stat", pid) >= (int)sizeof(path))
			continue;
		if ((f = fopen(path, "r")) == NULL)
			continue;
		p = fgets(line, sizeof(line), f);
		fclose(f);
		/* "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')' */
		if (p == NULL || (p = strrchr(line, ')')) == NULL)
			continue;
		if (sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == (int)getpid()) {
			kill((pid_t)pid, sig);
			n++;
		}
	}
	closedir(d);
	return n;
}

int
main(int argc, char *argv[])
{
	struct sigaction sa;
	struct timespec start, now;
	pid_t pid, w;
	int status = 0, child_status = 1, sent_kill = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: subreaper COMMAND [ARG...]\n");
		return 2;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == -1)
		perror("subreaper: prctl");	/* still run the command: only slower */

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = subreaper_forward;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	if ((pid = fork()) == -1) {
		perror("subreaper: fork");
		return 1;
	}
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		execvp(argv[1], argv + 1);
		fprintf(stderr, "subreaper: %s: %s\n", argv[1], strerror(errno));
		_exit(127);
	}
	subreaper_child = pid;

	/* Reap everything until the command ends. */
	for (;;) {
		w = waitpid(-1, &status, 0);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			break;
		if (w == pid) {
			child_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
			break;
		}
	}
	subreaper_child = 0;

	/* Orphans left behind: TERM, then KILL after 5 s. */
	if (subreaper_signal_children(SIGTERM) > 0) {
		clock_gettime(CLOCK_MONOTONIC, &start);
		for (;;) {
			w = waitpid(-1, &status, WNOHANG);
			if (w == -1 && errno == ECHILD)
				break;
			if (w > 0)
				continue;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (!sent_kill && now.tv_sec - start.tv_sec >= 5) {
				subreaper_signal_children(SIGKILL);
				sent_kill = 1;
			}
			usleep(20000);
		}
	}
	return child_status;
}
