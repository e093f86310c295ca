/* request.c — contract v2 build requests: parsed with jansson, every bad field reported. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "service/pipeline/answers.h"
#include "service/pipeline/customize.h"
#include "service/pipeline/request.h"
#include "base/util.h"

#define TRUST_ID_MAX	64
#define TEXT_MAX	255
#define TAGS_MAX	128
#define PROPS_MAX	128
#define TIMEOUT_MIN	60
#define TIMEOUT_MAX	(7 * 24 * 3600)

/* Collects the problems of one request. */
struct req_check {
	struct buf	 problems;
};

static void
problem(struct req_check *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds "field: what" to the list of problems. */
static void
problem(struct req_check *c, const char *field, const char *fmt, ...)
{
	va_list	 ap;
	char	*what;

	va_start(ap, fmt);
	what = xvasprintf(fmt, ap);
	va_end(ap);
	buf_printf(&c->problems, "%s%s: %s", c->problems.len > 0 ? "; " : "", field, what);
	free(what);
}

/* 1 when s has no control characters (and is valid-looking text). */
static int
text_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* 1 when s is 1..max of [A-Za-z0-9._-] not starting with '.' or '-'. */
static int
ident_ok(const char *s, size_t max)
{
	size_t	 n = strlen(s);

	if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return 0;
	return 1;
}

/* 1 when s looks like a Keystone trust id (hex in practice): [A-Za-z0-9_-], 1..64. */
static int
trust_id_ok(const char *s)
{
	size_t	 n = strlen(s);

	if (n == 0 || n > TRUST_ID_MAX)
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
			return 0;
	return 1;
}

enum str_kind { STR_TEXT, STR_UUID, STR_IDENT, STR_TRUST };

/*
 * Takes the string member key of obj into *out (copy), checking it; field is the name used in
 * errors ("os.type"). required: missing is a problem. allow_null: JSON null is "absent".
 * choices: "a|b|c" or NULL.
 */
static void
take_str(struct req_check *c, json_t *obj, const char *key, const char *field, int required,
    int allow_null, enum str_kind kind, const char *choices, char **out)
{
	json_t		*v = json_object_get(obj, key);
	const char	*s;
	size_t		 len, max = kind == STR_TRUST ? TRUST_ID_MAX : TEXT_MAX;

	if (v == NULL || (json_is_null(v) && allow_null)) {
		if (required)
			problem(c, field, "missing");
		return;
	}
	if (!json_is_string(v)) {
		problem(c, field, "must be a string");
		return;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (strlen(s) != len) {
		problem(c, field, "contains a NUL character");
		return;
	}
	if (len == 0) {
		problem(c, field, "empty");
		return;
	}
	if (len > max) {
		problem(c, field, "longer than %zu bytes", max);
		return;
	}
	if (!text_ok(s)) {
		problem(c, field, "contains a control character");
		return;
	}
	if (choices != NULL) {
		const char	*p = choices;
		size_t		 n;
		int		 found = 0;

		while (*p != '\0' && !found) {
			n = strcspn(p, "|");
			if (n == len && strncmp(p, s, n) == 0)
				found = 1;
			p += n;
			if (*p == '|')
				p++;
		}
		if (!found) {
			problem(c, field, "must be one of %s", choices);
			return;
		}
	}
	if (kind == STR_UUID && !util_is_uuid(s)) {
		problem(c, field, "must be a UUID");
		return;
	}
	if (kind == STR_TRUST && !trust_id_ok(s)) {
		problem(c, field, "must be a Keystone trust id (letters, digits, '_' and '-')");
		return;
	}
	if (kind == STR_IDENT && !ident_ok(s, 128)) {
		problem(c, field, "may only hold letters, digits, '.', '_' and '-' (at most 128)");
		return;
	}
	*out = xstrdup(s);
}

/* Reports members of obj not in the NULL-terminated list known; prefix "os." etc. */
static void
unknown_keys(struct req_check *c, json_t *obj, const char *prefix, const char *const *known)
{
	const char	*key;
	json_t		*v;
	size_t		 i;
	char		*field;

	json_object_foreach(obj, key, v) {
		(void)v;
		for (i = 0; known[i] != NULL; i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (known[i] == NULL) {
			field = xasprintf("%s%s", prefix, key);
			problem(c, field, "unknown field");
			free(field);
		}
	}
}

/* A sub-object member (or NULL when absent/null); a non-object is a problem. */
static json_t *
take_obj(struct req_check *c, json_t *obj, const char *key)
{
	json_t	*v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_object(v)) {
		problem(c, key, "must be an object");
		return NULL;
	}
	return v;
}

/* 1 when key is a property isoforge or Glance reserves. */
static int
property_reserved(const char *key)
{
	static const char *const exact[] = { "base_image_ref", "instance_uuid", "image_type",
		"image_location", "image_state", "owner_id", "owner", "id", "status", "name",
		"visibility", "protected", "checksum", "size", "virtual_size", "disk_format",
		"container_format", "min_disk", "min_ram", "tags", "locations", "direct_url",
		"created_at", "updated_at", "os_hidden", "os_hash_algo", "os_hash_value", NULL };
	size_t	 i;

	if (strncmp(key, "os_glance", 9) == 0 || strncmp(key, "isoforge_", 9) == 0)
		return 1;
	for (i = 0; exact[i] != NULL; i++)
		if (strcmp(key, exact[i]) == 0)
			return 1;
	return 0;
}

/* image.properties: string → string, no reserved keys. */
static void
take_properties(struct req_check *c, json_t *v, struct build_request *r)
{
	const char	*key;
	json_t		*val;
	char		*field;

	if (v == NULL || json_is_null(v))
		return;
	if (!json_is_object(v)) {
		problem(c, "image.properties", "must be an object");
		return;
	}
	if (json_object_size(v) > PROPS_MAX) {
		problem(c, "image.properties", "more than %d properties", PROPS_MAX);
		return;
	}
	json_object_foreach(v, key, val) {
		field = xasprintf("image.properties.%s", key);
		if (*key == '\0' || strlen(key) > TEXT_MAX || !text_ok(key))
			problem(c, "image.properties", "a key is empty, too long or has a control "
			    "character");
		else if (property_reserved(key))
			problem(c, field, "reserved (set by Glance or isoforge)");
		else if (!json_is_string(val))
			problem(c, field, "must be a string");
		else if (json_string_length(val) > TEXT_MAX ||
		    strlen(json_string_value(val)) != json_string_length(val) ||
		    !text_ok(json_string_value(val)))
			problem(c, field, "longer than %d bytes or has a control character",
			    TEXT_MAX);
		else
			json_object_set(r->properties, key, val);
		free(field);
	}
}

/* image.tags: an array of distinct short strings. */
static void
take_tags(struct req_check *c, json_t *v, struct build_request *r)
{
	size_t	 i;
	json_t	*t;

	if (v == NULL || json_is_null(v))
		return;
	if (!json_is_array(v)) {
		problem(c, "image.tags", "must be an array of strings");
		return;
	}
	if (json_array_size(v) > TAGS_MAX) {
		problem(c, "image.tags", "more than %d tags", TAGS_MAX);
		return;
	}
	json_array_foreach(v, i, t) {
		if (!json_is_string(t) || json_string_length(t) == 0 ||
		    json_string_length(t) > TEXT_MAX ||
		    strlen(json_string_value(t)) != json_string_length(t) ||
		    !text_ok(json_string_value(t))) {
			problem(c, "image.tags", "tag %zu must be a string of 1..%d bytes without "
			    "control characters", i, TEXT_MAX);
			return;
		}
		json_array_append(r->tags, t);
	}
}

/* Parses and validates a request; see request.h. */
struct build_request *
request_parse(const char *body, size_t len, int mode, struct err *err)
{
	static const char *const top_keys[] = { "schema", "build_id", "trust_id", "name",
		"iso_image", "virtio_win_image", "flavor", "os", "firmware", "install", "chain",
		"parent_image", "image", "from_image", "customize", NULL };
	/* what a user may send to the API: no schema, build_id or credentials */
	static const char *const api_keys[] = { "name", "iso_image", "virtio_win_image",
		"flavor", "os", "firmware", "install", "chain", "parent_image", "image",
		"from_image", "customize", NULL };
	static const char *const os_keys[] = { "type", "distro", "version", NULL };
	static const char *const install_keys[] = { "mode", "timeout_s", "answers", NULL };
	static const char *const image_keys[] = { "visibility", "compress", "properties",
		"tags", NULL };
	struct build_request	*r = NULL;
	struct req_check	 c;
	json_error_t		 je;
	json_t			*root = NULL, *os, *install, *image, *v;
	int			 full = mode == REQUEST_FULL, api = mode == REQUEST_API;

	buf_init(&c.problems);
	if (mode != REQUEST_FULL && mode != REQUEST_PARTIAL && mode != REQUEST_API) {
		err_set(err, ERR_INTERNAL, "request_parse: bad mode %d", mode);
		goto cleanup;
	}
	if (body == NULL || len > REQUEST_MAX_BODY) {
		err_set(err, ERR_INVAL, "request: larger than %d bytes", REQUEST_MAX_BODY);
		goto cleanup;
	}
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		err_set(err, ERR_INVAL, "request: not valid JSON: line %d: %s", je.line, je.text);
		goto cleanup;
	}
	if (!json_is_object(root)) {
		err_set(err, ERR_INVAL, "request: must be a JSON object");
		goto cleanup;
	}

	r = xcalloc(1, sizeof(*r));
	r->timeout_s = REQUEST_TIMEOUT_DEFAULT;
	r->properties = json_object();
	r->tags = json_array();

	unknown_keys(&c, root, "", api ? api_keys : top_keys);
	/* the API's own fields in a user's body are unknown fields (above), nothing more */
	if (!api)
		take_str(&c, root, "schema", "schema", full, 0, STR_TEXT, NULL, &r->schema);
	if (r->schema != NULL && strcmp(r->schema, REQUEST_SCHEMA_V1) == 0) {
		err_set(err, ERR_INVAL, "schema: %s is refused: contract v1 carried the user's "
		    "token; send %s with a trust_id", REQUEST_SCHEMA_V1, REQUEST_SCHEMA);
		request_free(&r);
		goto cleanup;
	}
	if (r->schema != NULL && strcmp(r->schema, REQUEST_SCHEMA) != 0) {
		/* nothing else can be checked against a schema we do not know (and its value is
		 * not repeated: it could be anything, a token included) */
		err_set(err, ERR_INVAL, "schema: not %s (unknown schema)", REQUEST_SCHEMA);
		request_free(&r);
		goto cleanup;
	}
	if (!api && json_object_get(root, "token") != NULL) {
		/* never a bearer token on the bus: refused whole, its value never repeated */
		err_set(err, ERR_INVAL, "token: refused: %s carries no token (the API makes a "
		    "Keystone trust and sends its trust_id)", REQUEST_SCHEMA);
		request_free(&r);
		goto cleanup;
	}
	take_str(&c, root, "build_id", "build_id", 0, 1, STR_UUID, NULL, &r->build_id);
	take_str(&c, root, "trust_id", "trust_id", full, 0, STR_TRUST, NULL, &r->trust_id);
	take_str(&c, root, "name", "name", full || api, 0, STR_TEXT, NULL, &r->name);
	/* a build installs from an ISO, or is derived from an image (customize) */
	take_str(&c, root, "iso_image", "iso_image", (full || api) &&
	    json_object_get(root, "from_image") ==
	    NULL, 0, STR_UUID, NULL, &r->iso_image);
	take_str(&c, root, "from_image", "from_image", 0, 1, STR_UUID, NULL, &r->from_image);
	if (r->iso_image != NULL && r->from_image != NULL)
		problem(&c, "from_image", "a build installs from iso_image or is derived from "
		    "from_image, not both");
	v = json_object_get(root, "virtio_win_image");
	if (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0)
		r->virtio_win_image = xstrdup("auto");
	else
		take_str(&c, root, "virtio_win_image", "virtio_win_image", 0, 1, STR_UUID, NULL,
		    &r->virtio_win_image);
	take_str(&c, root, "flavor", "flavor", full || api, 0, STR_TEXT, NULL, &r->flavor);

	os = take_obj(&c, root, "os");
	if (os != NULL) {
		unknown_keys(&c, os, "os.", os_keys);
		take_str(&c, os, "type", "os.type", 0, 1, STR_TEXT, "windows|linux|other",
		    &r->os_type);
		take_str(&c, os, "distro", "os.distro", 0, 1, STR_TEXT, NULL, &r->os_distro);
		take_str(&c, os, "version", "os.version", 0, 1, STR_TEXT, NULL, &r->os_version);
	}
	take_str(&c, root, "firmware", "firmware", 0, 1, STR_TEXT, "bios|uefi", &r->firmware);

	install = take_obj(&c, root, "install");
	if (install != NULL) {
		unknown_keys(&c, install, "install.", install_keys);
		take_str(&c, install, "mode", "install.mode", 0, 1, STR_TEXT,
		    "interactive|unattended", &r->install_mode);
		v = json_object_get(install, "timeout_s");
		if (v != NULL && !json_is_null(v)) {
			if (!json_is_integer(v))
				problem(&c, "install.timeout_s", "must be an integer");
			else if (json_integer_value(v) < TIMEOUT_MIN ||
			    json_integer_value(v) > TIMEOUT_MAX)
				problem(&c, "install.timeout_s", "must be within %d..%d seconds",
				    TIMEOUT_MIN, TIMEOUT_MAX);
			else
				r->timeout_s = (long)json_integer_value(v);
		}
		/* the unattended install's answers (service/pipeline/answers.h) */
		v = json_object_get(install, "answers");
		if (v != NULL && !json_is_null(v)) {
			struct err	 ae;

			err_clear(&ae);
			if (answers_json_check(v, &ae) == -1) {
				const char	*m = ae.msg;

				if (strncmp(m, "answers: ", 9) == 0)
					m += 9;
				else if (strncmp(m, "install.answers.", 16) == 0)
					m += 16;
				problem(&c, "install.answers", "%s", m);
			}
			else
				r->answers = json_deep_copy(v);
		}
	}
	if (r->install_mode == NULL)
		r->install_mode = xstrdup("interactive");

	/* scripts and files for the installed system (service/pipeline/customize.h) */
	v = json_object_get(root, "customize");
	if (v != NULL && !json_is_null(v)) {
		struct err	 ce;

		err_clear(&ce);
		if (customize_json_check(v, &ce) == -1)
			problem(&c, "customize", "%s", ce.msg);
		else
			r->customize = json_deep_copy(v);
	}
	if (r->from_image != NULL && r->customize == NULL)
		problem(&c, "customize", "a build from_image needs scripts or files to customize "
		    "it with");

	take_str(&c, root, "chain", "chain", 0, 1, STR_IDENT, NULL, &r->chain);
	take_str(&c, root, "parent_image", "parent_image", 0, 1, STR_UUID, NULL,
	    &r->parent_image);

	image = take_obj(&c, root, "image");
	if (image != NULL) {
		unknown_keys(&c, image, "image.", image_keys);
		take_str(&c, image, "visibility", "image.visibility", 0, 1, STR_TEXT,
		    "private|shared|community|public", &r->visibility);
		v = json_object_get(image, "compress");
		if (v != NULL && !json_is_null(v)) {
			if (!json_is_boolean(v))
				problem(&c, "image.compress", "must be true or false");
			else
				r->compress = json_is_true(v);
		}
		take_properties(&c, json_object_get(image, "properties"), r);
		take_tags(&c, json_object_get(image, "tags"), r);
	}
	if (r->visibility == NULL)
		r->visibility = xstrdup("private");

	if (c.problems.len > 0) {
		err_set(err, ERR_INVAL, "%s", c.problems.data);
		request_free(&r);
	}
cleanup:
	buf_free(&c.problems);
	json_decref(root);
	return r;
}

/* Sets key to a string, or leaves it out when s is NULL. */
static void
set_opt(json_t *o, const char *key, const char *s)
{
	if (s != NULL)
		json_object_set_new(o, key, json_string(s));
}

/* The canonical form; see request.h. */
json_t *
request_to_json(const struct build_request *r)
{
	json_t	*o = json_object(), *os, *install, *image;

	json_object_set_new(o, "schema", json_string(REQUEST_SCHEMA));
	set_opt(o, "build_id", r->build_id);
	set_opt(o, "trust_id", r->trust_id);
	set_opt(o, "name", r->name);
	set_opt(o, "iso_image", r->iso_image);
	set_opt(o, "from_image", r->from_image);
	json_object_set_new(o, "virtio_win_image", r->virtio_win_image != NULL ?
	    json_string(r->virtio_win_image) : json_null());
	set_opt(o, "flavor", r->flavor);
	if (r->os_type != NULL || r->os_distro != NULL || r->os_version != NULL) {
		os = json_object();
		set_opt(os, "type", r->os_type);
		set_opt(os, "distro", r->os_distro);
		set_opt(os, "version", r->os_version);
		json_object_set_new(o, "os", os);
	}
	set_opt(o, "firmware", r->firmware);
	install = json_object();
	json_object_set_new(install, "mode", json_string(r->install_mode != NULL ?
	    r->install_mode : "interactive"));
	json_object_set_new(install, "timeout_s", json_integer(r->timeout_s));
	if (r->answers != NULL)
		json_object_set(install, "answers", r->answers);
	json_object_set_new(o, "install", install);
	set_opt(o, "chain", r->chain);
	json_object_set_new(o, "parent_image", r->parent_image != NULL ?
	    json_string(r->parent_image) : json_null());
	image = json_object();
	json_object_set_new(image, "visibility", json_string(r->visibility != NULL ?
	    r->visibility : "private"));
	json_object_set_new(image, "compress", json_boolean(r->compress));
	json_object_set_new(image, "properties", r->properties != NULL ?
	    json_deep_copy(r->properties) : json_object());
	json_object_set_new(image, "tags", r->tags != NULL ? json_deep_copy(r->tags) :
	    json_array());
	json_object_set_new(o, "image", image);
	if (r->customize != NULL)
		json_object_set(o, "customize", r->customize);
	return o;
}

/* Frees a request; accepts NULL. */
void
request_free(struct build_request **rp)
{
	struct build_request	*r;

	if (rp == NULL || *rp == NULL)
		return;
	r = *rp;
	free(r->schema);
	free(r->build_id);
	free(r->trust_id);
	free(r->name);
	free(r->iso_image);
	free(r->from_image);
	json_decref(r->customize);
	free(r->virtio_win_image);
	free(r->flavor);
	free(r->os_type);
	free(r->os_distro);
	free(r->os_version);
	free(r->firmware);
	free(r->install_mode);
	json_decref(r->answers);
	free(r->chain);
	free(r->parent_image);
	free(r->visibility);
	json_decref(r->properties);
	json_decref(r->tags);
	free(r);
	*rp = NULL;
}

/* The trust_id of a v2 body, for deleting the trust of a refused request; see request.h. */
char *
request_trust_id(const char *body, size_t len)
{
	json_t		*root, *v;
	const char	*schema;
	char		*id = NULL;

	if (body == NULL || len > REQUEST_MAX_BODY ||
	    (root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return NULL;
	schema = json_string_value(json_object_get(root, "schema"));
	v = json_object_get(root, "trust_id");
	if (json_is_object(root) && schema != NULL && strcmp(schema, REQUEST_SCHEMA) == 0 &&
	    json_object_get(root, "token") == NULL && json_is_string(v) &&
	    strlen(json_string_value(v)) == json_string_length(v) &&
	    trust_id_ok(json_string_value(v)))
		id = xstrdup(json_string_value(v));
	json_decref(root);
	return id;
}
