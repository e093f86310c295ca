/* answers.c — unattended installs at assembling: answer files, answer volumes, d-i boot. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/media.h"
#include "service/pipeline/answers.h"
#include "base/log.h"
#include "base/util.h"

#define ANSWERS_TEMPLATE_MAX	(256 * 1024)
#define ANSWERS_BOOTCFG_MAX	(256 * 1024)


/* Fills a (borrowing the JSON's strings) from install.answers; pkgs holds the packages. */
static int
answers_from_json(const json_t *j, struct isoboot_answers *a, const char **pkgs,
    struct err *err)
{
	const char	*key, **field;
	json_t		*v, *item;
	size_t		 i, n;

	if (j == NULL)
		return 0;
	if (!json_is_object(j)) {
		err_set(err, ERR_INVAL, "install.answers: must be an object");
		return -1;
	}
	json_object_foreach((json_t *)j, key, v) {
		field = NULL;
		if (strcmp(key, "hostname") == 0) field = &a->hostname;
		else if (strcmp(key, "domain") == 0) field = &a->domain;
		else if (strcmp(key, "locale") == 0) field = &a->locale;
		else if (strcmp(key, "keyboard") == 0) field = &a->keyboard;
		else if (strcmp(key, "timezone") == 0) field = &a->timezone;
		else if (strcmp(key, "windows_timezone") == 0) field = &a->windows_timezone;
		else if (strcmp(key, "root_password") == 0) field = &a->root_password;
		else if (strcmp(key, "admin_user") == 0) field = &a->admin_user;
		else if (strcmp(key, "admin_password") == 0) field = &a->admin_password;
		else if (strcmp(key, "mirror") == 0) field = &a->mirror;
		else if (strcmp(key, "suite") == 0) field = &a->suite;
		else if (strcmp(key, "product_key") == 0) field = &a->product_key;
		else if (strcmp(key, "windows_image") == 0) field = &a->windows_image;
		if (field != NULL) {
			if (json_is_null(v))
				continue;
			if (!json_is_string(v)) {
				err_set(err, ERR_INVAL, "install.answers.%s: must be a string", key);
				return -1;
			}
			*field = json_string_value(v);
		} else if (strcmp(key, "mirror_unsigned") == 0) {
			if (!json_is_boolean(v)) {
				err_set(err, ERR_INVAL, "install.answers.%s: must be true or false",
				    key);
				return -1;
			}
			a->mirror_unsigned = json_is_true(v);
		} else if (strcmp(key, "packages") == 0) {
			if (!json_is_array(v) ||
			    (n = json_array_size(v)) > ANSWERS_MAX_JSON_PACKAGES) {
				err_set(err, ERR_INVAL, "install.answers.packages: must be an array "
				    "of at most %d names", ANSWERS_MAX_JSON_PACKAGES);
				return -1;
			}
			json_array_foreach(v, i, item) {
				if (!json_is_string(item)) {
					err_set(err, ERR_INVAL, "install.answers.packages[%zu]: must "
					    "be a string", i);
					return -1;
				}
				pkgs[i] = json_string_value(item);
			}
			pkgs[n] = NULL;
			a->packages = pkgs;
		} else {
			err_set(err, ERR_INVAL, "install.answers.%s: unknown key (known: %s, "
			    "packages, mirror_unsigned)", key, "hostname, domain, locale, keyboard, "
			    "timezone, windows_timezone, root_password, admin_user, admin_password, "
			    "mirror, suite, product_key, windows_image");
			return -1;
		}
	}
	return 0;
}

/* Checks install.answers by rendering a probe of every value; see answers.h. */
int
answers_json_check(const json_t *j, struct err *err)
{
	struct isoboot_answers	 a;
	const char		*pkgs[ANSWERS_MAX_JSON_PACKAGES + 1];
	char			*out;

	memset(&a, 0, sizeof(a));
	if (answers_from_json(j, &a, pkgs, err) == -1)
		return -1;
	a.build_id = "check";
	a.salt = "0123456789abcdef";
	if (a.root_password == NULL)
		a.root_password = "check";
	/* every value is validated whatever the template uses */
	out = isoboot_answers_render(ISOBOOT_ANSWERS_PRESEED, "", "check", &a, err);
	if (out == NULL)
		return -1;
	free(out);
	return 0;
}

/* A random crypt(3) salt of 16 characters. */
static void
answers_salt(char out[17])
{
	static const char	 set[] =
	    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned char		 r[16];
	size_t			 i;

	util_random(r, sizeof(r));
	for (i = 0; i < 16; i++)
		out[i] = set[r[i] % 64];
	out[16] = '\0';
}

/* Writes a file of the answers (0600: it may hold secrets). */
static int
answers_write(const char *path, const char *text, struct err *err)
{
	return util_write_file(path, text, strlen(text), 0600, err);
}

/* d-i: the installer's boot entry from the ISO's own boot configuration. */
static int
answers_di_entry(const char *iso, char **kernel, char **initrd, char **append, struct err *err)
{
	static const char *const cfgs[] = { "isolinux/txt.cfg", "isolinux/isolinux.cfg",
		"boot/grub/grub.cfg", NULL };
	struct err	 e;
	char		*text;
	size_t		 i;

	for (i = 0; cfgs[i] != NULL; i++) {
		err_clear(&e);
		text = media_iso_read(iso, cfgs[i], ANSWERS_BOOTCFG_MAX, NULL, &e);
		if (text == NULL) {
			if (e.kind != ERR_NOTFOUND) {
				err_set(err, e.kind, "%s", e.msg);
				return -1;
			}
			continue;
		}
		err_clear(&e);
		if (isoboot_di_boot_entry(text, kernel, initrd, append, &e) == 0) {
			log_debug("answers: d-i entry from %s: kernel /%s initrd /%s append %s",
			    cfgs[i], *kernel, *initrd, *append);
			free(text);
			return 0;
		}
		free(text);
	}
	err_set(err, ERR_INVAL, "%s: no Debian installer boot entry (install*/vmlinuz and its "
	    "initrd) in isolinux/txt.cfg, isolinux/isolinux.cfg or boot/grub/grub.cfg: the "
	    "preseed method needs a d-i ISO", iso);
	return -1;
}

/* The step; see answers.h. */
int
answers_prepare(const struct answers_params *p, int write, struct answers_result *r,
    struct err *err)
{
	const struct isoboot_answers_info *info;
	struct isoboot_answers	 a;
	const char		*pkgs[ANSWERS_MAX_JSON_PACKAGES + 1];
	char			*tpath = NULL, *text = NULL, *out = NULL, *vdir = NULL, *path = NULL;
	char			*kpath = NULL, *ipath = NULL, *append = NULL, *orig = NULL;
	char			*meta = NULL;
	char			 salt[17];
	int			 m, rc = -1;

	memset(r, 0, sizeof(*r));
	m = isoboot_answers_method_for(p->profile->answers, p->os_type, p->os_distro,
	    p->os_version);
	if (m < 0) {
		err_set(err, ERR_INVAL, "profile %s: answers = %s: unknown method", p->profile->name,
		    p->profile->answers);
		return -1;
	}
	r->method = (enum isoboot_answers_method)m;
	if (r->method == ISOBOOT_ANSWERS_NONE) {
		err_set(err, ERR_INVAL, "unattended install: no answer method for this OS with "
		    "profile %s (give the OS distro, or set answers = preseed|autoinstall|"
		    "kickstart|autounattend in the profile)", p->profile->name);
		return -1;
	}
	info = isoboot_answers_info(r->method);

	memset(&a, 0, sizeof(a));
	if (answers_from_json(p->answers, &a, pkgs, err) == -1)
		return -1;
	a.build_id = p->build_id;
	a.ssh_pubkey = p->ssh_pubkey;
	a.os_distro = p->os_distro;
	a.os_version = p->os_version;
	a.firmware = p->firmware != NULL ? p->firmware : p->profile->firmware;
	if (a.root_password == NULL) {
		util_password(r->root_password, 20);
		r->password_generated = 1;
	} else
		snprintf(r->root_password, sizeof(r->root_password), "%s", a.root_password);
	a.root_password = r->root_password;
	if (p->salt != NULL)
		a.salt = p->salt;
	else {
		answers_salt(salt);
		a.salt = salt;
	}

	r->dir = xasprintf("%s/answers", p->work_dir);
	vdir = xasprintf("%s/volume", r->dir);
	tpath = xasprintf("%s/answers/%s", p->templates, info->template_name);
	if ((text = util_read_file(tpath, ANSWERS_TEMPLATE_MAX, NULL, err)) == NULL)
		goto cleanup;
	if ((out = isoboot_answers_render(r->method, text, tpath, &a, err)) == NULL)
		goto cleanup;
	if (write && util_mkdirs(r->dir, err) == -1)
		goto cleanup;
	if (write && chmod(r->dir, 0700) == -1) {
		err_set(err, ERR_IO, "%s: %s", r->dir, strerror(errno));
		goto cleanup;
	}

	if (info->volume_label == NULL) {
		/* d-i: preseed.cfg at the root of a copy of the installer's initrd */
		struct media_cpio_file	 f;

		r->file = xasprintf("%s/%s", r->dir, info->file_name);
		if (answers_di_entry(p->iso, &kpath, &ipath, &append, err) == -1)
			goto cleanup;
		r->kernel = xasprintf("%s/vmlinuz", r->dir);
		r->initrd = xasprintf("%s/initrd", r->dir);
		r->cmdline = isoboot_di_cmdline(append);
		if (write) {
			orig = xasprintf("%s/initrd.orig", r->dir);
			f.name = info->file_name;
			f.data = out;
			f.len = strlen(out);
			f.mode = 0600;
			if (answers_write(r->file, out, err) == -1 ||
			    media_iso_extract(p->iso, kpath, r->kernel, err) == -1 ||
			    media_iso_extract(p->iso, ipath, orig, err) == -1 ||
			    media_initrd_append(orig, r->initrd, &f, 1, err) == -1)
				goto cleanup;
		}
	} else {
		int	 floppy = r->method == ISOBOOT_ANSWERS_AUTOUNATTEND &&
			    strcmp(p->profile->answers_media, "floppy") == 0;

		r->file = xasprintf("%s/%s", vdir, info->file_name);
		r->volume_floppy = floppy;
		r->volume = xasprintf("%s/%s.%s", r->dir, info->volume_label, floppy ? "img" :
		    "iso");
		if (r->method == ISOBOOT_ANSWERS_AUTOINSTALL &&
		    (meta = isoboot_answers_meta_data(&a, err)) == NULL)
			goto cleanup;
		if (write) {
			if (util_mkdirs(vdir, err) == -1 || answers_write(r->file, out, err) == -1)
				goto cleanup;
			if (meta != NULL) {
				path = xasprintf("%s/meta-data", vdir);
				if (answers_write(path, meta, err) == -1)
					goto cleanup;
			}
			if ((floppy ? media_make_floppy(vdir, "ANSWERS", r->volume, err) :
			    media_make_iso(vdir, info->volume_label, r->volume, err)) == -1)
				goto cleanup;
		}
	}
	r->text = out;
	out = NULL;
	if (write)
		log_info("build %s: unattended install (%s): %s", p->build_id,
		    isoboot_answers_method_name(r->method), r->volume != NULL ? r->volume :
		    r->initrd);
	rc = 0;
cleanup:
	if (orig != NULL)
		(void)unlink(orig);
	if (out != NULL)
		explicit_bzero(out, strlen(out));
	explicit_bzero(salt, sizeof(salt));
	free(orig);
	free(meta);
	free(path);
	free(kpath);
	free(ipath);
	free(append);
	free(out);
	free(text);
	free(tpath);
	free(vdir);
	return rc;
}

/* The result as the plan's inputs; see answers.h. */
void
answers_apply(const struct answers_result *r, struct isoboot_media *me,
    struct isoboot_params *pa)
{
	if (r->method == ISOBOOT_ANSWERS_NONE)
		return;
	pa->answers_method = isoboot_answers_method_name(r->method);
	me->answers = r->volume;
	me->answers_floppy = r->volume_floppy;
	me->kernel = r->kernel;
	me->initrd = r->initrd;
	me->cmdline = r->cmdline;
}

/* Frees what a result holds (not the struct); the password is wiped. */
void
answers_result_free(struct answers_result *r)
{
	if (r == NULL)
		return;
	free(r->dir);
	free(r->file);
	free(r->volume);
	free(r->kernel);
	free(r->initrd);
	free(r->cmdline);
	if (r->text != NULL)
		explicit_bzero(r->text, strlen(r->text));
	free(r->text);
	explicit_bzero(r->root_password, sizeof(r->root_password));
	memset(r, 0, sizeof(*r));
}
