/* test_ssh.c — the SSH driver against a real OpenSSH sshd started here on 127.0.0.1 (Debian's
 * openssh-server, a private config, host key and authorized_keys file, sessions as root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/proc.h"
#include "base/util.h"
#include "drivers/ssh.h"

#define SSHD	"/usr/sbin/sshd"
#define SFTPD	"/usr/lib/openssh/sftp-server"

static char		 dir[2048], work[2100];
static int		 port;		/* the test sshd */
static pid_t		 sshd_pid;
static struct ssh_key	*key_ed, *key_ec, *key_stranger;

/* A path in this test's private directory. */
static const char *
tpath(const char *name)
{
	static char	 p[8][4096];
	static int	 k;

	k = (k + 1) % 8;
	snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
	return p[k];
}

static void
write_file(const char *path, const char *text, int mode)
{
	struct err	 e;

	err_clear(&e);
	if (util_write_file(path, text, strlen(text), mode, &e) == -1)
		fail_msg("%s", e.msg);
	assert_int_equal(chmod(path, (mode_t)mode), 0);
}

/* A free TCP port on 127.0.0.1 (bound, then released). */
static int
free_port(void)
{
	struct sockaddr_in	 sa = { .sin_family = AF_INET };
	socklen_t		 sl = sizeof(sa);
	int			 fd = socket(AF_INET, SOCK_STREAM, 0), p;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	p = ntohs(sa.sin_port);
	close(fd);
	return p;
}

/* 1 when something accepts TCP connections on 127.0.0.1:p. */
static int
port_open(int p)
{
	struct sockaddr_in	 sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p) };
	int			 fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Starts sshd -D on port p (its log: sshd-P.log); waits until it accepts. */
static pid_t
sshd_start(int p)
{
	char	 ps[16], logname[64];
	pid_t	 pid;
	int	 i, fd;

	snprintf(ps, sizeof(ps), "%d", p);
	snprintf(logname, sizeof(logname), "sshd-%d.log", p);
	if ((pid = fork()) == 0) {
		char *const argv[] = { SSHD, "-D", "-e", "-f", (char *)tpath("sshd_config"), "-p", ps,
		    NULL };

		/* nothing of the test's own: a pipe reader of ours must see EOF when we end */
		fd = open("/dev/null", O_RDWR);
		dup2(fd, 0);
		dup2(fd, 1);
		fd = open(tpath(logname), O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 2);
		execv(SSHD, argv);
		_exit(127);
	}
	for (i = 0; i < 200 && !port_open(p); i++)
		usleep(50 * 1000);
	return pid;
}

static void
sshd_stop(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
}

/* Runs argv and returns its stdout (trimmed); caller frees. */
static char *
run_out(char *const argv[])
{
	struct proc_result	 r;
	struct err		 e;
	char			*out;

	err_clear(&e);
	if (proc_run(argv, 30, &r, &e) == -1)
		fail_msg("%s: %s", argv[0], e.msg);
	out = xstrdup(r.out.data != NULL ? r.out.data : "");
	proc_result_free(&r);
	out[strcspn(out, "\n")] = '\0';
	return out;
}

/* The fingerprint ssh-keygen -l prints for a public key file. */
static char *
keygen_fingerprint(const char *pubfile)
{
	char *const	 argv[] = { "ssh-keygen", "-l", "-E", "sha256", "-f", (char *)pubfile,
			    NULL };
	char		*out = run_out(argv), *fp, *sp;

	/* "256 SHA256:xxxx comment (ED25519)" */
	fp = strchr(out, ' ');
	assert_non_null(fp);
	fp++;
	sp = strchr(fp, ' ');
	if (sp != NULL)
		*sp = '\0';
	fp = xstrdup(fp);
	free(out);
	return fp;
}

/* The authorized_keys file every test starts from: the ed25519 and the ecdsa key. */
static void
authorized_reset(void)
{
	char	*text = xasprintf("%s\n%s\n", ssh_key_authorized(key_ed),
		    ssh_key_authorized(key_ec));

	write_file(tpath("authorized_keys"), text, 0600);
	free(text);
}

/* Options for the test sshd with key k. */
static struct ssh_opts
opts_for(const struct ssh_key *k)
{
	struct ssh_opts	 o;

	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.port = port;
	o.key = k;
	o.workdir = work;
	o.attempt_s = 10;
	return o;
}

static struct ssh_conn *
connect_ok(const struct ssh_opts *o)
{
	struct ssh_conn	*c;
	struct err	 e;

	err_clear(&e);
	c = ssh_connect(o, &e);
	if (c == NULL)
		fail_msg("connect: %s", e.msg);
	return c;
}

/* How many entries the work directory holds (scripts leave none). */
static int
work_entries(void)
{
	DIR		*dp = opendir(work);
	struct dirent	*de;
	int		 n = 0;

	assert_non_null(dp);
	while ((de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(dp);
	return n;
}

/* Lines a command printed, per stream. */
struct lines {
	char	*l[2][64];
	int	 n[2];
};

static void
on_line(void *arg, int stream, const char *line)
{
	struct lines	*ls = arg;
	int		 i = stream - 1;

	assert_true(stream == 1 || stream == 2);
	if (ls->n[i] < 64)
		ls->l[i][ls->n[i]++] = xstrdup(line);
}

static void
lines_free(struct lines *ls)
{
	int	 i, k;

	for (i = 0; i < 2; i++)
		for (k = 0; k < ls->n[i]; k++)
			free(ls->l[i][k]);
	memset(ls, 0, sizeof(*ls));
}

/* 1 when process pid is gone (or a zombie) within 5 s. */
static int
pid_gone(pid_t pid)
{
	char	 path[64], stat[256];
	int	 i, fd;
	ssize_t	 n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (i = 0; i < 50; i++) {
		if ((fd = open(path, O_RDONLY)) == -1)
			return 1;
		n = read(fd, stat, sizeof(stat) - 1);
		close(fd);
		stat[n > 0 ? n : 0] = '\0';
		if (strstr(stat, ") Z ") != NULL || strstr(stat, ") X ") != NULL)
			return 1;
		usleep(100 * 1000);
	}
	return 0;
}

static pid_t
read_pid(const char *name)
{
	char	*s = util_read_file(tpath(name), 64, NULL, NULL);
	pid_t	 pid;

	assert_non_null(s);
	pid = (pid_t)atoi(s);
	free(s);
	assert_true(pid > 1);
	return pid;
}

/* ---- keys ---- */

static void
test_keys(void **state)
{
	struct ssh_key	*k;
	struct err	 e;
	char		*fp, *line;
	const char	*types[] = { "ssh-ed25519 ", "ecdsa-sha2-nistp256 " };
	int		 t;

	(void)state;
	for (t = 0; t < 2; t++) {
		err_clear(&e);
		k = ssh_key_new(t == 0 ? SSH_KEY_ED25519 : SSH_KEY_ECDSA_P256, "isoforge-build-1",
		    &e);
		assert_non_null(k);
		line = xasprintf("%s\n", ssh_key_authorized(k));
		assert_int_equal(strncmp(line, types[t], strlen(types[t])), 0);
		assert_non_null(strstr(line, " isoforge-build-1\n"));
		assert_null(strchr(ssh_key_authorized(k), '\n'));
		/* OpenSSH's own reading of the line gives the same fingerprint */
		write_file(tpath("k.pub"), line, 0644);
		fp = keygen_fingerprint(tpath("k.pub"));
		assert_string_equal(fp, ssh_key_fingerprint(k));
		free(fp);
		free(line);
		ssh_key_free(&k);
		assert_null(k);
	}
	ssh_key_free(&k);
	ssh_key_free(NULL);
	/* two keys differ */
	assert_string_not_equal(ssh_key_fingerprint(key_ed), ssh_key_fingerprint(key_stranger));
	/* no comment: two fields */
	k = ssh_key_new(SSH_KEY_ED25519, NULL, &e);
	assert_non_null(k);
	assert_null(strchr(strchr(ssh_key_authorized(k), ' ') + 1, ' '));
	ssh_key_free(&k);
	/* a comment cannot add a line to authorized_keys */
	err_clear(&e);
	assert_null(ssh_key_new(SSH_KEY_ED25519, "x\nssh-ed25519 AAAA evil", &e));
	assert_int_equal(e.kind, ERR_INVAL);
	err_clear(&e);
	assert_null(ssh_key_new((enum ssh_key_type)7, NULL, &e));
	assert_int_equal(e.kind, ERR_INVAL);
}

/* ---- connecting ---- */

static void
test_auth_and_hostkey(void **state)
{
	struct ssh_opts	 o;
	struct ssh_conn	*c;
	struct err	 e;
	char		*hostfp, *seen;

	(void)state;
	hostfp = keygen_fingerprint(tpath("hostkey.pub"));
	/* trust on first use: the key the guest shows is recorded */
	o = opts_for(key_ed);
	c = connect_ok(&o);
	assert_string_equal(ssh_conn_hostkey(c), hostfp);
	assert_string_equal(ssh_conn_hostkey_type(c), "ssh-ed25519");
	seen = xstrdup(ssh_conn_hostkey(c));
	ssh_close(&c);
	assert_null(c);
	ssh_close(&c);
	/* the recorded key again: fine; the ecdsa user key works too */
	o = opts_for(key_ec);
	o.hostkey = seen;
	c = connect_ok(&o);
	ssh_close(&c);
	/* another host key: refused at once, even with time to wait */
	o.hostkey = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	o.wait_s = 30;
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_AUTH);
	assert_non_null(strstr(e.msg, "host key changed"));
	assert_non_null(strstr(e.msg, seen));
	free(seen);
	free(hostfp);
}

static void
test_key_refused(void **state)
{
	struct ssh_opts	 o = opts_for(key_stranger);
	struct err	 e;
	double		 t0 = util_now();

	(void)state;
	o.wait_s = 30;
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_AUTH);
	assert_non_null(strstr(e.msg, ssh_key_fingerprint(key_stranger)));
	assert_non_null(strstr(e.msg, "root"));
	/* not retried */
	assert_true(util_now() - t0 < 10);
}

static void
test_bad_host_port(void **state)
{
	struct ssh_opts	 o = opts_for(key_ed);
	struct err	 e;
	int		 refused = free_port();

	(void)state;
	o.port = 0;
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_INVAL);
	assert_non_null(strstr(e.msg, "port"));
	o.port = 65536;
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_INVAL);
	o = opts_for(key_ed);
	o.host = "";
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_INVAL);
	o.host = "no-such-host.invalid";
	o.wait_s = 30;
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_INVAL);
	assert_non_null(strstr(e.msg, "cannot resolve 'no-such-host.invalid'"));
	o = opts_for(key_ed);
	o.key = NULL;
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_INVAL);
	o = opts_for(key_ed);
	o.workdir = "/tmp/it's";
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_INVAL);
	/* nothing listens, one attempt: refused, at once */
	o = opts_for(key_ed);
	o.port = refused;
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_NET);
	assert_non_null(strstr(e.msg, "Connection refused"));
	/* a unix socket that is not there */
	o.host = tpath("no.sock");
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_NET);
}

/* The guest booting on port p: nothing (refused), then something accepting and closing at once
 * (qemu's user-mode forward before sshd runs), then something silent, then sshd. */
struct booting {
	int		 port;
	double		 refused_s, closing_s, silent_s;
	pid_t		 sshd;
};

static int
listen_on(int p)
{
	struct sockaddr_in	 sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p) };
	int			 fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 16) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *
booting_main(void *arg)
{
	struct booting	*b = arg;
	double		 end;
	int		 lfd, held[64], nheld = 0, fd, i;

	usleep((useconds_t)(b->refused_s * 1e6));
	if ((lfd = listen_on(b->port)) == -1)
		return NULL;
	end = util_now() + b->closing_s;
	while (util_now() < end) {
		struct pollfd	 pfd = { lfd, POLLIN, 0 };

		if (poll(&pfd, 1, 50) > 0 && (fd = accept(lfd, NULL, NULL)) != -1)
			close(fd);
	}
	end = util_now() + b->silent_s;
	while (util_now() < end) {
		struct pollfd	 pfd = { lfd, POLLIN, 0 };

		if (poll(&pfd, 1, 50) > 0 && (fd = accept(lfd, NULL, NULL)) != -1) {
			if (nheld < 64)
				held[nheld++] = fd;
			else
				close(fd);
		}
	}
	close(lfd);
	for (i = 0; i < nheld; i++)
		close(held[i]);
	b->sshd = sshd_start(b->port);
	return NULL;
}

struct retries {
	int	 n, refused, handshake, timedout;
};

static void
on_retry(void *arg, int attempt, const struct err *why)
{
	struct retries	*r = arg;

	r->n = attempt;
	if (strstr(why->msg, "Connection refused") != NULL)
		r->refused++;
	else if (strstr(why->msg, "SSH handshake") != NULL && why->kind == ERR_NET)
		r->handshake++;
	else if (why->kind == ERR_TIMEOUT)
		r->timedout++;
	else
		print_message("unexpected retry reason: %s\n", why->msg);
}

static void
test_retry_until_up(void **state)
{
	struct booting	 b = { free_port(), 1.0, 1.5, 2.5, -1 };
	struct retries	 r = { 0, 0, 0, 0 };
	struct ssh_opts	 o = opts_for(key_ed);
	struct ssh_conn	*c;
	struct err	 e;
	pthread_t	 th;

	(void)state;
	o.port = b.port;
	o.wait_s = 60;
	o.retry_s = 0.2;
	o.attempt_s = 1;
	o.on_retry = on_retry;
	o.arg = &r;
	assert_int_equal(pthread_create(&th, NULL, booting_main, &b), 0);
	err_clear(&e);
	c = ssh_connect(&o, &e);
	pthread_join(th, NULL);
	if (c == NULL) {
		sshd_stop(b.sshd);
		fail_msg("connect: %s", e.msg);
	}
	print_message("retries: %d (refused %d, handshake %d, timed out %d)\n", r.n, r.refused,
	    r.handshake, r.timedout);
	assert_true(r.refused >= 1);
	assert_true(r.handshake >= 1);
	assert_true(r.timedout >= 1);
	assert_int_equal(r.n, r.refused + r.handshake + r.timedout);
	assert_int_equal(ssh_exec(c, "true", NULL, NULL, NULL), 0);
	ssh_close(&c);
	sshd_stop(b.sshd);
}

static void
test_wait_gives_up(void **state)
{
	struct ssh_opts	 o = opts_for(key_ed);
	struct err	 e;
	double		 t0 = util_now();

	(void)state;
	o.port = free_port();
	o.wait_s = 1.5;
	o.retry_s = 0.2;
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_NET);
	assert_non_null(strstr(e.msg, "no SSH after"));
	assert_non_null(strstr(e.msg, "Connection refused"));
	assert_true(util_now() - t0 >= 1.2 && util_now() - t0 < 6);
}

/* Sets *flag after delay_s. */
struct canceller {
	volatile sig_atomic_t	 flag;
	double			 delay_s;
};

static void *
canceller_main(void *arg)
{
	struct canceller	*k = arg;

	usleep((useconds_t)(k->delay_s * 1e6));
	k->flag = 1;
	return NULL;
}

static void
test_cancel_connect(void **state)
{
	struct canceller k = { 0, 1.0 };
	struct ssh_opts	 o = opts_for(key_ed);
	struct err	 e;
	pthread_t	 th;
	double		 t0 = util_now();

	(void)state;
	o.port = free_port();
	o.wait_s = 60;
	o.cancel = &k.flag;
	assert_int_equal(pthread_create(&th, NULL, canceller_main, &k), 0);
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	pthread_join(th, NULL);
	assert_int_equal(e.kind, ERR_CANCELLED);
	assert_true(util_now() - t0 < 4);
}

/* Forwards one connection from a unix socket to the test sshd (a stand-in for a forward that
 * only isoforge can reach). */
struct fwd {
	int	 lfd;
};

static void *
fwd_main(void *arg)
{
	struct fwd		*f = arg;
	struct sockaddr_in	 sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	char			 buf[16384];
	int			 a, b, i;
	ssize_t			 n;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((a = accept(f->lfd, NULL, NULL)) == -1)
		return NULL;
	b = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(b, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		goto done;
	for (;;) {
		struct pollfd	 pfd[2] = { { a, POLLIN, 0 }, { b, POLLIN, 0 } };

		if (poll(pfd, 2, 10000) <= 0)
			break;
		for (i = 0; i < 2; i++)
			if (pfd[i].revents != 0) {
				if ((n = read(pfd[i].fd, buf, sizeof(buf))) <= 0 ||
				    write(pfd[1 - i].fd, buf, (size_t)n) != n)
					goto done;
			}
	}
done:
	close(a);
	close(b);
	return NULL;
}

static void
test_unix_socket(void **state)
{
	struct sockaddr_un	 sun = { .sun_family = AF_UNIX };
	struct ssh_opts		 o = opts_for(key_ed);
	struct ssh_conn		*c;
	struct fwd		 f;
	pthread_t		 th;

	(void)state;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", tpath("fwd.sock"));
	f.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(f.lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(f.lfd, 1), 0);
	assert_int_equal(pthread_create(&th, NULL, fwd_main, &f), 0);
	o.host = tpath("fwd.sock");
	o.port = 0;	/* ignored */
	c = connect_ok(&o);
	assert_int_equal(ssh_exec(c, "true", NULL, NULL, NULL), 0);
	ssh_close(&c);
	pthread_join(th, NULL);
	close(f.lfd);
	unlink(tpath("fwd.sock"));
}

/* ---- scripts ---- */

static void
test_script_streams_lines(void **state)
{
	static const char script[] =
	    "#!/bin/sh\n"
	    "echo 'out one'\n"
	    "echo 'err one' >&2\n"
	    "printf 'crlf line\\r\\n'\n"
	    "echo\n"
	    "echo \"out two $0\"\n"
	    "read x || echo 'stdin at eof'\n"
	    "head -c 5000 /dev/zero | tr '\\0' x; echo\n"
	    "echo 'err two' >&2\n"
	    "printf 'no newline at the end'\n";
	struct ssh_opts		 o = opts_for(key_ed);
	struct ssh_run_opts	 ro;
	struct ssh_run_result	 res;
	struct lines		 ls;
	struct ssh_conn		*c;
	struct err		 e;
	char			 want[5001];

	(void)state;
	memset(&ls, 0, sizeof(ls));
	memset(&ro, 0, sizeof(ro));
	ro.on_line = on_line;
	ro.arg = &ls;
	ro.timeout_s = 30;
	c = connect_ok(&o);
	err_clear(&e);
	assert_int_equal(ssh_run_script(c, "lines.sh", script, strlen(script), &ro, &res, &e), 0);
	assert_int_equal(res.exited, 1);
	assert_int_equal(res.exit_status, 0);
	assert_null(res.exit_signal);
	assert_false(res.timed_out);
	assert_int_equal(ls.n[0], 8);
	assert_string_equal(ls.l[0][0], "out one");
	assert_string_equal(ls.l[0][1], "crlf line");
	assert_string_equal(ls.l[0][2], "");
	/* the script ran from its own file in a private directory of the workdir */
	assert_int_equal(strncmp(ls.l[0][3], "out two ", 8), 0);
	assert_non_null(strstr(ls.l[0][3], work));
	assert_non_null(strstr(ls.l[0][3], "/isoforge-"));
	assert_string_equal(ls.l[0][4], "stdin at eof");
	/* a 5000-byte line comes in two pieces */
	memset(want, 'x', sizeof(want) - 1);
	want[SSH_LINE_MAX] = '\0';
	assert_string_equal(ls.l[0][5], want);
	want[SSH_LINE_MAX] = 'x';
	want[5000 - SSH_LINE_MAX] = '\0';
	assert_string_equal(ls.l[0][6], want);
	assert_string_equal(ls.l[0][7], "no newline at the end");
	assert_int_equal(ls.n[1], 2);
	assert_string_equal(ls.l[1][0], "err one");
	assert_string_equal(ls.l[1][1], "err two");
	assert_non_null(res.tail);
	assert_non_null(strstr(res.tail, "err two\nno newline at the end"));
	ssh_run_result_free(&res);
	ssh_run_result_free(&res);
	/* nothing left behind in the guest */
	assert_int_equal(work_entries(), 0);
	/* a command, and a default of no options */
	assert_int_equal(ssh_exec(c, "exit 0", NULL, NULL, NULL), 0);
	ssh_close(&c);
	lines_free(&ls);
}

static void
test_script_fails_with_last_lines(void **state)
{
	static const char script[] =
	    "#!/bin/sh\n"
	    "i=1; while [ $i -le 30 ]; do echo \"line $i\"; i=$((i + 1)); done\n"
	    "echo 'E: Unable to locate package nosuchpkg' >&2\n"
	    "exit 3\n";
	static const char killed[] = "#!/bin/sh\necho 'about to die'\nkill -s KILL $$\n";
	struct ssh_opts		 o = opts_for(key_ed);
	struct ssh_run_result	 res;
	struct ssh_conn		*c;
	struct err		 e;
	const char		*p;
	int			 nl = 0;

	(void)state;
	c = connect_ok(&o);
	err_clear(&e);
	assert_int_equal(ssh_run_script(c, "install-packages.sh", script, strlen(script), NULL,
	    &res, &e), -1);
	assert_int_equal(e.kind, ERR_REMOTE);
	assert_int_equal(res.exited, 1);
	assert_int_equal(res.exit_status, 3);
	print_message("%s\n", e.msg);
	assert_non_null(strstr(e.msg, "script 'install-packages.sh' exited with status 3"));
	assert_non_null(strstr(e.msg, "line 30 | E: Unable to locate package nosuchpkg"));
	/* the result holds the last 20 lines */
	for (p = res.tail; *p != '\0'; p++)
		nl += *p == '\n';
	assert_int_equal(nl, 19);
	assert_int_equal(strncmp(res.tail, "line 12\n", 8), 0);
	assert_non_null(strstr(res.tail, "line 30\nE: Unable to locate package nosuchpkg"));
	ssh_run_result_free(&res);
	assert_int_equal(work_entries(), 0);
	/* killed by a signal */
	err_clear(&e);
	assert_int_equal(ssh_run_script(c, "killed.sh", killed, strlen(killed), NULL, &res, &e),
	    -1);
	assert_int_equal(e.kind, ERR_REMOTE);
	assert_int_equal(res.exited, 0);
	assert_non_null(res.exit_signal);
	assert_string_equal(res.exit_signal, "KILL");
	assert_non_null(strstr(e.msg, "script 'killed.sh' killed by signal KILL"));
	assert_non_null(strstr(e.msg, "about to die"));
	ssh_run_result_free(&res);
	/* a command's status too */
	err_clear(&e);
	assert_int_equal(ssh_exec(c, "echo nope >&2; exit 7", NULL, &res, &e), -1);
	assert_int_equal(res.exit_status, 7);
	assert_non_null(strstr(e.msg, "exited with status 7; last lines: nope"));
	ssh_run_result_free(&res);
	ssh_close(&c);
	assert_int_equal(work_entries(), 0);
}

static void
test_script_size_bound(void **state)
{
	struct ssh_opts		 o = opts_for(key_ed);
	struct ssh_run_opts	 ro;
	struct ssh_run_result	 res;
	struct lines		 ls;
	struct ssh_conn		*c;
	struct err		 e;
	char			*big = xmalloc(SSH_SCRIPT_MAX + 1);
	static const char	 head[] = "#!/bin/sh\necho big-ok\n";

	(void)state;
	memset(&ls, 0, sizeof(ls));
	memset(&ro, 0, sizeof(ro));
	ro.on_line = on_line;
	ro.arg = &ls;
	/* exactly the bound: runs (a comment fills it up) */
	memcpy(big, head, sizeof(head) - 1);
	memset(big + sizeof(head) - 1, '#', SSH_SCRIPT_MAX - sizeof(head) + 1);
	big[SSH_SCRIPT_MAX - 1] = '\n';
	big[SSH_SCRIPT_MAX] = '\n';
	c = connect_ok(&o);
	err_clear(&e);
	assert_int_equal(ssh_run_script(c, "big", big, SSH_SCRIPT_MAX, &ro, &res, &e), 0);
	assert_int_equal(ls.n[0], 1);
	assert_string_equal(ls.l[0][0], "big-ok");
	ssh_run_result_free(&res);
	/* one byte more: refused before anything is sent */
	err_clear(&e);
	assert_int_equal(ssh_run_script(c, "big", big, SSH_SCRIPT_MAX + 1, &ro, &res, &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
	assert_non_null(strstr(e.msg, "more than the 65536 allowed"));
	assert_int_equal(ls.n[0], 1);
	ssh_run_result_free(&res);
	/* a smaller bound of the caller's */
	ro.script_max = 100;
	err_clear(&e);
	assert_int_equal(ssh_run_script(c, "big", big, 101, &ro, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
	assert_int_equal(work_entries(), 0);
	ssh_close(&c);
	lines_free(&ls);
	free(big);
}

static void
test_script_env(void **state)
{
	static const char script[] = "#!/bin/sh\n"
	    "printf '%s|%s|%s\\n' \"$ISOFORGE_BUILD_ID\" \"$QUOTED\" \"${EMPTY-unset}\"\n";
	const char *const	 env[] = { "ISOFORGE_BUILD_ID=b-1",
				    "QUOTED=it's \"quoted\" $HOME `id` \\\nline two", "EMPTY=", NULL };
	const char *const	 bad1[] = { "1ABC=x", NULL };
	const char *const	 bad2[] = { "NOVALUE", NULL };
	const char *const	 bad3[] = { "=x", NULL };
	const char *const	 bad4[] = { "A-B=x", NULL };
	const char *const	*bad[] = { bad1, bad2, bad3, bad4 };
	struct ssh_opts		 o = opts_for(key_ed);
	struct ssh_run_opts	 ro;
	struct lines		 ls;
	struct ssh_conn		*c;
	struct err		 e;
	size_t			 i;

	(void)state;
	memset(&ls, 0, sizeof(ls));
	memset(&ro, 0, sizeof(ro));
	ro.on_line = on_line;
	ro.arg = &ls;
	ro.env = env;
	c = connect_ok(&o);
	err_clear(&e);
	assert_int_equal(ssh_run_script(c, "env.sh", script, strlen(script), &ro, NULL, &e), 0);
	/* every value arrives as written: no shell expansion, quotes kept */
	assert_int_equal(ls.n[0], 2);
	assert_string_equal(ls.l[0][0], "b-1|it's \"quoted\" $HOME `id` \\");
	assert_string_equal(ls.l[0][1], "line two|");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ro.env = bad[i];
		err_clear(&e);
		assert_int_equal(ssh_run_script(c, "env.sh", script, strlen(script), &ro, NULL, &e),
		    -1);
		assert_int_equal(e.kind, ERR_INVAL);
	}
	assert_int_equal(ls.n[0], 2);
	assert_int_equal(work_entries(), 0);
	ssh_close(&c);
	lines_free(&ls);
}

/* A script that records its pid and a background child's, says "waiting" and hangs. */
static char *
hanging_script(void)
{
	return xasprintf("#!/bin/sh\necho $$ > '%s'\nsleep 120 &\necho $! > '%s'\n"
	    "echo waiting\nwait\n", tpath("hang.pid"), tpath("sleep.pid"));
}

static void
test_script_timeout(void **state)
{
	struct ssh_opts		 o = opts_for(key_ed);
	struct ssh_run_opts	 ro;
	struct ssh_run_result	 res;
	struct ssh_conn		*c;
	struct err		 e;
	char			*script = hanging_script();
	double			 t0;

	(void)state;
	memset(&ro, 0, sizeof(ro));
	ro.timeout_s = 2;
	c = connect_ok(&o);
	err_clear(&e);
	t0 = util_now();
	assert_int_equal(ssh_run_script(c, "hang.sh", script, strlen(script), &ro, &res, &e), -1);
	print_message("%s (%.1f s)\n", e.msg, util_now() - t0);
	assert_int_equal(e.kind, ERR_TIMEOUT);
	assert_true(res.timed_out);
	assert_false(res.cancelled);
	assert_true(util_now() - t0 >= 1.9 && util_now() - t0 < 15);
	assert_non_null(strstr(e.msg, "script 'hang.sh': timed out after 2 s"));
	assert_non_null(strstr(e.msg, "waiting"));
	/* the script and its child were killed with their process group */
	assert_true(pid_gone(read_pid("hang.pid")));
	assert_true(pid_gone(read_pid("sleep.pid")));
	ssh_run_result_free(&res);
	assert_int_equal(work_entries(), 0);
	/* the connection is still good */
	assert_int_equal(ssh_exec(c, "true", NULL, NULL, NULL), 0);
	ssh_close(&c);
	free(script);
}

static void
test_script_cancel(void **state)
{
	struct canceller	 k = { 0, 1.5 };
	struct ssh_opts		 o = opts_for(key_ed);
	struct ssh_run_result	 res;
	struct ssh_conn		*c;
	struct err		 e;
	char			*script = hanging_script();
	pthread_t		 th;
	double			 t0;

	(void)state;
	o.cancel = &k.flag;
	c = connect_ok(&o);
	t0 = util_now();
	assert_int_equal(pthread_create(&th, NULL, canceller_main, &k), 0);
	err_clear(&e);
	assert_int_equal(ssh_run_script(c, "hang.sh", script, strlen(script), NULL, &res, &e),
	    -1);
	pthread_join(th, NULL);
	print_message("%s (%.1f s)\n", e.msg, util_now() - t0);
	assert_int_equal(e.kind, ERR_CANCELLED);
	assert_true(res.cancelled);
	assert_true(util_now() - t0 < 15);
	assert_true(pid_gone(read_pid("hang.pid")));
	assert_true(pid_gone(read_pid("sleep.pid")));
	ssh_run_result_free(&res);
	assert_int_equal(work_entries(), 0);
	/* once cancelled, everything stops at once */
	err_clear(&e);
	assert_int_equal(ssh_exec(c, "true", NULL, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_CANCELLED);
	ssh_close(&c);
	free(script);
}

static void
test_deadline(void **state)
{
	struct ssh_opts		 o = opts_for(key_ed);
	struct ssh_run_opts	 ro;
	struct ssh_conn		*c;
	struct err		 e;
	char			*script = hanging_script();

	(void)state;
	memset(&ro, 0, sizeof(ro));
	ro.timeout_s = 600;	/* the step's deadline comes first */
	o.deadline = util_now() + 3;
	c = connect_ok(&o);
	err_clear(&e);
	assert_int_equal(ssh_run_script(c, "hang.sh", script, strlen(script), &ro, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_TIMEOUT);
	assert_non_null(strstr(e.msg, "deadline"));
	assert_true(pid_gone(read_pid("hang.pid")));
	assert_true(pid_gone(read_pid("sleep.pid")));
	ssh_close(&c);
	/* past the deadline, connecting fails at once */
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_TIMEOUT);
	free(script);
}

/* ---- files ---- */

static void
test_copy_files(void **state)
{
	struct ssh_opts	 o = opts_for(key_ed);
	struct ssh_conn	*c;
	struct stat	 st;
	struct err	 e;
	unsigned char	*data = xmalloc(300000);
	char		*got, *dst = xasprintf("%s/copied.bin", work);
	size_t		 len;

	(void)state;
	util_random(data, 300000);
	assert_int_equal(util_write_file(tpath("src.bin"), data, 300000, 0600, NULL), 0);
	assert_int_equal(chmod(tpath("src.bin"), 04751), 0);
	c = connect_ok(&o);
	err_clear(&e);
	assert_int_equal(ssh_copy_file(c, tpath("src.bin"), dst, 0, 60, &e), 0);
	assert_int_equal(stat(dst, &st), 0);
	assert_int_equal(st.st_mode & 07777, 04751);
	assert_int_equal(st.st_size, 300000);
	got = util_read_file(dst, 400000, &len, NULL);
	assert_non_null(got);
	assert_int_equal(len, 300000);
	assert_memory_equal(got, data, 300000);
	free(got);
	/* replaced: shorter, another mode (the guest's umask does not matter) */
	write_file(tpath("small.txt"), "hello\n", 0666);
	assert_int_equal(ssh_copy_file(c, tpath("small.txt"), dst, 0, 60, &e), 0);
	assert_int_equal(stat(dst, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0666);
	got = ssh_get_data(c, dst, 100, &len, 10, &e);
	assert_non_null(got);
	assert_string_equal(got, "hello\n");
	assert_int_equal(len, 6);
	free(got);
	/* data, and a read bound */
	assert_int_equal(ssh_put_data(c, "abc", 3, dst, 0640, 10, &e), 0);
	assert_int_equal(stat(dst, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_null(ssh_get_data(c, dst, 2, NULL, 10, &e));
	assert_int_equal(e.kind, ERR_INVAL);
	/* errors */
	err_clear(&e);
	assert_int_equal(ssh_copy_file(c, tpath("missing"), dst, 0, 60, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	err_clear(&e);
	assert_int_equal(ssh_copy_file(c, dir, dst, 0, 60, &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
	err_clear(&e);
	assert_int_equal(unlink(dst), 0);
	assert_int_equal(ssh_copy_file(c, tpath("src.bin"), dst, 1000, 60, &e), -1);
	assert_int_equal(e.kind, ERR_INVAL);
	assert_non_null(strstr(e.msg, "more than the 1000 allowed"));
	assert_int_equal(stat(dst, &st), -1);
	err_clear(&e);
	assert_int_equal(ssh_copy_file(c, tpath("src.bin"), "/nonexistent-dir/x", 0, 60, &e),
	    -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	err_clear(&e);
	assert_null(ssh_get_data(c, "/nonexistent-dir/x", 100, NULL, 10, &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	/* the session survives SFTP errors */
	assert_int_equal(ssh_exec(c, "true", NULL, NULL, NULL), 0);
	ssh_close(&c);
	free(dst);
	free(data);
}

/* ---- the end: key removal, power-off ---- */

static void
test_remove_key(void **state)
{
	struct ssh_opts	 o = opts_for(key_ed);
	struct ssh_conn	*c;
	struct stat	 st;
	struct err	 e;
	char		*text, *want, *got;
	int		 removed = -1;

	(void)state;
	text = xasprintf("# operator's keys\n%s\nno-pty,from=\"10.0.0.1\" %s\n%s\n%s other\n",
	    ssh_key_authorized(key_ec), ssh_key_authorized(key_ed), ssh_key_authorized(key_stranger),
	    ssh_key_authorized(key_ed));
	want = xasprintf("# operator's keys\n%s\n%s\n", ssh_key_authorized(key_ec),
	    ssh_key_authorized(key_stranger));
	write_file(tpath("authorized_keys"), text, 0640);
	c = connect_ok(&o);
	err_clear(&e);
	assert_int_equal(ssh_remove_key(c, tpath("authorized_keys"), &removed, &e), 0);
	assert_int_equal(removed, 2);
	got = util_read_file(tpath("authorized_keys"), 65536, NULL, NULL);
	assert_string_equal(got, want);
	free(got);
	assert_int_equal(stat(tpath("authorized_keys"), &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	/* the session still works; twice is harmless */
	assert_int_equal(ssh_remove_key(c, tpath("authorized_keys"), &removed, &e), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(ssh_exec(c, "true", NULL, NULL, NULL), 0);
	/* no file: nothing to remove */
	assert_int_equal(ssh_remove_key(c, tpath("no-such-file"), &removed, &e), 0);
	assert_int_equal(removed, 0);
	ssh_close(&c);
	/* the key no longer opens the guest; the others still do */
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	assert_int_equal(e.kind, ERR_AUTH);
	o = opts_for(key_ec);
	c = connect_ok(&o);
	ssh_close(&c);
	authorized_reset();
	free(text);
	free(want);
}

static void
test_poweroff(void **state)
{
	struct ssh_opts		 o = opts_for(key_ed);
	struct ssh_run_opts	 ro;
	struct lines		 ls;
	struct ssh_conn		*c;
	struct err		 e;
	char			*fake, *failing;

	(void)state;
	assert_string_equal(ssh_poweroff_command(SSH_GUEST_UNIX), "poweroff");
	assert_string_equal(ssh_poweroff_command(SSH_GUEST_WINDOWS), "shutdown /s /t 0");
	/* sshd's SetEnv puts this test's bin/ first in PATH: the fake poweroff (checked first,
	 * this runs as root on the host) */
	fake = xasprintf("#!/bin/sh\necho \"$@\" > '%s'\n", tpath("poweroff.called"));
	write_file(tpath("bin/poweroff"), fake, 0755);
	failing = xasprintf("#!/bin/sh\necho 'poweroff: not now' >&2\nexit 1\n");
	write_file(tpath("bin/poweroff-fails"), failing, 0755);
	memset(&ls, 0, sizeof(ls));
	memset(&ro, 0, sizeof(ro));
	ro.on_line = on_line;
	ro.arg = &ls;
	c = connect_ok(&o);
	assert_int_equal(ssh_exec(c, "command -v poweroff", &ro, NULL, NULL), 0);
	assert_int_equal(ls.n[0], 1);
	if (strcmp(ls.l[0][0], tpath("bin/poweroff")) != 0)
		fail_msg("poweroff resolves to %s, not the fake: not calling it", ls.l[0][0]);
	err_clear(&e);
	assert_int_equal(ssh_poweroff(c, NULL, 10, &e), 0);
	assert_int_equal(access(tpath("poweroff.called"), F_OK), 0);
	/* a power-off command that fails */
	err_clear(&e);
	assert_int_equal(ssh_poweroff(c, "poweroff-fails", 10, &e), -1);
	assert_int_equal(e.kind, ERR_REMOTE);
	assert_non_null(strstr(e.msg, "exited with status 1; last lines: poweroff: not now"));
	/* the command killed by the shutdown: success */
	err_clear(&e);
	assert_int_equal(ssh_poweroff(c, "kill -s TERM $$", 10, &e), 0);
	ssh_close(&c);
	c = connect_ok(&o);
	/* the guest going away under the command (its sshd session dies): success */
	err_clear(&e);
	assert_int_equal(ssh_poweroff(c, "kill -s KILL $PPID; sleep 5", 10, &e), 0);
	/* and then the connection is gone */
	err_clear(&e);
	assert_int_equal(ssh_exec(c, "true", NULL, NULL, &e), -1);
	assert_int_equal(e.kind, ERR_NET);
	ssh_close(&c);
	lines_free(&ls);
	free(fake);
	free(failing);
}

/* ---- setup ---- */

static int
setup(void **state)
{
	char	*conf;
	char *const keygen[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
		    (char *)tpath("hostkey"), NULL };
	struct err	 e;

	(void)state;
	if (access(SSHD, X_OK) != 0 || access(SFTPD, X_OK) != 0) {
		print_error("%s or %s missing: install openssh-server (make deps)\n", SSHD, SFTPD);
		return -1;
	}
	/* sshd's privilege separation directory (the package's tmpfiles.d makes it at boot) */
	(void)mkdir("/run/sshd", 0755);
	err_clear(&e);
	if (proc_run(keygen, 30, NULL, &e) == -1) {
		print_error("%s\n", e.msg);
		return -1;
	}
	snprintf(work, sizeof(work), "%s/work", dir);
	if (mkdir(work, 0700) == -1 || mkdir(tpath("bin"), 0755) == -1)
		return -1;
	key_ed = ssh_key_new(SSH_KEY_ED25519, "isoforge-test-ed25519", NULL);
	key_ec = ssh_key_new(SSH_KEY_ECDSA_P256, "isoforge-test-ecdsa", NULL);
	key_stranger = ssh_key_new(SSH_KEY_ED25519, "stranger", NULL);
	if (key_ed == NULL || key_ec == NULL || key_stranger == NULL)
		return -1;
	authorized_reset();
	conf = xasprintf(
	    "ListenAddress 127.0.0.1\n"
	    "HostKey %s\n"
	    "AuthorizedKeysFile %s\n"
	    "PidFile none\n"
	    "UsePAM no\n"
	    "StrictModes no\n"
	    "PermitRootLogin prohibit-password\n"
	    "PasswordAuthentication no\n"
	    "KbdInteractiveAuthentication no\n"
	    "MaxStartups 100\n"
	    "SetEnv PATH=%s:/usr/bin:/bin\n"
	    "Subsystem sftp %s\n"
	    "LogLevel VERBOSE\n", tpath("hostkey"), tpath("authorized_keys"), tpath("bin"), SFTPD);
	write_file(tpath("sshd_config"), conf, 0600);
	free(conf);
	port = free_port();
	sshd_pid = sshd_start(port);
	if (!port_open(port)) {
		print_error("sshd did not start: see %s\n", tpath("sshd-*.log"));
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	sshd_stop(sshd_pid);
	ssh_key_free(&key_ed);
	ssh_key_free(&key_ec);
	ssh_key_free(&key_stranger);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_auth_and_hostkey),
		cmocka_unit_test(test_key_refused),
		cmocka_unit_test(test_bad_host_port),
		cmocka_unit_test(test_retry_until_up),
		cmocka_unit_test(test_wait_gives_up),
		cmocka_unit_test(test_cancel_connect),
		cmocka_unit_test(test_unix_socket),
		cmocka_unit_test(test_script_streams_lines),
		cmocka_unit_test(test_script_fails_with_last_lines),
		cmocka_unit_test(test_script_size_bound),
		cmocka_unit_test(test_script_env),
		cmocka_unit_test(test_script_timeout),
		cmocka_unit_test(test_script_cancel),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_copy_files),
		cmocka_unit_test(test_remove_key),
		cmocka_unit_test(test_poweroff),
	};
	const char	*base = getenv("TEST_TMP");
	struct err	 e;
	int		 rc;

	snprintf(dir, sizeof(dir), "%s/ssh-XXXXXX", base && *base ? base : "/tmp");
	if (mkdtemp(dir) == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, setup, teardown);
	err_clear(&e);
	if (getenv("TEST_KEEP") == NULL)
		(void)util_rmtree(dir, &e);
	return rc;
}
