/* templates.h — the I/O side of templates: finding and reading profiles and the base domain. */
#ifndef ISOFORGE_TEMPLATES_H
#define ISOFORGE_TEMPLATES_H

#include "isoboot/isoboot.h"
#include "base/util.h"

/*
 * The templates directory: $ISOFORGE_TEMPLATES, else <dir of the executable>/../templates
 * (or ../../templates, for the sanitizer build in build/san/), else
 * /usr/share/isoforge/templates. Computed once; a static string.
 */
const char *templates_dir(void);
/* Loads DIR/profiles/NAME.conf; errors name the file (and line). Caller frees the profile. */
struct isoboot_profile *templates_load_profile(const char *dir, const char *name, struct err *);
/* The text of DIR/domain.xml; caller frees. */
char	*templates_load_domain(const char *dir, struct err *);

#endif
