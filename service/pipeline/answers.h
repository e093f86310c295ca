/*
 * answers.h — the per-build step of unattended installs, run at assembling: the answer file
 * rendered from templates/answers/ into WORK/answers/, then either the answers volume
 * (cidata, OEMDRV, autounattend CD or floppy) or, for d-i, the installer's kernel and a copy
 * of its initrd with preseed.cfg appended, read from the ISO (which is never changed), and
 * the boot line for direct kernel boot. The results go into isoboot_media / isoboot_params.
 */
#ifndef ISOFORGE_PIPELINE_ANSWERS_H
#define ISOFORGE_PIPELINE_ANSWERS_H

#include <jansson.h>

#include "isoboot/answers.h"
#include "isoboot/isoboot.h"
#include "base/util.h"

#define ANSWERS_MAX_JSON_PACKAGES	256

/* What the step needs (all borrowed). */
struct answers_params {
	const char			*build_id;
	const char			*templates;	/* the templates dir */
	const char			*work_dir;	/* files go to WORK_DIR/answers/ */
	const char			*iso;		/* the OS ISO (d-i: kernel, initrd) */
	const struct isoboot_profile	*profile;	/* its answers / answers_media keys */
	const char			*os_type, *os_distro, *os_version;
	const char			*firmware;	/* NULL: the profile's */
	const json_t			*answers;	/* the request's install.answers or NULL */
	const char			*ssh_pubkey;	/* the build's ephemeral key, or NULL */
	const char			*salt;		/* NULL: random (tests fix it) */
};

/* What it made (owned; answers_result_free). Paths are absolute. */
struct answers_result {
	enum isoboot_answers_method	 method;
	char				*dir;		/* WORK_DIR/answers */
	char				*file;		/* the rendered answer file's path */
	char				*text;		/* its content (password hashes: a secret) */
	char				*volume;	/* answers volume, or NULL */
	int				 volume_floppy;
	char				*kernel;	/* d-i direct kernel boot, or NULL */
	char				*initrd;
	char				*cmdline;
	int				 password_generated; /* no root_password was given */
	char				 root_password[33]; /* the one in effect: a secret */
};

/*
 * Checks a request's install.answers object (keys of struct isoboot_answers: hostname,
 * domain, locale, keyboard, timezone, windows_timezone, root_password, admin_user,
 * admin_password, packages [array], mirror, mirror_unsigned [bool], suite, product_key,
 * windows_image); errors name the key, never a password's value.
 */
int	answers_json_check(const json_t *answers, struct err *);

/*
 * The step, for an unattended build: the method (from the profile and the OS; none is an
 * error: an unattended install needs one). With write 0 (`isoforge plan`) nothing is written: the
 * paths the build would use, and for d-i the boot line read from the ISO. Errors name the
 * template, the answer or the ISO file. The caller frees the result, also on failure.
 */
int	answers_prepare(const struct answers_params *, int write, struct answers_result *,
	    struct err *);
/* Puts the result into the plan's inputs (pointers into the result). */
void	answers_apply(const struct answers_result *, struct isoboot_media *,
	    struct isoboot_params *);
void	answers_result_free(struct answers_result *);

#endif
