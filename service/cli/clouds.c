/* clouds.c — clouds.yaml and secure.yaml (libyaml's document API) as JSON, and the cloud entry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "service/cli/clouds.h"

/* The JSON of node (depth levels deep); NULL with err on a bad node or too deep. */
static json_t *
clouds_node(yaml_document_t *doc, yaml_node_t *node, int depth, const char *what,
    struct err *err)
{
	yaml_node_pair_t	*pair;
	yaml_node_item_t	*item;
	yaml_node_t		*k;
	json_t			*out, *v, *merge = NULL;
	const char		*key, *mk;
	json_t			*mv;

	if (node == NULL) {
		err_set(err, ERR_INVAL, "%s: a node without content", what);
		return NULL;
	}
	if (depth > CLOUDS_MAX_DEPTH) {
		err_set(err, ERR_INVAL, "%s: line %zu: nested deeper than %d levels", what,
		    (size_t)node->start_mark.line + 1, CLOUDS_MAX_DEPTH);
		return NULL;
	}
	switch (node->type) {
	case YAML_SCALAR_NODE:
		if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		    (node->data.scalar.length == 0 ||
		    (node->data.scalar.length == 1 && node->data.scalar.value[0] == '~') ||
		    (node->data.scalar.length == 4 &&
		    (memcmp(node->data.scalar.value, "null", 4) == 0 ||
		    memcmp(node->data.scalar.value, "Null", 4) == 0 ||
		    memcmp(node->data.scalar.value, "NULL", 4) == 0))))
			return json_null();
		return json_stringn((const char *)node->data.scalar.value, node->data.scalar.length);
	case YAML_SEQUENCE_NODE:
		out = json_array();
		for (item = node->data.sequence.items.start; item < node->data.sequence.items.top;
		    item++) {
			if ((v = clouds_node(doc, yaml_document_get_node(doc, *item), depth + 1, what,
			    err)) == NULL) {
				json_decref(out);
				return NULL;
			}
			json_array_append_new(out, v);
		}
		return out;
	case YAML_MAPPING_NODE:
		out = json_object();
		for (pair = node->data.mapping.pairs.start; pair < node->data.mapping.pairs.top;
		    pair++) {
			k = yaml_document_get_node(doc, pair->key);
			if (k == NULL || k->type != YAML_SCALAR_NODE) {
				err_set(err, ERR_INVAL, "%s: line %zu: a key that is not a scalar", what,
				    k != NULL ? (size_t)k->start_mark.line + 1 : 0);
				goto fail;
			}
			if ((v = clouds_node(doc, yaml_document_get_node(doc, pair->value),
			    depth + 1, what, err)) == NULL)
				goto fail;
			key = (const char *)k->data.scalar.value;
			if (strlen(key) != k->data.scalar.length) {
				json_decref(v);
				err_set(err, ERR_INVAL, "%s: line %zu: a key with a NUL byte", what,
				    (size_t)k->start_mark.line + 1);
				goto fail;
			}
			if (strcmp(key, "<<") == 0 && k->data.scalar.style ==
			    YAML_PLAIN_SCALAR_STYLE) {
				/* merge keys apply after the mapping's own keys, which win */
				json_decref(merge);
				merge = v;
				continue;
			}
			json_object_set_new(out, key, v);
		}
		if (merge != NULL) {
			if (json_is_object(merge))
				json_object_foreach(merge, mk, mv)
					if (json_object_get(out, mk) == NULL)
						json_object_set(out, mk, mv);
			json_decref(merge);
		}
		return out;
	default:
		err_set(err, ERR_INVAL, "%s: line %zu: an empty node", what,
		    (size_t)node->start_mark.line + 1);
		return NULL;
	}
fail:
	json_decref(merge);
	json_decref(out);
	return NULL;
}

json_t *
clouds_yaml_parse(const char *text, size_t len, const char *what, struct err *err)
{
	yaml_parser_t	 parser;
	yaml_document_t	 doc;
	yaml_node_t	*root;
	json_t		*out = NULL;

	if (!yaml_parser_initialize(&parser)) {
		err_set(err, ERR_INTERNAL, "%s: no YAML parser", what);
		return NULL;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		err_set(err, ERR_INVAL, "%s: line %zu: %s%s%s", what,
		    (size_t)parser.problem_mark.line + 1,
		    parser.problem != NULL ? parser.problem : "not YAML",
		    parser.context != NULL ? " " : "",
		    parser.context != NULL ? parser.context : "");
		yaml_parser_delete(&parser);
		return NULL;
	}
	if ((root = yaml_document_get_root_node(&doc)) == NULL)
		out = json_object();
	else
		out = clouds_node(&doc, root, 0, what, err);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return out;
}

json_t *
clouds_yaml_load(const char *path, struct err *err)
{
	struct err	 e;
	json_t		*out;
	char		*text;
	size_t		 len;

	err_clear(&e);
	if ((text = util_read_file(path, CLOUDS_MAX_FILE, &len, &e)) == NULL) {
		err_set(err, e.kind, "%s", e.msg);
		return NULL;
	}
	out = clouds_yaml_parse(text, len, path, err);
	free(text);
	return out;
}

/* dir/openstack?/base.yaml or .yml when one of them exists; caller frees. */
static char *
clouds_try(const char *dir, const char *sub, const char *base)
{
	static const char	*const exts[] = { "yaml", "yml" };
	char			*p;
	size_t			 i;

	for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		p = xasprintf("%s%s%s.%s", dir, sub, base, exts[i]);
		if (access(p, F_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

char *
clouds_find_file(const char *base)
{
	const char	*v, *home;
	char		*p = NULL, *dir;

	v = getenv(strcmp(base, "secure") == 0 ? "OS_CLIENT_SECURE_FILE" :
	    "OS_CLIENT_CONFIG_FILE");
	if (v != NULL && *v != '\0')
		return access(v, F_OK) == 0 ? xstrdup(v) : NULL;
	if ((p = clouds_try("./", "", base)) != NULL)
		return p;
	if ((v = getenv("XDG_CONFIG_HOME")) != NULL && *v != '\0')
		dir = xasprintf("%s/", v);
	else if ((home = getenv("HOME")) != NULL && *home != '\0')
		dir = xasprintf("%s/.config/", home);
	else
		dir = NULL;
	if (dir != NULL) {
		p = clouds_try(dir, "openstack/", base);
		free(dir);
		if (p != NULL)
			return p;
	}
	return clouds_try("/etc/", "openstack/", base);
}

void
clouds_merge(json_t *base, const json_t *over)
{
	const char	*k;
	json_t		*v, *b;

	if (!json_is_object(base) || !json_is_object(over))
		return;
	json_object_foreach((json_t *)over, k, v) {
		b = json_object_get(base, k);
		if (json_is_object(b) && json_is_object(v))
			clouds_merge(b, v);
		else
			json_object_set(base, k, v);
	}
}

json_t *
clouds_cloud(const char *name, char **pathp, struct err *err)
{
	json_t	*clouds = NULL, *secure = NULL, *cloud = NULL, *s;
	char	*path, *spath = NULL;

	if (pathp != NULL)
		*pathp = NULL;
	if ((path = clouds_find_file("clouds")) == NULL) {
		err_set(err, ERR_NOTFOUND, "cloud %s: no clouds.yaml (looked in ., "
		    "~/.config/openstack, /etc/openstack and $OS_CLIENT_CONFIG_FILE)", name);
		return NULL;
	}
	if ((clouds = clouds_yaml_load(path, err)) == NULL)
		goto cleanup;
	cloud = json_object_get(json_object_get(clouds, "clouds"), name);
	if (!json_is_object(cloud)) {
		cloud = NULL;
		err_set(err, ERR_NOTFOUND, "cloud %s: not in %s", name, path);
		goto cleanup;
	}
	cloud = json_deep_copy(cloud);
	/* secure.yaml holds the secrets of the same clouds; a broken one is an error, not ignored */
	if ((spath = clouds_find_file("secure")) != NULL) {
		if ((secure = clouds_yaml_load(spath, err)) == NULL) {
			json_decref(cloud);
			cloud = NULL;
			goto cleanup;
		}
		s = json_object_get(json_object_get(secure, "clouds"), name);
		if (json_is_object(s))
			clouds_merge(cloud, s);
	}
	if (pathp != NULL) {
		*pathp = path;
		path = NULL;
	}
cleanup:
	json_decref(clouds);
	json_decref(secure);
	free(path);
	free(spath);
	return cloud;
}
