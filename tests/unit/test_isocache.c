/* test_isocache.c — the ISO cache's bound: least recently used first, never an ISO a build
 * holds; names that are hashes only; downloads cut short removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service/pipeline/isocache.h"

static char	*dir;

static int
setup(void **state)
{
	const char	*t = getenv("TEST_TMP");

	(void)state;
	dir = xasprintf("%s/cache", t != NULL ? t : "/tmp");
	util_rmtree(dir, NULL);
	return util_mkdirs(dir, NULL);
}

static int
teardown(void **state)
{
	(void)state;
	util_rmtree(dir, NULL);
	free(dir);
	return 0;
}

/* dir/name of size bytes, last used `ago` seconds ago; returns its path. */
static char *
put(const char *name, size_t size, int ago)
{
	struct timespec	 t[2];
	char		*p = xasprintf("%s/%s", dir, name), *data = xcalloc(1, size + 1);

	assert_int_equal(util_write_file(p, data, size, 0600, NULL), 0);
	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= ago;
	t[1] = t[0];
	assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
	free(data);
	return p;
}

static int
there(const char *p)
{
	return access(p, F_OK) == 0;
}

static void
test_names(void **state)
{
	(void)state;
	assert_true(isocache_name_ok("0123456789abcdef0123456789abcdef"));	/* md5 */
	assert_false(isocache_name_ok("0123456789abcdef0123456789abcde"));	/* short */
	assert_false(isocache_name_ok("../../etc/passwd0123456789abcdef0"));
	assert_false(isocache_name_ok("0123456789ABCDEF0123456789ABCDEF"));
	assert_false(isocache_name_ok(NULL));
}

static void
test_evict_lru_not_held(void **state)
{
	char	*a, *b, *c, *d, *part;
	int	 fd;

	(void)state;
	a = put("a.iso", 4000, 400);		/* oldest, but held by a build */
	b = put("b.iso", 4000, 300);
	c = put("c.iso", 4000, 200);
	d = put("d.iso", 4000, 100);
	part = put("e.iso.XXXXXX.part", 50000, 500);	/* not an ISO of the cache */
	fd = isocache_hold(a, NULL);
	assert_true(fd >= 0);
	/* holding it marked it used now */
	/* 16000 bytes in ISOs, bound 9000: a is used now, so b then c go */
	assert_int_equal(isocache_evict(dir, 9000, NULL), 2);
	assert_true(there(a));
	assert_false(there(b));
	assert_false(there(c));
	assert_true(there(d));
	assert_true(there(part));
	/* bound 1: d goes; a stays while held, goes once free */
	assert_int_equal(isocache_evict(dir, 1, NULL), 1);
	assert_true(there(a));
	close(fd);
	assert_int_equal(isocache_evict(dir, 1, NULL), 1);
	assert_false(there(a));
	/* no bound: nothing goes */
	free(b);
	b = put("b.iso", 4000, 0);
	assert_int_equal(isocache_evict(dir, 0, NULL), 0);
	assert_true(there(b));
	free(a);
	free(b);
	free(c);
	free(d);
	free(part);
}

static void
test_clean_parts(void **state)
{
	char	*old, *fresh, *iso;

	(void)state;
	old = put("f.iso.AAAAAA.part", 10, 600);
	fresh = put("g.iso.BBBBBB.part", 10, 0);
	iso = put("h.iso", 10, 600);
	assert_int_equal(isocache_clean_parts(dir, time(NULL) - 60, NULL), 1);
	assert_false(there(old));
	assert_true(there(fresh));
	assert_true(there(iso));
	free(old);
	free(fresh);
	free(iso);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_evict_lru_not_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clean_parts, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
