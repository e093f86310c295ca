/* nova.h — Nova flavors (what a build needs of a flavor: vcpus, ram, disk, extra specs). */
#ifndef ISOFORGE_NOVA_H
#define ISOFORGE_NOVA_H

#include <jansson.h>

#include "drivers/keystone.h"
#include "base/util.h"

struct nova_flavor {
	char		*id;
	char		*name;
	unsigned	 vcpus;
	unsigned	 ram_mib;
	unsigned	 disk_gib;
	unsigned	 ephemeral_gib;
	unsigned	 swap_mib;
	json_t		*extra_specs;	/* object name → string; never NULL */
};

/* The compute API microversion every request asks for. */
#define NOVA_MICROVERSION	"2.61"

struct nova;

/* A client on session ks (borrowed; must outlive it). endpoint NULL = the catalog's
 * "compute". Uses compute microversion 2.61 (flavors carry their extra specs). */
struct nova		*nova_new(struct keystone *ks, const char *endpoint, struct err *);
void			 nova_free(struct nova **);

/* The flavor with id, else the one named so (public or accessible to the project);
 * ERR_NOTFOUND when none, ERR_INVAL when the name is ambiguous. Caller frees. */
struct nova_flavor	*nova_flavor_get(struct nova *, const char *id_or_name, struct err *);
/* Parses one {"flavor"}-style object (pure); caller frees. */
struct nova_flavor	*nova_flavor_parse(const json_t *flavor, struct err *);
void			 nova_flavor_free(struct nova_flavor **);

#endif
