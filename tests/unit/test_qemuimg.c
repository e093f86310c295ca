/* test_qemuimg.c — argv builders against expected vectors; the doers with the real qemu-img. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drivers/qemuimg.h"

static char	 dir[2048];

/* A path in this test's private directory. */
static const char *
tpath(const char *name)
{
	static char	 p[4][4096];
	static int	 k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
	return p[k];
}

static int
count_entries(const char *d)
{
	DIR		*dp = opendir(d);
	struct dirent	*de;
	int		 n = 0;

	assert_non_null(dp);
	while ((de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(dp);
	return n;
}

static void
assert_argv(char **got, const char *const *want)
{
	int	 i;

	assert_non_null(got);
	for (i = 0; want[i] != NULL; i++) {
		assert_non_null(got[i]);
		assert_string_equal(got[i], want[i]);
	}
	assert_null(got[i]);
}

static void
test_argv_builders(void **state)
{
	const char *const create[] = { "qemu-img", "create", "-q", "-f", "qcow2", "/x/root.qcow2",
	    "10737418240", NULL };
	const char *const info[] = { "qemu-img", "info", "--output=json", "-U", "a b.qcow2", NULL };
	const char *const info0[] = { "qemu-img", "info", "--output=json", "-x", NULL };
	const char *const conv[] = { "qemu-img", "convert", "-p", "-O", "qcow2", "in", "out", NULL };
	const char *const convc[] = { "qemu-img", "convert", "-p", "-f", "raw", "-O", "qcow2", "-c",
	    "in", "out", NULL };
	const char *const cmp[] = { "qemu-img", "compare", "-q", "a", "b", NULL };
	char	**v;

	(void)state;
	v = qemuimg_create_argv("/x/root.qcow2", 10ULL << 30);
	assert_argv(v, create);
	qemuimg_argv_free(&v);
	assert_null(v);
	qemuimg_argv_free(&v);
	qemuimg_argv_free(NULL);
	v = qemuimg_info_argv("a b.qcow2", 1);
	assert_argv(v, info);
	qemuimg_argv_free(&v);
	/* a file name is one argument, whatever it looks like */
	v = qemuimg_info_argv("-x", 0);
	assert_argv(v, info0);
	qemuimg_argv_free(&v);
	v = qemuimg_convert_argv("in", NULL, "out", 0);
	assert_argv(v, conv);
	qemuimg_argv_free(&v);
	v = qemuimg_convert_argv("in", "raw", "out", 1);
	assert_argv(v, convc);
	qemuimg_argv_free(&v);
	v = qemuimg_compare_argv("a", "b");
	assert_argv(v, cmp);
	qemuimg_argv_free(&v);
}

static void
test_parse_progress(void **state)
{
	(void)state;
	assert_true(qemuimg_parse_progress("    (12.34/100%)") == 12.34);
	assert_true(qemuimg_parse_progress("(100.00/100%)") == 100.0);
	assert_true(qemuimg_parse_progress("    (0.00/100%)") == 0.0);
	assert_true(qemuimg_parse_progress("qemu-img: error") < 0);
	assert_true(qemuimg_parse_progress("(abc/100%)") < 0);
	assert_true(qemuimg_parse_progress("(12.0/50%)") < 0);
}

static void
test_create_and_info(void **state)
{
	json_t		*info = NULL;
	struct err	 e;

	(void)state;
	err_clear(&e);
	assert_int_equal(qemuimg_create(tpath("one.qcow2"), 1ULL << 30, &e), 0);
	assert_int_equal(qemuimg_info(tpath("one.qcow2"), &info, &e), 0);
	assert_string_equal(json_string_value(json_object_get(info, "format")), "qcow2");
	assert_int_equal(json_integer_value(json_object_get(info, "virtual-size")), 1LL << 30);
	json_decref(info);

	/* never over an existing file */
	assert_int_equal(qemuimg_create(tpath("one.qcow2"), 1ULL << 20, &e), -1);
	assert_int_equal(e.kind, ERR_CONFLICT);
	err_clear(&e);
	assert_int_equal(qemuimg_info(tpath("none.qcow2"), &info, &e), -1);
	assert_null(info);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "none.qcow2"));
	/* qemu-img's own words on a file that is no image of the format it claims */
	err_clear(&e);
	assert_int_equal(util_write_file(tpath("bad.qcow2"), "QFI\xfb\0\0\0\x03garbage", 15, 0644, &e), 0);
	assert_int_equal(qemuimg_info(tpath("bad.qcow2"), &info, &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_non_null(strstr(e.msg, "qemu-img exited with status 1: qemu-img: Could not open"));
	unlink(tpath("one.qcow2"));
	unlink(tpath("bad.qcow2"));
}

struct prog {
	int	 calls;
	double	 last;
	int	 monotonic;
};

static void
on_progress(void *arg, double pct)
{
	struct prog	*p = arg;

	if (p->calls > 0 && pct < p->last)
		p->monotonic = 0;
	p->calls++;
	p->last = pct;
}

static long long
file_size(const char *path)
{
	struct stat	 st;

	assert_int_equal(stat(path, &st), 0);
	return (long long)st.st_size;
}

static void
test_convert_and_compare(void **state)
{
	struct prog	 pg = { 0, 0, 1 };
	struct err	 e;
	json_t		*info = NULL;
	char		*data;
	size_t		 i, len = 8 << 20;
	int		 same = -1;

	(void)state;
	/* a raw disk with compressible content */
	data = malloc(len);
	assert_non_null(data);
	for (i = 0; i < len; i++)
		data[i] = "isoforge builds images "[i % 23];
	err_clear(&e);
	assert_int_equal(util_write_file(tpath("disk.raw"), data, len, 0644, &e), 0);
	free(data);

	assert_int_equal(qemuimg_convert(tpath("disk.raw"), tpath("plain.qcow2"), 0,
	    on_progress, &pg, &e), 0);
	assert_true(pg.calls >= 1);
	assert_true(pg.last == 100.0);
	assert_true(pg.monotonic);
	assert_int_equal(qemuimg_convert(tpath("disk.raw"), tpath("small.qcow2"), 1, NULL, NULL,
	    &e), 0);
	assert_int_equal(qemuimg_info(tpath("small.qcow2"), &info, &e), 0);
	assert_string_equal(json_string_value(json_object_get(info, "format")), "qcow2");
	assert_int_equal(json_integer_value(json_object_get(info, "virtual-size")), 8 << 20);
	json_decref(info);
	assert_true(file_size(tpath("small.qcow2")) * 4 < file_size(tpath("plain.qcow2")));

	assert_int_equal(qemuimg_compare(tpath("disk.raw"), tpath("plain.qcow2"), &same, &e), 0);
	assert_int_equal(same, 1);
	assert_int_equal(qemuimg_compare(tpath("plain.qcow2"), tpath("small.qcow2"), &same, &e), 0);
	assert_int_equal(same, 1);
	assert_int_equal(qemuimg_create(tpath("empty.qcow2"), 8 << 20, &e), 0);
	assert_int_equal(qemuimg_compare(tpath("plain.qcow2"), tpath("empty.qcow2"), &same, &e), 0);
	assert_int_equal(same, 0);
	assert_int_equal(e.kind, ERR_NONE);
	assert_int_equal(qemuimg_compare(tpath("plain.qcow2"), tpath("nope.qcow2"), &same, &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);

	/* converting over an existing file replaces it whole */
	err_clear(&e);
	assert_int_equal(qemuimg_convert(tpath("empty.qcow2"), tpath("plain.qcow2"), 0, NULL,
	    NULL, &e), 0);
	assert_int_equal(qemuimg_compare(tpath("plain.qcow2"), tpath("empty.qcow2"), &same, &e), 0);
	assert_int_equal(same, 1);
	/* nothing but the images themselves: no temporary files left */
	assert_int_equal(count_entries(dir), 4);
	unlink(tpath("disk.raw"));
	unlink(tpath("plain.qcow2"));
	unlink(tpath("small.qcow2"));
	unlink(tpath("empty.qcow2"));
}

static void
test_convert_failures_leave_nothing(void **state)
{
	struct err	 e;
	char		 out[4096];

	(void)state;
	snprintf(out, sizeof(out), "%s/out", dir);
	assert_int_equal(mkdir(out, 0755), 0);
	err_clear(&e);
	assert_int_equal(qemuimg_convert(tpath("missing.raw"), tpath("out/x.qcow2"), 0, NULL, NULL,
	    &e), -1);
	assert_int_equal(e.kind, ERR_NOTFOUND);
	assert_non_null(strstr(e.msg, "missing.raw"));
	assert_int_equal(count_entries(out), 0);

	/* qemu-img itself fails (after creating its output): the partial file goes */
	err_clear(&e);
	assert_int_equal(util_write_file(tpath("bad.qcow2"), "QFI\xfb\0\0\0\x03garbage", 15, 0644, &e), 0);
	assert_int_equal(qemuimg_convert(tpath("bad.qcow2"), tpath("out/x.qcow2"), 1, NULL, NULL,
	    &e), -1);
	assert_int_equal(e.kind, ERR_IO);
	assert_non_null(strstr(e.msg, "bad.qcow2"));
	assert_int_equal(count_entries(out), 0);
	unlink(tpath("bad.qcow2"));
	rmdir(out);
}

static void
test_locked_image(void **state)
{
	struct err	 e;
	struct stat	 st;
	pid_t		 pid;
	char		 ino[32];
	int		 i, status, locked, rc = 0;

	(void)state;
	err_clear(&e);
	assert_int_equal(qemuimg_create(tpath("busy.qcow2"), 1 << 20, &e), 0);
	/* qemu-io holds the image open read-write, like a running VM */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execlp("qemu-io", "qemu-io", "-c", "sleep 20000", tpath("busy.qcow2"), (char *)NULL);
		_exit(127);
	}
	/* wait until it holds its locks (OFD locks on the image's inode in /proc/locks) */
	assert_int_equal(stat(tpath("busy.qcow2"), &st), 0);
	snprintf(ino, sizeof(ino), ":%llu ", (unsigned long long)st.st_ino);
	for (i = 0, locked = 0; i < 200 && !locked; i++) {
		char	*locks = util_read_file("/proc/locks", 1 << 20, NULL, &e);

		assert_non_null(locks);
		locked = strstr(locks, ino) != NULL;
		free(locks);
		if (!locked)
			usleep(50 * 1000);
	}
	assert_true(locked);
	rc = qemuimg_convert(tpath("busy.qcow2"), tpath("copy.qcow2"), 0, NULL, NULL, &e);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(e.msg, "Failed to get shared \"write\" lock"));
	assert_int_equal(access(tpath("copy.qcow2"), F_OK), -1);
	unlink(tpath("busy.qcow2"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_argv_builders),
		cmocka_unit_test(test_parse_progress),
		cmocka_unit_test(test_create_and_info),
		cmocka_unit_test(test_convert_and_compare),
		cmocka_unit_test(test_convert_failures_leave_nothing),
		cmocka_unit_test(test_locked_image),
	};
	const char	*base = getenv("TEST_TMP");
	int		 rc;

	snprintf(dir, sizeof(dir), "%s/qemuimg-XXXXXX", base && *base ? base : "/tmp");
	if (mkdtemp(dir) == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return rc;
}
