/* test_virt.c — the libvirt driver against a real libvirtd and qemu (TCG): outcomes through our
 * loop (power-off, cancel, finish after the grace period, pause), the KVM probe, clean-up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

#include "drivers/virt.h"
#include "drivers/virtd.h"
#include "base/loop.h"

static struct loop	*loop;
static struct virt	*v;
static struct virtd	*privd;
static char		 tmp[512];

struct seen {
	int			 calls;
	enum virt_outcome	 outcome;
	char			 reason[128];
};

static void
on_outcome(struct virt_domain *d, enum virt_outcome o, const char *reason, void *arg)
{
	struct seen *s = arg;

	(void)d;
	s->calls++;
	s->outcome = o;
	snprintf(s->reason, sizeof(s->reason), "%s", reason ? reason : "");
}

static int
wait_outcome(struct seen *s, double timeout)
{
	double	 deadline = util_now() + timeout;

	while (s->calls == 0 && util_now() < deadline)
		assert_int_equal(loop_run_once(loop, 200, NULL), 0);
	return s->calls;
}

/* A raw disk: the power-off boot sector, or a halt loop (a guest that ignores everything). */
static char *
make_disk(const char *name, int poweroff)
{
	unsigned char	 sector[512];
	char		*path;
	FILE		*f;

	if (poweroff)
		virt_probe_bootsector(sector);
	else {
		memset(sector, 0, sizeof(sector));
		sector[0] = 0xfa;	/* cli; hlt; jmp hlt */
		sector[1] = 0xf4;
		sector[2] = 0xeb;
		sector[3] = 0xfd;
		sector[510] = 0x55;
		sector[511] = 0xaa;
	}
	path = xasprintf("%s/%s.img", tmp, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(sector, 1, sizeof(sector), f), sizeof(sector));
	fclose(f);
	return path;
}

static struct virt_domain *
define_tiny(const char *name, int poweroff)
{
	struct err		 e;
	struct virt_domain	*d;
	char			*disk = make_disk(name, poweroff);
	char			*xml = virt_probe_xml(name, "qemu", disk);

	err_clear(&e);
	d = virt_define(v, xml, &e);
	if (d == NULL)
		fail_msg("define: %s", e.msg);
	free(xml);
	free(disk);
	return d;
}

static void
test_poweroff_is_installed(void **state)
{
	struct virt_domain	*d;
	struct seen		 s = { 0 };
	struct err		 e;

	(void)state;
	err_clear(&e);
	d = define_tiny("isoforge-test-poweroff", 1);
	assert_int_equal(virt_start(d, on_outcome, &s, &e), 0);
	assert_int_equal(wait_outcome(&s, 30), 1);
	assert_int_equal(s.outcome, VIRT_POWEROFF);
	assert_string_equal(s.reason, "guest powered off");
	assert_int_equal(virt_undefine(d, &e), 0);
	virt_domain_free(&d);
	assert_int_equal(virt_exists(v, "isoforge-test-poweroff", &e), 0);
}

/*
 * A restarted worker watches domains an earlier process started: one that powered off while
 * nobody watched counts as installed (persistent, shut off: reason shutdown); one still running
 * delivers its later outcome to the new watcher.
 */
static void
test_watch_after_restart(void **state)
{
	struct virt_domain	*d;
	struct seen		 s = { 0 }, s2 = { 0 };
	struct err		 e;

	(void)state;
	err_clear(&e);
	/* powered off while "the worker was dead": the handle that started it is gone */
	d = define_tiny("isoforge-test-watch-off", 1);
	assert_int_equal(virt_start(d, on_outcome, &s, &e), 0);
	assert_int_equal(wait_outcome(&s, 30), 1);
	virt_domain_free(&d);
	assert_non_null(d = virt_lookup(v, "isoforge-test-watch-off", &e));
	assert_int_equal(virt_watch(d, on_outcome, &s2, &e), 0);
	assert_int_equal(wait_outcome(&s2, 5), 1);
	assert_int_equal(s2.outcome, VIRT_POWEROFF);
	assert_string_equal(s2.reason, "guest powered off");
	assert_int_equal(virt_undefine(d, &e), 0);
	virt_domain_free(&d);

	/* still running: watched again, its end (a finish here) reaches the new watcher */
	memset(&s, 0, sizeof(s));
	memset(&s2, 0, sizeof(s2));
	d = define_tiny("isoforge-test-watch-run", 0);
	assert_int_equal(virt_start(d, on_outcome, &s, &e), 0);
	virt_domain_free(&d);
	assert_non_null(d = virt_lookup(v, "isoforge-test-watch-run", &e));
	assert_int_equal(virt_watch(d, on_outcome, &s2, &e), 0);
	assert_int_equal(wait_outcome(&s2, 1), 0);	/* still running */
	assert_int_equal(virt_finish(d, 0.5, &e), 0);
	assert_int_equal(wait_outcome(&s2, 10), 1);
	assert_int_equal(s2.outcome, VIRT_FINISHED);
	assert_int_equal(s.calls, 0);
	assert_int_equal(virt_undefine(d, &e), 0);
	virt_domain_free(&d);
	assert_int_equal(virt_exists(v, "isoforge-test-watch-run", &e), 0);
}

static void
test_cancel(void **state)
{
	struct virt_domain	*d;
	struct seen		 s = { 0 };
	struct err		 e;

	(void)state;
	err_clear(&e);
	d = define_tiny("isoforge-test-cancel", 0);
	assert_int_equal(virt_start(d, on_outcome, &s, &e), 0);
	assert_int_equal(wait_outcome(&s, 1), 0);	/* still running */
	assert_int_equal(virt_cancel(d, &e), 0);
	assert_int_equal(wait_outcome(&s, 10), 1);
	assert_int_equal(s.outcome, VIRT_CANCELLED);
	assert_int_equal(virt_undefine(d, &e), 0);
	virt_domain_free(&d);
	assert_int_equal(virt_exists(v, "isoforge-test-cancel", &e), 0);
}

static void
test_finish_destroys_after_grace(void **state)
{
	struct virt_domain	*d;
	struct seen		 s = { 0 };
	struct err		 e;
	double			 t0;

	(void)state;
	err_clear(&e);
	d = define_tiny("isoforge-test-finish", 0);
	assert_int_equal(virt_start(d, on_outcome, &s, &e), 0);
	assert_int_equal(wait_outcome(&s, 1), 0);
	t0 = util_now();
	assert_int_equal(virt_finish(d, 1.5, &e), 0);
	assert_int_equal(wait_outcome(&s, 15), 1);
	assert_true(util_now() - t0 >= 1.4);
	assert_int_equal(s.outcome, VIRT_FINISHED);
	assert_int_equal(virt_undefine(d, &e), 0);
	virt_domain_free(&d);
}

static void
test_paused_is_failure(void **state)
{
	struct virt_domain	*d;
	struct seen		 s = { 0 };
	struct err		 e;
	virConnectPtr		 c;
	virDomainPtr		 dom;

	(void)state;
	err_clear(&e);
	d = define_tiny("isoforge-test-pause", 0);
	assert_int_equal(virt_start(d, on_outcome, &s, &e), 0);
	/* someone else pauses it, on another connection */
	assert_non_null(c = virConnectOpen(virt_uri(v)));
	assert_non_null(dom = virDomainLookupByName(c, "isoforge-test-pause"));
	assert_int_equal(virDomainSuspend(dom), 0);
	virDomainFree(dom);
	virConnectClose(c);
	assert_int_equal(wait_outcome(&s, 10), 1);
	assert_int_equal(s.outcome, VIRT_FAILED);
	assert_non_null(strstr(s.reason, "paused"));
	assert_int_equal(virt_undefine(d, &e), 0);
	virt_domain_free(&d);
	assert_int_equal(virt_exists(v, "isoforge-test-pause", &e), 0);
}

static void
test_kvm_probe(void **state)
{
	struct err	 e;
	int		 works = -1;
	double		 t0 = util_now();

	(void)state;
	err_clear(&e);
	assert_int_equal(virt_probe_kvm(v, tmp, 5, &works, &e), 0);
	assert_true(works == 0 || works == 1);
	assert_true(util_now() - t0 < 10);
	printf("kvm works: %d (%.1f s)\n", works, util_now() - t0);
	/* nothing left: no probe domain, no probe disk */
	assert_int_equal(rmdir(tmp) == 0 || access(tmp, F_OK) == 0, 1);
}

/* libvirtd restarts under a running install: the driver reconnects by itself (close callback,
 * retry timer on the loop) and events flow again. Uses a private libvirtd of its own. */
static void
test_reconnect_after_libvirtd_restart(void **state)
{
	struct loop		*l2 = loop;
	struct virtd		*own;
	struct virt		*v2, *saved = v;
	struct virt_domain	*d;
	struct seen		 s = { 0 };
	struct err		 e;
	char			*sd, *cd;
	double			 deadline;

	(void)state;
	err_clear(&e);
	sd = xasprintf("%s/own-libvirtd", tmp);
	cd = xasprintf("%s/libvirt-cache", getenv("ISOFORGE_CACHE") ?
	    getenv("ISOFORGE_CACHE") : "/tmp");
	own = virtd_start(sd, cd, 60, &e);
	if (own == NULL)
		fail_msg("private libvirtd: %s", e.msg);
	assert_non_null(v2 = virt_open(l2, virtd_uri(own), &e));
	v = v2;
	d = define_tiny("isoforge-test-reconnect", 0);
	assert_int_equal(virt_start(d, on_outcome, &s, &e), 0);

	virtd_stop(&own);
	assert_non_null(own = virtd_start(sd, cd, 60, &e));
	deadline = util_now() + 20;
	while ((virt_generation(v2) < 2 || !virt_connected(v2)) && util_now() < deadline)
		assert_int_equal(loop_run_once(l2, 200, NULL), 0);
	assert_true(virt_connected(v2));
	assert_int_equal(virt_generation(v2), 2);
	assert_int_equal(s.calls, 0);		/* the guest kept running */
	if (virt_exists(v2, "isoforge-test-reconnect", &e) != 1)
		fail_msg("after the reconnect: %s", e.msg);
	assert_int_equal(virt_cancel(d, &e), 0);
	assert_int_equal(wait_outcome(&s, 10), 1);	/* an event over the new connection */
	assert_int_equal(s.outcome, VIRT_CANCELLED);
	assert_int_equal(virt_undefine(d, &e), 0);
	virt_domain_free(&d);
	v = saved;
	virt_free(&v2);
	(void)loop_run_once(l2, 0, NULL);
	virtd_stop(&own);
	(void)util_rmtree(sd, NULL);
	free(sd);
	free(cd);
}

static int
setup(void **state)
{
	struct err	 e;
	const char	*uri = getenv("ISOFORGE_LIBVIRT_URI");
	const char	*t = getenv("TEST_TMP");
	char		*sd, *cd;

	(void)state;
	err_clear(&e);
	snprintf(tmp, sizeof(tmp), "%s/virt", t ? t : "/tmp");
	if (util_mkdirs(tmp, &e) == -1)
		return -1;
	if (uri == NULL) {
		sd = xasprintf("%s/libvirtd", tmp);
		cd = xasprintf("%s/libvirt-cache", getenv("ISOFORGE_CACHE") ?
		    getenv("ISOFORGE_CACHE") : "/tmp");
		privd = virtd_start(sd, cd, 60, &e);
		free(sd);
		free(cd);
		if (privd == NULL) {
			fprintf(stderr, "private libvirtd: %s\n", e.msg);
			return -1;
		}
		uri = virtd_uri(privd);
	}
	if ((loop = loop_new(&e)) == NULL || virt_event_init(loop, &e) == -1 ||
	    (v = virt_open(loop, uri, &e)) == NULL) {
		fprintf(stderr, "libvirt: %s\n", e.msg);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	virt_free(&v);
	/* let libvirt's removed watches and timers be freed */
	if (loop != NULL)
		(void)loop_run_once(loop, 0, NULL);
	virtd_stop(&privd);
	loop_free(&loop);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_poweroff_is_installed),
		cmocka_unit_test(test_watch_after_restart),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_finish_destroys_after_grace),
		cmocka_unit_test(test_paused_is_failure),
		cmocka_unit_test(test_kvm_probe),
		cmocka_unit_test(test_reconnect_after_libvirtd_restart),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
