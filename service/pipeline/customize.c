/* customize.c — the request's customize object: checked, and what the customizing step needs. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/media.h"
#include "drivers/ssh.h"
#include "service/pipeline/customize.h"

#define CUSTOMIZE_NAME_MAX	64
#define CUSTOMIZE_PATH_MAX	1024
#define CUSTOMIZE_VALUE_MAX	4096

/* 1 when s is a script name: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
static int
customize_name_ok(const char *s)
{
	size_t	 n = strlen(s), i;

	if (n == 0 || n > CUSTOMIZE_NAME_MAX || s[0] == '.' || s[0] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) == NULL)
			return 0;
	return 1;
}

/* 1 when s is a shell variable name (and not one of the guest's own: PATH, HOME ...). */
static int
customize_var_ok(const char *s)
{
	static const char *const reserved[] = { "PATH", "HOME", "USER", "SHELL", "IFS",
		"LD_PRELOAD", "LD_LIBRARY_PATH", NULL };
	size_t	 i;

	if (s[0] == '\0' || strlen(s) > CUSTOMIZE_NAME_MAX ||
	    !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	for (i = 0; reserved[i] != NULL; i++)
		if (strcmp(s, reserved[i]) == 0)
			return 0;
	return 1;
}

/* 1 when s has no NUL and no control character but tab and newline (a variable's value). */
static int
customize_text_ok(const json_t *v, size_t max)
{
	const char	*s = json_string_value(v);
	size_t		 n = json_string_length(v), i;

	if (s == NULL || n > max || strlen(s) != n)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t' && s[i] != '\n')
			return 0;
	return 1;
}

/* Checks one script entry. */
static int
customize_check_script(const json_t *o, size_t i, struct err *e)
{
	const json_t	*name = json_object_get(o, "name"), *text = json_object_get(o, "inline");
	const char	*k;
	json_t		*v;

	if (!json_is_object(o)) {
		err_set(e, ERR_INVAL, "scripts[%zu]: must be an object", i);
		return -1;
	}
	json_object_foreach((json_t *)o, k, v)
		if (strcmp(k, "name") != 0 && strcmp(k, "inline") != 0) {
			err_set(e, ERR_INVAL, "scripts[%zu].%s: unknown field", i, k);
			return -1;
		}
	if (!json_is_string(name) || !customize_name_ok(json_string_value(name))) {
		err_set(e, ERR_INVAL, "scripts[%zu].name: must be 1..%d of [A-Za-z0-9._-]", i,
		    CUSTOMIZE_NAME_MAX);
		return -1;
	}
	if (text != NULL && (!json_is_string(text) || json_string_length(text) == 0 ||
	    json_string_length(text) > SSH_SCRIPT_MAX ||
	    strlen(json_string_value(text)) != json_string_length(text))) {
		err_set(e, ERR_INVAL, "scripts[%zu].inline: must be a script of 1..%d bytes", i,
		    SSH_SCRIPT_MAX);
		return -1;
	}
	return 0;
}

/* Checks one file entry. */
static int
customize_check_file(const json_t *o, size_t i, struct err *e)
{
	const json_t	*path = json_object_get(o, "path"), *mode = json_object_get(o, "mode");
	const char	*k, *m;
	char		*end;
	json_t		*v;
	long		 n;

	if (!json_is_object(o)) {
		err_set(e, ERR_INVAL, "files[%zu]: must be an object", i);
		return -1;
	}
	json_object_foreach((json_t *)o, k, v)
		if (strcmp(k, "path") != 0 && strcmp(k, "content") != 0 && strcmp(k, "mode") != 0) {
			err_set(e, ERR_INVAL, "files[%zu].%s: unknown field", i, k);
			return -1;
		}
	if (!json_is_string(path) || json_string_value(path)[0] != '/' ||
	    !customize_text_ok(path, CUSTOMIZE_PATH_MAX) ||
	    strchr(json_string_value(path), '\n') != NULL) {
		err_set(e, ERR_INVAL, "files[%zu].path: must be an absolute path", i);
		return -1;
	}
	if (!json_is_string(json_object_get(o, "content"))) {
		err_set(e, ERR_INVAL, "files[%zu].content: must be a string", i);
		return -1;
	}
	if (mode != NULL) {
		m = json_string_value(mode);
		n = m != NULL ? strtol(m, &end, 8) : -1;
		if (m == NULL || *m == '\0' || *end != '\0' || n < 0 || n > 07777) {
			err_set(e, ERR_INVAL, "files[%zu].mode: must be octal, e.g. \"0644\"", i);
			return -1;
		}
	}
	return 0;
}

int
customize_json_check(const json_t *c, struct err *e)
{
	const json_t	*scripts, *files, *env, *t;
	const char	*k;
	json_t		*v;
	size_t		 i;

	if (!json_is_object(c)) {
		err_set(e, ERR_INVAL, "must be an object");
		return -1;
	}
	json_object_foreach((json_t *)c, k, v)
		if (strcmp(k, "scripts") != 0 && strcmp(k, "files") != 0 &&
		    strcmp(k, "env") != 0 && strcmp(k, "timeout_s") != 0) {
			err_set(e, ERR_INVAL, "%s: unknown field", k);
			return -1;
		}
	scripts = json_object_get(c, "scripts");
	files = json_object_get(c, "files");
	env = json_object_get(c, "env");
	if ((scripts != NULL && !json_is_array(scripts)) || (files != NULL &&
	    !json_is_array(files))) {
		err_set(e, ERR_INVAL, "scripts and files must be arrays");
		return -1;
	}
	if (json_array_size(scripts) + json_array_size(files) == 0) {
		err_set(e, ERR_INVAL, "neither scripts nor files: nothing to customize");
		return -1;
	}
	if (json_array_size(scripts) > CUSTOMIZE_MAX_SCRIPTS ||
	    json_array_size(files) > CUSTOMIZE_MAX_FILES) {
		err_set(e, ERR_INVAL, "at most %d scripts and %d files", CUSTOMIZE_MAX_SCRIPTS,
		    CUSTOMIZE_MAX_FILES);
		return -1;
	}
	json_array_foreach(scripts, i, v)
		if (customize_check_script(v, i, e) == -1)
			return -1;
	json_array_foreach(files, i, v)
		if (customize_check_file(v, i, e) == -1)
			return -1;
	if (env != NULL) {
		if (!json_is_object(env) || json_object_size(env) > CUSTOMIZE_MAX_ENV) {
			err_set(e, ERR_INVAL, "env: must be an object of at most %d variables",
			    CUSTOMIZE_MAX_ENV);
			return -1;
		}
		json_object_foreach((json_t *)env, k, v)
			if (!customize_var_ok(k) || !customize_text_ok(v, CUSTOMIZE_VALUE_MAX)) {
				err_set(e, ERR_INVAL, "env.%.64s: a shell variable name (not PATH, "
				    "HOME ...) and text of at most %d bytes", k,
				    CUSTOMIZE_VALUE_MAX);
				return -1;
			}
	}
	t = json_object_get(c, "timeout_s");
	if (t != NULL && (!json_is_integer(t) || json_integer_value(t) < 60 ||
	    json_integer_value(t) > CUSTOMIZE_TIMEOUT_MAX)) {
		err_set(e, ERR_INVAL, "timeout_s: must be within 60..%d seconds",
		    CUSTOMIZE_TIMEOUT_MAX);
		return -1;
	}
	return 0;
}

double
customize_timeout(const json_t *c)
{
	const json_t	*t = json_object_get(c, "timeout_s");

	return json_is_integer(t) ? (double)json_integer_value(t) : CUSTOMIZE_TIMEOUT_DEFAULT;
}

size_t
customize_nscripts(const json_t *c)
{
	return json_array_size(json_object_get(c, "scripts"));
}

size_t
customize_nfiles(const json_t *c)
{
	return json_array_size(json_object_get(c, "files"));
}

int
customize_script(const json_t *c, size_t i, const char *templates, const char **name,
    char **text, size_t *len, struct err *e)
{
	const json_t	*s = json_array_get(json_object_get(c, "scripts"), i);
	const json_t	*in = json_object_get(s, "inline");
	char		*path;

	*name = json_string_value(json_object_get(s, "name"));
	if (in != NULL) {
		*len = json_string_length(in);
		*text = xstrndup(json_string_value(in), *len);
		return 0;
	}
	/* the name was checked: no '/' can take it out of the folder */
	path = xasprintf("%s/customize/%s", templates, *name);
	*text = util_read_file(path, SSH_SCRIPT_MAX, len, NULL);
	free(path);
	if (*text == NULL) {
		err_set(e, ERR_NOTFOUND, "script '%s': no such operator script in %s/customize/",
		    *name, templates);
		return -1;
	}
	return 0;
}

void
customize_file(const json_t *c, size_t i, const char **path, const char **content,
    size_t *len, int *mode)
{
	const json_t	*f = json_array_get(json_object_get(c, "files"), i);
	const char	*m = json_string_value(json_object_get(f, "mode"));

	*path = json_string_value(json_object_get(f, "path"));
	*content = json_string_value(json_object_get(f, "content"));
	*len = json_string_length(json_object_get(f, "content"));
	*mode = m != NULL ? (int)strtol(m, NULL, 8) : 0644;
}

char **
customize_env(const json_t *c, const char *build_id)
{
	const json_t	*env = json_object_get(c, "env");
	const char	*k;
	json_t		*v;
	char		**out;
	size_t		 n = 0;

	out = xcalloc(json_object_size(env) + 2, sizeof(*out));
	json_object_foreach((json_t *)env, k, v)
		out[n++] = xasprintf("%s=%s", k, json_string_value(v));
	out[n++] = xasprintf("ISOFORGE_BUILD_ID=%s", build_id);
	return out;
}

void
customize_env_free(char ***envp)
{
	size_t	 i;

	if (*envp == NULL)
		return;
	for (i = 0; (*envp)[i] != NULL; i++)
		free((*envp)[i]);
	free(*envp);
	*envp = NULL;
}

char *
customize_nocloud(const char *dir, const char *build_id, const char *pubkey, struct err *e)
{
	json_t	*key;
	char	*seed, *ud, *md, *vol = NULL, *p;
	int	 rc = -1;

	seed = xasprintf("%s/cidata", dir);
	/* cloud-config: the key, YAML-quoted through JSON (a subset of YAML) */
	key = json_string(pubkey);
	p = json_dumps(key, JSON_ENCODE_ANY);
	json_decref(key);
	ud = xasprintf("#cloud-config\nssh_authorized_keys:\n  - %s\n", p);
	free(p);
	md = xasprintf("instance-id: isoforge-%s\nlocal-hostname: isoforge\n", build_id);
	if (util_mkdir_private(seed, e) == -1)
		goto cleanup;
	p = xasprintf("%s/user-data", seed);
	rc = util_write_file(p, ud, strlen(ud), 0600, e);
	free(p);
	if (rc == -1)
		goto cleanup;
	p = xasprintf("%s/meta-data", seed);
	rc = util_write_file(p, md, strlen(md), 0600, e);
	free(p);
	if (rc == -1)
		goto cleanup;
	vol = xasprintf("%s/cidata.iso", dir);
	if ((rc = media_make_iso(seed, "cidata", vol, e)) == -1) {
		free(vol);
		vol = NULL;
	}
cleanup:
	free(seed);
	free(ud);
	free(md);
	return vol;
}
