/* clouds.h — the openstack CLI's clouds.yaml and secure.yaml, read with libyaml. */
#ifndef ISOFORGE_CLOUDS_H
#define ISOFORGE_CLOUDS_H

#include <stddef.h>

#include <jansson.h>

#include "base/util.h"

/* Largest clouds.yaml/secure.yaml read, and deepest nesting accepted. */
#define CLOUDS_MAX_FILE		(1024 * 1024)
#define CLOUDS_MAX_DEPTH	32

/*
 * Parses one YAML document into JSON (pure): mappings become objects (keys as strings; a
 * "<<" merge key adds the keys the mapping lacks), sequences arrays, scalars strings ("true",
 * "3" stay strings); a plain null, ~ or empty scalar is JSON null. An empty document is an
 * empty object. ERR_INVAL with the line on a syntax error or nesting deeper than
 * CLOUDS_MAX_DEPTH. what names the text in messages. New reference.
 */
json_t	*clouds_yaml_parse(const char *text, size_t len, const char *what, struct err *);
/* The same on a file; ERR_NOTFOUND when it does not exist. New reference. */
json_t	*clouds_yaml_load(const char *path, struct err *);

/*
 * The path of the first of these that exists, for base "clouds" or "secure": the file named by
 * $OS_CLIENT_CONFIG_FILE (clouds) or $OS_CLIENT_SECURE_FILE (secure), ./BASE.yaml,
 * $XDG_CONFIG_HOME/openstack/BASE.yaml (default ~/.config), /etc/openstack/BASE.yaml
 * (each also as .yml). Caller frees; NULL when none exists.
 */
char	*clouds_find_file(const char *base);

/* Deep-merges over into base (pure): objects key by key, anything else replaced. */
void	 clouds_merge(json_t *base, const json_t *over);

/*
 * The entry "clouds: NAME:" of clouds.yaml with the same entry of secure.yaml merged over it
 * (when secure.yaml exists). path (may be NULL) gets the clouds.yaml used (caller frees).
 * ERR_NOTFOUND when no clouds.yaml exists or it has no such cloud. New reference.
 */
json_t	*clouds_cloud(const char *name, char **path, struct err *);

#endif
