/* test_customize_media.c — the SSH driver against a real guest: installer-ssh.iso of the test
 * media installs with a key from a kickstart-style answer CD (label OEMDRV), the installed disk
 * boots alone with its SSH behind a qemu user-mode port forward on 127.0.0.1, and the driver
 * customizes it the way the pipeline will: templates/customize/marker.sh, a file copy, a
 * failing script, the key removed, power-off; a last boot shows the marker and refuses the key.
 * Plain libvirt (TCG) under the private libvirtd; ~3 guest boots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "base/proc.h"
#include "base/util.h"
#include "drivers/qemuimg.h"
#include "drivers/ssh.h"

static virConnectPtr	 conn;
static char		 tmp[2048], top[2048], media[2048];
static struct ssh_key	*key;
static char		*disk, *hostkey;
static virDomainPtr	 running;	/* the guest up now: destroyed after each test */
static int		 installed, customized;	/* the earlier tests passed */

static const char *
tpath(const char *name)
{
	static char	 p[8][4096];
	static int	 k;

	k = (k + 1) % 8;
	snprintf(p[k], sizeof(p[k]), "%s/%s", tmp, name);
	return p[k];
}

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

/*
 * A transient TCG guest: the root disk, the CD-ROMs (NULL-terminated, may be none), the serial
 * console into log; with port > 0 a virtio NIC on qemu's user-mode network, restricted (no
 * way out) but for a forward of 127.0.0.1:port to the guest's port 22.
 */
static virDomainPtr
boot(const char *name, const char *log, int port, const char *const *cds)
{
	struct buf	 x;
	virDomainPtr	 d;
	const char	*letters = "cd";
	int		 i;

	buf_init(&x);
	buf_printf(&x, "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
	    "<name>%s</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>"
	    "<os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>"
	    "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>"
	    "<on_crash>destroy</on_crash><devices>"
	    "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
	    "<source file='%s'/><target dev='vda' bus='virtio'/><boot order='1'/></disk>",
	    name, disk);
	for (i = 0; cds != NULL && cds[i] != NULL; i++)
		buf_printf(&x, "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
		    "<source file='%s'/><target dev='hd%c' bus='ide'/><readonly/>"
		    "<boot order='%d'/></disk>", cds[i], letters[i], i + 2);
	buf_printf(&x, "<controller type='usb' model='none'/>"
	    "<serial type='file'><source path='%s'/><target port='0'/></serial>"
	    "<video><model type='none'/></video><memballoon model='none'/></devices>", log);
	if (port > 0)
		buf_printf(&x, "<qemu:commandline>"
		    "<qemu:arg value='-netdev'/>"
		    "<qemu:arg value='user,id=isofwd,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22'/>"
		    "<qemu:arg value='-device'/>"
		    "<qemu:arg value='virtio-net-pci,netdev=isofwd,bus=pci.0,addr=0x10'/>"
		    "</qemu:commandline>", port);
	buf_puts(&x, "</domain>");
	d = virDomainCreateXML(conn, x.data, 0);
	buf_free(&x);
	if (d == NULL)
		fail_msg("create %s: %s", name, virGetLastErrorMessage());
	running = d;
	return d;
}

/* Waits for the transient domain d to end (at most timeout_s); 1 when it did. */
static int
wait_gone(virDomainPtr d, double timeout_s)
{
	double	 end = util_now() + timeout_s;
	int	 state, reason;

	while (util_now() < end) {
		if (virDomainGetState(d, &state, &reason, 0) == -1 || state == VIR_DOMAIN_SHUTOFF)
			return 1;
		usleep(250 * 1000);
	}
	return 0;
}

static void
destroy(virDomainPtr d)
{
	(void)virDomainDestroy(d);
	virDomainFree(d);
	if (d == running)
		running = NULL;
}

/* After each test: no guest left running, whatever failed. */
static int
teardown(void **state)
{
	(void)state;
	if (running != NULL)
		destroy(running);
	return 0;
}

/* The serial log's text (NUL-terminated); caller frees. */
static char *
serial(const char *log)
{
	char	*s = util_read_file(log, 4 << 20, NULL, NULL);

	return s != NULL ? s : xstrdup("");
}

/* Waits until the serial log holds marker (at most timeout_s); 1 when it does. */
static int
wait_serial(const char *log, const char *marker, double timeout_s)
{
	double	 end = util_now() + timeout_s;
	char	*s;
	int	 found = 0;

	while (!found && util_now() < end) {
		s = serial(log);
		found = strstr(s, marker) != NULL;
		free(s);
		if (!found)
			usleep(500 * 1000);
	}
	return found;
}

/* The answer CD: a kickstart (ks.cfg) holding the key as Anaconda's sshkey command would. */
static char *
answer_iso(void)
{
	char		*ks, *iso = xstrdup(tpath("answer.iso"));
	char *const	 argv[] = { "xorriso", "-as", "mkisofs", "-quiet", "-V", "OEMDRV", "-R", "-J",
			    "-o", iso, (char *)tpath("answer"), NULL };
	struct err	 e;

	assert_int_equal(mkdir(tpath("answer"), 0700), 0);
	ks = xasprintf("# isoforge test answer\nrootpw --lock\nsshkey --username=root \"%s\"\n"
	    "poweroff\n", ssh_key_authorized(key));
	assert_int_equal(util_write_file(tpath("answer/ks.cfg"), ks, strlen(ks), 0600, NULL), 0);
	free(ks);
	err_clear(&e);
	if (proc_run(argv, 60, NULL, &e) == -1)
		fail_msg("%s", e.msg);
	return iso;
}

static struct ssh_opts
guest_opts(int port)
{
	struct ssh_opts	 o;

	memset(&o, 0, sizeof(o));
	o.host = "127.0.0.1";
	o.port = port;
	o.key = key;
	o.attempt_s = 20;
	o.wait_s = 300;		/* the boot under TCG, with the machine shared */
	o.retry_s = 1;
	o.deadline = util_now() + 900;
	return o;
}

static void
on_line(void *arg, int stream, const char *line)
{
	struct buf	*b = arg;

	buf_printf(b, "%d:%s\n", stream, line);
}

static void
test_install(void **state)
{
	const char	*cds[3];
	char		*iso = xasprintf("%s/installer-ssh.iso", media), *answer = answer_iso(), *s;
	virDomainPtr	 d;
	struct err	 e;

	(void)state;
	err_clear(&e);
	if (qemuimg_create(disk, 2ULL << 30, &e) == -1)
		fail_msg("%s", e.msg);
	cds[0] = iso;
	cds[1] = answer;
	cds[2] = NULL;
	d = boot("isoforge-t-ssh-install", tpath("install.log"), 0, cds);
	if (!wait_gone(d, 600)) {
		destroy(d);
		fail_msg("the install did not end in 600 s");
	}
	destroy(d);
	s = serial(tpath("install.log"));
	if (strstr(s, "ISOFORGE-INSTALL-DONE") == NULL)
		fail_msg("install failed: %s", s);
	assert_non_null(strstr(s, "isoforge: 1 ssh key(s) from /dev/sr"));
	assert_non_null(strstr(s, ":ks.cfg"));
	installed = 1;
	free(s);
	free(answer);
	free(iso);
}

static void
test_customize(void **state)
{
	static const char failing[] = "#!/bin/sh\necho 'checking the disk'\n"
	    "echo 'E: no space left on /nowhere' >&2\nexit 4\n";
	static const char hang[] = "#!/bin/sh\nsleep 120 &\necho started\nwait\n";
	const char *const	 env[] = { "ISOFORGE_BUILD_ID=e2e-1234", NULL };
	struct ssh_run_opts	 ro;
	struct ssh_run_result	 res;
	struct ssh_opts		 o;
	struct ssh_conn		*c;
	struct buf		 lines;
	struct err		 e;
	virDomainPtr		 d;
	char			*marker, *path, *got, *s;
	size_t			 len;
	int			 port = free_port(), removed = 0;
	double			 t0;

	(void)state;
	if (!installed)
		skip();
	d = boot("isoforge-t-ssh-customize", tpath("customize.log"), port, NULL);
	o = guest_opts(port);
	err_clear(&e);
	t0 = util_now();
	c = ssh_connect(&o, &e);
	if (c == NULL) {
		s = serial(tpath("customize.log"));
		destroy(d);
		fail_msg("%s\nserial console:\n%s", e.msg, s);
	}
	print_message("ssh up after %.0f s; host key %s %s\n", util_now() - t0,
	    ssh_conn_hostkey_type(c), ssh_conn_hostkey(c));
	hostkey = xstrdup(ssh_conn_hostkey(c));

	/* the operator's marker script, with a variable from isoforge */
	path = xasprintf("%s/templates/customize/marker.sh", top);
	marker = util_read_file(path, SSH_SCRIPT_MAX, &len, &e);
	assert_non_null(marker);
	buf_init(&lines);
	memset(&ro, 0, sizeof(ro));
	ro.timeout_s = 120;
	ro.on_line = on_line;
	ro.arg = &lines;
	ro.env = env;
	if (ssh_run_script(c, "marker.sh", marker, len, &ro, &res, &e) == -1)
		fail_msg("%s", e.msg);
	assert_non_null(strstr(lines.data, "1:marker.sh: wrote /etc/isoforge-customized"));
	ssh_run_result_free(&res);

	/* a file with its mode */
	assert_int_equal(util_write_file(tpath("motd"), "built by isoforge\n", 18, 0600, NULL),
	    0);
	assert_int_equal(chmod(tpath("motd"), 0640), 0);
	if (ssh_copy_file(c, tpath("motd"), "/etc/motd", 0, 60, &e) == -1)
		fail_msg("%s", e.msg);
	buf_free(&lines);
	buf_init(&lines);
	ro.env = NULL;
	if (ssh_exec(c, "stat -c '%a %s' /etc/motd; cat /etc/isoforge-customized", &ro, &res, &e)
	    == -1)
		fail_msg("%s", e.msg);
	assert_non_null(strstr(lines.data, "1:640 18\n"));
	assert_non_null(strstr(lines.data, "build=e2e-1234"));
	ssh_run_result_free(&res);

	/* a failing script: its status and last lines */
	err_clear(&e);
	assert_int_equal(ssh_run_script(c, "check.sh", failing, strlen(failing), NULL, &res, &e),
	    -1);
	assert_int_equal(res.exit_status, 4);
	assert_non_null(strstr(e.msg, "script 'check.sh' exited with status 4; last lines: "
	    "checking the disk | E: no space left on /nowhere"));
	ssh_run_result_free(&res);
	err_clear(&e);

	/* a hanging script: killed with its children at the timeout (dropbear's sessions too) */
	ro.timeout_s = 3;
	err_clear(&e);
	assert_int_equal(ssh_run_script(c, "hang.sh", hang, strlen(hang), &ro, &res, &e), -1);
	assert_int_equal(e.kind, ERR_TIMEOUT);
	assert_true(res.timed_out);
	ssh_run_result_free(&res);
	buf_free(&lines);
	buf_init(&lines);
	ro.timeout_s = 30;
	err_clear(&e);
	if (ssh_exec(c, "sleep 1; ps | grep '[s]leep 120' || echo none-left", &ro, NULL, &e) == -1)
		fail_msg("%s", e.msg);
	if (strstr(lines.data, "1:none-left\n") == NULL)
		fail_msg("the hanging script's child survived:\n%s", lines.data);
	err_clear(&e);

	/* the ephemeral key goes; the session stays */
	if (ssh_remove_key(c, NULL, &removed, &e) == -1)
		fail_msg("%s", e.msg);
	assert_int_equal(removed, 1);
	got = ssh_get_data(c, ".ssh/authorized_keys", 65536, &len, 30, &e);
	assert_non_null(got);
	assert_int_equal(len, 0);
	free(got);

	/* power-off, then the domain ends by itself */
	if (ssh_poweroff(c, NULL, 30, &e) == -1)
		fail_msg("%s", e.msg);
	ssh_close(&c);
	if (!wait_gone(d, 120)) {
		destroy(d);
		fail_msg("no power-off in 120 s");
	}
	destroy(d);
	customized = 1;
	buf_free(&lines);
	free(marker);
	free(path);
}

static void
test_customized_image(void **state)
{
	struct ssh_opts	 o;
	struct err	 e;
	virDomainPtr	 d;
	int		 port = free_port();
	char		*s;

	(void)state;
	if (!customized)
		skip();
	assert_non_null(hostkey);
	d = boot("isoforge-t-ssh-verify", tpath("verify.log"), port, NULL);
	if (!wait_serial(tpath("verify.log"), "ISOFORGE-SSH-READY", 300)) {
		s = serial(tpath("verify.log"));
		destroy(d);
		fail_msg("no ISOFORGE-SSH-READY in 300 s:\n%s", s);
	}
	s = serial(tpath("verify.log"));
	assert_non_null(strstr(s, "ISOFORGE-CUSTOMIZED customized-at="));
	assert_non_null(strstr(s, "build=e2e-1234"));
	free(s);
	/* the same host key (kept on the disk), and the build's key no longer opens the guest */
	o = guest_opts(port);
	o.hostkey = hostkey;
	err_clear(&e);
	assert_null(ssh_connect(&o, &e));
	print_message("%s\n", e.msg);
	assert_int_equal(e.kind, ERR_AUTH);
	assert_non_null(strstr(e.msg, "refused key"));
	destroy(d);
}

static void
quiet(void *arg, virErrorPtr err)
{
	(void)arg;
	(void)err;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_install, teardown),
		cmocka_unit_test_teardown(test_customize, teardown),
		cmocka_unit_test_teardown(test_customized_image, teardown),
	};
	const char	*uri = getenv("ISOFORGE_LIBVIRT_URI"), *m = getenv("ISOFORGE_MEDIA");
	const char	*t = getenv("TEST_TMP"), *tp = getenv("ISOFORGE_TOP");
	struct err	 e;
	int		 rc;

	if (uri == NULL || m == NULL) {
		fprintf(stderr, "needs ISOFORGE_LIBVIRT_URI and ISOFORGE_MEDIA (tests/run e2e)\n");
		return 77;
	}
	snprintf(media, sizeof(media), "%s", m);
	snprintf(top, sizeof(top), "%s", tp != NULL ? tp : ".");
	snprintf(tmp, sizeof(tmp), "%s/customize-XXXXXX", t != NULL && *t ? t : "/tmp");
	if (mkdtemp(tmp) == NULL)
		return 1;
	/* "domain not found" after a transient guest ended is expected here: not to stderr */
	virSetErrorFunc(NULL, quiet);
	if ((conn = virConnectOpen(uri)) == NULL) {
		fprintf(stderr, "%s: %s\n", uri, virGetLastErrorMessage());
		return 1;
	}
	disk = xstrdup(tpath("root.qcow2"));
	key = ssh_key_new(SSH_KEY_ED25519, "isoforge-e2e", NULL);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	ssh_key_free(&key);
	virConnectClose(conn);
	free(disk);
	free(hostkey);
	err_clear(&e);
	if (getenv("TEST_KEEP") == NULL)
		(void)util_rmtree(tmp, &e);
	return rc;
}
