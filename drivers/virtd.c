/* virtd.c — a private libvirtd in its own mount namespace, under a reaper; no shell. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drivers/virtd.h"
#include "base/log.h"

struct virtd {
	pid_t	 reaper;
	char	*statedir;
	char	*sock;
	char	*uri;
	char	*logfile;
};

static const char virtd_qemu_conf[] =
    "# written by isoforge: a private libvirtd, qemu as root, no security driver\n"
    "security_driver = \"none\"\n"
    "user = \"root\"\n"
    "group = \"root\"\n"
    "dynamic_ownership = 0\n"
    "remember_owner = 0\n"
    "cgroup_controllers = [ ]\n"
    "namespaces = [ ]\n"
    "swtpm_user = \"root\"\n"
    "swtpm_group = \"root\"\n"
    "vnc_listen = \"127.0.0.1\"\n"
    "stdio_handler = \"file\"\n";

static volatile sig_atomic_t virtd_child;

static void
virtd_forward(int sig)
{
	if (virtd_child > 0)
		kill(virtd_child, sig);
}

/* In the libvirtd child (after fork, before exec): only system calls from here on. */
static void
virtd_exec(char *const binds[][2], size_t nbinds, const char *logfile, char *const argv[])
{
	sigset_t	 none;
	size_t		 i;
	int		 fd;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (unshare(CLONE_NEWNS) == -1 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1)
		_exit(120);
	for (i = 0; i < nbinds; i++)
		if (mount(binds[i][0], binds[i][1], NULL, MS_BIND, NULL) == -1)
			_exit(121);
	if ((fd = open("/dev/null", O_RDONLY)) != -1) {
		dup2(fd, 0);
		close(fd);
	}
	if ((fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0600)) != -1) {
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	execv(argv[0], argv);
	execvp("libvirtd", argv);
	_exit(127);
}

/* The reaper: its own session (a ^C on the terminal is the build's, not libvirtd's), a child
 * subreaper that reaps every orphan (qemu) at once and forwards SIGTERM to libvirtd. */
static void
virtd_reaper(char *const binds[][2], size_t nbinds, const char *logfile, char *const argv[])
{
	struct sigaction sa;
	sigset_t	 none;
	pid_t		 pid;
	int		 st;

	/* none of the parent's files: its sockets (libvirt's) must close when it closes them */
	close_range(3, ~0U, 0);
	setsid();
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = virtd_forward;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if ((pid = fork()) == -1)
		_exit(1);
	if (pid == 0) {
		sa.sa_handler = SIG_DFL;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		virtd_exec(binds, nbinds, logfile, argv);
	}
	virtd_child = pid;
	for (;;) {
		pid_t w = waitpid(-1, &st, 0);

		if (w == virtd_child)
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		if (w == -1 && errno == ECHILD)
			_exit(1);
	}
}

/* Writes a config file under dir. */
static int
virtd_write(const char *dir, const char *name, const char *text, struct err *e)
{
	char	*path = xasprintf("%s/%s", dir, name);
	int	 rc;

	rc = util_write_file(path, text, strlen(text), 0644, e);
	free(path);
	return rc;
}

/*
 * libvirt resolves its built-in qemu user and group (libvirt-qemu, kvm) before it reads
 * qemu.conf; libvirt-daemon-system creates them. The private instance sees copies of
 * /etc/passwd and /etc/group that have them; the host's files stay as they are.
 */
static int
virtd_write_ids(const char *statedir, const char *file, const char *const *need,
    struct err *e)
{
	struct buf	 b;
	char		*src = xasprintf("/etc/%s", file), *text, *dst;
	char		*prefix;
	int		 rc, i;

	if ((text = util_read_file(src, 16 << 20, NULL, e)) == NULL) {
		free(src);
		return -1;
	}
	buf_init(&b);
	buf_puts(&b, text);
	if (b.len > 0 && b.data[b.len - 1] != '\n')
		buf_puts(&b, "\n");
	for (i = 0; need[i] != NULL; i++) {
		prefix = xstrndup(need[i], strcspn(need[i], ":") + 1);
		if (strncmp(text, prefix, strlen(prefix)) != 0) {
			char *nl = xasprintf("\n%s", prefix);

			if (strstr(text, nl) == NULL)
				buf_printf(&b, "%s\n", need[i]);
			free(nl);
		}
		free(prefix);
	}
	dst = xasprintf("%s/%s", statedir, file);
	rc = util_write_file(dst, b.data, b.len, 0644, e);
	buf_free(&b);
	free(text);
	free(src);
	free(dst);
	return rc;
}

static int
virtd_socket_ready(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd, ok;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return 0;
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return ok;
}

struct virtd *
virtd_start(const char *statedir, const char *cachedir, double timeout_s, struct err *e)
{
	struct virtd	*d = NULL;
	char		*etc = NULL, *lib = NULL, *logd = NULL, *conf = NULL, *run = NULL;
	char		*binds[7][2];
	static const char *const users[] = {
		"libvirt-qemu:x:64055:64055:libvirt qemu:/var/lib/libvirt:/usr/sbin/nologin", NULL };
	static const char *const groups[] = { "libvirt-qemu:x:64055:", "kvm:x:64056:", NULL };
	char		*pw = NULL, *gr = NULL;
	char		*argv[] = { "/usr/sbin/libvirtd", NULL };
	double		 deadline;
	pid_t		 pid;
	int		 st, i;

	if (geteuid() != 0) {
		err_set(e, ERR_INVAL, "a private libvirtd needs root (its own mount namespace); "
		    "give a libvirt URI instead (--connect or ISOFORGE_LIBVIRT_URI)");
		return NULL;
	}
	if (strpbrk(statedir, "\"\\\n") != NULL) {
		err_set(e, ERR_INVAL, "%s: unusable as libvirtd state directory", statedir);
		return NULL;
	}
	etc = xasprintf("%s/etc", statedir);
	lib = xasprintf("%s/lib", statedir);
	logd = xasprintf("%s/log", statedir);
	run = xasprintf("%s/run", statedir);
	if (util_mkdirs(etc, e) == -1 || util_mkdirs(lib, e) == -1 || util_mkdirs(run, e) == -1 ||
	    util_mkdirs(logd, e) == -1 || util_mkdirs(cachedir, e) == -1)
		goto fail;
	conf = xasprintf("# written by isoforge\n"
	    "unix_sock_dir = \"%s\"\n"
	    "unix_sock_rw_perms = \"0700\"\n"
	    "auth_unix_rw = \"none\"\n"
	    "auth_unix_ro = \"none\"\n"
	    "log_outputs = \"3:stderr\"\n", statedir);
	if (virtd_write(etc, "libvirtd.conf", conf, e) == -1 ||
	    virtd_write(etc, "qemu.conf", virtd_qemu_conf, e) == -1 ||
	    virtd_write_ids(statedir, "passwd", users, e) == -1 ||
	    virtd_write_ids(statedir, "group", groups, e) == -1)
		goto fail;
	pw = xasprintf("%s/passwd", statedir);
	gr = xasprintf("%s/group", statedir);

	d = xcalloc(1, sizeof(*d));
	d->statedir = xstrdup(statedir);
	d->sock = xasprintf("%s/libvirt-sock", statedir);
	d->uri = xasprintf("qemu+unix:///system?socket=%s", d->sock);
	d->logfile = xasprintf("%s/libvirtd.log", statedir);
	(void)unlink(d->sock);

	binds[0][0] = etc;		binds[0][1] = "/etc/libvirt";
	binds[1][0] = lib;		binds[1][1] = "/var/lib/libvirt";
	binds[2][0] = logd;		binds[2][1] = "/var/log/libvirt";
	binds[3][0] = (char *)cachedir;	binds[3][1] = "/var/cache/libvirt";
	binds[4][0] = pw;		binds[4][1] = "/etc/passwd";
	binds[5][0] = gr;		binds[5][1] = "/etc/group";
	/* a private /run that outlives a libvirtd restart: running guests are found again */
	binds[6][0] = run;		binds[6][1] = "/run";
	/* the bind-mount targets; libvirt-daemon-system normally creates them */
	for (i = 0; i < 4; i++)
		if (util_mkdirs(binds[i][1], e) == -1)
			goto fail;
	if (strlen(d->sock) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		err_set(e, ERR_INVAL, "%s: socket path too long", d->sock);
		goto fail;
	}
	if ((pid = fork()) == -1) {
		err_set(e, ERR_IO, "fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0)
		virtd_reaper(binds, 7, d->logfile, argv);
	d->reaper = pid;

	deadline = util_now() + timeout_s;
	while (!virtd_socket_ready(d->sock)) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			d->reaper = 0;
			err_set(e, ERR_IO, "libvirtd exited (status %d) before it listened; see %s",
			    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), d->logfile);
			goto fail;
		}
		if (util_now() > deadline) {
			err_set(e, ERR_TIMEOUT, "libvirtd did not listen on %s within %.0f s",
			    d->sock, timeout_s);
			goto fail;
		}
		nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	}
	log_debug("private libvirtd (reaper pid %d) at %s", (int)pid, d->uri);
	free(etc);
	free(lib);
	free(logd);
	free(conf);
	free(run);
	free(pw);
	free(gr);
	return d;
fail:
	virtd_stop(&d);
	free(run);
	free(pw);
	free(gr);
	free(etc);
	free(lib);
	free(logd);
	free(conf);
	return NULL;
}

const char *
virtd_uri(const struct virtd *d)
{
	return d->uri;
}

void
virtd_stop(struct virtd **dp)
{
	struct virtd	*d;
	double		 deadline;
	int		 st;

	if (dp == NULL || (d = *dp) == NULL)
		return;
	if (d->reaper > 0) {
		kill(d->reaper, SIGTERM);
		deadline = util_now() + 10;
		while (waitpid(d->reaper, &st, WNOHANG) == 0) {
			if (util_now() > deadline) {
				kill(-d->reaper, SIGKILL);
				(void)waitpid(d->reaper, &st, 0);
				break;
			}
			nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
		}
	}
	free(d->statedir);
	free(d->sock);
	free(d->uri);
	free(d->logfile);
	free(d);
	*dp = NULL;
}
