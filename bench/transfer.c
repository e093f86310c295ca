/* bench/transfer.c — isoforge's side of bench/transfer: one upload or download of an image
 * through drivers/glance, credentials from OS_* (sourced env.sh). Prints one line:
 *   upload:   "id=ID bytes=N seconds=S vmhwm_kib=K"  (the upload and its verification)
 *   download: "bytes=N seconds=S vmhwm_kib=K"        (show, transfer, verification, rename)
 * Like curl's side of the benchmark, authentication, the token's first validation by Glance
 * and the creation of the image record are not timed.
 * Usage: transfer upload FILE | transfer download ID FILE */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/glance.h"
#include "base/log.h"
#include "service/cli/osenv.h"
#include "base/util.h"
#include "tests/cloud/clients_common.h"

int
main(int argc, char *argv[])
{
	struct http_opts	 o;
	struct http_client	*http = NULL;
	struct keystone_auth	 a;
	struct keystone		*ks = NULL;
	struct glance		*g = NULL;
	struct glance_xfer	 x;
	struct err		 e;
	struct glance_list_opts	 lo;
	json_t			*body = NULL, *img = NULL, *list = NULL;
	const char		*id;
	double			 t0;
	int			 rc = 1;

	log_init("bench-transfer", getenv("BENCH_VERBOSE") != NULL);
	if (argc < 3 || (strcmp(argv[1], "upload") == 0 && argc != 3) ||
	    (strcmp(argv[1], "download") == 0 && argc != 4)) {
		fprintf(stderr, "usage: transfer upload FILE | transfer download ID FILE\n");
		return 2;
	}
	err_clear(&e);
	memset(&o, 0, sizeof(o));
	osenv_http_opts(&o);
	http = http_client_new(&o);
	memset(&x, 0, sizeof(x));
	if (osenv_auth("", &a, &e) == -1 || (ks = keystone_new(http, &a, &e)) == NULL ||
	    (g = glance_new(ks, NULL, &e)) == NULL)
		goto cleanup;
	memset(&lo, 0, sizeof(lo));
	lo.page_size = 1;
	lo.max = 1;
	if ((list = glance_image_list(g, &lo, &e)) == NULL)	/* warm-up: token validated */
		goto cleanup;
	if (strcmp(argv[1], "upload") == 0) {
		body = json_pack("{s:s,s:s,s:s}", "name", "bench-isoforge", "disk_format", "raw",
		    "container_format", "bare");
		if ((img = glance_image_create(g, body, &e)) == NULL)
			goto cleanup;
		id = json_string_value(json_object_get(img, "id"));
		t0 = util_now();
		if (glance_image_upload_file(g, id, argv[2], &x, &e) == -1)
			goto cleanup;
		printf("id=%s bytes=%lld seconds=%.3f vmhwm_kib=%ld\n", id, x.bytes,
		    util_now() - t0, vm_hwm_kib());
	} else {
		t0 = util_now();
		if (glance_image_download(g, argv[2], argv[3], &x, &e) == -1)
			goto cleanup;
		printf("bytes=%lld seconds=%.3f vmhwm_kib=%ld\n", x.bytes, util_now() - t0,
		    vm_hwm_kib());
	}
	rc = 0;
cleanup:
	if (rc != 0)
		fprintf(stderr, "transfer %s: %s\n", argv[1], e.msg);
	json_decref(list);
	json_decref(img);
	json_decref(body);
	glance_free(&g);
	keystone_free(&ks);
	http_client_free(&http);
	return rc;
}
