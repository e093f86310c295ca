/* answers.c — answer files from templates: preseed, autoinstall, kickstart, autounattend.xml. */
#include <ctype.h>
#include <crypt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlstring.h>

#include "isoboot/answers.h"
#include "base/util.h"

#define ANSWERS_XMLNS	"https://isoforge.dev/xmlns/answers/1"
#define ANSWERS_MAX_PKGS 256
#define ANSWERS_MAX_VARS 48

static const struct isoboot_answers_info infos[] = {
	{ ISOBOOT_ANSWERS_PRESEED, "preseed.cfg", "preseed.cfg", NULL },
	{ ISOBOOT_ANSWERS_AUTOINSTALL, "autoinstall.yaml", "user-data", "cidata" },
	{ ISOBOOT_ANSWERS_KICKSTART, "ks.cfg", "ks.cfg", "OEMDRV" },
	{ ISOBOOT_ANSWERS_AUTOUNATTEND, "autounattend.xml", "autounattend.xml", "AUTOUNATTEND" },
};

static const char *const method_names[] = {
	[ISOBOOT_ANSWERS_NONE] = "none",
	[ISOBOOT_ANSWERS_PRESEED] = "preseed",
	[ISOBOOT_ANSWERS_AUTOINSTALL] = "autoinstall",
	[ISOBOOT_ANSWERS_KICKSTART] = "kickstart",
	[ISOBOOT_ANSWERS_AUTOUNATTEND] = "autounattend",
};

/* The method's name; see answers.h. */
const char *
isoboot_answers_method_name(enum isoboot_answers_method m)
{
	if ((unsigned)m >= sizeof(method_names) / sizeof(method_names[0]))
		return "unknown";
	return method_names[m];
}

/* The method of a name, or -1; see answers.h. */
int
isoboot_answers_method_from_name(const char *name)
{
	size_t	 i;

	for (i = 0; name != NULL && i < sizeof(method_names) / sizeof(method_names[0]); i++)
		if (strcmp(name, method_names[i]) == 0)
			return (int)i;
	return -1;
}

/* The method's template, file and medium; see answers.h. */
const struct isoboot_answers_info *
isoboot_answers_info(enum isoboot_answers_method m)
{
	size_t	 i;

	for (i = 0; i < sizeof(infos) / sizeof(infos[0]); i++)
		if (infos[i].method == m)
			return &infos[i];
	return NULL;
}

/* Lower-case copy of s without spaces, '-' and '_' into out. */
static void
answers_norm(const char *s, char *out, size_t size)
{
	size_t	 n = 0;

	for (; s != NULL && *s != '\0' && n + 1 < size; s++)
		if (!isspace((unsigned char)*s) && *s != '-' && *s != '_')
			out[n++] = (char)tolower((unsigned char)*s);
	out[n] = '\0';
}

/* The method by OS: see answers.h. */
int
isoboot_answers_method_for(const char *profile_answers, const char *os_type,
    const char *os_distro, const char *os_version)
{
	static const char *const kickstart[] = { "rhel", "redhat", "centos", "fedora", "rocky",
		"almalinux", "alma", "oraclelinux", "ol", "sl", "scientificlinux", NULL };
	char		 type[32], distro[64];
	const char	*v;
	size_t		 i, n;
	long		 major;

	if (profile_answers != NULL && strcmp(profile_answers, "auto") != 0)
		return isoboot_answers_method_from_name(profile_answers);
	answers_norm(os_type, type, sizeof(type));
	answers_norm(os_distro, distro, sizeof(distro));
	if (strncmp(distro, "win", 3) == 0 || strcmp(distro, "microsoft") == 0 ||
	    (distro[0] == '\0' && strcmp(type, "windows") == 0))
		return ISOBOOT_ANSWERS_AUTOUNATTEND;
	/* libosinfo ids carry the version: debian12, ubuntu22.04, rhel9.2 */
	for (n = 0; distro[n] != '\0' && !isdigit((unsigned char)distro[n]); n++)
		;
	v = distro[n] != '\0' ? distro + n : os_version;
	major = v != NULL && isdigit((unsigned char)*v) ? strtol(v, NULL, 10) : -1;
	distro[n] = '\0';
	if (strcmp(distro, "debian") == 0)
		return ISOBOOT_ANSWERS_PRESEED;
	if (strcmp(distro, "ubuntu") == 0)
		return major >= 0 && major < 20 ? ISOBOOT_ANSWERS_PRESEED :
		    ISOBOOT_ANSWERS_AUTOINSTALL;
	for (i = 0; kickstart[i] != NULL; i++)
		if (strcmp(distro, kickstart[i]) == 0)
			return ISOBOOT_ANSWERS_KICKSTART;
	return ISOBOOT_ANSWERS_NONE;
}

/* virtio-win's folder for a Windows version; see answers.h. */
const char *
isoboot_virtio_win_dir(const char *os_distro, const char *os_version)
{
	static const char *const map[][2] = {
		{ "2k25", "2k25" }, { "2025", "2k25" }, { "server2025", "2k25" },
		{ "2k22", "2k22" }, { "2022", "2k22" }, { "server2022", "2k22" },
		{ "2k19", "2k19" }, { "2019", "2k19" }, { "server2019", "2k19" },
		{ "2k16", "2k16" }, { "2016", "2k16" }, { "server2016", "2k16" },
		{ "2k12r2", "2k12R2" }, { "2012r2", "2k12R2" }, { "server2012r2", "2k12R2" },
		{ "2k12", "2k12" }, { "2012", "2k12" }, { "server2012", "2k12" },
		{ "2k8r2", "2k8R2" }, { "2008r2", "2k8R2" }, { "server2008r2", "2k8R2" },
		{ "2k8", "2k8" }, { "2008", "2k8" }, { "server2008", "2k8" },
		{ "11", "w11" }, { "10", "w10" }, { "8.1", "w8.1" }, { "81", "w8.1" },
		{ "8", "w8" }, { "7", "w7" }, { "vista", "2k8" },
		{ "xp", "xp" }, { "2k3", "2k3" }, { "2003", "2k3" }, { "2k3r2", "2k3" },
		{ "2003r2", "2k3" },
	};
	char		 d[64], v[64];
	const char	*key = NULL;
	size_t		 i;

	answers_norm(os_distro, d, sizeof(d));
	answers_norm(os_version, v, sizeof(v));
	/* libosinfo: win2k19, win10; Glance: os_distro windows + os_version 2019 */
	if (strncmp(d, "windows", 7) == 0 && d[7] != '\0')
		key = d + 7;
	else if (strncmp(d, "win", 3) == 0 && strcmp(d, "windows") != 0)
		key = d + 3;
	else if (strncmp(v, "windows", 7) == 0)
		key = v + 7;
	else if (strncmp(v, "win", 3) == 0)
		key = v + 3;
	else
		key = v;
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(key, map[i][0]) == 0)
			return map[i][1];
	return "w10";
}

/* ---- values ---- */

/* One template name: a string, or a list (packages, virtio_win_paths). */
struct answers_var {
	const char	*name;
	char		*value;		/* owned; "" when unset */
	const char	**list;		/* NULL-terminated, owned array of borrowed/owned items */
	char		**owned;	/* items to free (list entries we made), NULL-terminated */
};

struct answers_vars {
	struct answers_var	 v[ANSWERS_MAX_VARS];
	size_t			 n;
};

/* Adds a string name (a copy of value; NULL is "", i.e. not set). */
static void
vars_set(struct answers_vars *vs, const char *name, const char *value)
{
	struct answers_var	*v = &vs->v[vs->n++];

	v->name = name;
	v->value = xstrdup(value != NULL ? value : "");
}

/* Adds a list name; takes ownership of items (n of them); its string is the items joined
 * by spaces. */
static void
vars_set_list(struct answers_vars *vs, const char *name, char **items, size_t n)
{
	struct answers_var	*v = &vs->v[vs->n++];
	struct buf		 b;
	size_t			 i;

	v->name = name;
	v->owned = items;
	v->list = xcalloc(n + 1, sizeof(*v->list));
	buf_init(&b);
	for (i = 0; i < n; i++) {
		v->list[i] = items[i];
		buf_printf(&b, "%s%s", i > 0 ? " " : "", items[i]);
	}
	buf_puts(&b, "");
	v->value = buf_release(&b);
}

/* The name of len bytes at name, or NULL. */
static const struct answers_var *
vars_get(const struct answers_vars *vs, const char *name, size_t len)
{
	size_t	 i;

	for (i = 0; i < vs->n; i++)
		if (strlen(vs->v[i].name) == len && strncmp(vs->v[i].name, name, len) == 0)
			return &vs->v[i];
	return NULL;
}

/* Frees every name's value and list. */
static void
vars_free(struct answers_vars *vs)
{
	size_t	 i, j;

	for (i = 0; i < vs->n; i++) {
		free(vs->v[i].value);
		if (vs->v[i].owned != NULL) {
			for (j = 0; vs->v[i].owned[j] != NULL; j++)
				free(vs->v[i].owned[j]);
			free(vs->v[i].owned);
		}
		free(vs->v[i].list);
	}
	vs->n = 0;
}

/* 0 when every character of s is a letter, a digit or in extra, and 1..max long. */
static int
check_chars(const char *what, const char *s, size_t max, const char *extra, struct err *err)
{
	const char	*p;

	if (*s == '\0' || strlen(s) > max) {
		err_set(err, ERR_INVAL, "answers: %s: must be 1 to %zu characters", what, max);
		return -1;
	}
	for (p = s; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr(extra, *p) == NULL) {
			err_set(err, ERR_INVAL, "answers: %s: '%c' is not allowed (letters, digits "
			    "and \"%s\")", what, *p, extra);
			return -1;
		}
	return 0;
}

/* A password: printable UTF-8 without control characters, 1..128 bytes. */
static int
check_password(const char *what, const char *s, struct err *err)
{
	const unsigned char	*p;

	if (*s == '\0' || strlen(s) > 128) {
		err_set(err, ERR_INVAL, "answers: %s: must be 1 to 128 characters", what);
		return -1;
	}
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f) {
			err_set(err, ERR_INVAL, "answers: %s: contains a control character", what);
			return -1;
		}
	if (!xmlCheckUTF8((const xmlChar *)s)) {
		err_set(err, ERR_INVAL, "answers: %s: not valid UTF-8", what);
		return -1;
	}
	return 0;
}

/* A host name label list: RFC 1123 labels joined by '.', at most max characters. */
static int
check_hostname(const char *what, const char *s, size_t max, struct err *err)
{
	const char	*label = s, *p;

	if (check_chars(what, s, max, "-.", err) == -1)
		return -1;
	for (p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			if (p == label || p - label > 63 || *label == '-' || p[-1] == '-') {
				err_set(err, ERR_INVAL, "answers: %s: '%s' is not a host name (labels "
				    "of 1 to 63 letters, digits and inner '-')", what, s);
				return -1;
			}
			if (*p == '\0')
				break;
			label = p + 1;
		}
	}
	return 0;
}

/* SHA-512 crypt(3) of a password with the build's salt; caller frees. */
static char *
answers_crypt(const char *password, const char *salt, struct err *err)
{
	struct crypt_data	*cd;
	char			*setting, *out = NULL;
	const char		*h;

	cd = xcalloc(1, sizeof(*cd));
	setting = xasprintf("$6$%s$", salt);
	h = crypt_r(password, setting, cd);
	if (h == NULL || h[0] != '$')
		err_set(err, ERR_INTERNAL, "answers: crypt(3) refused the password");
	else
		out = xstrdup(h);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	free(setting);
	return out;
}

/* Windows' obfuscated password: base64 of UTF-16LE(password + suffix); caller frees. */
static char *
answers_unattend_password(const char *password, const char *suffix)
{
	static const char	 b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char			*plain = xasprintf("%s%s", password, suffix);
	unsigned char		*u16;
	const unsigned char	*p = (const unsigned char *)plain;
	size_t			 n = 0, i;
	unsigned		 cp;
	struct buf		 out;

	u16 = xmalloc(strlen(plain) * 4 + 4);
	while (*p != '\0') {
		/* UTF-8 → code point (validated UTF-8) → UTF-16LE */
		if (*p < 0x80)
			cp = *p++;
		else if ((*p & 0xe0) == 0xc0) {
			cp = (unsigned)(*p++ & 0x1f) << 6;
			cp |= *p++ & 0x3f;
		} else if ((*p & 0xf0) == 0xe0) {
			cp = (unsigned)(*p++ & 0x0f) << 12;
			cp |= (unsigned)(*p++ & 0x3f) << 6;
			cp |= *p++ & 0x3f;
		} else {
			cp = (unsigned)(*p++ & 0x07) << 18;
			cp |= (unsigned)(*p++ & 0x3f) << 12;
			cp |= (unsigned)(*p++ & 0x3f) << 6;
			cp |= *p++ & 0x3f;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			u16[n++] = (unsigned char)((0xd800 | (cp >> 10)) & 0xff);
			u16[n++] = (unsigned char)((0xd800 | (cp >> 10)) >> 8);
			cp = 0xdc00 | (cp & 0x3ff);
		}
		u16[n++] = (unsigned char)(cp & 0xff);
		u16[n++] = (unsigned char)(cp >> 8);
	}
	buf_init(&out);
	for (i = 0; i < n; i += 3) {
		unsigned	 v = (unsigned)u16[i] << 16;
		char		 q[4];

		if (i + 1 < n)
			v |= (unsigned)u16[i + 1] << 8;
		if (i + 2 < n)
			v |= u16[i + 2];
		q[0] = b64[(v >> 18) & 63];
		q[1] = b64[(v >> 12) & 63];
		q[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		q[3] = i + 2 < n ? b64[v & 63] : '=';
		buf_append(&out, q, 4);
	}
	buf_puts(&out, "");
	explicit_bzero(plain, strlen(plain));
	explicit_bzero(u16, n);
	free(plain);
	free(u16);
	return buf_release(&out);
}

/* Splits http://HOST[:PORT]/DIR into host (with port) and dir ("/" when none). */
static int
answers_mirror(const char *url, char **host, char **dir, struct err *err)
{
	const char	*p, *slash;

	if (strncmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncmp(url, "https://", 8) == 0)
		p = url + 8;
	else {
		err_set(err, ERR_INVAL, "answers: mirror: '%s' is not an http:// or https:// URL",
		    url);
		return -1;
	}
	if (check_chars("mirror", url, 512, ":/._~-", err) == -1)
		return -1;
	slash = strchr(p, '/');
	*host = slash != NULL ? xstrndup(p, (size_t)(slash - p)) : xstrdup(p);
	*dir = xstrdup(slash != NULL ? slash : "/");
	if (**host == '\0') {
		err_set(err, ERR_INVAL, "answers: mirror: '%s' has no host", url);
		free(*host);
		free(*dir);
		*host = *dir = NULL;
		return -1;
	}
	return 0;
}

/* Checks the answers and makes every name a template may use; see the README's table. */
static int
answers_vars_make(const struct isoboot_answers *a, struct answers_vars *vs, struct err *err)
{
	static const char *const drives[] = { "D", "E", "F", "G", NULL };
	static const char *const drivers[] = { "viostor", "vioscsi", "NetKVM", NULL };
	const char	*hostname = a->hostname != NULL ? a->hostname : "isoforge";
	const char	*domain = a->domain != NULL ? a->domain : "localdomain";
	const char	*locale = a->locale != NULL ? a->locale : "en_US.UTF-8";
	const char	*keyboard = a->keyboard != NULL ? a->keyboard : "us";
	const char	*tz = a->timezone != NULL ? a->timezone : "UTC";
	const char	*wtz = a->windows_timezone != NULL ? a->windows_timezone : "UTC";
	const char	*admin_pw = a->admin_password != NULL ? a->admin_password :
			    a->root_password;
	const char	*image = a->windows_image != NULL ? a->windows_image : "1";
	const char	*firmware = a->firmware != NULL ? a->firmware : "bios";
	const char	*vwdir;
	char		*host = NULL, *dir = NULL, *s;
	char		**items;
	size_t		 i, j, n;
	int		 rc = -1, digits;

	if (a->build_id == NULL || check_chars("build id", a->build_id, 64, "._-", err) == -1)
		goto fail_required;
	if (a->root_password == NULL) {
		err_set(err, ERR_INVAL, "answers: a root password is required");
		return -1;
	}
	if (a->salt == NULL || strlen(a->salt) != 16 ||
	    check_chars("salt", a->salt, 16, "./", err) == -1) {
		err_set(err, ERR_INVAL, "answers: the salt must be 16 of [./A-Za-z0-9]");
		return -1;
	}
	if (check_hostname("hostname", hostname, 63, err) == -1 || strchr(hostname, '.') ||
	    check_hostname("domain", domain, 253, err) == -1 ||
	    check_chars("locale", locale, 64, "_.@-", err) == -1 ||
	    check_chars("keyboard", keyboard, 64, "_-", err) == -1 ||
	    check_chars("timezone", tz, 64, "_+/-", err) == -1 ||
	    check_chars("windows_timezone", wtz, 64, " ()._+-", err) == -1 ||
	    check_password("root password", a->root_password, err) == -1 ||
	    check_password("admin password", admin_pw, err) == -1) {
		if (err != NULL && err->kind == ERR_NONE)
			err_set(err, ERR_INVAL, "answers: hostname: '%s' is one label (no '.'; "
			    "the domain is apart)", hostname);
		return -1;
	}
	if (a->admin_user != NULL) {
		if (check_chars("admin_user", a->admin_user, 32, "_-", err) == -1)
			return -1;
		if (!islower((unsigned char)a->admin_user[0]) || strcmp(a->admin_user,
		    "root") == 0) {
			err_set(err, ERR_INVAL, "answers: admin_user: '%s' must start with a "
			    "lower-case letter and not be root", a->admin_user);
			return -1;
		}
	}
	if (a->ssh_pubkey != NULL) {
		if (check_chars("ssh public key", a->ssh_pubkey, 8192, "+/=@._: -", err) == -1)
			return -1;
		if (strncmp(a->ssh_pubkey, "ssh-", 4) != 0 &&
		    strncmp(a->ssh_pubkey, "ecdsa-", 6) != 0 &&
		    strncmp(a->ssh_pubkey, "sk-", 3) != 0) {
			err_set(err, ERR_INVAL, "answers: ssh public key: not an OpenSSH public key "
			    "line (ssh-ed25519 AAAA...)");
			return -1;
		}
	}
	if (a->suite != NULL && check_chars("suite", a->suite, 64, "-", err) == -1)
		return -1;
	if (a->product_key != NULL && (strlen(a->product_key) != 29 ||
	    check_chars("product_key", a->product_key, 29, "-", err) == -1)) {
		err_set(err, ERR_INVAL, "answers: product_key: 5 groups of 5 letters and digits "
		    "joined by '-'");
		return -1;
	}
	if (check_chars("windows_image", image, 128, " ._()-", err) == -1)
		return -1;
	if (strcmp(firmware, "bios") != 0 && strcmp(firmware, "uefi") != 0) {
		err_set(err, ERR_INVAL, "answers: firmware: '%s' is not one of bios|uefi", firmware);
		return -1;
	}
	if (a->mirror != NULL && answers_mirror(a->mirror, &host, &dir, err) == -1)
		return -1;

	vars_set(vs, "build_id", a->build_id);
	vars_set(vs, "hostname", hostname);
	vars_set(vs, "domain", domain);
	vars_set(vs, "fqdn", NULL);
	free(vs->v[vs->n - 1].value);
	vs->v[vs->n - 1].value = xasprintf("%s.%s", hostname, domain);
	vars_set(vs, "locale", locale);
	/* Windows spells en_US.UTF-8 "en-US" */
	s = xstrndup(locale, strcspn(locale, ".@"));
	for (i = 0; s[i] != '\0'; i++)
		if (s[i] == '_')
			s[i] = '-';
	vars_set(vs, "windows_locale", s);
	free(s);
	vars_set(vs, "keyboard", keyboard);
	vars_set(vs, "timezone", tz);
	vars_set(vs, "windows_timezone", wtz);
	if ((s = answers_crypt(a->root_password, a->salt, err)) == NULL)
		goto cleanup;
	vars_set(vs, "root_password_crypted", s);
	free(s);
	if ((s = answers_crypt(admin_pw, a->salt, err)) == NULL)
		goto cleanup;
	vars_set(vs, "admin_password_crypted", a->admin_user != NULL ? s : NULL);
	free(s);
	vars_set(vs, "admin_user", a->admin_user);
	s = answers_unattend_password(a->root_password, "AdministratorPassword");
	vars_set(vs, "administrator_password_unattend", s);
	free(s);
	s = answers_unattend_password(a->root_password, "Password");
	vars_set(vs, "autologon_password_unattend", s);
	free(s);
	s = answers_unattend_password(admin_pw, "Password");
	vars_set(vs, "admin_password_unattend", a->admin_user != NULL ? s : NULL);
	free(s);
	vars_set(vs, "ssh_pubkey", a->ssh_pubkey);
	vars_set(vs, "mirror", a->mirror);
	vars_set(vs, "mirror_host", host);
	vars_set(vs, "mirror_dir", dir);
	vars_set(vs, "mirror_unsigned", a->mirror_unsigned ? "true" : NULL);
	vars_set(vs, "suite", a->suite);
	vars_set(vs, "firmware", firmware);
	vars_set(vs, "uefi", strcmp(firmware, "uefi") == 0 ? "true" : NULL);
	vars_set(vs, "product_key", a->product_key);
	for (digits = 1, i = 0; image[i] != '\0'; i++)
		digits &= isdigit((unsigned char)image[i]) != 0;
	vars_set(vs, "image_key", digits ? "/IMAGE/INDEX" : "/IMAGE/NAME");
	vars_set(vs, "image_value", image);
	vwdir = isoboot_virtio_win_dir(a->os_distro, a->os_version);
	vars_set(vs, "virtio_win_dir", vwdir);

	for (n = 0; a->packages != NULL && a->packages[n] != NULL; n++) {
		if (n == ANSWERS_MAX_PKGS) {
			err_set(err, ERR_INVAL, "answers: more than %d packages", ANSWERS_MAX_PKGS);
			goto cleanup;
		}
		if (check_chars("package", a->packages[n], 128, ".+_:@^-", err) == -1)
			goto cleanup;
	}
	items = xcalloc(n + 1, sizeof(*items));
	for (i = 0; i < n; i++)
		items[i] = xstrdup(a->packages[i]);
	vars_set_list(vs, "packages", items, n);
	items = xcalloc(4 * 3 + 1, sizeof(*items));
	n = 0;
	/* the virtio-win CD's letter depends on what else setup sees: try each likely one */
	for (j = 0; drivers[j] != NULL; j++)
		for (i = 0; drives[i] != NULL; i++)
			items[n++] = xasprintf("%s:\\%s\\%s\\amd64", drives[i], drivers[j], vwdir);
	vars_set_list(vs, "virtio_win_paths", items, n);
	rc = 0;
	goto cleanup;
fail_required:
	err_set(err, ERR_INVAL, "answers: a build id is required");
cleanup:
	free(host);
	free(dir);
	return rc;
}

/* ---- line templates (preseed, kickstart, autoinstall) ---- */

/* A JSON string (also a YAML double-quoted scalar) of s; caller frees. */
static char *
answers_json(const char *s)
{
	json_t	*j = json_string(s);
	char	*out = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);

	json_decref(j);
	return out;
}

/* A JSON array of a list; caller frees. */
static char *
answers_json_list(const char *const *list)
{
	json_t	*a = json_array();
	char	*out;
	size_t	 i;

	for (i = 0; list[i] != NULL; i++)
		json_array_append_new(a, json_string(list[i]));
	out = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return out;
}

/*
 * Appends line to out with every {{name}} / {{name|json}} replaced; item (not NULL) is the
 * value of the one {{*list}} of a repeated line. Errors name FILE:LINE.
 */
static int
render_line(struct buf *out, const char *line, size_t len, const struct answers_vars *vs,
    const char *item, const char *tname, int lineno, struct err *err)
{
	const char		*p = line, *end = line + len, *open, *close, *bar;
	const struct answers_var *v;
	char			*s;
	int			 json, star;

	while (p < end) {
		open = strstr(p, "{{");
		if (open == NULL || open >= end) {
			buf_append(out, p, (size_t)(end - p));
			break;
		}
		buf_append(out, p, (size_t)(open - p));
		close = strstr(open + 2, "}}");
		if (close == NULL || close > end) {
			err_set(err, ERR_INVAL, "%s:%d: '{{' without '}}'", tname, lineno);
			return -1;
		}
		star = open[2] == '*';
		bar = memchr(open, '|', (size_t)(close - open));
		json = bar != NULL && (size_t)(close - bar - 1) == 4 && strncmp(bar + 1, "json", 4) == 0;
		if (bar != NULL && !json) {
			err_set(err, ERR_INVAL, "%s:%d: unknown filter '%.*s' (only |json)", tname,
			    lineno, (int)(close - bar - 1), bar + 1);
			return -1;
		}
		v = vars_get(vs, open + 2 + star, (size_t)((bar != NULL ? bar : close) - open - 2 -
		    star));
		if (v == NULL) {
			err_set(err, ERR_INVAL, "%s:%d: unknown name '%.*s'", tname, lineno,
			    (int)((bar != NULL ? bar : close) - open - 2 - star), open + 2 + star);
			return -1;
		}
		if (star && (v->list == NULL || item == NULL)) {
			err_set(err, ERR_INVAL, "%s:%d: {{*%s}}: %s", tname, lineno, v->name,
			    v->list == NULL ? "not a list" : "one list per line");
			return -1;
		}
		if (star)
			s = json ? answers_json(item) : xstrdup(item);
		else if (json)
			s = v->list != NULL ? answers_json_list(v->list) : answers_json(v->value);
		else
			s = xstrdup(v->value);
		buf_puts(out, s);
		free(s);
		p = close + 2;
	}
	return 0;
}

/* The list a line repeats over ({{*name}} or {{*name|json}}), or NULL. */
static const struct answers_var *
line_list(const char *line, size_t len, const struct answers_vars *vs)
{
	const char	*p = line, *end = line + len, *close, *bar;

	while ((p = strstr(p, "{{*")) != NULL && p < end) {
		close = strstr(p, "}}");
		if (close == NULL || close > end)
			return NULL;
		bar = memchr(p, '|', (size_t)(close - p));
		return vars_get(vs, p + 3, (size_t)((bar != NULL ? bar : close) - p - 3));
	}
	return NULL;
}

/* Renders a line-based template; see templates/answers/preseed.cfg for the syntax. */
static char *
render_lines(const char *text, const char *tname, const struct answers_vars *vs,
    struct err *err)
{
	struct buf		 out;
	const char		*line = text, *nl, *close;
	const struct answers_var *v, *list;
	size_t			 len, i;
	int			 lineno = 0, want, set;

	buf_init(&out);
	while (*line != '\0') {
		lineno++;
		nl = strchr(line, '\n');
		len = nl != NULL ? (size_t)(nl - line) : strlen(line);
		if (len >= 2 && line[0] == '#' && line[1] == '_')
			goto next;
		/* {{?name}} / {{!name}} at the start: the line only when name is (not) set */
		while (len > 4 && line[0] == '{' && line[1] == '{' &&
		    (line[2] == '?' || line[2] == '!')) {
			close = strstr(line, "}}");
			if (close == NULL || (size_t)(close - line) > len) {
				err_set(err, ERR_INVAL, "%s:%d: '{{%c' without '}}'", tname, lineno,
				    line[2]);
				goto fail;
			}
			want = line[2] == '?';
			v = vars_get(vs, line + 3, (size_t)(close - line - 3));
			if (v == NULL) {
				err_set(err, ERR_INVAL, "%s:%d: unknown name '%.*s'", tname, lineno,
				    (int)(close - line - 3), line + 3);
				goto fail;
			}
			set = v->value[0] != '\0';
			len -= (size_t)(close + 2 - line);
			line = close + 2;
			if (set != want)
				goto next;
		}
		list = line_list(line, len, vs);
		if (list != NULL && list->list != NULL) {
			for (i = 0; list->list[i] != NULL; i++) {
				if (render_line(&out, line, len, vs, list->list[i], tname, lineno,
				    err) == -1)
					goto fail;
				buf_puts(&out, "\n");
			}
		} else {
			if (render_line(&out, line, len, vs, NULL, tname, lineno, err) == -1)
				goto fail;
			if (nl != NULL)
				buf_puts(&out, "\n");
		}
next:
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	buf_puts(&out, "");
	return buf_release(&out);
fail:
	buf_free(&out);
	return NULL;
}

/* ---- XML templates (autounattend.xml), through libxml2 ---- */

/* The text with {{name}} replaced (item for {{item}}, index for {{index}}); caller frees. */
static char *
xml_subst(const char *text, const struct answers_vars *vs, const char *item, size_t index,
    const char *tname, int lineno, struct err *err)
{
	struct buf		 out;
	const char		*p = text, *open, *close;
	const struct answers_var *v;
	size_t			 len;

	buf_init(&out);
	while ((open = strstr(p, "{{")) != NULL) {
		buf_append(&out, p, (size_t)(open - p));
		close = strstr(open + 2, "}}");
		if (close == NULL) {
			err_set(err, ERR_INVAL, "%s:%d: '{{' without '}}'", tname, lineno);
			goto fail;
		}
		len = (size_t)(close - open - 2);
		if (item != NULL && len == 4 && strncmp(open + 2, "item", 4) == 0)
			buf_puts(&out, item);
		else if (item != NULL && len == 5 && strncmp(open + 2, "index", 5) == 0)
			buf_printf(&out, "%zu", index);
		else if ((v = vars_get(vs, open + 2, len)) != NULL)
			buf_puts(&out, v->value);
		else {
			err_set(err, ERR_INVAL, "%s:%d: unknown name '%.*s'", tname, lineno,
			    (int)len, open + 2);
			goto fail;
		}
		p = close + 2;
	}
	buf_puts(&out, p);
	return buf_release(&out);
fail:
	buf_free(&out);
	return NULL;
}

/* The value of an isoforge: attribute of n (caller xmlFree()s), or NULL. */
static xmlChar *
xml_ctl(xmlNode *n, const char *name)
{
	return xmlGetNsProp(n, BAD_CAST name, BAD_CAST ANSWERS_XMLNS);
}

/* Removes an isoforge: attribute from n. */
static void
xml_ctl_unset(xmlNode *n, const char *name)
{
	xmlAttr	*a = xmlHasNsProp(n, BAD_CAST name, BAD_CAST ANSWERS_XMLNS);

	if (a != NULL)
		xmlRemoveProp(a);
}

static int xml_fill(xmlNode *, const struct answers_vars *, const char *, size_t,
    const char *, struct err *);

/*
 * Fills an element and its subtree: isoforge:if / isoforge:unless (keep the element only when
 * the name is set / not set), isoforge:each (one copy per item of a list, {{item}} and
 * {{index}} (1, 2, ...) inside), {{name}} in text and attribute values. *removed is set when
 * n was taken out of the tree (and freed).
 */
static int
xml_fill_elem(xmlNode *n, const struct answers_vars *vs, const char *item, size_t index,
    const char *tname, int *removed, struct err *err)
{
	const struct answers_var *v;
	xmlChar			*c;
	xmlNode			*copy, *after, *prev;
	xmlAttr			*a;
	char			*s;
	size_t			 i;
	int			 keep, rc = -1, gone;

	*removed = 0;
	if ((c = xml_ctl(n, "if")) != NULL || (c = xml_ctl(n, "unless")) != NULL) {
		int	 is_if = xmlHasNsProp(n, BAD_CAST "if", BAD_CAST ANSWERS_XMLNS) != NULL;

		v = vars_get(vs, (const char *)c, strlen((const char *)c));
		if (v == NULL) {
			err_set(err, ERR_INVAL, "%s:%d: unknown name '%s'", tname,
			    (int)xmlGetLineNo(n), c);
			xmlFree(c);
			return -1;
		}
		xmlFree(c);
		keep = (v->value[0] != '\0') == is_if;
		xml_ctl_unset(n, is_if ? "if" : "unless");
		if (!keep) {
			xmlUnlinkNode(n);
			xmlFreeNode(n);
			*removed = 1;
			return 0;
		}
		/* both may be given */
		return xml_fill_elem(n, vs, item, index, tname, removed, err);
	}
	if ((c = xml_ctl(n, "each")) != NULL) {
		v = vars_get(vs, (const char *)c, strlen((const char *)c));
		if (v == NULL || v->list == NULL) {
			err_set(err, ERR_INVAL, "%s:%d: isoforge:each=\"%s\": not a list", tname,
			    (int)xmlGetLineNo(n), c);
			xmlFree(c);
			return -1;
		}
		xmlFree(c);
		xml_ctl_unset(n, "each");
		after = n;
		for (i = 0; v->list[i] != NULL; i++) {
			/* a clone that uses the namespaces in scope (no redeclarations) */
			copy = NULL;
			if (xmlDOMWrapCloneNode(NULL, n->doc, n, &copy, n->doc, n->parent, 1,
			    0) != 0 || copy == NULL) {
				err_set(err, ERR_INTERNAL, "%s: could not copy an element", tname);
				goto each_done;
			}
			xmlAddNextSibling(after, copy);
			prev = after;
			after = copy;
			if (xml_fill_elem(copy, vs, v->list[i], i + 1, tname, &gone, err) == -1)
				goto each_done;
			if (gone)
				after = prev;
		}
		rc = 0;
each_done:
		xmlUnlinkNode(n);
		xmlFreeNode(n);
		*removed = 1;
		return rc;
	}
	for (a = n->properties; a != NULL; a = a->next) {
		c = xmlNodeGetContent((xmlNode *)a);
		if (c != NULL && strstr((const char *)c, "{{") != NULL) {
			s = xml_subst((const char *)c, vs, item, index, tname, (int)xmlGetLineNo(n),
			    err);
			if (s == NULL) {
				xmlFree(c);
				return -1;
			}
			xmlSetNsProp(n, a->ns, a->name, BAD_CAST s);
			free(s);
		}
		xmlFree(c);
	}
	return xml_fill(n, vs, item, index, tname, err);
}

/* Fills the children of n; see xml_fill_elem. */
static int
xml_fill(xmlNode *n, const struct answers_vars *vs, const char *item, size_t index,
    const char *tname, struct err *err)
{
	xmlNode	*c, *next;
	char	*s;
	int	 removed;

	for (c = n->children; c != NULL; c = next) {
		next = c->next;
		if (c->type == XML_ELEMENT_NODE) {
			if (xml_fill_elem(c, vs, item, index, tname, &removed, err) == -1)
				return -1;
		} else if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) &&
		    c->content != NULL && strstr((const char *)c->content, "{{") != NULL) {
			s = xml_subst((const char *)c->content, vs, item, index, tname,
			    (int)xmlGetLineNo(n), err);
			if (s == NULL)
				return -1;
			/* xmlNodeSetContent would parse entities: this sets the text as is */
			xmlNodeSetContentLen(c, NULL, 0);
			xmlNodeAddContent(c, BAD_CAST s);
			free(s);
		} else if (c->type == XML_COMMENT_NODE && c->content != NULL &&
		    xmlStrncmp(c->content, BAD_CAST "_", 1) == 0) {
			/* <!--_ template comments --> are dropped */
			xmlUnlinkNode(c);
			xmlFreeNode(c);
		} else if (c->type == XML_COMMENT_NODE && c->content != NULL &&
		    strstr((const char *)c->content, "{{") != NULL) {
			s = xml_subst((const char *)c->content, vs, item, index, tname,
			    (int)xmlGetLineNo(n), err);
			if (s == NULL)
				return -1;
			if (strstr(s, "--") != NULL) {
				err_set(err, ERR_INVAL, "%s:%d: a value in a comment holds \"--\"",
				    tname, (int)xmlGetLineNo(n));
				free(s);
				return -1;
			}
			xmlNodeSetContent(c, BAD_CAST s);
			free(s);
		}
	}
	return 0;
}

/* Drops the isoforge namespace declaration from every element (it is used no more). */
static void
xml_drop_ns(xmlNode *n)
{
	xmlNs	**pp, *ns;
	xmlNode	*c;

	for (pp = &n->nsDef; *pp != NULL;) {
		ns = *pp;
		if (xmlStrcmp(ns->href, BAD_CAST ANSWERS_XMLNS) == 0) {
			*pp = ns->next;
			ns->next = NULL;
			xmlFreeNs(ns);
		} else
			pp = &ns->next;
	}
	for (c = n->children; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE)
			xml_drop_ns(c);
}

/* The first parse error of a template. */
struct xml_first_err {
	int	 line;
	char	 msg[256];
};

/* libxml2's structured error handler: keeps the first error of the template. */
static void
xml_error(void *data, xmlError *xe)
{
	xmlParserCtxt		*ctxt = data;
	struct xml_first_err	*first = ctxt->_private;
	size_t			 n;

	if (first->msg[0] != '\0' || xe == NULL || xe->level < XML_ERR_ERROR)
		return;
	first->line = xe->line;
	snprintf(first->msg, sizeof(first->msg), "%s", xe->message != NULL ? xe->message : "");
	n = strlen(first->msg);
	while (n > 0 && first->msg[n - 1] == '\n')
		first->msg[--n] = '\0';
}

/* Renders an XML template through libxml2. */
static char *
render_xml(const char *text, const char *tname, const struct answers_vars *vs,
    struct err *err)
{
	xmlParserCtxt		*ctxt;
	xmlDoc			*doc = NULL;
	xmlNode			*root, *c, *next;
	xmlChar			*mem = NULL;
	struct xml_first_err	 first;
	char			*out = NULL;
	int			 len = 0, removed;

	xmlInitParser();
	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL) {
		err_set(err, ERR_INTERNAL, "%s: out of memory", tname);
		return NULL;
	}
	first.line = 0;
	first.msg[0] = '\0';
	ctxt->_private = &first;
	ctxt->sax->serror = xml_error;
	doc = xmlCtxtReadMemory(ctxt, text, (int)strlen(text), tname, "UTF-8",
	    XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOWARNING);
	if (doc == NULL || first.msg[0] != '\0') {
		err_set(err, ERR_INVAL, "%s:%d: %s", tname, first.line,
		    first.msg[0] != '\0' ? first.msg : "not XML");
		goto cleanup;
	}
	root = xmlDocGetRootElement(doc);
	if (root == NULL) {
		err_set(err, ERR_INVAL, "%s: no root element", tname);
		goto cleanup;
	}
	for (c = doc->children; c != NULL; c = next) {
		next = c->next;
		if (c->type == XML_COMMENT_NODE && c->content != NULL &&
		    xmlStrncmp(c->content, BAD_CAST "_", 1) == 0) {
			xmlUnlinkNode(c);
			xmlFreeNode(c);
		}
	}
	if (xml_fill_elem(root, vs, NULL, 0, tname, &removed, err) == -1)
		goto cleanup;
	if (removed) {
		err_set(err, ERR_INVAL, "%s: the root element was removed (isoforge:if)", tname);
		goto cleanup;
	}
	xml_drop_ns(root);
	xmlDocDumpFormatMemoryEnc(doc, &mem, &len, "UTF-8", 1);
	if (mem == NULL) {
		err_set(err, ERR_INTERNAL, "%s: could not serialise", tname);
		goto cleanup;
	}
	out = xstrndup((const char *)mem, (size_t)len);
cleanup:
	xmlFree(mem);
	xmlFreeDoc(doc);
	xmlFreeParserCtxt(ctxt);
	return out;
}

/* Renders one answer file; see answers.h. */
char *
isoboot_answers_render(enum isoboot_answers_method m, const char *text, const char *tname,
    const struct isoboot_answers *a, struct err *err)
{
	struct answers_vars	 vs;
	char			*out = NULL;

	if (text == NULL || a == NULL || isoboot_answers_info(m) == NULL) {
		err_set(err, ERR_INTERNAL, "isoboot_answers_render: missing argument");
		return NULL;
	}
	memset(&vs, 0, sizeof(vs));
	if (answers_vars_make(a, &vs, err) == 0)
		out = m == ISOBOOT_ANSWERS_AUTOUNATTEND ? render_xml(text, tname, &vs, err) :
		    render_lines(text, tname, &vs, err);
	vars_free(&vs);
	return out;
}

/* cloud-init meta-data; see answers.h. */
char *
isoboot_answers_meta_data(const struct isoboot_answers *a, struct err *err)
{
	const char	*host = a->hostname != NULL ? a->hostname : "isoforge";
	char		*id, *h, *out;

	if (a->build_id == NULL || check_chars("build id", a->build_id, 64, "._-", err) == -1 ||
	    check_hostname("hostname", host, 63, err) == -1)
		return NULL;
	id = answers_json(a->build_id);
	h = answers_json(host);
	out = xasprintf("instance-id: %s\nlocal-hostname: %s\n", id, h);
	free(id);
	free(h);
	return out;
}

/* ---- d-i's boot entry ---- */

/* The next whitespace-separated word of *p (advanced past it), or NULL at the end. */
static char *
next_word(const char **p, const char *end)
{
	const char	*s = *p, *w;

	while (s < end && isspace((unsigned char)*s))
		s++;
	if (s == end)
		return NULL;
	w = s;
	while (s < end && !isspace((unsigned char)*s))
		s++;
	*p = s;
	return xstrndup(w, (size_t)(s - w));
}

/* 1 when a kernel path is a d-i text installer's ("/install.amd/vmlinuz",
 * "/install/vmlinuz", "debian-installer/amd64/linux"), not the graphical one (gtk/). */
static int
di_kernel(const char *path)
{
	return strstr(path, "/gtk/") == NULL && strstr(path, "xen") == NULL &&
	    (strstr(path, "install") != NULL) &&
	    (strstr(path, "vmlinuz") != NULL || strstr(path, "/linux") != NULL);
}

/* Finds the installer's entry; see answers.h. */
int
isoboot_di_boot_entry(const char *text, char **kernel, char **initrd, char **append,
    struct err *err)
{
	const char	*line = text, *nl, *end, *p;
	char		*w, *k = NULL, *i = NULL, *a = NULL, *label = NULL;
	int		 found = 0, grub;

	*kernel = *initrd = *append = NULL;
	for (; !found && *line != '\0'; line = nl != NULL ? nl + 1 : line + strlen(line)) {
		nl = strchr(line, '\n');
		end = nl != NULL ? nl : line + strlen(line);
		p = line;
		if ((w = next_word(&p, end)) == NULL)
			continue;
		grub = strcmp(w, "linux") == 0 || strcmp(w, "linux16") == 0 ||
		    strcmp(w, "linuxefi") == 0;
		if (strcasecmp(w, "label") == 0 || strcmp(w, "menuentry") == 0) {
			/* a new entry: isolinux's label, GRUB's menuentry */
			free(label);
			while (p < end && isspace((unsigned char)*p))
				p++;
			label = xstrndup(p, (size_t)(end - p));
			free(k);
			free(a);
			free(i);
			k = a = i = NULL;
		} else if (strcasecmp(w, "kernel") == 0 || strcasecmp(w, "linux") == 0 ||
		    grub) {
			free(k);
			k = next_word(&p, end);
			if (grub) {
				/* GRUB: the rest of the line is the command line */
				while (p < end && isspace((unsigned char)*p))
					p++;
				free(a);
				a = xstrndup(p, (size_t)(end - p));
			}
		} else if (strcasecmp(w, "append") == 0) {
			while (p < end && isspace((unsigned char)*p))
				p++;
			free(a);
			a = xstrndup(p, (size_t)(end - p));
		} else if (strcmp(w, "initrd") == 0 || strcmp(w, "initrd16") == 0 ||
		    strcmp(w, "initrdefi") == 0) {
			free(i);
			i = next_word(&p, end);
		}
		free(w);
		/* isolinux: label … kernel … append (initrd= inside); GRUB: linux … initrd … */
		if (k != NULL && a != NULL && di_kernel(k) &&
		    (label == NULL || (strcasestr(label, "expert") == NULL &&
		    strcasestr(label, "rescue") == NULL)) &&
		    (i != NULL || strstr(a, "initrd=") != NULL)) {
			const char *q = strstr(a, "initrd="), *qe;

			if (q != NULL && i == NULL) {
				for (qe = q + 7; *qe != '\0' && !isspace((unsigned char)*qe) &&
				    *qe != ','; qe++)
					;
				i = xstrndup(q + 7, (size_t)(qe - q - 7));
			}
			/* the graphical installer's initrd: not the text one we preseed */
			if (strstr(i, "/gtk/") == NULL)
				found = 1;
			else {
				free(k);
				free(a);
				free(i);
				k = a = i = NULL;
			}
		}
	}
	free(label);
	if (!found) {
		free(k);
		free(i);
		free(a);
		err_set(err, ERR_NOTFOUND, "no d-i installer boot entry (a kernel under install* "
		    "with its initrd) in the boot configuration");
		return -1;
	}
	*kernel = xstrdup(k + (k[0] == '/'));
	*initrd = xstrdup(i + (i[0] == '/'));
	*append = a;
	free(k);
	free(i);
	return 0;
}

/* The unattended boot line; see answers.h. */
char *
isoboot_di_cmdline(const char *append)
{
	static const char	 serial[] = "console=ttyS0,115200n8";
	struct buf		 before, after;
	const char		*p = append, *end = append + strlen(append);
	char			*w;
	int			 past = 0;

	buf_init(&before);
	buf_init(&after);
	while ((w = next_word(&p, end)) != NULL) {
		if (strcmp(w, "---") == 0)
			past = 1;
		else if (strncmp(w, "initrd=", 7) == 0 || strncmp(w, "auto=", 5) == 0 ||
		    strncmp(w, "priority=", 9) == 0 || strncmp(w, "console=", 8) == 0 ||
		    strncmp(w, "BOOT_IMAGE=", 11) == 0)
			;	/* ours are added below */
		else
			buf_printf(past ? &after : &before, "%s%s", (past ? after.len : before.len) >
			    0 ? " " : "", w);
		free(w);
	}
	buf_printf(&before, "%sauto=true priority=critical %s", before.len > 0 ? " " : "",
	    serial);
	buf_printf(&before, " --- %s%s%s", after.data != NULL ? after.data : "",
	    after.len > 0 ? " " : "", serial);
	buf_free(&after);
	return buf_release(&before);
}
