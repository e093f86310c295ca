/*
 * fuzz_profile.c — the OS profile parser (isoboot/profile.c) on any text; a profile it accepts
 * also takes the Glance hw_* properties of an image (isoboot_profile_apply_properties) and
 * chooses a profile name for its OS.
 */
#include <jansson.h>

#include "isoboot/isoboot.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct isoboot_profile	*p;
	struct err		 err;
	char			*text = fuzz_cstring(data, size);
	json_t			*props;

	err_clear(&err);
	if ((p = isoboot_profile_parse(text, "fuzz.conf", &err)) == NULL) {
		if (err.msg[0] == '\0')
			abort();
		free(text);
		return 0;
	}
	props = json_pack("{s:s, s:s, s:s}", "hw_disk_bus", "sata", "hw_cdrom_bus", "ide",
	    "hw_machine_type", "q35");
	err_clear(&err);
	isoboot_profile_apply_properties(p, props, &err);
	json_decref(props);
	isoboot_profile_free(&p);
	free(text);
	return 0;
}
