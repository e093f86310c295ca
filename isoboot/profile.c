/* profile.c — OS profiles: parsed from operator-edited INI files, chosen from an OS triple. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "isoboot/isoboot.h"
#include "isoboot/isoboot_int.h"
#include "base/ini.h"
#include "base/util.h"

static const char *const disk_buses[] = { "virtio", "sata", "ide", NULL };
static const char *const cdrom_buses[] = { "ide", "sata", NULL };
static const char *const nic_models[] = { "virtio", "e1000", "e1000e", "rtl8139", "ne2k_pci",
	"pcnet", NULL };
static const char *const firmwares[] = { "bios", "uefi", NULL };
static const char *const videos[] = { "vga", "virtio", "qxl", "cirrus", "bochs", "none", NULL };
static const char *const usbs[] = { "none", "uhci", "xhci", NULL };
static const char *const clocks[] = { "utc", "localtime", NULL };
static const char *const caches[] = { "unsafe", "none", "writeback", "writethrough",
	"directsync", "default", NULL };
static const char *const os_types[] = { "linux", "windows", NULL };
static const char *const virtio_wins[] = { "none", "cdrom", "floppy", NULL };
static const char *const answer_methods[] = { "auto", "none", "preseed", "autoinstall",
	"kickstart", "autounattend", NULL };
static const char *const answer_medias[] = { "cdrom", "floppy", NULL };

/* 1 when s is one of the NULL-terminated list. */
static int
in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

/* "a|b|c" of a list, into out. */
static void
list_join(const char *const *list, char *out, size_t size)
{
	size_t	 n = 0;

	out[0] = '\0';
	for (; *list != NULL && n < size; list++)
		n += (size_t)snprintf(out + n, size - n, "%s%s", n > 0 ? "|" : "", *list);
}

/* 1 when m names a q35 machine ("q35", "pc-q35-7.2"). */
int
isoboot_machine_is_q35(const char *m)
{
	return strcmp(m, "q35") == 0 || strncmp(m, "pc-q35-", 7) == 0;
}

/* 1 when m is a machine type isoforge knows how to lay out. */
static int
machine_valid(const char *m)
{
	const char	*v = NULL;

	if (strcmp(m, "pc") == 0 || strcmp(m, "q35") == 0)
		return 1;
	if (strncmp(m, "pc-q35-", 7) == 0)
		v = m + 7;
	else if (strncmp(m, "pc-i440fx-", 10) == 0)
		v = m + 10;
	if (v == NULL || *v == '\0')
		return 0;
	for (; *v != '\0'; v++)
		if (!isdigit((unsigned char)*v) && *v != '.')
			return 0;
	return 1;
}

/* Replaces *field with a copy of value. */
static void
set_str(char **field, const char *value)
{
	free(*field);
	*field = xstrdup(value);
}

/* Sets a string field after checking value against list; the error says what is allowed. */
static int
set_choice(char **field, const char *value, const char *const *list, const char *where,
    const char *key, struct err *err)
{
	char	 allowed[256];

	if (!in_list(value, list)) {
		list_join(list, allowed, sizeof(allowed));
		err_set(err, ERR_INVAL, "%s%s: '%s' is not one of %s", where, key, value, allowed);
		return -1;
	}
	set_str(field, value);
	return 0;
}

/* Moves IDE buses to SATA (q35 has no IDE). */
static void
profile_ide_to_sata(struct isoboot_profile *p)
{
	if (strcmp(p->disk_bus, "ide") == 0)
		set_str(&p->disk_bus, "sata");
	if (strcmp(p->cdrom_bus, "ide") == 0)
		set_str(&p->cdrom_bus, "sata");
}

/* Sets key = value; where ("FILE:LINE: " or "") prefixes errors. Unknown keys fail. */
static int
profile_set_key(struct isoboot_profile *p, const char *key, const char *value,
    const char *where, struct err *err)
{
	unsigned long	 n;
	int		 b;
	size_t		 i;

	if (strcmp(key, "name") == 0) {
		if (*value == '\0') {
			err_set(err, ERR_INVAL, "%sname: empty", where);
			return -1;
		}
		set_str(&p->name, value);
		return 0;
	}
	if (strcmp(key, "description") == 0) {
		set_str(&p->description, value);
		return 0;
	}
	if (strcmp(key, "os_type") == 0)
		return set_choice(&p->os_type, value, os_types, where, key, err);
	if (strcmp(key, "disk_bus") == 0)
		return set_choice(&p->disk_bus, value, disk_buses, where, key, err);
	if (strcmp(key, "cdrom_bus") == 0)
		return set_choice(&p->cdrom_bus, value, cdrom_buses, where, key, err);
	if (strcmp(key, "nic_model") == 0)
		return set_choice(&p->nic_model, value, nic_models, where, key, err);
	if (strcmp(key, "image_nic_model") == 0)
		return set_choice(&p->image_nic_model, value, nic_models, where, key, err);
	if (strcmp(key, "firmware") == 0)
		return set_choice(&p->firmware, value, firmwares, where, key, err);
	if (strcmp(key, "video") == 0)
		return set_choice(&p->video, value, videos, where, key, err);
	if (strcmp(key, "usb") == 0)
		return set_choice(&p->usb, value, usbs, where, key, err);
	if (strcmp(key, "clock") == 0)
		return set_choice(&p->clock, value, clocks, where, key, err);
	if (strcmp(key, "disk_cache") == 0)
		return set_choice(&p->disk_cache, value, caches, where, key, err);
	if (strcmp(key, "answers") == 0)
		return set_choice(&p->answers, value, answer_methods, where, key, err);
	if (strcmp(key, "answers_media") == 0)
		return set_choice(&p->answers_media, value, answer_medias, where, key, err);
	if (strcmp(key, "machine") == 0) {
		if (!machine_valid(value)) {
			err_set(err, ERR_INVAL, "%smachine: '%s' is not one of pc|q35|"
			    "pc-i440fx-VERSION|pc-q35-VERSION", where, value);
			return -1;
		}
		set_str(&p->machine, value);
		return 0;
	}
	if (strcmp(key, "virtio_win") == 0) {
		for (i = 0; virtio_wins[i] != NULL; i++)
			if (strcmp(value, virtio_wins[i]) == 0) {
				p->virtio_win = (enum isoboot_virtio_win)i;
				return 0;
			}
		err_set(err, ERR_INVAL, "%svirtio_win: '%s' is not one of none|cdrom|floppy",
		    where, value);
		return -1;
	}
	if (strcmp(key, "secure_boot") == 0 || strcmp(key, "tpm") == 0) {
		if (ini_value_bool(value, &b, NULL, 0, key, err) == -1) {
			err_clear(err);
			err_set(err, ERR_INVAL, "%s%s: '%s' is not yes or no", where, key, value);
			return -1;
		}
		*(strcmp(key, "tpm") == 0 ? &p->tpm : &p->secure_boot) = b;
		return 0;
	}
	if (strcmp(key, "ram_mib") == 0 || strcmp(key, "vcpus") == 0) {
		int	 ram = strcmp(key, "ram_mib") == 0;

		if (ini_value_uint(value, ram ? 64 : 1, ram ? 4194304 : 512, &n, NULL, 0, key,
		    err) == -1) {
			err_clear(err);
			err_set(err, ERR_INVAL, "%s%s: '%s' is not a number in %s", where, key,
			    value, ram ? "64..4194304" : "1..512");
			return -1;
		}
		*(ram ? &p->ram_mib : &p->vcpus) = (unsigned)n;
		return 0;
	}
	err_set(err, ERR_INVAL, "%sunknown key '%s'", where, key);
	return -1;
}

/* ini_parse callback: profiles have no sections. */
static int
profile_ini_cb(void *arg, const char *section, const char *key, const char *value,
    const char *filename, int line, struct err *err)
{
	char	 where[512];

	snprintf(where, sizeof(where), "%s:%d: ", filename, line);
	if (*section != '\0') {
		err_set(err, ERR_INVAL, "%ssection [%s]: profiles have no sections", where,
		    section);
		return -1;
	}
	return profile_set_key(arg, key, value, where, err);
}

/* The defaults every profile starts from: generic Linux, virtio everywhere. */
static struct isoboot_profile *
profile_new(void)
{
	struct isoboot_profile	*p = xcalloc(1, sizeof(*p));

	p->name = xstrdup("linux");
	p->description = xstrdup("");
	p->os_type = xstrdup("linux");
	p->disk_bus = xstrdup("virtio");
	p->cdrom_bus = xstrdup("ide");
	p->nic_model = xstrdup("virtio");
	p->machine = xstrdup("pc");
	p->firmware = xstrdup("bios");
	p->video = xstrdup("vga");
	p->usb = xstrdup("none");
	p->clock = xstrdup("utc");
	p->disk_cache = xstrdup("unsafe");
	p->virtio_win = ISOBOOT_VIRTIO_WIN_NONE;
	p->ram_mib = 1024;
	p->vcpus = 1;
	p->answers = xstrdup("auto");
	p->answers_media = xstrdup("cdrom");
	return p;
}

/* Checks what single keys cannot: combinations. */
static int
profile_check(const struct isoboot_profile *p, const char *fn, struct err *err)
{
	if (isoboot_machine_is_q35(p->machine) &&
	    (strcmp(p->disk_bus, "ide") == 0 || strcmp(p->cdrom_bus, "ide") == 0)) {
		err_set(err, ERR_INVAL, "%s: machine %s has no IDE bus (use sata)", fn,
		    p->machine);
		return -1;
	}
	if (p->secure_boot && strcmp(p->firmware, "uefi") != 0) {
		err_set(err, ERR_INVAL, "%s: secure_boot needs firmware = uefi", fn);
		return -1;
	}
	if (p->secure_boot && !isoboot_machine_is_q35(p->machine)) {
		err_set(err, ERR_INVAL, "%s: secure_boot needs machine = q35 (SMM)", fn);
		return -1;
	}
	return 0;
}

/* Parses a profile from INI text; the name defaults to the file's base name. */
struct isoboot_profile *
isoboot_profile_parse(const char *text, const char *filename, struct err *err)
{
	struct isoboot_profile	*p;
	const char		*fn = filename != NULL ? filename : "<string>";
	const char		*base, *dot;

	p = profile_new();
	if (filename != NULL) {
		base = strrchr(filename, '/');
		base = base != NULL ? base + 1 : filename;
		dot = strrchr(base, '.');
		if (dot != NULL && dot != base) {
			free(p->name);
			p->name = xstrndup(base, (size_t)(dot - base));
		} else if (*base != '\0') {
			set_str(&p->name, base);
		}
	}
	if (ini_parse(text, fn, profile_ini_cb, p, err) == -1 || profile_check(p, fn, err) == -1)
		isoboot_profile_free(&p);
	return p;
}

/* Maps a Glance hw_* property to a profile key, or NULL when it is not one isoboot uses. */
static const char *
hw_key(const char *key)
{
	static const char *const map[][2] = {
		{ "hw_disk_bus", "disk_bus" },
		{ "hw_cdrom_bus", "cdrom_bus" },
		{ "hw_vif_model", "nic_model" },
		{ "hw_machine_type", "machine" },
		{ "hw_firmware_type", "firmware" },
		{ "hw_video_model", "video" },
	};
	size_t	 i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(key, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

/* Sets one key (profile key or Glance hw_* property); see isoboot.h. */
int
isoboot_profile_set(struct isoboot_profile *p, const char *key, const char *value,
    struct err *err)
{
	const char	*k = key;
	int		 was_q35 = isoboot_machine_is_q35(p->machine);

	if (strncmp(key, "hw_", 3) == 0) {
		k = hw_key(key);
		if (k == NULL)
			return 0;
	}
	if (profile_set_key(p, k, value, "", err) == -1) {
		if (k != key) {
			/* name the property the user set, not our key */
			char	 msg[sizeof(err->msg)];

			snprintf(msg, sizeof(msg), "%s", err->msg);
			err_clear(err);
			err_set(err, ERR_INVAL, "%s (from %s)", msg, key);
		}
		return -1;
	}
	if (strcmp(k, "nic_model") == 0 && k != key)
		set_str(&p->image_nic_model, value);
	if (strcmp(k, "machine") == 0 && !was_q35 && isoboot_machine_is_q35(p->machine))
		profile_ide_to_sata(p);
	return 0;
}

/* Frees a profile; accepts NULL. */
void
isoboot_profile_free(struct isoboot_profile **pp)
{
	struct isoboot_profile	*p;

	if (pp == NULL || *pp == NULL)
		return;
	p = *pp;
	free(p->name);
	free(p->description);
	free(p->os_type);
	free(p->disk_bus);
	free(p->cdrom_bus);
	free(p->nic_model);
	free(p->image_nic_model);
	free(p->machine);
	free(p->firmware);
	free(p->video);
	free(p->usb);
	free(p->clock);
	free(p->disk_cache);
	free(p->answers);
	free(p->answers_media);
	free(p);
	*pp = NULL;
}

/* Lower-cases s into out (truncating), dropping spaces, '-' and '_' ("Server 2003 R2" → "server2003r2"). */
static void
norm(const char *s, char *out, size_t size)
{
	size_t	 n = 0;

	for (; s != NULL && *s != '\0' && n + 1 < size; s++)
		if (!isspace((unsigned char)*s) && *s != '-' && *s != '_')
			out[n++] = (char)tolower((unsigned char)*s);
	out[n] = '\0';
}

/* The leading number of s ("12.04" → 12, "8.1" → 8), or -1. */
static long
major_of(const char *s)
{
	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	return strtol(s, NULL, 10);
}

/* Windows profile from a version ("2003r2", "xp", "10", "2k19", "11"; no "win" prefix). */
static const char *
choose_windows(const char *v)
{
	static const char *const legacy[] = { "2k", "2000", "xp", "2k3", "2003", "2k3r2",
		"2003r2", "server2003", "server2003r2", "nt", "nt4", "me", "98", "95", NULL };
	static const char *const modern[] = { "11", "2k22", "2022", "2k25", "2025",
		"server2022", "server2025", NULL };

	if (in_list(v, legacy))
		return "windows-legacy";
	if (in_list(v, modern))
		return "windows-modern";
	return "windows";
}

/* Linux-or-like by distro family and major version: old kernels lack virtio. */
static const char *
choose_unix(const char *distro, long major)
{
	static const struct {
		const char	*distro;
		long		 first_virtio;	/* first major version with virtio in the installer */
	} table[] = {
		{ "rhel", 6 }, { "redhat", 6 }, { "centos", 6 }, { "oraclelinux", 6 },
		{ "ol", 6 }, { "sl", 6 }, { "scientificlinux", 6 },
		{ "fedora", 9 }, { "debian", 6 }, { "ubuntu", 8 },
		{ "sles", 11 }, { "sled", 11 }, { "opensuse", 11 },
		{ "freebsd", 10 }, { "netbsd", 6 }, { "openbsd", 5 }, { "mandriva", 2009 },
		{ "mandrake", 100000 },
	};
	size_t	 i;

	/* Glance's os_distro values for systems without virtio drivers */
	if (strcmp(distro, "msdos") == 0 || strcmp(distro, "freedos") == 0 ||
	    strcmp(distro, "netware") == 0 || strcmp(distro, "opensolaris") == 0 ||
	    strcmp(distro, "solaris") == 0)
		return "linux-novirtio";
	if (major < 0)
		return "linux";
	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strcmp(distro, table[i].distro) == 0)
			return major < table[i].first_virtio ? "linux-novirtio" : "linux";
	return "linux";
}

/* Splits a libosinfo short id ("debian12", "rhel4.8", "opensuse15.4") into family + major. */
static int
split_osinfo(const char *id, char *family, size_t size, long *major)
{
	size_t	 n = 0;

	while (id[n] != '\0' && !isdigit((unsigned char)id[n]))
		n++;
	if (n == 0 || id[n] == '\0' || n >= size)
		return -1;
	memcpy(family, id, n);
	family[n] = '\0';
	*major = major_of(id + n);
	return 0;
}

/* Chooses a profile name from an OS triple; see isoboot.h. */
const char *
isoboot_profile_choose(const char *os_type, const char *os_distro, const char *os_version)
{
	char	 type[32], distro[64], version[64], family[64];
	long	 major;

	norm(os_type, type, sizeof(type));
	norm(os_distro, distro, sizeof(distro));
	norm(os_version, version, sizeof(version));

	/* libosinfo short ids: win2k3r2, win2k19, win10, win11, winxp; or "windows11" */
	if (strncmp(distro, "windows", 7) == 0 && distro[7] != '\0')
		return choose_windows(distro + 7);
	if (strncmp(distro, "win", 3) == 0 && strcmp(distro, "windows") != 0)
		return choose_windows(distro + 3);
	if (strcmp(distro, "windows") == 0 || strcmp(distro, "microsoft") == 0 ||
	    (distro[0] == '\0' && strcmp(type, "windows") == 0)) {
		if (strncmp(version, "windows", 7) == 0)
			return choose_windows(version + 7);
		if (strncmp(version, "win", 3) == 0)
			return choose_windows(version + 3);
		return choose_windows(version);
	}
	if (distro[0] != '\0') {
		if (split_osinfo(distro, family, sizeof(family), &major) == 0)
			return choose_unix(family, major);
		return choose_unix(distro, major_of(version));
	}
	return "linux";
}

/* A string property of a JSON object, or NULL. */
static const char *
prop_str(const json_t *props, const char *key)
{
	return props != NULL ? json_string_value(json_object_get(props, key)) : NULL;
}

/* The request's OS triple, else the image's os_* properties; see isoboot.h. */
const char *
isoboot_profile_choose_for(const char *os_type, const char *os_distro, const char *os_version,
    const json_t *image_props)
{
	if (os_type != NULL || os_distro != NULL || os_version != NULL)
		return isoboot_profile_choose(os_type, os_distro, os_version);
	return isoboot_profile_choose(prop_str(image_props, "os_type"),
	    prop_str(image_props, "os_distro"), prop_str(image_props, "os_version"));
}

/* Applies hw_* properties in key order (jansson keeps insertion order); see isoboot.h. */
int
isoboot_profile_apply_properties(struct isoboot_profile *p, const json_t *image_props,
    struct err *err)
{
	const char	*key;
	json_t		*v;

	if (image_props == NULL)
		return 0;
	json_object_foreach((json_t *)image_props, key, v) {
		if (strncmp(key, "hw_", 3) != 0 || !json_is_string(v))
			continue;
		if (isoboot_profile_set(p, key, json_string_value(v), err) == -1)
			return -1;
	}
	return 0;
}
