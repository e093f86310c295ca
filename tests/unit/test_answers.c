/* test_answers.c — answer files (isoboot/answers.c), the d-i boot entry, cpio newc, reading ISOs,
 * the initrd append (drivers/media.c), install.answers in requests, the answers profile keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/media.h"
#include "isoboot/answers.h"
#include "isoboot/isoboot.h"
#include "service/pipeline/answers.h"
#include "service/pipeline/request.h"
#include "base/util.h"

#define SALT	"GoldenSalt.0123/"

static const char *const no_pkgs[] = { NULL };

/* A complete set of answers, as a reference request gives them. */
static struct isoboot_answers
ref_answers(void)
{
	struct isoboot_answers	 a;

	memset(&a, 0, sizeof(a));
	a.build_id = "b1";
	a.root_password = "SECRETPW-root";
	a.salt = SALT;
	a.packages = no_pkgs;
	return a;
}

/* Renders text as a line template (preseed) with a; returns the output or NULL with e. */
static char *
render(const char *text, const struct isoboot_answers *a, struct err *e)
{
	err_clear(e);
	return isoboot_answers_render(ISOBOOT_ANSWERS_PRESEED, text, "t.cfg", a, e);
}

/* Values land where the template says; lines come and go with {{?}} / {{!}}; lists repeat. */
static void
test_line_syntax(void **state)
{
	struct isoboot_answers	 a = ref_answers();
	static const char *const pkgs[] = { "curl", "htop", NULL };
	struct err		 e;
	char			*out;

	(void)state;
	a.packages = pkgs;
	a.hostname = "web1";
	out = render("#_ a template comment\nh={{hostname}} d={{domain}} f={{fqdn}}\n"
	    "{{?admin_user}}user\n{{!admin_user}}nouser\np={{packages}}\npkg {{*packages}}\n"
	    "j={{hostname|json}} l={{packages|json}}\n{{*packages|json}},\nlast", &a, &e);
	assert_non_null(out);
	assert_string_equal(out, "h=web1 d=localdomain f=web1.localdomain\nnouser\n"
	    "p=curl htop\npkg curl\npkg htop\nj=\"web1\" l=[\"curl\",\"htop\"]\n\"curl\",\n"
	    "\"htop\",\nlast");
	free(out);
}

/* The root password is never in a Linux answer file, only its SHA-512 crypt(3) hash. */
static void
test_password_hashed(void **state)
{
	struct isoboot_answers	 a = ref_answers();
	struct err		 e;
	char			*out;

	(void)state;
	out = render("{{root_password_crypted}}", &a, &e);
	assert_non_null(out);
	assert_null(strstr(out, "SECRETPW"));
	assert_memory_equal(out, "$6$" SALT "$", 20);
	assert_true(strlen(out) > 80);
	free(out);
}

/* Windows' obfuscated passwords: base64 of UTF-16LE(password + suffix), also beyond ASCII. */
static void
test_unattend_password(void **state)
{
	struct isoboot_answers	 a = ref_answers();
	struct err		 e;
	char			*out;

	(void)state;
	a.root_password = "abc";
	err_clear(&e);
	out = isoboot_answers_render(ISOBOOT_ANSWERS_AUTOUNATTEND,
	    "<a>{{autologon_password_unattend}}</a>", "u.xml", &a, &e);
	assert_non_null(out);
	assert_non_null(strstr(out, "<a>YQBiAGMAUABhAHMAcwB3AG8AcgBkAA==</a>"));
	free(out);
	a.root_password = "p\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80";	/* pä€😀 */
	out = isoboot_answers_render(ISOBOOT_ANSWERS_AUTOUNATTEND,
	    "<a>{{administrator_password_unattend}}</a>", "u.xml", &a, &e);
	assert_non_null(out);
	assert_non_null(strstr(out, "<a>cADkAKwgPdgA3kEAZABtAGkAbgBpAHMAdAByAGEAdABvAHIAUABhAHMAcwB3AG8A"
	    "cgBkAA==</a>"));
	free(out);
}

/* XML: values escaped by libxml2, if/unless/each, the control namespace gone. */
static void
test_xml_syntax(void **state)
{
	struct isoboot_answers	 a = ref_answers();
	struct err		 e;
	char			*out;

	(void)state;
	a.windows_image = "Windows (x) 1";
	a.windows_timezone = "W. Europe Standard Time";
	err_clear(&e);
	out = isoboot_answers_render(ISOBOOT_ANSWERS_AUTOUNATTEND,
	    "<r xmlns:isoforge=\"https://isoforge.dev/xmlns/answers/1\">"
	    "<k isoforge:if=\"product_key\">{{product_key}}</k>"
	    "<n isoforge:unless=\"product_key\" v=\"{{image_key}}\">{{image_value}}</n>"
	    "<p isoforge:each=\"virtio_win_paths\" i=\"{{index}}\">{{item}}</p></r>", "x.xml", &a, &e);
	assert_non_null(out);
	assert_null(strstr(out, "<k"));
	assert_null(strstr(out, "isoforge"));
	assert_non_null(strstr(out, "<n v=\"/IMAGE/NAME\">Windows (x) 1</n>"));
	assert_non_null(strstr(out, "<p i=\"1\">D:\\viostor\\w10\\amd64</p>"));
	assert_non_null(strstr(out, "<p i=\"12\">G:\\NetKVM\\w10\\amd64</p>"));
	free(out);
}

/* Bad answers and bad templates: clear errors that name the answer or FILE:LINE. */
static void
test_errors(void **state)
{
	static const struct {
		const char	*field;
		const char	*value;
		const char	*text;
		const char	*want;
	} cases[] = {
		{ "hostname", "a.b", "x", "hostname: 'a.b' is one label" },
		{ "hostname", "-a", "x", "not a host name" },
		{ "hostname", "a b", "x", "hostname: ' ' is not allowed" },
		{ "ssh", "ssh-rsa AAAA'; reboot", "x", "ssh public key: ''' is not allowed" },
		{ "ssh", "AAAA", "x", "not an OpenSSH public key" },
		{ "product", "ABCDE", "x", "product_key: 5 groups" },
		{ "mirror", "ftp://x/debian", "x", "not an http:// or https:// URL" },
		{ "admin", "root", "x", "admin_user: 'root' must start" },
		{ "timezone", "Europe/Berlin;", "x", "timezone: ';' is not allowed" },
		{ NULL, NULL, "a {{hostnme}}", "t.cfg:1: unknown name 'hostnme'" },
		{ NULL, NULL, "\n{{hostname|yaml}}", "t.cfg:2: unknown filter 'yaml'" },
		{ NULL, NULL, "{{hostname", "t.cfg:1: '{{' without '}}'" },
		{ NULL, NULL, "{{*hostname}}", "{{*hostname}}: not a list" },
		{ NULL, NULL, "{{?nothing}}x", "t.cfg:1: unknown name 'nothing'" },
	};
	struct err	 e;
	char		*out;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct isoboot_answers	 a = ref_answers();

		if (cases[i].field == NULL)
			;
		else if (strcmp(cases[i].field, "hostname") == 0)
			a.hostname = cases[i].value;
		else if (strcmp(cases[i].field, "ssh") == 0)
			a.ssh_pubkey = cases[i].value;
		else if (strcmp(cases[i].field, "product") == 0)
			a.product_key = cases[i].value;
		else if (strcmp(cases[i].field, "mirror") == 0)
			a.mirror = cases[i].value;
		else if (strcmp(cases[i].field, "admin") == 0)
			a.admin_user = cases[i].value;
		else if (strcmp(cases[i].field, "timezone") == 0)
			a.timezone = cases[i].value;
		out = render(cases[i].text, &a, &e);
		if (out != NULL || strstr(e.msg, cases[i].want) == NULL)
			fail_msg("case %zu: got %s / '%s', want '%s'", i, out ? out : "NULL", e.msg,
			    cases[i].want);
		assert_int_equal(e.kind, ERR_INVAL);
	}
	/* XML: a list that is not one, a value with "--" in a comment, not XML at all */
	{
		struct isoboot_answers	 a = ref_answers();

		err_clear(&e);
		assert_null(isoboot_answers_render(ISOBOOT_ANSWERS_AUTOUNATTEND,
		    "<r xmlns:isoforge=\"https://isoforge.dev/xmlns/answers/1\">\n"
		    "<p isoforge:each=\"hostname\"/></r>", "x.xml", &a, &e));
		assert_non_null(strstr(e.msg, "x.xml:2: isoforge:each=\"hostname\": not a list"));
		a.build_id = "a--b";
		err_clear(&e);
		assert_null(isoboot_answers_render(ISOBOOT_ANSWERS_AUTOUNATTEND,
		    "<r><!-- {{build_id}} --></r>", "x.xml", &a, &e));
		assert_non_null(strstr(e.msg, "holds \"--\""));
		err_clear(&e);
		assert_null(isoboot_answers_render(ISOBOOT_ANSWERS_AUTOUNATTEND, "<r>", "x.xml",
		    &a, &e));
		assert_non_null(strstr(e.msg, "x.xml:1:"));
	}
}

/* The method by profile key and OS. */
static void
test_method_for(void **state)
{
	(void)state;
	assert_int_equal(isoboot_answers_method_for("auto", "linux", "debian", "13"),
	    ISOBOOT_ANSWERS_PRESEED);
	assert_int_equal(isoboot_answers_method_for(NULL, NULL, "debian12", NULL),
	    ISOBOOT_ANSWERS_PRESEED);
	assert_int_equal(isoboot_answers_method_for("auto", NULL, "ubuntu", "18.04"),
	    ISOBOOT_ANSWERS_PRESEED);
	assert_int_equal(isoboot_answers_method_for("auto", NULL, "ubuntu22.04", NULL),
	    ISOBOOT_ANSWERS_AUTOINSTALL);
	assert_int_equal(isoboot_answers_method_for("auto", NULL, "rhel", "9"),
	    ISOBOOT_ANSWERS_KICKSTART);
	assert_int_equal(isoboot_answers_method_for("auto", NULL, "rocky9.4", NULL),
	    ISOBOOT_ANSWERS_KICKSTART);
	assert_int_equal(isoboot_answers_method_for("auto", "windows", NULL, NULL),
	    ISOBOOT_ANSWERS_AUTOUNATTEND);
	assert_int_equal(isoboot_answers_method_for("auto", NULL, "win2k19", NULL),
	    ISOBOOT_ANSWERS_AUTOUNATTEND);
	assert_int_equal(isoboot_answers_method_for("auto", NULL, "freebsd", "14"),
	    ISOBOOT_ANSWERS_NONE);
	assert_int_equal(isoboot_answers_method_for("kickstart", NULL, "debian", "13"),
	    ISOBOOT_ANSWERS_KICKSTART);
	assert_int_equal(isoboot_answers_method_for("bogus", NULL, NULL, NULL), -1);
	assert_string_equal(isoboot_virtio_win_dir("windows", "2019"), "2k19");
	assert_string_equal(isoboot_virtio_win_dir("win2k12r2", NULL), "2k12R2");
	assert_string_equal(isoboot_virtio_win_dir("windows", "Server 2022"), "2k22");
	assert_string_equal(isoboot_virtio_win_dir("win11", NULL), "w11");
	assert_string_equal(isoboot_virtio_win_dir("windows", "8.1"), "w8.1");
	assert_string_equal(isoboot_virtio_win_dir(NULL, NULL), "w10");
}

/* The d-i text installer's entry in isolinux and GRUB configurations. */
static void
test_di_boot_entry(void **state)
{
	static const char isolinux[] =
	    "label installgui\n\tkernel /install.amd/vmlinuz\n"
	    "\tappend vga=788 initrd=/install.amd/gtk/initrd.gz --- quiet\n"
	    "label expert\n\tkernel /install.amd/vmlinuz\n"
	    "\tappend priority=low vga=788 initrd=/install.amd/initrd.gz ---\n"
	    "label install\n\tmenu label ^Install\n\tkernel /install.amd/vmlinuz\n"
	    "\tappend vga=788 initrd=/install.amd/initrd.gz --- quiet \n";
	static const char grub[] =
	    "menuentry --hotkey=g 'Graphical install' {\n"
	    "    set background_color=black\n"
	    "    linux    /install.amd/vmlinuz vga=788 --- quiet\n"
	    "    initrd   /install.amd/gtk/initrd.gz\n}\n"
	    "menuentry --hotkey=i 'Install' {\n"
	    "    linux    /install.amd/vmlinuz vga=788 --- quiet\n"
	    "    initrd   /install.amd/initrd.gz\n}\n";
	struct err	 e;
	char		*k, *i, *a, *c;

	(void)state;
	err_clear(&e);
	assert_int_equal(isoboot_di_boot_entry(isolinux, &k, &i, &a, &e), 0);
	assert_string_equal(k, "install.amd/vmlinuz");
	assert_string_equal(i, "install.amd/initrd.gz");
	assert_string_equal(a, "vga=788 initrd=/install.amd/initrd.gz --- quiet ");
	c = isoboot_di_cmdline(a);
	assert_string_equal(c, "vga=788 auto=true priority=critical console=ttyS0,115200n8 --- "
	    "quiet console=ttyS0,115200n8");
	free(k), free(i), free(a), free(c);

	assert_int_equal(isoboot_di_boot_entry(grub, &k, &i, &a, &e), 0);
	assert_string_equal(k, "install.amd/vmlinuz");
	assert_string_equal(i, "install.amd/initrd.gz");
	free(k), free(i), free(a);

	/* no "---", an old console= and priority= of the ISO's own are replaced */
	c = isoboot_di_cmdline("initrd=/x priority=low console=tty0 splash");
	assert_string_equal(c, "splash auto=true priority=critical console=ttyS0,115200n8 --- "
	    "console=ttyS0,115200n8");
	free(c);

	assert_int_equal(isoboot_di_boot_entry("label live\n kernel /casper/vmlinuz\n append "
	    "boot=casper\n", &k, &i, &a, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_null(k);
}

/* cpio newc: headers, names, padding and the trailer, as the kernel reads them. */
static void
test_cpio_newc(void **state)
{
	struct media_cpio_file	 f = { "preseed.cfg", "abc", 3, 0600 };
	char			*c, field[9];
	size_t			 len;

	(void)state;
	c = media_cpio_newc(&f, 1, &len);
	assert_int_equal(len % 4, 0);
	assert_memory_equal(c, "070701", 6);
	memcpy(field, c + 6 + 8, 8);			/* mode */
	field[8] = '\0';
	assert_int_equal(strtoul(field, NULL, 16), 0100600);
	memcpy(field, c + 6 + 6 * 8, 8);		/* filesize */
	assert_int_equal(strtoul(field, NULL, 16), 3);
	memcpy(field, c + 6 + 11 * 8, 8);		/* namesize */
	assert_int_equal(strtoul(field, NULL, 16), strlen("preseed.cfg") + 1);
	assert_string_equal(c + 110, "preseed.cfg");
	/* 110 + 12 = 122 → name padded to 124; data at 124 */
	assert_memory_equal(c + 124, "abc", 3);
	assert_memory_equal(c + 128, "070701", 6);
	assert_non_null(memmem(c + 128, len - 128, "TRAILER!!!", 11));
	free(c);
}

/* A file of a real ISO 9660 image (libarchive), case-insensitively; a clear error else. */
static void
test_iso_read(void **state)
{
	const char	*top = getenv("ISOFORGE_TOP");
	char		*iso = xasprintf("%s/tests/golden/isoboot/media/debian-di.iso",
			    top != NULL ? top : ".");
	struct err	 e;
	char		*t;
	size_t		 len;

	(void)state;
	err_clear(&e);
	t = media_iso_read(iso, "/ISOLINUX/TXT.CFG", 65536, &len, &e);
	assert_non_null(t);
	assert_non_null(strstr(t, "kernel /install.amd/vmlinuz"));
	assert_int_equal(len, strlen(t));
	free(t);
	assert_null(media_iso_read(iso, "isolinux/txt.cfg", 10, &len, &e));
	assert_non_null(strstr(e.msg, "larger than 10 bytes"));
	err_clear(&e);
	assert_null(media_iso_read(iso, "boot/grub/grub.cfg", 65536, &len, &e));
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "no file /boot/grub/grub.cfg"));
	err_clear(&e);
	assert_null(media_iso_read("/nonexistent.iso", "x", 10, &len, &e));
	assert_int_not_equal(e.kind, ERR_NONE);
	free(iso);
}

/* The initrd copy: the original bytes, zeros to 4, then a cpio newc with the file. */
static void
test_initrd_append(void **state)
{
	const char		*tmp = getenv("TEST_TMP");
	char			*src, *dst, *data;
	struct media_cpio_file	 f = { "preseed.cfg", "d-i x\n", 6, 0600 };
	struct err		 e;
	size_t			 len;

	(void)state;
	src = xasprintf("%s/initrd.gz", tmp != NULL ? tmp : "/tmp");
	dst = xasprintf("%s/initrd.new", tmp != NULL ? tmp : "/tmp");
	err_clear(&e);
	assert_int_equal(util_write_file(src, "\x1f\x8b" "12345", 7, 0600, &e), 0);
	assert_int_equal(media_initrd_append(src, dst, &f, 1, &e), 0);
	data = util_read_file(dst, 1 << 20, &len, &e);
	assert_non_null(data);
	assert_memory_equal(data, "\x1f\x8b" "12345", 7);
	assert_int_equal(data[7], 0);
	assert_memory_equal(data + 8, "070701", 6);
	assert_non_null(memmem(data, len, "preseed.cfg", 12));
	assert_non_null(memmem(data, len, "d-i x\n", 6));
	assert_int_equal(len % 4, 0);
	free(data);
	assert_int_equal(media_initrd_append("/nonexistent", dst, &f, 1, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	unlink(src);
	unlink(dst);
	free(src);
	free(dst);
}

/* install.answers in a request: checked, named in errors, never echoing a password. */
static void
test_request_answers(void **state)
{
	static const char ok[] = "{\"install\": {\"mode\": \"unattended\", \"answers\": "
	    "{\"hostname\": \"h1\", \"root_password\": \"pw\", \"packages\": [\"curl\"], "
	    "\"mirror_unsigned\": true}}}";
	static const char bad[] = "{\"install\": {\"answers\": {\"root_password\": "
	    "\"SECRET\\u0001\", \"packages\": \"curl\"}}}";
	static const char unknown[] = "{\"install\": {\"answers\": {\"passwd\": \"SECRET\"}}}";
	struct build_request	*r;
	struct err		 e;

	(void)state;
	err_clear(&e);
	r = request_parse(ok, strlen(ok), REQUEST_PARTIAL, &e);
	assert_non_null(r);
	assert_non_null(r->answers);
	assert_string_equal(json_string_value(json_object_get(r->answers, "hostname")), "h1");
	request_free(&r);
	r = request_parse(bad, strlen(bad), REQUEST_PARTIAL, &e);
	assert_null(r);
	assert_non_null(strstr(e.msg, "install.answers"));
	assert_null(strstr(e.msg, "SECRET"));
	err_clear(&e);
	r = request_parse(unknown, strlen(unknown), REQUEST_PARTIAL, &e);
	assert_null(r);
	assert_non_null(strstr(e.msg, "passwd: unknown key"));
	assert_null(strstr(e.msg, "SECRET"));
}

/* The profile keys answers and answers_media: defaults, values, errors. */
static void
test_profile_keys(void **state)
{
	struct isoboot_profile	*p;
	struct err		 e;

	(void)state;
	err_clear(&e);
	p = isoboot_profile_parse("os_type = linux\n", "x.conf", &e);
	assert_non_null(p);
	assert_string_equal(p->answers, "auto");
	assert_string_equal(p->answers_media, "cdrom");
	isoboot_profile_free(&p);
	p = isoboot_profile_parse("answers = kickstart\nanswers_media = floppy\n", "x.conf", &e);
	assert_non_null(p);
	assert_string_equal(p->answers, "kickstart");
	assert_string_equal(p->answers_media, "floppy");
	isoboot_profile_free(&p);
	p = isoboot_profile_parse("answers = preseeed\n", "x.conf", &e);
	assert_null(p);
	assert_non_null(strstr(e.msg, "x.conf:1: answers: 'preseeed' is not one of auto|none|"
	    "preseed|autoinstall|kickstart|autounattend"));
}


/* The per-build step (service/pipeline/answers.c) writing for real: d-i kernel + initrd with
 * the preseed out of an ISO, a kickstart OEMDRV volume, an autounattend floppy; all 0600. */
static void
test_prepare_writes(void **state)
{
	const char		*top = getenv("ISOFORGE_TOP"), *tmp = getenv("TEST_TMP");
	char			*tdir, *iso, *work, *data, *orig, *label;
	struct isoboot_profile	*p;
	struct answers_params	 ap;
	struct answers_result	 r;
	struct err		 e;
	struct stat		 st;
	json_t			*ans;
	size_t			 len, olen;

	(void)state;
	top = top != NULL ? top : ".";
	tdir = xasprintf("%s/templates", top);
	iso = xasprintf("%s/tests/golden/isoboot/media/debian-di.iso", top);
	work = xasprintf("%s/work", tmp != NULL ? tmp : "/tmp");
	ans = json_pack("{s:s, s:s}", "hostname", "unit", "root_password", "SECRETPW");
	err_clear(&e);
	p = isoboot_profile_parse("answers = auto\nanswers_media = floppy\n", "t.conf", &e);
	assert_non_null(p);

	memset(&ap, 0, sizeof(ap));
	ap.build_id = "unit";
	ap.templates = tdir;
	ap.work_dir = work;
	ap.iso = iso;
	ap.profile = p;
	ap.os_distro = "debian";
	ap.os_version = "13";
	ap.answers = ans;
	if (answers_prepare(&ap, 1, &r, &e) == -1)
		fail_msg("preseed: %s", e.msg);
	assert_int_equal(r.method, ISOBOOT_ANSWERS_PRESEED);
	assert_int_equal(r.password_generated, 0);
	data = util_read_file(r.kernel, 1 << 20, &len, &e);
	assert_non_null(data);
	assert_string_equal(data, "isoforge test: not a kernel\n");
	free(data);
	orig = media_iso_read(iso, "install.amd/initrd.gz", 1 << 20, &olen, &e);
	data = util_read_file(r.initrd, 1 << 20, &len, &e);
	assert_non_null(orig);
	assert_non_null(data);
	assert_true(len > olen);
	assert_memory_equal(data, orig, olen);
	assert_non_null(memmem(data, len, "preseed.cfg", 12));
	assert_non_null(memmem(data, len, "netcfg/get_hostname string unit", 31));
	assert_null(memmem(data, len, "SECRETPW", 8));
	assert_int_equal(stat(r.initrd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_null(r.volume);
	assert_non_null(strstr(r.cmdline, "auto=true priority=critical"));
	free(orig);
	free(data);
	answers_result_free(&r);
	assert_int_equal(access(work, F_OK), 0);

	/* kickstart: ks.cfg on an ISO 9660 volume labelled OEMDRV */
	ap.os_distro = "rhel";
	ap.os_version = "9";
	if (answers_prepare(&ap, 1, &r, &e) == -1)
		fail_msg("kickstart: %s", e.msg);
	assert_non_null(r.volume);
	assert_null(r.kernel);
	data = media_iso_read(r.volume, "ks.cfg", 1 << 20, &len, &e);
	assert_non_null(data);
	assert_non_null(strstr(data, "network --bootproto=dhcp"));
	free(data);
	data = util_read_file(r.volume, 1 << 20, &len, &e);
	label = memmem(data, len, "OEMDRV", 6);
	assert_non_null(label);
	free(data);
	answers_result_free(&r);

	/* autounattend on a floppy (the profile says so), with a generated password */
	json_object_del(ans, "root_password");
	ap.os_distro = "windows";
	ap.os_version = "2019";
	if (answers_prepare(&ap, 1, &r, &e) == -1)
		fail_msg("autounattend: %s", e.msg);
	assert_int_equal(r.volume_floppy, 1);
	assert_int_equal(r.password_generated, 1);
	assert_int_equal(strlen(r.root_password), 20);
	assert_int_equal(stat(r.volume, &st), 0);
	assert_int_equal(st.st_size, 1474560);
	data = util_read_file(r.volume, 2 << 20, &len, &e);
	assert_non_null(memmem(data, len, "2k19", 4));
	free(data);
	answers_result_free(&r);

	/* an ISO without a d-i entry: a clear error */
	free(iso);
	iso = xasprintf("%s/work/answers/OEMDRV.iso", tmp != NULL ? tmp : "/tmp");
	ap.iso = iso;
	ap.os_distro = "debian";
	err_clear(&e);
	assert_int_equal(answers_prepare(&ap, 1, &r, &e), -1);
	assert_non_null(strstr(e.msg, "no Debian installer boot entry"));
	answers_result_free(&r);

	(void)util_rmtree(work, NULL);
	isoboot_profile_free(&p);
	json_decref(ans);
	free(iso);
	free(work);
	free(tdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_syntax),
		cmocka_unit_test(test_password_hashed),
		cmocka_unit_test(test_unattend_password),
		cmocka_unit_test(test_xml_syntax),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_method_for),
		cmocka_unit_test(test_di_boot_entry),
		cmocka_unit_test(test_cpio_newc),
		cmocka_unit_test(test_iso_read),
		cmocka_unit_test(test_initrd_append),
		cmocka_unit_test(test_request_answers),
		cmocka_unit_test(test_profile_keys),
		cmocka_unit_test(test_prepare_writes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
