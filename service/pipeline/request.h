/* request.h — the build request, contract v2 ("isoforge.build/2", docs/api.md "Messages on the
 * bus"): a Keystone trust id, never a token; v1 and any token field are refused. */
#ifndef ISOFORGE_REQUEST_H
#define ISOFORGE_REQUEST_H

#include <stddef.h>
#include <jansson.h>

#include "base/util.h"

#define REQUEST_SCHEMA		"isoforge.build/2"
#define REQUEST_SCHEMA_V1	"isoforge.build/1"
#define REQUEST_MAX_BODY	(64 * 1024)
#define REQUEST_TIMEOUT_DEFAULT	7200

/* request_parse modes. */
#define REQUEST_FULL	1	/* what a worker needs: trust_id, name, iso_image, flavor, schema */
#define REQUEST_PARTIAL	2	/* `isoforge plan`: only checks what is present */
#define REQUEST_API	3	/* isoforge-api's POST body: what a user asks for, without
				 * schema, build_id, token or trust_id (those are the API's);
				 * requires name, iso_image (or from_image) and flavor */

/* A validated request; absent optional strings are NULL. */
struct build_request {
	char	*schema;
	char	*build_id;		/* a UUID, or NULL: the worker assigns one */
	char	*trust_id;		/* the Keystone trust from the requester to isoforge */
	char	*name;
	char	*iso_image;		/* Glance image id (UUID) */
	char	*virtio_win_image;	/* NULL | "auto" | a Glance image id */
	char	*flavor;		/* Nova flavor id or name */
	char	*os_type;		/* windows | linux | other, or NULL */
	char	*os_distro;
	char	*os_version;
	char	*firmware;		/* NULL | bios | uefi */
	char	*install_mode;		/* interactive (default) | unattended */
	long	 timeout_s;		/* default REQUEST_TIMEOUT_DEFAULT */
	json_t	*answers;		/* install.answers (unattended), or NULL; holds
					 * passwords: never log it */
	char	*chain;
	char	*parent_image;		/* Glance image id or NULL */
	char	*from_image;		/* a derived build's base: Glance image id, or NULL */
	json_t	*customize;		/* scripts and files (customize.h), or NULL */
	char	*visibility;		/* private (default) | shared | community | public */
	int	 compress;
	json_t	*properties;		/* object of string → string (never NULL) */
	json_t	*tags;			/* array of strings (never NULL) */
};

/*
 * Parses and validates a body of len bytes. REQUEST_FULL requires what a worker needs
 * (schema, trust_id, name, iso_image, flavor); REQUEST_PARTIAL only checks the types and values
 * of what is present. The error (ERR_INVAL) names every bad field, joined by "; ":
 * "flavor: missing; os.type: must be one of windows|linux|other". Bodies over 64 KiB and
 * unknown fields are refused; so are schema isoforge.build/1 and a "token" field (contract v2
 * carries no token; in REQUEST_API mode both are unknown fields), with a reason that never
 * repeats the token. Caller frees with request_free.
 */
struct build_request *request_parse(const char *body, size_t len, int mode, struct err *);
/* The canonical JSON form (defaults filled in; includes the trust_id). Caller json_decref()s. */
json_t	*request_to_json(const struct build_request *);
void	 request_free(struct build_request **);
/* The trust_id of a body a worker may refuse, when the body is a v2 request (an object, schema
 * REQUEST_SCHEMA, no "token") holding a well-formed trust_id, so that a refused request's trust
 * is deleted too; else NULL. Caller frees. */
char	*request_trust_id(const char *body, size_t len);

#endif
