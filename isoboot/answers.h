/*
 * answers.h — unattended installs: the answer files isoforge writes from operator-editable
 * templates (templates/answers/), the media that carry them, and the d-i boot line.
 *
 * Pure code: no file, network or process I/O. Callers read the templates and the ISO, write
 * the results (service/pipeline/answers.c). Every object returned is owned by the caller.
 */
#ifndef ISOFORGE_ANSWERS_H
#define ISOFORGE_ANSWERS_H

#include <stddef.h>

#include "base/util.h"

/* How an installer is told its answers. */
enum isoboot_answers_method {
	ISOBOOT_ANSWERS_NONE = 0,
	ISOBOOT_ANSWERS_PRESEED,	/* Debian / Ubuntu d-i: preseed.cfg in a copy of the initrd */
	ISOBOOT_ANSWERS_AUTOINSTALL,	/* Ubuntu live-server: user-data + meta-data, volume cidata */
	ISOBOOT_ANSWERS_KICKSTART,	/* RHEL family (Anaconda): ks.cfg on a volume OEMDRV */
	ISOBOOT_ANSWERS_AUTOUNATTEND	/* Windows setup: autounattend.xml on a CD or floppy */
};

/* "none", "preseed", ... */
const char *isoboot_answers_method_name(enum isoboot_answers_method);
/* The method of that name ("none", "preseed", "autoinstall", "kickstart", "autounattend"),
 * or -1. "auto" is not a method: see isoboot_answers_method_for. */
int	isoboot_answers_method_from_name(const char *);
/*
 * The method for a profile's `answers` key (NULL or "auto": by the OS — debian → preseed,
 * ubuntu < 20.04 → preseed, ubuntu → autoinstall, rhel/centos/fedora/rocky/alma/oraclelinux →
 * kickstart, windows → autounattend, else none) and the OS triple (any may be NULL).
 * Returns -1 for an unknown key value.
 */
int	isoboot_answers_method_for(const char *profile_answers, const char *os_type,
	    const char *os_distro, const char *os_version);

/* What one method needs: its template, the file it makes, how the file reaches the guest. */
struct isoboot_answers_info {
	enum isoboot_answers_method	 method;
	const char			*template_name;	/* in templates/answers/ */
	const char			*file_name;	/* the rendered file's name on its medium */
	const char			*volume_label;	/* NULL: appended to the initrd (preseed) */
};
/* The method's description (static), or NULL for ISOBOOT_ANSWERS_NONE. */
const struct isoboot_answers_info *isoboot_answers_info(enum isoboot_answers_method);

/*
 * The answers of one build, as the request gives them (NULL = the default, in brackets).
 * Every value is checked by isoboot_answers_render: printable UTF-8 without quotes,
 * backslashes or control characters where it lands in shell or config lines.
 */
struct isoboot_answers {
	const char		*build_id;	/* required: in a comment of every file */
	const char		*hostname;	/* [isoforge]: letters, digits, '-' (RFC 1123) */
	const char		*domain;	/* [localdomain] */
	const char		*locale;	/* [en_US.UTF-8] */
	const char		*keyboard;	/* [us] */
	const char		*timezone;	/* [UTC]: Area/City */
	const char		*windows_timezone; /* [UTC]: Windows' own names */
	const char		*root_password;	/* required (the pipeline generates one per build):
						 * root, or Windows' Administrator */
	const char		*admin_user;	/* an extra user with sudo/wheel, or NULL */
	const char		*admin_password; /* [root_password] */
	const char		*ssh_pubkey;	/* the build's ephemeral key (one line), or NULL */
	const char *const	*packages;	/* NULL-terminated extra packages, or NULL */
	const char		*mirror;	/* http://HOST[:PORT]/DIR, or NULL: the distro's */
	int			 mirror_unsigned; /* the mirror's index is not signed (tests) */
	const char		*suite;		/* d-i: the suite (trixie), or NULL: the installer's */
	const char		*salt;		/* crypt(3) salt, 16 of [./A-Za-z0-9]; required
						 * (random per build; tests fix it) */
	const char		*firmware;	/* bios | uefi [bios]: Windows' disk layout */
	const char		*os_version;	/* Windows: picks the virtio-win driver folder */
	const char		*os_distro;
	const char		*product_key;	/* Windows: XXXXX-XXXXX-XXXXX-XXXXX-XXXXX, or NULL */
	const char		*windows_image;	/* Windows: install.wim image, index or name [1] */
};

/*
 * The virtio-win folder name of a Windows version ("w10", "2k19", "w11", "2k22", "2k16",
 * "2k12R2", "2k12", "2k8R2", "2k8", "w8.1", "w8", "w7", "xp", "2k3"; default "w10"), from
 * os_distro / os_version in Glance's or libosinfo's spelling. A static string.
 */
const char *isoboot_virtio_win_dir(const char *os_distro, const char *os_version);

/*
 * Renders one answer file: the template's text with the answers filled in. For
 * autounattend the template is XML, parsed and filled through libxml2 (every value
 * escaped); the others are line-based (see templates/answers/preseed.cfg for the syntax).
 * template_name names the template in errors ("preseed.cfg:12: unknown name 'hostnme'").
 * Errors (ERR_INVAL) name the bad answer or the template line. Caller frees.
 */
char	*isoboot_answers_render(enum isoboot_answers_method, const char *template_text,
	    const char *template_name, const struct isoboot_answers *, struct err *);

/* The cloud-init meta-data of an autoinstall cidata volume (instance-id, local-hostname).
 * Caller frees. */
char	*isoboot_answers_meta_data(const struct isoboot_answers *, struct err *);

/*
 * A d-i installer's boot entry on its ISO, found in the text of its boot configuration
 * (isolinux: txt.cfg / isolinux.cfg `label install` … `kernel` … `append`; GRUB: grub.cfg
 * `linux … / initrd …`): the text installer, not the graphical or expert ones.
 * Paths are ISO paths without the leading '/'. Caller frees the three strings.
 */
int	isoboot_di_boot_entry(const char *config_text, char **kernel, char **initrd,
	    char **append, struct err *);
/*
 * The boot line of an unattended d-i install: the installer's own append line without its
 * initrd= (the initrd is given apart), plus `auto=true priority=critical` and the serial
 * console before `---`, and the serial console after it (for the installed system).
 * Caller frees.
 */
char	*isoboot_di_cmdline(const char *append);

#endif
