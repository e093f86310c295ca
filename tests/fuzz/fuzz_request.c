/*
 * fuzz_request.c — the build request parser (service/pipeline/request.c) on any body: both
 * modes, and the canonical form of what it accepts (request_to_json, dumped as the worker
 * stores it) parses again to the same request.
 */
#include <jansson.h>

#include "service/pipeline/request.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct build_request	*req, *again;
	struct err		 err;
	json_t			*canon;
	char			*s, *s2;
	int			 mode;

	for (mode = REQUEST_FULL; mode <= REQUEST_PARTIAL; mode++) {
		err_clear(&err);
		req = request_parse((const char *)data, size, mode, &err);
		if (req == NULL)
			continue;
		canon = request_to_json(req);
		s = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
		/* what was accepted once is accepted again, unchanged */
		err_clear(&err);
		again = request_parse(s, strlen(s), mode, &err);
		if (again == NULL)
			abort();
		json_decref(canon);
		canon = request_to_json(again);
		s2 = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
		if (strcmp(s, s2) != 0)
			abort();
		free(s2);
		free(s);
		json_decref(canon);
		request_free(&again);
		request_free(&req);
	}
	return 0;
}
