/*
 * isoboot.h — the heart of isoforge: OS profile + flavor + media → an ordered block-device
 * plan → libvirt domain XML, and the Nova properties of the built image.
 *
 * Pure code: no file, network or process I/O (callers read templates and check files).
 * Every string a caller passes in is copied; every object returned is owned by the caller.
 */
#ifndef ISOFORGE_ISOBOOT_H
#define ISOFORGE_ISOBOOT_H

#include <stddef.h>
#include <jansson.h>

#include "base/util.h"

/* The namespace of isoforge's element in a domain's <metadata> (build id, name, profile,
 * owner). */
#define ISOBOOT_XMLNS	"https://isoforge.dev/xmlns/libvirt/build/1"

/* How an OS gets the virtio drivers it lacks. */
enum isoboot_virtio_win {
	ISOBOOT_VIRTIO_WIN_NONE = 0,	/* the OS has them (or does not use virtio) */
	ISOBOOT_VIRTIO_WIN_CDROM,	/* Windows Vista / 2008 and later: a second CD-ROM */
	ISOBOOT_VIRTIO_WIN_FLOPPY	/* Windows XP / 2003 R2 and older: F6 from a floppy */
};

/*
 * An OS profile (templates/profiles/NAME.conf, keys of the same names). Strings are
 * validated on parse: buses virtio|sata|ide, NIC e1000|e1000e|rtl8139|virtio|..., machine
 * pc|q35 (or a versioned pc-i440fx-* / pc-q35-*), firmware bios|uefi.
 */
struct isoboot_profile {
	char			*name;		/* file's base name, or name = ... */
	char			*description;
	char			*os_type;	/* linux | windows: Nova's os_type */
	char			*disk_bus;	/* root disk: virtio | sata | ide */
	char			*cdrom_bus;	/* ide | sata (q35 has no IDE) */
	char			*nic_model;	/* during the install */
	char			*image_nic_model; /* hw_vif_model of the image; default nic_model */
	char			*machine;	/* pc | q35 | pc-i440fx-X | pc-q35-X */
	char			*firmware;	/* bios | uefi */
	int			 secure_boot;	/* uefi only */
	int			 tpm;		/* an emulated TPM 2.0 (tpm-crb, swtpm) */
	char			*video;		/* vga | virtio | qxl | cirrus | bochs | none */
	char			*usb;		/* none | uhci | xhci: a USB tablet when not none */
	char			*clock;		/* utc | localtime */
	char			*disk_cache;	/* root disk cache mode: unsafe | none | writeback ... */
	enum isoboot_virtio_win	 virtio_win;
	unsigned		 ram_mib;	/* default RAM; also the image's min_ram */
	unsigned		 vcpus;		/* default vCPUs */
	char			*answers;	/* unattended installs: auto (by the OS: see
						 * isoboot_answers_method_for) | none | preseed |
						 * autoinstall | kickstart | autounattend */
	char			*answers_media;	/* cdrom | floppy: where a volume of answers goes */
};

/* Parses a profile from INI text (no section needed); errors name "FILE:LINE". */
struct isoboot_profile *isoboot_profile_parse(const char *text, const char *filename,
	    struct err *);
/* Sets one profile key (the .conf keys) or a Glance hw_* property (hw_disk_bus, hw_cdrom_bus,
 * hw_vif_model, hw_machine_type, hw_firmware_type, hw_video_model); unknown hw_* keys are
 * ignored (returns 0), bad values fail. Switching machine to q35 moves IDE buses to SATA. */
int	isoboot_profile_set(struct isoboot_profile *, const char *key, const char *value,
	    struct err *);
void	isoboot_profile_free(struct isoboot_profile **);

/*
 * Profile name from an OS triple (the request's, else the ISO image's Glance os_type,
 * os_distro, os_version; any may be NULL): "linux", "linux-novirtio", "windows",
 * "windows-legacy" (XP / 2003 R2 and older), "windows-modern" (11, Server 2022 and later).
 * Understands Glance's os_distro values (windows, ubuntu, debian, rhel, centos, fedora,
 * opensuse, sles, freebsd, ...) with os_version, and libosinfo short ids (win2k3r2,
 * win2k19, win11, debian12, rhel4.8, ...). Unknown → "linux". Returns a static string.
 */
const char *isoboot_profile_choose(const char *os_type, const char *os_distro,
	    const char *os_version);

/*
 * The whole rule: the request's OS triple when any of it is given, else the ISO image's Glance
 * properties os_type, os_distro, os_version (image_props: a JSON object or NULL).
 */
const char *isoboot_profile_choose_for(const char *os_type, const char *os_distro,
	    const char *os_version, const json_t *image_props);
/* Applies the image's Glance hw_* properties (string values) to a profile, as
 * isoboot_profile_set; other properties are ignored. */
int	isoboot_profile_apply_properties(struct isoboot_profile *, const json_t *image_props,
	    struct err *);

/* The flavor's size; 0 vcpus / ram_mib take the profile's defaults, disk_gib is required. */
struct isoboot_flavor {
	unsigned	 vcpus;
	unsigned	 ram_mib;
	unsigned	 disk_gib;
};

/* Absolute paths (libvirt requires them); NULL = not attached. */
struct isoboot_media {
	const char	*root_disk;	/* the fresh qcow2 (required) */
	const char	*iso;		/* the OS ISO (required) */
	const char	*virtio_win;	/* ISO, or a floppy image for ISOBOOT_VIRTIO_WIN_FLOPPY */
	const char	*floppy;	/* an extra floppy image, e.g. answer files */
	const char *const *extra_cdroms; /* NULL-terminated extra CD-ROM images (answer-file
					  * ISOs, ...), at most ISOBOOT_MAX_EXTRA; NULL = none */
	const char	*answers;	/* the answers volume (cidata, OEMDRV, autounattend), or
					 * NULL; a CD-ROM, or a floppy with answers_floppy */
	int		 answers_floppy;
	/* direct kernel boot (d-i with a preseed in its initrd): the three, or none; the
	 * installer then starts from these, the ISO stays attached as its CD-ROM */
	const char	*kernel;
	const char	*initrd;
	const char	*cmdline;
};

struct isoboot_params {
	const char	*build_id;	/* [A-Za-z0-9._-], ≤ 64: domain "isoforge-<build_id>" */
	const char	*name;		/* the image name (any text; description + metadata) */
	const char	*domain_type;	/* "kvm" | "qemu"; NULL = "kvm" */
	const char	*firmware;	/* "bios" | "uefi"; NULL = the profile's */
	const char	*vnc_listen;	/* NULL = "127.0.0.1" */
	const char	*vnc_password;	/* ≤ 8 characters (libvirt's limit); NULL = none */
	const char	*serial_log;	/* serial console → this file; NULL = a pty */
	const char	*nvram;		/* UEFI variables file or NULL (libvirt's default) */
	/* The guest's one NIC (drivers/guestnet.h resolves the guest network policy to these):
	 * a libvirt network, or else a host bridge; both NULL = no NIC at all. isoboot never
	 * writes user-mode networking (it reaches the host's loopback). */
	const char	*network;	/* libvirt network name */
	const char	*bridge;	/* host bridge (an interface name), when network is NULL */
	const char	*owner;		/* who made the domain (a worker's host name), written
					 * in its metadata; NULL = nobody in particular */
	const char	*answers_method; /* unattended: isoboot_answers_method_name(); NULL */
	int		 disk_only;	/* the installed disk alone (customizing, derived
					 * builds): no OS ISO, no virtio-win, extra media only */
	int		 headless;	/* nobody watches (unattended): no VNC, no tablet, no
					 * USB controller, and no video device for an OS that
					 * installs on the serial console (not Windows) */
};

/* One device of the plan, in boot-relevant order. */
enum isoboot_device_kind { ISOBOOT_DISK, ISOBOOT_CDROM, ISOBOOT_FLOPPY };
enum isoboot_device_role {
	ISOBOOT_ROLE_ROOT, ISOBOOT_ROLE_OS_ISO, ISOBOOT_ROLE_VIRTIO_WIN, ISOBOOT_ROLE_EXTRA,
	ISOBOOT_ROLE_ANSWERS
};

struct isoboot_device {
	enum isoboot_device_kind  kind;
	enum isoboot_device_role  role;
	char			 *path;
	const char		 *format;	/* "qcow2" | "raw" */
	const char		 *bus;		/* virtio | sata | ide | fdc */
	char			  target[8];	/* vda, hda, sda, fda, ... */
	int			  boot_order;	/* 0 = not bootable */
	int			  readonly;
};

#define ISOBOOT_MAX_EXTRA	8
#define ISOBOOT_MAX_DEVICES	(5 + ISOBOOT_MAX_EXTRA)

/* The plan: everything the domain XML needs, validated; owns its strings. */
struct isoboot_plan {
	char			*domain_name;	/* isoforge-<build_id> */
	char			*build_id;
	char			*name;
	char			*profile;	/* profile name */
	char			*os_type;
	char			*domain_type;
	char			*machine;
	char			*firmware;	/* bios | uefi */
	int			 secure_boot;
	int			 tpm;
	char			*video;
	char			*usb;
	char			*clock;
	char			*disk_cache;
	char			*disk_bus;
	char			*cdrom_bus;
	char			*nic_model;
	char			*image_nic_model;
	unsigned		 vcpus;
	unsigned		 ram_mib;
	unsigned		 disk_gib;
	unsigned		 min_ram_mib;
	char			*vnc_listen;
	char			*vnc_password;
	char			*serial_log;
	char			*nvram;
	char			*network;	/* NIC on this libvirt network, or */
	char			*bridge;	/* on this host bridge; both NULL: no NIC */
	char			*owner;
	char			*answers_method; /* NULL: an interactive install */
	int			 headless;	/* see isoboot_params */
	char			*kernel;	/* direct kernel boot, or NULL */
	char			*initrd;
	char			*cmdline;
	struct isoboot_device	 devices[ISOBOOT_MAX_DEVICES];
	size_t			 ndevices;
};

/*
 * Builds the device plan: root disk first (boot order 1: firmware skips it while blank and
 * boots it once it holds a system), the OS ISO (boot order 2), virtio-win as CD-ROM or
 * floppy, extra media; targets valid for the machine (IDE hda.. on pc, at most 4; SATA
 * sda.. on q35). Errors (ERR_INVAL): no disk size, missing media, a bus the machine lacks,
 * too many IDE devices, bad names. Caller frees with isoboot_plan_free.
 */
struct isoboot_plan *isoboot_plan_build(const struct isoboot_profile *,
	    const struct isoboot_flavor *, const struct isoboot_media *,
	    const struct isoboot_params *, struct err *);

/*
 * Domain XML = base template (templates/domain.xml text: operator's CPU, features, extra
 * devices) + the plan, written with libxml2 (every value escaped). The plan replaces what it
 * owns (name, memory, vcpu, os, disks, NICs, graphics, serial, TPM, USB, video) and keeps
 * the rest. on_poweroff destroy (the install ends at power-off), on_reboot restart
 * (installers reboot). Caller frees. Thread-safe once libxml2 is initialised: a threaded
 * program calls xmlInitParser() from its main thread before starting threads.
 */
char	*isoboot_domain_xml(const struct isoboot_plan *, const char *base_xml, struct err *);

/*
 * Nova's properties for the built image: hw_disk_bus, hw_vif_model, hw_machine_type,
 * hw_firmware_type, hw_cdrom_bus, hw_video_model, hw_tpm_* (with a TPM), os_type (strings),
 * and min_disk, min_ram (integers, top-level image fields in Glance). os_distro/os_version
 * are added by the caller when known. New reference; caller json_decref()s.
 */
json_t	*isoboot_image_properties(const struct isoboot_plan *);
void	 isoboot_plan_free(struct isoboot_plan **);

#endif
