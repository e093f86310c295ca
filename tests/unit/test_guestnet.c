/* test_guestnet.c — the guest network policy's parsers and builders: values, ranges, the libvirt
 * network XML (virt-xml-validate) and the nftables script (nft --check, as root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/proc.h"
#include "drivers/guestnet.h"

static char	 dir[2048];

static void
test_policy_values(void **state)
{
	static const struct {
		const char		*value;
		enum guestnet_mode	 mode;
		const char		*name;
	} good[] = {
		{ NULL, GUESTNET_ISOLATED, "" },
		{ "", GUESTNET_ISOLATED, "" },
		{ "isolated", GUESTNET_ISOLATED, "" },
		{ "none", GUESTNET_NONE, "" },
		{ "network:default", GUESTNET_NETWORK, "default" },
		{ "network:lab-net_2.v6", GUESTNET_NETWORK, "lab-net_2.v6" },
		{ "bridge:br0", GUESTNET_BRIDGE, "br0" },
		{ "bridge:abcdefghijklmno", GUESTNET_BRIDGE, "abcdefghijklmno" },
	};
	static const char *const bad[] = { "user", "Isolated", "network:", "bridge:",
		"bridge:abcdefghijklmnop", "network:a b", "network:../x", "bridge:br0;reboot",
		"network:a'b", "nat", "passt", "isolated ", NULL };
	struct guestnet_policy	 p;
	struct err		 e;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err_clear(&e);
		if (guestnet_parse(good[i].value, &p, &e) != 0)
			fail_msg("'%s' refused: %s", good[i].value, e.msg);
		assert_int_equal(p.mode, good[i].mode);
		assert_string_equal(p.name, good[i].name);
	}
	for (i = 0; bad[i] != NULL; i++) {
		err_clear(&e);
		if (guestnet_parse(bad[i], &p, &e) == 0)
			fail_msg("'%s' accepted", bad[i]);
		assert_int_equal(e.kind, ERR_INVAL);
		assert_non_null(strstr(e.msg, bad[i]));
	}
}

/* The policy as isoboot's NIC: the isolated network, the operator's, a bridge or none. */
static void
test_isoboot_params(void **state)
{
	struct guestnet_policy	 p;
	struct isoboot_params	 pa;
	struct err		 e;

	(void)state;
	memset(&pa, 0, sizeof(pa));
	err_clear(&e);
	assert_int_equal(guestnet_isoboot(NULL, &p, &pa, &e), 0);
	assert_string_equal(pa.network, GUESTNET_LIBVIRT_NET);
	assert_null(pa.bridge);
	assert_int_equal(guestnet_isoboot("network:lab", &p, &pa, &e), 0);
	assert_string_equal(pa.network, "lab");
	assert_null(pa.bridge);
	assert_int_equal(guestnet_isoboot("bridge:br1", &p, &pa, &e), 0);
	assert_null(pa.network);
	assert_string_equal(pa.bridge, "br1");
	assert_int_equal(guestnet_isoboot("none", &p, &pa, &e), 0);
	assert_null(pa.network);
	assert_null(pa.bridge);
	assert_int_equal(guestnet_isoboot("user", &p, &pa, &e), -1);
	assert_string_equal(e.msg, "guest network: 'user': not one of isolated, none, "
	    "network:NAME, bridge:NAME");
}

/* Joins the ranges as text, "a b c". */
static char *
ranges_text(const struct guestnet_cidr *r, size_t n)
{
	struct buf	 b;
	char		 s[64];
	size_t		 i;

	buf_init(&b);
	for (i = 0; i < n; i++) {
		guestnet_cidr_format(&r[i], s, sizeof(s));
		buf_printf(&b, "%s%s", i > 0 ? " " : "", s);
	}
	return buf_release(&b);
}

static void
test_deny_ranges(void **state)
{
	static const struct {
		const char	*value;
		const char	*want;
	} good[] = {
		{ "10.0.0.0/8", "10.0.0.0/8" },
		{ " 10.0.0.0/8,192.168.0.0/16 ,\t fc00::/7 ", "10.0.0.0/8 192.168.0.0/16 fc00::/7" },
		{ "192.0.2.7, 2001:db8::1", "192.0.2.7/32 2001:db8::1/128" },
		{ "0.0.0.0/0 ::/0", "0.0.0.0/0 ::/0" },
		{ "172.16.0.0/12 fe80::/10", "172.16.0.0/12 fe80::/10" },
		{ "none", "" },
	};
	static const char *const bad[] = { "10.1.0.0/8", "10.0.0.0/33", "fc00::/129",
		"10.0.0.0/", "10.0.0.0/8x", "intranet", "10.0.0.0/-1", "/8", "10.0.0.256",
		"fc00::1/7", "", " , ", "10.0.0.0/8, none", NULL };
	struct guestnet_cidr	*r;
	struct err		 e;
	size_t			 i, n;
	char			*t;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err_clear(&e);
		if (guestnet_parse_deny(good[i].value, &r, &n, &e) != 0)
			fail_msg("'%s' refused: %s", good[i].value, e.msg);
		t = ranges_text(r, n);
		assert_string_equal(t, good[i].want);
		free(t);
		free(r);
	}
	for (i = 0; bad[i] != NULL; i++) {
		err_clear(&e);
		if (guestnet_parse_deny(bad[i], &r, &n, &e) == 0)
			fail_msg("'%s' accepted", bad[i]);
		assert_int_equal(e.kind, ERR_INVAL);
		assert_null(r);
	}
	/* the default: the private, shared, link-local and loopback ranges of both families */
	err_clear(&e);
	assert_int_equal(guestnet_parse_deny(NULL, &r, &n, &e), 0);
	t = ranges_text(r, n);
	for (i = 0; i < 9; i++) {
		static const char *const want[] = { "10.0.0.0/8", "172.16.0.0/12",
			"192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8",
			"fc00::/7", "fe80::/10", "::/127" };

		if (strstr(t, want[i]) == NULL)
			fail_msg("default deny list lacks %s: %s", want[i], t);
	}
	/* documentation ranges are not denied: the e2e test's "outside" lives there */
	assert_null(strstr(t, "198.51.100."));
	free(t);
	free(r);
}

/* Writes text to a file of the test directory; returns its path (static). */
static const char *
write_tmp(const char *name, const char *text)
{
	static char	 path[4096];
	FILE		*f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void
test_network_xml(void **state)
{
	char		*xml = guestnet_network_xml(7);
	char		*argv[] = { "virt-xml-validate", NULL, "network", NULL };
	struct err	 e;

	(void)state;
	assert_non_null(strstr(xml, "<name>" GUESTNET_LIBVIRT_NET "</name>"));
	assert_non_null(strstr(xml, "<forward mode=\"nat\"/>"));
	assert_non_null(strstr(xml, "<bridge name=\"isoforge7\" stp=\"off\" delay=\"0\"/>"));
	assert_non_null(strstr(xml, "<port isolated=\"yes\"/>"));
	assert_non_null(strstr(xml, "<ip address=\"10.122.7.1\" netmask=\"255.255.255.0\">"));
	assert_non_null(strstr(xml, "<range start=\"10.122.7.2\" end=\"10.122.7.254\"/>"));
	assert_non_null(strstr(xml, "<dnsmasq:option value=\"no-ping\"/>"));
	/* libvirt's own schema accepts it */
	argv[1] = (char *)write_tmp("network.xml", xml);
	err_clear(&e);
	if (proc_run(argv, 30, NULL, &e) != 0)
		fail_msg("virt-xml-validate: %s\n%s", e.msg, xml);
	free(xml);
}

static void
test_nft_script(void **state)
{
	struct guestnet_cidr	*r;
	struct err		 e;
	size_t			 n;
	char			*s;
	char			*argv[] = { "nft", "--check", "-f", NULL, NULL };

	(void)state;
	err_clear(&e);
	assert_int_equal(guestnet_parse_deny("10.0.0.0/8, 10.1.0.0/16, fc00::/7, 192.0.2.7", &r,
	    &n, &e), 0);
	s = guestnet_nft_script("isoforge3", "10.122.3.1", r, n);
	assert_non_null(s);
	/* replaced atomically: created, deleted and made again in one transaction */
	assert_non_null(strstr(s, "table inet isoforge3\ndelete table inet isoforge3\n"
	    "table inet isoforge3 {\n"));
	assert_non_null(strstr(s, "elements = { 10.0.0.0/8, 10.1.0.0/16, 192.0.2.7/32 }"));
	assert_non_null(strstr(s, "elements = { fc00::/7 }"));
	/* replies to what the host opened (customizing's SSH), nothing the guest opens */
	assert_non_null(strstr(s, "iifname != \"isoforge3\" accept\n"
	    "\t\tct state established,related accept\n"
	    "\t\tip daddr 10.122.3.1 udp dport 53 accept\n"
	    "\t\tip daddr 10.122.3.1 tcp dport 53 accept\n"
	    "\t\tudp sport 68 udp dport 67 accept\n"
	    "\t\tjump refuse\n"));
	assert_non_null(strstr(s, "oifname \"isoforge*\" jump refuse\n"
	    "\t\tip daddr @deny4 jump refuse\n\t\tip6 daddr @deny6 jump refuse\n"));
	/* nft itself accepts it (overlapping ranges merge); the check changes nothing */
	if (geteuid() == 0 && access("/usr/sbin/nft", X_OK) == 0) {
		argv[0] = "/usr/sbin/nft";
		argv[3] = (char *)write_tmp("rules.nft", s);
		err_clear(&e);
		if (proc_run(argv, 30, NULL, &e) != 0)
			fail_msg("nft --check: %s\n%s", e.msg, s);
	}
	free(s);
	/* no ranges: empty sets, still valid */
	s = guestnet_nft_script("isoforge0", "10.122.0.1", NULL, 0);
	assert_non_null(s);
	assert_null(strstr(s, "elements"));
	free(s);
	/* what cannot be a table name or a gateway is refused, not quoted */
	assert_null(guestnet_nft_script("isoforge-x", "10.122.0.1", r, n));
	assert_null(guestnet_nft_script("0bridge", "10.122.0.1", r, n));
	assert_null(guestnet_nft_script("br\"0", "10.122.0.1", r, n));
	assert_null(guestnet_nft_script("isoforge0", "10.122.0.1; flush ruleset", r, n));
	assert_null(guestnet_nft_script("isoforge0", "fc00::1", r, n));
	assert_null(guestnet_nft_script(NULL, "10.122.0.1", r, n));
	free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_values),
		cmocka_unit_test(test_isoboot_params),
		cmocka_unit_test(test_deny_ranges),
		cmocka_unit_test(test_network_xml),
		cmocka_unit_test(test_nft_script),
	};
	const char	*base = getenv("TEST_TMP");
	char		 cmd[2200];
	int		 rc;

	snprintf(dir, sizeof(dir), "%s/guestnet-XXXXXX", base && *base ? base : "/tmp");
	if (mkdtemp(dir) == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "%s/network.xml", dir);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s/rules.nft", dir);
	unlink(cmd);
	rmdir(dir);
	return rc;
}
