/*
 * customize.h — what the customizing step runs in the installed system (DESIGN.md
 * "Unattended, customized, derived"): the request's `customize` object, checked here, and
 * the pieces the step (service/pipeline/build.c) needs: the scripts' text (operator scripts
 * from TEMPLATES/customize/ by name, or inline), their variables, the files to copy, and the
 * NoCloud volume that gives a derived build's guest the build's key.
 *
 *   "customize": {
 *     "scripts": [ {"name": "install-packages.sh"},                   operator script
 *                  {"name": "motd.sh", "inline": "#!/bin/sh\n..."} ],  the user's own
 *     "files":   [ {"path": "/etc/motd", "content": "...", "mode": "0644"} ],
 *     "env":     { "ISOFORGE_PACKAGES": "curl htop" },
 *     "timeout_s": 1800 }
 *
 * Bounds: 32 scripts, 32 files, 64 variables; the whole request is at most 64 KiB.
 */
#ifndef ISOFORGE_CUSTOMIZE_H
#define ISOFORGE_CUSTOMIZE_H

#include <jansson.h>

#include "base/util.h"

#define CUSTOMIZE_MAX_SCRIPTS		32
#define CUSTOMIZE_MAX_FILES		32
#define CUSTOMIZE_MAX_ENV		64
#define CUSTOMIZE_TIMEOUT_DEFAULT	1800
#define CUSTOMIZE_TIMEOUT_MAX		(24 * 3600)

/* Checks a request's customize object; the error names the key ("scripts[2].name: ..."). */
int	 customize_json_check(const json_t *, struct err *);

/* The step's timeout in seconds (timeout_s, else the default). */
double	 customize_timeout(const json_t *);

/*
 * Script i's name and text: inline, or TEMPLATES/customize/NAME (read, at most 64 KiB).
 * *text (caller frees) and *len; -1 with ERR_NOTFOUND naming the script when there is none.
 */
int	 customize_script(const json_t *, size_t i, const char *templates, const char **name,
	    char **text, size_t *len, struct err *);
/* How many scripts and files. */
size_t	 customize_nscripts(const json_t *);
size_t	 customize_nfiles(const json_t *);
/* File i: its remote path, content, mode. */
void	 customize_file(const json_t *, size_t i, const char **path, const char **content,
	    size_t *len, int *mode);
/*
 * The scripts' variables as "NAME=VALUE" strings (NULL-terminated; caller frees with
 * customize_env_free): the request's env, and ISOFORGE_BUILD_ID.
 */
char	**customize_env(const json_t *, const char *build_id);
void	 customize_env_free(char ***);

/*
 * The NoCloud seed (user-data, meta-data) that hands a booting image the build's key, as
 * cloud-init and the test media's installed system read it: into DIR/cidata/ and the volume
 * DIR/cidata.iso (label cidata). Returns the volume's path (caller frees) or NULL.
 */
char	*customize_nocloud(const char *dir, const char *build_id, const char *pubkey,
	    struct err *);

#endif
