/* plan.c — profile + flavor + media → an ordered, validated block-device plan. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/xmlstring.h>

#include "isoboot/isoboot.h"
#include "isoboot/isoboot_int.h"
#include "base/util.h"

#define IDE_MAX		4	/* two channels, master and slave */
#define SATA_MAX	6	/* one AHCI controller */
#define FDC_MAX		2

/* 0 when s is valid UTF-8 without control characters, else -1 with err naming what. */
static int
check_text(const char *what, const char *s, size_t max, struct err *err)
{
	const unsigned char	*p;
	size_t			 len = strlen(s);

	if (len > max) {
		err_set(err, ERR_INVAL, "%s: longer than %zu bytes", what, max);
		return -1;
	}
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f) {
			err_set(err, ERR_INVAL, "%s: contains a control character", what);
			return -1;
		}
	if (len > 0 && !xmlCheckUTF8((const xmlChar *)s)) {
		err_set(err, ERR_INVAL, "%s: not valid UTF-8", what);
		return -1;
	}
	return 0;
}

/* An absolute path (libvirt requires them) of printable UTF-8. */
static int
check_path(const char *what, const char *path, struct err *err)
{
	if (path == NULL || *path == '\0') {
		err_set(err, ERR_INVAL, "%s: a path is required", what);
		return -1;
	}
	if (path[0] != '/') {
		err_set(err, ERR_INVAL, "%s: '%s' is not an absolute path", what, path);
		return -1;
	}
	return check_text(what, path, 4096, err);
}

/* [A-Za-z0-9._-] only, 1..max characters. */
static int
check_token(const char *what, const char *s, size_t max, const char *extra, struct err *err)
{
	const char	*p;

	if (s == NULL || *s == '\0') {
		err_set(err, ERR_INVAL, "%s: required", what);
		return -1;
	}
	if (strlen(s) > max) {
		err_set(err, ERR_INVAL, "%s: longer than %zu characters", what, max);
		return -1;
	}
	for (p = s; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr(extra, *p) == NULL) {
			err_set(err, ERR_INVAL, "%s: '%s' may only hold letters, digits and %s",
			    what, s, extra);
			return -1;
		}
	return 0;
}

/* Appends a device to the plan (paths copied). */
static void
plan_add(struct isoboot_plan *pl, enum isoboot_device_kind kind, enum isoboot_device_role role,
    const char *path, const char *bus, int boot_order)
{
	struct isoboot_device	*d = &pl->devices[pl->ndevices++];

	d->kind = kind;
	d->role = role;
	d->path = xstrdup(path);
	d->bus = kind == ISOBOOT_FLOPPY ? "fdc" : bus;
	d->format = kind == ISOBOOT_DISK ? "qcow2" : "raw";
	d->boot_order = boot_order;
	d->readonly = kind != ISOBOOT_DISK;
}

/* What a device is, for errors ("virtio-win", "extra CD-ROM"). */
static const char *
role_name(const struct isoboot_device *d)
{
	switch (d->role) {
	case ISOBOOT_ROLE_ROOT:
		return "root disk";
	case ISOBOOT_ROLE_OS_ISO:
		return "OS ISO";
	case ISOBOOT_ROLE_VIRTIO_WIN:
		return "virtio-win";
	case ISOBOOT_ROLE_ANSWERS:
		return d->kind == ISOBOOT_FLOPPY ? "answers floppy" : "answers CD-ROM";
	case ISOBOOT_ROLE_EXTRA:
		break;
	}
	return d->kind == ISOBOOT_FLOPPY ? "extra floppy" : "extra CD-ROM";
}

/* Gives each device its target name on its bus; fails when a bus is full or absent. */
static int
plan_targets(struct isoboot_plan *pl, struct err *err)
{
	static const struct {
		const char	*bus;
		const char	*prefix;
		size_t		 max;
		const char	*range;
		const char	*display;
	} buses[] = {
		{ "virtio", "vd", 26, "vda-vdz", "virtio" },
		{ "ide", "hd", IDE_MAX, "hda-hdd", "IDE" },
		{ "sata", "sd", SATA_MAX, "sda-sdf", "SATA" },
		{ "fdc", "fd", FDC_MAX, "fda-fdb", "floppy" },
	};
	struct buf	 list;
	size_t		 b, i, n;
	int		 q35 = isoboot_machine_is_q35(pl->machine);

	for (b = 0; b < sizeof(buses) / sizeof(buses[0]); b++) {
		n = 0;
		for (i = 0; i < pl->ndevices; i++)
			if (strcmp(pl->devices[i].bus, buses[b].bus) == 0)
				n++;
		if (n == 0)
			continue;
		if (q35 && strcmp(buses[b].bus, "ide") == 0) {
			err_set(err, ERR_INVAL, "machine %s has no IDE bus (libvirt rejects it): "
			    "use sata for disk_bus and cdrom_bus", pl->machine);
			return -1;
		}
		if (n > buses[b].max) {
			buf_init(&list);
			for (i = 0; i < pl->ndevices; i++)
				if (strcmp(pl->devices[i].bus, buses[b].bus) == 0)
					buf_printf(&list, "%s%s", list.len > 0 ? ", " : "",
					    role_name(&pl->devices[i]));
			err_set(err, ERR_INVAL, "%zu devices on the %s bus (%s), which takes at "
			    "most %zu (%s)", n, buses[b].display, list.data, buses[b].max,
			    buses[b].range);
			buf_free(&list);
			return -1;
		}
		n = 0;
		for (i = 0; i < pl->ndevices; i++)
			if (strcmp(pl->devices[i].bus, buses[b].bus) == 0)
				snprintf(pl->devices[i].target, sizeof(pl->devices[i].target),
				    "%s%c", buses[b].prefix, (char)('a' + n++));
	}
	return 0;
}

/* Builds the plan; see isoboot.h. */
struct isoboot_plan *
isoboot_plan_build(const struct isoboot_profile *pr, const struct isoboot_flavor *fl,
    const struct isoboot_media *me, const struct isoboot_params *pa, struct err *err)
{
	struct isoboot_plan	*pl;
	const char		*firmware, *dtype, *listen;
	size_t			 i;

	if (pr == NULL || fl == NULL || me == NULL || pa == NULL) {
		err_set(err, ERR_INTERNAL, "isoboot_plan_build: missing argument");
		return NULL;
	}
	if (fl->disk_gib == 0) {
		err_set(err, ERR_INVAL, "a root disk size is required (the flavor's disk is 0 GiB)");
		return NULL;
	}
	if (fl->disk_gib > 65536) {
		err_set(err, ERR_INVAL, "root disk: %u GiB is more than 65536", fl->disk_gib);
		return NULL;
	}
	if (fl->vcpus > 512 || fl->ram_mib > 4194304) {
		err_set(err, ERR_INVAL, "flavor: %u vCPUs / %u MiB RAM is out of range (at most "
		    "512 / 4194304)", fl->vcpus, fl->ram_mib);
		return NULL;
	}
	if (check_token("build id", pa->build_id, 64, "._-", err) == -1)
		return NULL;
	if (pa->name != NULL && check_text("name", pa->name, 255, err) == -1)
		return NULL;
	dtype = pa->domain_type != NULL ? pa->domain_type : "kvm";
	if (strcmp(dtype, "kvm") != 0 && strcmp(dtype, "qemu") != 0) {
		err_set(err, ERR_INVAL, "domain type: '%s' is not one of kvm|qemu", dtype);
		return NULL;
	}
	firmware = pa->firmware != NULL ? pa->firmware : pr->firmware;
	if (strcmp(firmware, "bios") != 0 && strcmp(firmware, "uefi") != 0) {
		err_set(err, ERR_INVAL, "firmware: '%s' is not one of bios|uefi", firmware);
		return NULL;
	}
	listen = pa->vnc_listen != NULL ? pa->vnc_listen : "127.0.0.1";
	if (check_token("VNC listen address", listen, 255, ".:-", err) == -1)
		return NULL;
	if (pa->vnc_password != NULL) {
		if (strlen(pa->vnc_password) > 8) {
			err_set(err, ERR_INVAL, "VNC password: longer than 8 characters (libvirt's "
			    "limit)");
			return NULL;
		}
		if (check_text("VNC password", pa->vnc_password, 8, err) == -1)
			return NULL;
	}
	if (pa->owner != NULL && check_text("owner", pa->owner, 255, err) == -1)
		return NULL;
	if (pa->network != NULL && (check_text("network", pa->network, 255, err) == -1 ||
	    check_token("network", pa->network, 255, "._-", err) == -1))
		return NULL;
	if (pa->bridge != NULL && pa->network != NULL) {
		err_set(err, ERR_INVAL, "a NIC on a network or on a bridge, not both");
		return NULL;
	}
	/* a Linux interface name: at most 15 bytes (IFNAMSIZ - 1), no '/' or blanks */
	if (pa->bridge != NULL && (check_text("bridge", pa->bridge, 15, err) == -1 ||
	    check_token("bridge", pa->bridge, 15, "._-", err) == -1))
		return NULL;
	if (check_path("root disk", me->root_disk, err) == -1)
		return NULL;
	if (!pa->disk_only && (me->iso == NULL || *me->iso == '\0')) {
		err_set(err, ERR_INVAL, "an OS ISO is required");
		return NULL;
	}
	if ((!pa->disk_only && check_path("OS ISO", me->iso, err) == -1) ||
	    (me->virtio_win != NULL && check_path("virtio-win", me->virtio_win, err) == -1) ||
	    (me->floppy != NULL && check_path("floppy image", me->floppy, err) == -1) ||
	    (pa->serial_log != NULL && check_path("serial log", pa->serial_log, err) == -1) ||
	    (pa->nvram != NULL && check_path("nvram", pa->nvram, err) == -1))
		return NULL;
	if (me->answers != NULL && check_path("answers volume", me->answers, err) == -1)
		return NULL;
	if ((me->kernel != NULL) != (me->initrd != NULL) ||
	    (me->cmdline != NULL && me->kernel == NULL)) {
		err_set(err, ERR_INVAL, "direct kernel boot needs a kernel and an initrd");
		return NULL;
	}
	if (me->kernel != NULL && (check_path("kernel", me->kernel, err) == -1 ||
	    check_path("initrd", me->initrd, err) == -1 ||
	    (me->cmdline != NULL && check_text("kernel command line", me->cmdline, 4096,
	    err) == -1)))
		return NULL;
	if (pa->answers_method != NULL &&
	    check_token("answers method", pa->answers_method, 32, "-", err) == -1)
		return NULL;
	for (i = 0; me->extra_cdroms != NULL && me->extra_cdroms[i] != NULL; i++) {
		if (i == ISOBOOT_MAX_EXTRA) {
			err_set(err, ERR_INVAL, "more than %d extra CD-ROMs", ISOBOOT_MAX_EXTRA);
			return NULL;
		}
		if (check_path("extra CD-ROM", me->extra_cdroms[i], err) == -1)
			return NULL;
	}
	if (pr->virtio_win != ISOBOOT_VIRTIO_WIN_NONE && me->virtio_win == NULL && !pa->disk_only) {
		err_set(err, ERR_INVAL, "profile %s needs the virtio-win drivers (%s): none given",
		    pr->name, pr->virtio_win == ISOBOOT_VIRTIO_WIN_FLOPPY ?
		    "a floppy image, virtio-win_x86.vfd" : "the virtio-win ISO");
		return NULL;
	}

	pl = xcalloc(1, sizeof(*pl));
	pl->build_id = xstrdup(pa->build_id);
	pl->domain_name = xasprintf("isoforge-%s", pa->build_id);
	pl->name = xstrdup(pa->name != NULL ? pa->name : "");
	pl->profile = xstrdup(pr->name);
	pl->os_type = xstrdup(pr->os_type);
	pl->domain_type = xstrdup(dtype);
	pl->machine = xstrdup(pr->machine);
	pl->firmware = xstrdup(firmware);
	pl->secure_boot = pr->secure_boot && strcmp(firmware, "uefi") == 0;
	pl->tpm = pr->tpm;
	pl->video = xstrdup(pr->video);
	pl->usb = xstrdup(pr->usb);
	pl->clock = xstrdup(pr->clock);
	pl->disk_cache = xstrdup(pr->disk_cache);
	pl->disk_bus = xstrdup(pr->disk_bus);
	pl->cdrom_bus = xstrdup(pr->cdrom_bus);
	pl->nic_model = xstrdup(pr->nic_model);
	pl->image_nic_model = xstrdup(pr->image_nic_model != NULL ? pr->image_nic_model :
	    pr->nic_model);
	pl->vcpus = fl->vcpus != 0 ? fl->vcpus : pr->vcpus;
	pl->ram_mib = fl->ram_mib != 0 ? fl->ram_mib : pr->ram_mib;
	pl->disk_gib = fl->disk_gib;
	pl->min_ram_mib = pr->ram_mib < pl->ram_mib ? pr->ram_mib : pl->ram_mib;
	pl->vnc_listen = xstrdup(listen);
	pl->headless = pa->headless;
	pl->vnc_password = pa->vnc_password != NULL ? xstrdup(pa->vnc_password) : NULL;
	pl->serial_log = pa->serial_log != NULL ? xstrdup(pa->serial_log) : NULL;
	pl->nvram = pa->nvram != NULL ? xstrdup(pa->nvram) : NULL;
	pl->network = pa->network != NULL ? xstrdup(pa->network) : NULL;
	pl->owner = pa->owner != NULL ? xstrdup(pa->owner) : NULL;
	pl->bridge = pa->bridge != NULL ? xstrdup(pa->bridge) : NULL;
	pl->answers_method = pa->answers_method != NULL ? xstrdup(pa->answers_method) : NULL;
	pl->kernel = me->kernel != NULL ? xstrdup(me->kernel) : NULL;
	pl->initrd = me->initrd != NULL ? xstrdup(me->initrd) : NULL;
	pl->cmdline = me->cmdline != NULL ? xstrdup(me->cmdline) : NULL;

	/* root disk first in boot order: blank, firmware falls through to the CD;
	 * installed, it boots — so installer reboots come back to the new system */
	plan_add(pl, ISOBOOT_DISK, ISOBOOT_ROLE_ROOT, me->root_disk, pl->disk_bus, 1);
	/* disk_only: the installed system alone, with what it is handed (extra media) */
	if (!pa->disk_only)
		plan_add(pl, ISOBOOT_CDROM, ISOBOOT_ROLE_OS_ISO, me->iso, pl->cdrom_bus, 2);
	if (!pa->disk_only && me->virtio_win != NULL)
		plan_add(pl, pr->virtio_win == ISOBOOT_VIRTIO_WIN_FLOPPY ? ISOBOOT_FLOPPY :
		    ISOBOOT_CDROM, ISOBOOT_ROLE_VIRTIO_WIN, me->virtio_win, pl->cdrom_bus, 0);
	for (i = 0; me->extra_cdroms != NULL && me->extra_cdroms[i] != NULL; i++)
		plan_add(pl, ISOBOOT_CDROM, ISOBOOT_ROLE_EXTRA, me->extra_cdroms[i], pl->cdrom_bus,
		    0);
	if (me->answers != NULL)
		plan_add(pl, me->answers_floppy ? ISOBOOT_FLOPPY : ISOBOOT_CDROM,
		    ISOBOOT_ROLE_ANSWERS, me->answers, pl->cdrom_bus, 0);
	if (me->floppy != NULL)
		plan_add(pl, ISOBOOT_FLOPPY, ISOBOOT_ROLE_EXTRA, me->floppy, NULL, 0);
	if (plan_targets(pl, err) == -1)
		isoboot_plan_free(&pl);
	return pl;
}

/* Nova's properties for the image built from this plan; see isoboot.h. */
json_t *
isoboot_image_properties(const struct isoboot_plan *pl)
{
	json_t	*o = json_object();

	json_object_set_new(o, "hw_disk_bus", json_string(pl->disk_bus));
	json_object_set_new(o, "hw_cdrom_bus", json_string(pl->cdrom_bus));
	json_object_set_new(o, "hw_vif_model", json_string(pl->image_nic_model));
	json_object_set_new(o, "hw_machine_type", json_string(pl->machine));
	json_object_set_new(o, "hw_firmware_type", json_string(pl->firmware));
	json_object_set_new(o, "hw_video_model", json_string(pl->video));
	if (pl->tpm) {
		json_object_set_new(o, "hw_tpm_version", json_string("2.0"));
		json_object_set_new(o, "hw_tpm_model", json_string("tpm-crb"));
	}
	json_object_set_new(o, "os_type", json_string(pl->os_type));
	json_object_set_new(o, "min_disk", json_integer(pl->disk_gib));
	json_object_set_new(o, "min_ram", json_integer(pl->min_ram_mib));
	return o;
}

/* Frees a plan; accepts NULL. */
void
isoboot_plan_free(struct isoboot_plan **pp)
{
	struct isoboot_plan	*pl;
	size_t			 i;

	if (pp == NULL || *pp == NULL)
		return;
	pl = *pp;
	for (i = 0; i < pl->ndevices; i++)
		free(pl->devices[i].path);
	free(pl->domain_name);
	free(pl->build_id);
	free(pl->name);
	free(pl->profile);
	free(pl->os_type);
	free(pl->domain_type);
	free(pl->machine);
	free(pl->firmware);
	free(pl->video);
	free(pl->usb);
	free(pl->clock);
	free(pl->disk_cache);
	free(pl->disk_bus);
	free(pl->cdrom_bus);
	free(pl->nic_model);
	free(pl->image_nic_model);
	free(pl->vnc_listen);
	free(pl->vnc_password);
	free(pl->serial_log);
	free(pl->nvram);
	free(pl->network);
	free(pl->owner);
	free(pl->bridge);
	free(pl->answers_method);
	free(pl->kernel);
	free(pl->initrd);
	free(pl->cmdline);
	free(pl);
	*pp = NULL;
}
