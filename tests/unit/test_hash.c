/* test_hash.c — known digests, streamed in pieces and from a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drivers/hash.h"

static void
test_abc_in_pieces(void **state)
{
	struct hash_ctx	*h = hash_new();
	char		 sha[129], md5[33];

	(void)state;
	hash_update(h, "a", 1);
	hash_update(h, "bc", 2);
	hash_final(h, sha, md5);
	hash_free(&h);
	assert_null(h);
	assert_string_equal(md5, "900150983cd24fb0d6963f7d28e17f72");
	assert_string_equal(sha, "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
	    "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
}

static void
test_file_and_missing(void **state)
{
	char		 path[] = "/tmp/isoforge-hash-XXXXXX", sha[129], md5[33];
	struct err	 e;
	int		 fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "abc", 3), 3);
	close(fd);
	err_clear(&e);
	assert_int_equal(hash_file(path, sha, md5, &e), 0);
	assert_string_equal(md5, "900150983cd24fb0d6963f7d28e17f72");
	unlink(path);
	assert_int_equal(hash_file(path, sha, md5, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
}

/* A file big enough for the two-thread path (and the same on a thread of its own, as a job)
 * gives the digests of streaming the same bytes through one context. */
static void
test_big_file_parallel_and_job(void **state)
{
	char		 path[] = "/tmp/isoforge-hash-XXXXXX", sha[129], md5[33];
	char		 wsha[129], wmd5[33], jsha[129], jmd5[33];
	static unsigned char buf[1 << 20];
	struct hash_ctx	*h = hash_new();
	struct hash_job	*j;
	struct err	 e;
	size_t		 i, k;
	int		 fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	for (k = 0; k < 40; k++) {	/* 40 MiB, every MiB different */
		for (i = 0; i < sizeof(buf); i++)
			buf[i] = (unsigned char)(i * 31 + k * 7 + (i >> 11));
		assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
		hash_update(h, buf, sizeof(buf));
	}
	assert_int_equal(write(fd, "tail", 4), 4);	/* not a whole chunk at the end */
	hash_update(h, "tail", 4);
	close(fd);
	hash_final(h, wsha, wmd5);
	hash_free(&h);
	err_clear(&e);
	assert_int_equal(hash_file(path, sha, md5, &e), 0);
	assert_string_equal(sha, wsha);
	assert_string_equal(md5, wmd5);
	j = hash_file_start(path);
	assert_int_equal(hash_job_wait(&j, jsha, jmd5, &e), 0);
	assert_null(j);
	assert_string_equal(jsha, wsha);
	assert_string_equal(jmd5, wmd5);
	unlink(path);
	j = hash_file_start(path);
	assert_int_equal(hash_job_wait(&j, jsha, jmd5, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_abc_in_pieces),
		cmocka_unit_test(test_file_and_missing),
		cmocka_unit_test(test_big_file_parallel_and_job),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
