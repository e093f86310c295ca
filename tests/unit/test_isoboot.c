/* test_isoboot.c — profiles, profile choice, the device plan, domain XML, image properties. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "isoboot/isoboot.h"
#include "service/pipeline/templates.h"
#include "base/util.h"

/* The repository's templates (tests run from the top, or ISOFORGE_TOP says where it is). */
static char *
top_templates(void)
{
	const char	*top = getenv("ISOFORGE_TOP");

	return xasprintf("%s/templates", top != NULL ? top : ".");
}

static struct isoboot_profile *
load(const char *name)
{
	struct err		 e;
	char			*dir = top_templates();
	struct isoboot_profile	*p;

	err_clear(&e);
	p = templates_load_profile(dir, name, &e);
	if (p == NULL)
		fail_msg("profile %s: %s", name, e.msg);
	free(dir);
	return p;
}

/* Every shipped profile loads, and says what the issue asks of it. */
static void
test_shipped_profiles(void **state)
{
	struct isoboot_profile	*p;

	(void)state;
	p = load("linux");
	assert_string_equal(p->disk_bus, "virtio");
	assert_string_equal(p->nic_model, "virtio");
	assert_int_equal(p->virtio_win, ISOBOOT_VIRTIO_WIN_NONE);
	isoboot_profile_free(&p);

	p = load("linux-novirtio");
	assert_string_equal(p->disk_bus, "ide");
	assert_string_not_equal(p->nic_model, "virtio");
	isoboot_profile_free(&p);

	p = load("windows");
	assert_string_equal(p->disk_bus, "virtio");
	assert_string_equal(p->nic_model, "e1000");
	assert_int_equal(p->virtio_win, ISOBOOT_VIRTIO_WIN_CDROM);
	assert_string_equal(p->os_type, "windows");
	isoboot_profile_free(&p);

	p = load("windows-legacy");
	assert_int_equal(p->virtio_win, ISOBOOT_VIRTIO_WIN_FLOPPY);
	isoboot_profile_free(&p);

	p = load("windows-modern");
	assert_string_equal(p->machine, "q35");
	assert_string_equal(p->firmware, "uefi");
	assert_string_equal(p->cdrom_bus, "sata");
	assert_true(p->tpm);
	assert_true(p->secure_boot);
	assert_string_equal(p->name, "windows-modern");
	isoboot_profile_free(&p);
	isoboot_profile_free(&p);
}

static void
test_templates_errors(void **state)
{
	struct err	 e;
	char		*dir = top_templates(), *xml;

	(void)state;
	err_clear(&e);
	assert_null(templates_load_profile(dir, "no-such-profile", &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "profiles/no-such-profile.conf: No such file"));
	err_clear(&e);
	assert_null(templates_load_profile(dir, "../domain", &e));
	assert_int_equal(e.kind, ERR_INVAL);
	err_clear(&e);
	assert_null(templates_load_profile(dir, "a/b", &e));
	assert_int_equal(e.kind, ERR_INVAL);
	xml = templates_load_domain(dir, &e);
	assert_non_null(xml);
	assert_non_null(strstr(xml, "<domain"));
	free(xml);
	free(dir);
	assert_non_null(templates_dir());
}

/* Profile files with mistakes: the error names the file and the line. */
static void
test_profile_parse_errors(void **state)
{
	static const struct {
		const char	*text;
		const char	*msg;
	} cases[] = {
		{ "os_type = linux\ndisk_bus = virtoi\n",
		    "p.conf:2: disk_bus: 'virtoi' is not one of virtio|sata|ide" },
		{ "dsik_bus = virtio\n", "p.conf:1: unknown key 'dsik_bus'" },
		{ "\n[disk]\nbus = ide\n", "p.conf:3: section [disk]: profiles have no sections" },
		{ "ram_mib = lots\n", "p.conf:1: ram_mib: 'lots' is not a number in 64..4194304" },
		{ "vcpus = 0\n", "p.conf:1: vcpus: '0' is not a number in 1..512" },
		{ "tpm = maybe\n", "p.conf:1: tpm: 'maybe' is not yes or no" },
		{ "virtio_win = usb\n", "p.conf:1: virtio_win: 'usb' is not one of none|cdrom|floppy" },
		{ "machine = isapc\n",
		    "p.conf:1: machine: 'isapc' is not one of pc|q35|pc-i440fx-VERSION|pc-q35-VERSION" },
		{ "machine = q35\n", "p.conf: machine q35 has no IDE bus (use sata)" },
		{ "secure_boot = yes\n", "p.conf: secure_boot needs firmware = uefi" },
		{ "firmware = uefi\nsecure_boot = yes\n", "p.conf: secure_boot needs machine = q35 (SMM)" },
		{ "name =\n", "p.conf:1: name: empty" },
		{ "disk_bus virtio\n", "p.conf:1: expected 'key = value' or '[section]'" },
	};
	struct err	 e;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err_clear(&e);
		if (isoboot_profile_parse(cases[i].text, "p.conf", &e) != NULL)
			fail_msg("accepted: %s", cases[i].text);
		assert_int_equal(e.kind, ERR_INVAL);
		if (strcmp(e.msg, cases[i].msg) != 0)
			fail_msg("got '%s', want '%s'", e.msg, cases[i].msg);
	}
}

static void
test_profile_parse_ok(void **state)
{
	struct isoboot_profile	*p;
	struct err		 e;

	(void)state;
	err_clear(&e);
	p = isoboot_profile_parse("# c\nmachine = pc-q35-7.2\ncdrom_bus = sata\n"
	    "description = \"a # b\"\nram_mib = 512\n", "/x/y/custom.conf", &e);
	assert_non_null(p);
	assert_string_equal(p->name, "custom");
	assert_string_equal(p->machine, "pc-q35-7.2");
	assert_string_equal(p->description, "a # b");
	assert_int_equal(p->ram_mib, 512);
	/* defaults: generic linux */
	assert_string_equal(p->disk_bus, "virtio");
	assert_int_equal(p->vcpus, 1);
	isoboot_profile_free(&p);
	p = isoboot_profile_parse("", NULL, &e);
	assert_non_null(p);
	assert_string_equal(p->name, "linux");
	isoboot_profile_free(&p);
}

/* Glance hw_* properties override the profile. */
static void
test_profile_set(void **state)
{
	struct isoboot_profile	*p;
	struct err		 e;

	(void)state;
	p = load("linux-novirtio");
	err_clear(&e);
	assert_int_equal(isoboot_profile_set(p, "hw_machine_type", "q35", &e), 0);
	assert_string_equal(p->machine, "q35");
	assert_string_equal(p->disk_bus, "sata");
	assert_string_equal(p->cdrom_bus, "sata");
	assert_int_equal(isoboot_profile_set(p, "hw_vif_model", "virtio", &e), 0);
	assert_string_equal(p->nic_model, "virtio");
	assert_string_equal(p->image_nic_model, "virtio");
	assert_int_equal(isoboot_profile_set(p, "hw_qemu_guest_agent", "yes", &e), 0);
	assert_int_equal(isoboot_profile_set(p, "hw_firmware_type", "uefi", &e), 0);
	assert_string_equal(p->firmware, "uefi");
	assert_int_equal(isoboot_profile_set(p, "hw_disk_bus", "scsi", &e), -1);
	assert_string_equal(e.msg, "disk_bus: 'scsi' is not one of virtio|sata|ide "
	    "(from hw_disk_bus)");
	err_clear(&e);
	assert_int_equal(isoboot_profile_set(p, "vcpus", "4", &e), 0);
	assert_int_equal(p->vcpus, 4);
	assert_int_equal(isoboot_profile_set(p, "colour", "blue", &e), -1);
	assert_string_equal(e.msg, "unknown key 'colour'");
	isoboot_profile_free(&p);
}

static void
test_profile_choose(void **state)
{
	static const char *const cases[][4] = {
		/* os_type, os_distro, os_version → profile */
		{ NULL, NULL, NULL, "linux" },
		{ "linux", NULL, NULL, "linux" },
		{ "other", NULL, NULL, "linux" },
		{ "windows", NULL, NULL, "windows" },
		{ NULL, "windows", "2003", "windows-legacy" },
		{ NULL, "windows", "2003 R2", "windows-legacy" },
		{ NULL, "windows", "XP", "windows-legacy" },
		{ NULL, "windows", "2008", "windows" },
		{ NULL, "windows", "2008 R2", "windows" },
		{ NULL, "windows", "7", "windows" },
		{ NULL, "windows", "10", "windows" },
		{ NULL, "windows", "2019", "windows" },
		{ NULL, "windows", "11", "windows-modern" },
		{ NULL, "windows", "2022", "windows-modern" },
		{ NULL, "windows", "Server 2025", "windows-modern" },
		{ "windows", NULL, "2000", "windows-legacy" },
		{ NULL, "win2k3r2", NULL, "windows-legacy" },
		{ NULL, "win2k3", NULL, "windows-legacy" },
		{ NULL, "winxp", NULL, "windows-legacy" },
		{ NULL, "win2k8r2", NULL, "windows" },
		{ NULL, "win2k19", NULL, "windows" },
		{ NULL, "win10", NULL, "windows" },
		{ NULL, "win11", NULL, "windows-modern" },
		{ NULL, "win2k22", NULL, "windows-modern" },
		{ NULL, "Windows11", NULL, "windows-modern" },
		{ "windows", "windows", "win2k3r2", "windows-legacy" },
		{ NULL, "debian12", NULL, "linux" },
		{ NULL, "debian", "5", "linux-novirtio" },
		{ NULL, "debian", "12", "linux" },
		{ NULL, "ubuntu", "22.04", "linux" },
		{ NULL, "ubuntu7.10", NULL, "linux-novirtio" },
		{ NULL, "rhel", "9.2", "linux" },
		{ NULL, "rhel4.8", NULL, "linux-novirtio" },
		{ NULL, "centos", "5.11", "linux-novirtio" },
		{ NULL, "centos7.0", NULL, "linux" },
		{ NULL, "fedora", "39", "linux" },
		{ NULL, "opensuse", "15.4", "linux" },
		{ NULL, "opensuse15.4", NULL, "linux" },
		{ NULL, "sles", "10", "linux-novirtio" },
		{ NULL, "freebsd", "13.2", "linux" },
		{ NULL, "freebsd", "8.4", "linux-novirtio" },
		{ NULL, "freedos", NULL, "linux-novirtio" },
		{ NULL, "netware", "6.5", "linux-novirtio" },
		{ NULL, "opensolaris", NULL, "linux-novirtio" },
		{ NULL, "gentoo", NULL, "linux" },
		{ NULL, "netbsd", "9.3", "linux" },
		{ NULL, "arch", NULL, "linux" },
		{ "linux", "mystery", "1", "linux" },
	};
	size_t	 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char	*got = isoboot_profile_choose(cases[i][0], cases[i][1],
		    cases[i][2]);

		if (strcmp(got, cases[i][3]) != 0)
			fail_msg("(%s, %s, %s): got %s, want %s", cases[i][0] ? cases[i][0] : "-",
			    cases[i][1] ? cases[i][1] : "-", cases[i][2] ? cases[i][2] : "-", got,
			    cases[i][3]);
	}
}

/* The request's OS wins over the image's properties; hw_* properties apply in order. */
static void
test_profile_choose_for(void **state)
{
	json_t			*props;
	struct isoboot_profile	*p;
	struct err		 e;

	(void)state;
	props = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "os_type", "windows", "os_distro",
	    "windows", "os_version", "2003", "hw_machine_type", "q35", "hw_vif_model", "e1000e",
	    "hw_not_a_string", 1);
	assert_non_null(props);
	assert_string_equal(isoboot_profile_choose_for(NULL, NULL, NULL, props),
	    "windows-legacy");
	assert_string_equal(isoboot_profile_choose_for(NULL, "debian12", NULL, props), "linux");
	assert_string_equal(isoboot_profile_choose_for(NULL, NULL, NULL, NULL), "linux");
	p = load("linux-novirtio");
	err_clear(&e);
	assert_int_equal(isoboot_profile_apply_properties(p, props, &e), 0);
	assert_string_equal(p->machine, "q35");
	assert_string_equal(p->disk_bus, "sata");
	assert_string_equal(p->nic_model, "e1000e");
	assert_int_equal(isoboot_profile_apply_properties(p, NULL, &e), 0);
	json_object_set_new(props, "hw_firmware_type", json_string("coreboot"));
	assert_int_equal(isoboot_profile_apply_properties(p, props, &e), -1);
	assert_string_equal(e.msg, "firmware: 'coreboot' is not one of bios|uefi "
	    "(from hw_firmware_type)");
	isoboot_profile_free(&p);
	json_decref(props);
}

static const struct isoboot_params params_ok = {
	.build_id = "b1", .name = "n", .vnc_password = "pw",
};

/* The article's layout: vda virtio (boot 1), hda OS ISO (boot 2), hdb virtio-win. */
static void
test_plan_article(void **state)
{
	struct isoboot_profile	*p = load("windows");
	struct isoboot_flavor	 f = { 0, 0, 40 };
	struct isoboot_media	 m = { .root_disk = "/w/root.qcow2", .iso = "/m/os.iso",
	    .virtio_win = "/m/virtio-win.iso" };
	struct isoboot_plan	*pl;
	struct err		 e;
	json_t			*props;

	(void)state;
	err_clear(&e);
	pl = isoboot_plan_build(p, &f, &m, &params_ok, &e);
	assert_non_null(pl);
	assert_string_equal(pl->domain_name, "isoforge-b1");
	assert_int_equal(pl->ndevices, 3);
	assert_int_equal(pl->devices[0].kind, ISOBOOT_DISK);
	assert_string_equal(pl->devices[0].target, "vda");
	assert_string_equal(pl->devices[0].bus, "virtio");
	assert_string_equal(pl->devices[0].format, "qcow2");
	assert_int_equal(pl->devices[0].boot_order, 1);
	assert_int_equal(pl->devices[1].kind, ISOBOOT_CDROM);
	assert_string_equal(pl->devices[1].target, "hda");
	assert_string_equal(pl->devices[1].path, "/m/os.iso");
	assert_int_equal(pl->devices[1].boot_order, 2);
	assert_int_equal(pl->devices[2].kind, ISOBOOT_CDROM);
	assert_string_equal(pl->devices[2].target, "hdb");
	assert_int_equal(pl->devices[2].role, ISOBOOT_ROLE_VIRTIO_WIN);
	assert_int_equal(pl->devices[2].boot_order, 0);
	/* the flavor's 0 vcpus / RAM take the profile's */
	assert_int_equal(pl->vcpus, p->vcpus);
	assert_int_equal(pl->ram_mib, p->ram_mib);

	props = isoboot_image_properties(pl);
	assert_string_equal(json_string_value(json_object_get(props, "hw_disk_bus")), "virtio");
	assert_string_equal(json_string_value(json_object_get(props, "hw_vif_model")), "e1000");
	assert_string_equal(json_string_value(json_object_get(props, "hw_machine_type")), "pc");
	assert_string_equal(json_string_value(json_object_get(props, "hw_firmware_type")),
	    "bios");
	assert_string_equal(json_string_value(json_object_get(props, "hw_cdrom_bus")), "ide");
	assert_string_equal(json_string_value(json_object_get(props, "os_type")), "windows");
	assert_int_equal(json_integer_value(json_object_get(props, "min_disk")), 40);
	assert_int_equal(json_integer_value(json_object_get(props, "min_ram")), 2048);
	assert_null(json_object_get(props, "hw_tpm_version"));
	json_decref(props);
	isoboot_plan_free(&pl);
	isoboot_plan_free(&pl);
	isoboot_profile_free(&p);
}

/* Windows 11 on BIOS (the request's firmware wins): no Secure Boot; TPM stays. */
static void
test_plan_modern(void **state)
{
	struct isoboot_profile	*p = load("windows-modern");
	struct isoboot_flavor	 f = { 2, 8192, 64 };
	struct isoboot_media	 m = { .root_disk = "/w/r", .iso = "/m/os.iso",
	    .virtio_win = "/m/v.iso" };
	struct isoboot_params	 pa = params_ok;
	struct isoboot_plan	*pl;
	struct err		 e;
	json_t			*props;

	(void)state;
	err_clear(&e);
	pl = isoboot_plan_build(p, &f, &m, &pa, &e);
	assert_non_null(pl);
	assert_true(pl->secure_boot);
	assert_string_equal(pl->devices[1].target, "sda");
	assert_string_equal(pl->devices[2].target, "sdb");
	assert_int_equal(pl->min_ram_mib, 4096);
	props = isoboot_image_properties(pl);
	assert_string_equal(json_string_value(json_object_get(props, "hw_tpm_version")), "2.0");
	assert_string_equal(json_string_value(json_object_get(props, "hw_firmware_type")),
	    "uefi");
	json_decref(props);
	isoboot_plan_free(&pl);

	pa.firmware = "bios";
	pl = isoboot_plan_build(p, &f, &m, &pa, &e);
	assert_non_null(pl);
	assert_false(pl->secure_boot);
	assert_string_equal(pl->firmware, "bios");
	isoboot_plan_free(&pl);
	isoboot_profile_free(&p);
}

/* Bad input: each gives one clear error and no plan. */
static void
test_plan_errors(void **state)
{
	struct isoboot_profile	*lin = load("linux"), *nov = load("linux-novirtio");
	struct isoboot_profile	*win = load("windows"), *leg = load("windows-legacy");
	struct isoboot_flavor	 f = { 1, 1024, 10 }, f0 = { 1, 1024, 0 };
	struct isoboot_media	 m = { .root_disk = "/w/r", .iso = "/m/os.iso" };
	struct isoboot_media	 mm;
	struct isoboot_params	 pa;
	const char *const	 three[] = { "/m/a.iso", "/m/b.iso", "/m/c.iso", NULL };
	const char *const	 nine[] = { "/1", "/2", "/3", "/4", "/5", "/6", "/7", "/8", "/9",
	    NULL };
	struct err		 e;

	(void)state;
#define EXPECT_ERR(profile, flavor, media, params, want) do {			\
		err_clear(&e);							\
		assert_null(isoboot_plan_build((profile), (flavor), (media), (params), &e)); \
		assert_int_equal(e.kind, ERR_INVAL);				\
		if (strcmp(e.msg, (want)) != 0)					\
			fail_msg("got '%s', want '%s'", e.msg, (want));		\
	} while (0)

	EXPECT_ERR(lin, &f0, &m, &params_ok,
	    "a root disk size is required (the flavor's disk is 0 GiB)");
	mm = m; mm.iso = NULL;
	EXPECT_ERR(lin, &f, &mm, &params_ok, "an OS ISO is required");
	mm = m; mm.iso = "os.iso";
	EXPECT_ERR(lin, &f, &mm, &params_ok, "OS ISO: 'os.iso' is not an absolute path");
	mm = m; mm.iso = "/m/a\nb.iso";
	EXPECT_ERR(lin, &f, &mm, &params_ok, "OS ISO: contains a control character");
	mm = m; mm.iso = "/m/\xff\xfe.iso";
	EXPECT_ERR(lin, &f, &mm, &params_ok, "OS ISO: not valid UTF-8");
	mm = m; mm.root_disk = NULL;
	EXPECT_ERR(lin, &f, &mm, &params_ok, "root disk: a path is required");
	EXPECT_ERR(win, &f, &m, &params_ok,
	    "profile windows needs the virtio-win drivers (the virtio-win ISO): none given");
	EXPECT_ERR(leg, &f, &m, &params_ok, "profile windows-legacy needs the virtio-win "
	    "drivers (a floppy image, virtio-win_x86.vfd): none given");
	/* linux-novirtio: disk hda + OS ISO hdb + 3 more CD-ROMs = 5 on IDE */
	mm = m; mm.extra_cdroms = three;
	EXPECT_ERR(nov, &f, &mm, &params_ok, "5 devices on the IDE bus (root disk, OS ISO, "
	    "extra CD-ROM, extra CD-ROM, extra CD-ROM), which takes at most 4 (hda-hdd)");
	mm = m; mm.extra_cdroms = nine;
	EXPECT_ERR(lin, &f, &mm, &params_ok, "more than 8 extra CD-ROMs");

	pa = params_ok; pa.build_id = "a b";
	EXPECT_ERR(lin, &f, &m, &pa, "build id: 'a b' may only hold letters, digits and ._-");
	pa = params_ok; pa.build_id = NULL;
	EXPECT_ERR(lin, &f, &m, &pa, "build id: required");
	pa = params_ok; pa.vnc_password = "123456789";
	EXPECT_ERR(lin, &f, &m, &pa, "VNC password: longer than 8 characters (libvirt's limit)");
	pa = params_ok; pa.domain_type = "xen";
	EXPECT_ERR(lin, &f, &m, &pa, "domain type: 'xen' is not one of kvm|qemu");
	pa = params_ok; pa.firmware = "coreboot";
	EXPECT_ERR(lin, &f, &m, &pa, "firmware: 'coreboot' is not one of bios|uefi");
	pa = params_ok; pa.vnc_listen = "0.0.0.0\"/><x";
	EXPECT_ERR(lin, &f, &m, &pa, "VNC listen address: '0.0.0.0\"/><x' may only hold "
	    "letters, digits and .:-");
	pa = params_ok; pa.serial_log = "log";
	EXPECT_ERR(lin, &f, &m, &pa, "serial log: 'log' is not an absolute path");
	pa = params_ok; pa.name = "a\tb";
	EXPECT_ERR(lin, &f, &m, &pa, "name: contains a control character");

	/* q35 with an IDE bus set after loading */
	err_clear(&e);
	assert_int_equal(isoboot_profile_set(lin, "machine", "q35", &e), 0);
	assert_int_equal(isoboot_profile_set(lin, "cdrom_bus", "ide", &e), 0);
	EXPECT_ERR(lin, &f, &m, &params_ok, "machine q35 has no IDE bus (libvirt rejects it): "
	    "use sata for disk_bus and cdrom_bus");
#undef EXPECT_ERR
	isoboot_profile_free(&lin);
	isoboot_profile_free(&nov);
	isoboot_profile_free(&win);
	isoboot_profile_free(&leg);
}

/* The operator's template: what the plan owns is replaced, the rest is kept. */
static void
test_domain_template(void **state)
{
	static const char *tmpl =
	    "<!-- top comment -->\n"
	    "<domain type='xen' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n"
	    "  <name>old</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\n"
	    "  <memory>1</memory><vcpu>64</vcpu><os><type>hvm</type><boot dev='cdrom'/></os>\n"
	    "  <metadata><x:keep xmlns:x='urn:x'/><i:build xmlns:i='"
	    "https://isoforge.dev/xmlns/libvirt/build/1'><i:name>stale</i:name></i:build>"
	    "</metadata>\n"
	    "  <cpu mode='custom'><model>Skylake-Server</model></cpu>\n"
	    "  <features><hyperv mode='custom'><relaxed state='on'/></hyperv></features>\n"
	    "  <devices>\n"
	    "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
	    "    <!-- an operator's note -->\n"
	    "    <disk type='file' device='disk'><source file='/old'/>"
	    "<target dev='vda' bus='virtio'/></disk>\n"
	    "    <controller type='usb' model='ich9-ehci1'/>\n"
	    "    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/>"
	    "</channel>\n"
	    "  </devices>\n"
	    "  <on_reboot>destroy</on_reboot>\n"
	    "  <qemu:commandline><qemu:arg value='-no-hpet'/></qemu:commandline>\n"
	    "</domain>\n";
	struct isoboot_profile	*p = load("windows-modern");
	struct isoboot_flavor	 f = { 2, 4096, 64 };
	struct isoboot_media	 m = { .root_disk = "/w/r", .iso = "/m/os.iso",
	    .virtio_win = "/m/v.iso" };
	struct isoboot_params	 pa = params_ok;
	struct isoboot_plan	*pl;
	struct err		 e;
	char			*xml, *emu, *disk;
	const char		*head;

	(void)state;
	pa.domain_type = "qemu";
	err_clear(&e);
	pl = isoboot_plan_build(p, &f, &m, &pa, &e);
	assert_non_null(pl);
	xml = isoboot_domain_xml(pl, tmpl, &e);
	assert_non_null(xml);
	head = "<domain xmlns:qemu=\"http://libvirt.org/schemas/domain/qemu/1.0\" type=\"qemu\">\n";
	assert_memory_equal(xml, head, strlen(head));
	assert_non_null(strstr(xml, "<name>isoforge-b1</name>"));
	assert_null(strstr(xml, "<name>old</name>"));
	assert_null(strstr(xml, "<uuid>"));
	assert_null(strstr(xml, "boot dev"));
	assert_null(strstr(xml, "/old"));
	assert_null(strstr(xml, "comment"));
	assert_null(strstr(xml, "ich9-ehci1"));
	assert_null(strstr(xml, "<on_reboot>destroy"));
	assert_non_null(strstr(xml, "<on_reboot>restart</on_reboot>"));
	assert_non_null(strstr(xml, "<on_poweroff>destroy</on_poweroff>"));
	assert_non_null(strstr(xml, "<vcpu>2</vcpu>"));
	assert_non_null(strstr(xml, "<x:keep xmlns:x=\"urn:x\"/>"));
	assert_null(strstr(xml, "stale"));
	assert_non_null(strstr(xml, "<isoforge:name>n</isoforge:name>"));
	assert_non_null(strstr(xml, "<model>Skylake-Server</model>"));
	assert_non_null(strstr(xml, "<relaxed state=\"on\"/>"));
	assert_non_null(strstr(xml, "<smm state=\"on\"/>"));
	assert_non_null(strstr(xml, "org.qemu.guest_agent.0"));
	assert_non_null(strstr(xml, "<qemu:arg value=\"-no-hpet\"/>"));
	assert_non_null(strstr(xml, "<tpm model=\"tpm-crb\">"));
	assert_non_null(strstr(xml, "model=\"qemu-xhci\""));
	/* the emulator stays first among the devices, then the plan's disks */
	emu = strstr(xml, "<emulator>");
	disk = strstr(xml, "<disk");
	assert_non_null(emu);
	assert_true(emu < disk);
	assert_null(strstr(xml, "host-passthrough"));
	free(xml);

	/* bad templates */
	err_clear(&e);
	assert_null(isoboot_domain_xml(pl, "<domain><devices></domain>", &e));
	assert_int_equal(e.kind, ERR_INVAL);
	assert_string_equal(e.msg, "domain template: line 1: Opening and ending tag mismatch: devices line 1 and domain");
	assert_int_not_equal(e.msg[strlen(e.msg) - 1], '\n');
	err_clear(&e);
	assert_null(isoboot_domain_xml(pl, "<network/>", &e));
	assert_string_equal(e.msg, "domain template: the root element is not <domain>");
	err_clear(&e);
	assert_null(isoboot_domain_xml(pl, "", &e));
	assert_int_equal(e.kind, ERR_INVAL);

	/* a minimal template gets everything it needs */
	xml = isoboot_domain_xml(pl, "<domain/>", &e);
	assert_non_null(xml);
	assert_non_null(strstr(xml, "<acpi/>"));
	assert_non_null(strstr(xml, "<clock offset=\"localtime\"/>"));
	assert_non_null(strstr(xml, "<devices>"));
	free(xml);
	isoboot_plan_free(&pl);
	isoboot_profile_free(&p);
}

/* No value can inject XML: everything comes out escaped. */
static void
test_domain_escaping(void **state)
{
	struct isoboot_profile	*p = load("linux");
	struct isoboot_flavor	 f = { 1, 512, 5 };
	struct isoboot_media	 m = { .root_disk = "/w/<r>&'\".qcow2",
	    .iso = "/m/x'/><disk device='cdrom'><source file='/etc/shadow'/></disk><y a='.iso" };
	struct isoboot_params	 pa = params_ok;
	struct isoboot_plan	*pl;
	struct err		 e;
	char			*xml;

	(void)state;
	pa.name = "</description><evil/>&amp;";
	pa.vnc_password = "\"/><x";
	pa.serial_log = "/l/&lt;";
	err_clear(&e);
	pl = isoboot_plan_build(p, &f, &m, &pa, &e);
	assert_non_null(pl);
	xml = isoboot_domain_xml(pl, "<domain/>", &e);
	assert_non_null(xml);
	assert_null(strstr(xml, "<evil/>"));
	assert_null(strstr(xml, "<source file='/etc/shadow'/>"));
	assert_null(strstr(xml, "<x"));
	assert_non_null(strstr(xml, "&lt;/description&gt;&lt;evil/&gt;&amp;amp;"));
	assert_non_null(strstr(xml, "file=\"/w/&lt;r&gt;&amp;'&quot;.qcow2\""));
	assert_non_null(strstr(xml, "passwd=\"&quot;/&gt;&lt;x\""));
	assert_non_null(strstr(xml, "path=\"/l/&amp;lt;\""));
	free(xml);
	isoboot_plan_free(&pl);
	isoboot_profile_free(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped_profiles),
		cmocka_unit_test(test_templates_errors),
		cmocka_unit_test(test_profile_parse_errors),
		cmocka_unit_test(test_profile_parse_ok),
		cmocka_unit_test(test_profile_set),
		cmocka_unit_test(test_profile_choose),
		cmocka_unit_test(test_profile_choose_for),
		cmocka_unit_test(test_plan_article),
		cmocka_unit_test(test_plan_modern),
		cmocka_unit_test(test_plan_errors),
		cmocka_unit_test(test_domain_template),
		cmocka_unit_test(test_domain_escaping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
