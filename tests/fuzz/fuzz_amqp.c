/*
 * fuzz_amqp.c — what the worker runs on the body of a delivery: on its control queue
 * worker_control_parse; on the requests queue the size bound, request_parse (REQUEST_FULL) and
 * the canonical record it keeps in the job store (token removed, build_id set).
 */
#include <jansson.h>

#include "service/pipeline/request.h"
#include "service/worker/worker.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct build_request	*req;
	struct err		 err;
	json_t			*msg, *canon;
	const char		*action, *build_id;
	char			*s;

	err_clear(&err);
	msg = worker_control_parse(data, size, &action, &build_id, &err);
	if (msg != NULL && (action == NULL || build_id == NULL || strlen(action) > size))
		abort();
	if (msg == NULL && err.msg[0] == '\0')
		abort();	/* a refusal always says why */
	json_decref(msg);

	if (size > WORKER_MAX_BODY)
		return 0;
	err_clear(&err);
	if ((req = request_parse((const char *)data, size, REQUEST_FULL, &err)) == NULL) {
		if (err.msg[0] == '\0')
			abort();
		return 0;
	}
	canon = request_to_json(req);
	json_object_del(canon, "token");
	json_object_set_new(canon, "build_id", json_string(req->build_id != NULL ?
	    req->build_id : "00000000-0000-4000-8000-000000000000"));
	s = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
	if (s == NULL)
		abort();
	free(s);
	json_decref(canon);
	request_free(&req);
	return 0;
}
