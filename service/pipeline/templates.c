/* templates.c — finds the templates directory, reads OS profiles and the base domain XML. */
#include <ctype.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "isoboot/isoboot.h"
#include "service/pipeline/templates.h"
#include "base/util.h"

#define TEMPLATES_SYSTEM	"/usr/share/isoforge/templates"
#define TEMPLATE_MAX		(1024 * 1024)

static pthread_once_t	 templates_once = PTHREAD_ONCE_INIT;
static char		 templates_path[PATH_MAX];

/* 1 when dir/domain.xml is a file. */
static int
templates_usable(const char *dir)
{
	char		 p[PATH_MAX];
	struct stat	 st;

	if ((size_t)snprintf(p, sizeof(p), "%s/domain.xml", dir) >= sizeof(p))
		return 0;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static void
templates_find(void)
{
	static const char *const rel[] = { "/../templates", "/../../templates" };
	const char	*env = getenv("ISOFORGE_TEMPLATES");
	char		 exe[PATH_MAX], cand[PATH_MAX], *slash;
	ssize_t		 n;
	size_t		 i;

	if (env != NULL && *env != '\0' &&
	    (size_t)snprintf(templates_path, sizeof(templates_path), "%s", env) <
	    sizeof(templates_path))
		return;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash != NULL)
			*slash = '\0';
		for (i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			if ((size_t)snprintf(cand, sizeof(cand), "%s%s", exe, rel[i]) >=
			    sizeof(cand))
				continue;
			if (templates_usable(cand) && realpath(cand, templates_path) != NULL)
				return;
		}
	}
	snprintf(templates_path, sizeof(templates_path), "%s", TEMPLATES_SYSTEM);
}

/* The templates directory; see templates.h. */
const char *
templates_dir(void)
{
	pthread_once(&templates_once, templates_find);
	return templates_path;
}

/* Loads one OS profile by name; see templates.h. */
struct isoboot_profile *
templates_load_profile(const char *dir, const char *name, struct err *err)
{
	struct isoboot_profile	*p = NULL;
	char			*path = NULL, *text = NULL;
	const char		*c;

	if (name == NULL || *name == '\0' || name[0] == '.') {
		err_set(err, ERR_INVAL, "profile name: '%s' is not a name", name != NULL ? name : "");
		return NULL;
	}
	for (c = name; *c != '\0'; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.') {
			err_set(err, ERR_INVAL, "profile name: '%s' may only hold letters, digits, "
			    "'-', '_' and '.'", name);
			return NULL;
		}
	path = xasprintf("%s/profiles/%s.conf", dir, name);
	text = util_read_file(path, TEMPLATE_MAX, NULL, err);
	if (text == NULL)
		goto cleanup;
	p = isoboot_profile_parse(text, path, err);
cleanup:
	free(text);
	free(path);
	return p;
}

/* Reads the base domain XML; see templates.h. */
char *
templates_load_domain(const char *dir, struct err *err)
{
	char	*path, *text;

	path = xasprintf("%s/domain.xml", dir);
	text = util_read_file(path, TEMPLATE_MAX, NULL, err);
	free(path);
	return text;
}
