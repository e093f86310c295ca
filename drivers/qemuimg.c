/* qemuimg.c — argv builders for qemu-img and the few functions that run them through proc. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "drivers/qemuimg.h"
#include "base/log.h"
#include "base/proc.h"

#define QEMUIMG		"qemu-img"
#define QEMUIMG_SHORT_S	120	/* create, info: metadata only */
#define QEMUIMG_ARGV_MAX 16

/* A growing argv under construction. */
struct qemuimg_argv {
	char	**v;
	int	  n;
};

static void
qa_add(struct qemuimg_argv *a, const char *s)
{
	if (a->v == NULL)
		a->v = xcalloc(QEMUIMG_ARGV_MAX + 1, sizeof(char *));
	if (a->n >= QEMUIMG_ARGV_MAX)
		fatalx("qemuimg: argv too long");
	a->v[a->n++] = xstrdup(s);
	a->v[a->n] = NULL;
}

void
qemuimg_argv_free(char ***argvp)
{
	char	**v;
	int	  i;

	if (argvp == NULL || *argvp == NULL)
		return;
	v = *argvp;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
	*argvp = NULL;
}

char **
qemuimg_create_argv(const char *path, unsigned long long size_bytes)
{
	struct qemuimg_argv	 a = { NULL, 0 };
	char			 size[32];

	snprintf(size, sizeof(size), "%llu", size_bytes);
	qa_add(&a, QEMUIMG);
	qa_add(&a, "create");
	qa_add(&a, "-q");
	qa_add(&a, "-f");
	qa_add(&a, "qcow2");
	qa_add(&a, path);
	qa_add(&a, size);
	return a.v;
}

char **
qemuimg_info_argv(const char *path, int force_share)
{
	struct qemuimg_argv	 a = { NULL, 0 };

	qa_add(&a, QEMUIMG);
	qa_add(&a, "info");
	qa_add(&a, "--output=json");
	if (force_share)
		qa_add(&a, "-U");
	qa_add(&a, path);
	return a.v;
}

char **
qemuimg_convert_argv(const char *src, const char *src_fmt, const char *dst, int compress)
{
	struct qemuimg_argv	 a = { NULL, 0 };

	qa_add(&a, QEMUIMG);
	qa_add(&a, "convert");
	qa_add(&a, "-p");
	if (src_fmt != NULL) {
		qa_add(&a, "-f");
		qa_add(&a, src_fmt);
	}
	qa_add(&a, "-O");
	qa_add(&a, "qcow2");
	if (compress)
		qa_add(&a, "-c");
	qa_add(&a, src);
	qa_add(&a, dst);
	return a.v;
}

char **
qemuimg_compare_argv(const char *a1, const char *a2)
{
	struct qemuimg_argv	 a = { NULL, 0 };

	qa_add(&a, QEMUIMG);
	qa_add(&a, "compare");
	qa_add(&a, "-q");
	qa_add(&a, a1);
	qa_add(&a, a2);
	return a.v;
}

double
qemuimg_parse_progress(const char *line)
{
	const char	*p = strchr(line, '(');
	char		*end;
	double		 pct;

	if (p == NULL)
		return -1;
	pct = strtod(p + 1, &end);
	if (end == p + 1 || strncmp(end, "/100%)", 6) != 0 || pct < 0 || pct > 100)
		return -1;
	return pct;
}

/* ERR_NOTFOUND naming path when it does not exist: clearer than qemu-img's doubled message. */
static int
qemuimg_need(const char *path, struct err *e)
{
	struct stat	 st;

	if (stat(path, &st) == -1) {
		err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Runs a built argv (freeing it) and fills err with qemu-img's words on failure. */
static int
qemuimg_run(char **argv, const struct proc_opts *o, struct proc_result *res, struct err *e)
{
	int	 rc = proc_run_opts(argv, o, res, e);

	qemuimg_argv_free(&argv);
	return rc;
}

char *
qemuimg_version(struct err *e)
{
	struct proc_result	 r;
	struct err		 pe;
	char			*argv[] = { "qemu-img", "--version", NULL };
	char			*v = NULL;

	memset(&r, 0, sizeof(r));
	err_clear(&pe);
	if (proc_run(argv, QEMUIMG_SHORT_S, &r, &pe) == 0) {
		v = xstrdup(r.out.data != NULL ? r.out.data : "qemu-img");
		v[strcspn(v, "\n")] = '\0';
	} else if (pe.kind == ERR_NOTFOUND)
		err_set(e, ERR_NOTFOUND, "qemu-img: not found in PATH (Debian: qemu-utils)");
	else
		err_set(e, pe.kind, "%s", pe.msg);
	proc_result_free(&r);
	return v;
}

int
qemuimg_create(const char *path, unsigned long long size_bytes, struct err *e)
{
	struct proc_opts	 o;
	struct stat		 st;

	if (lstat(path, &st) == 0) {
		err_set(e, ERR_CONFLICT, "%s: already exists", path);
		return -1;
	}
	if (size_bytes == 0) {
		err_set(e, ERR_INVAL, "%s: image size 0", path);
		return -1;
	}
	memset(&o, 0, sizeof(o));
	o.timeout_s = QEMUIMG_SHORT_S;
	if (qemuimg_run(qemuimg_create_argv(path, size_bytes), &o, NULL, e) == -1)
		return -1;
	/* it will hold a system: its owner's alone */
	if (chmod(path, 0600) == -1) {
		err_set(e, ERR_IO, "chmod %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
qemuimg_info(const char *path, json_t **info, struct err *e)
{
	struct proc_opts	 o;
	struct proc_result	 r;
	json_error_t		 je;
	int			 rc = -1;

	*info = NULL;
	memset(&r, 0, sizeof(r));
	if (qemuimg_need(path, e) == -1)
		return -1;
	memset(&o, 0, sizeof(o));
	o.timeout_s = QEMUIMG_SHORT_S;
	if (qemuimg_run(qemuimg_info_argv(path, 1), &o, &r, e) == -1)
		goto cleanup;
	if (r.out_truncated) {
		err_set(e, ERR_IO, "qemu-img info %s: output too long", path);
		goto cleanup;
	}
	*info = json_loadb(r.out.data ? r.out.data : "", r.out.len, 0, &je);
	if (*info == NULL || !json_is_object(*info)) {
		err_set(e, ERR_IO, "qemu-img info %s: bad JSON: %s", path,
		    *info == NULL ? je.text : "not an object");
		json_decref(*info);
		*info = NULL;
		goto cleanup;
	}
	rc = 0;
cleanup:
	proc_result_free(&r);
	return rc;
}

/* Progress forwarding for convert. */
struct qemuimg_progress {
	void	(*fn)(void *, double);
	void	 *arg;
};

static void
qemuimg_on_line(void *arg, int stream, const char *line)
{
	struct qemuimg_progress	*p = arg;
	double			 pct;

	if (stream == 1 && p->fn != NULL && (pct = qemuimg_parse_progress(line)) >= 0)
		p->fn(p->arg, pct);
}

/* fsyncs a file, or a directory. */
static int
qemuimg_fsync(const char *path, struct err *e)
{
	int	 fd, rc = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 || fsync(fd) == -1) {
		err_set(e, ERR_IO, "fsync %s: %s", path, strerror(errno));
		rc = -1;
	}
	if (fd != -1)
		close(fd);
	return rc;
}

int
qemuimg_convert_ex(const char *src, const char *dst, int compress,
    void (*progress)(void *arg, double pct), void *arg,
    int cancel_fd, double timeout_s, int durable, struct err *e)
{
	struct qemuimg_progress	 pg = { progress, arg };
	struct proc_opts	 o;
	unsigned char		 rnd[6];
	char			 hex[13], *d1 = xstrdup(dst), *d2 = xstrdup(dst), *tmp = NULL;
	const char		*dir = dirname(d1), *base = basename(d2);
	int			 rc = -1, made = 0;

	if (qemuimg_need(src, e) == -1 || qemuimg_need(dir, e) == -1)
		goto cleanup;
	util_random(rnd, sizeof(rnd));
	util_hex(rnd, sizeof(rnd), hex);
	tmp = xasprintf("%s/.%s.part-%s", dir, base, hex);
	memset(&o, 0, sizeof(o));
	o.timeout_s = timeout_s;
	o.cancel_fd = cancel_fd;
	o.on_line = qemuimg_on_line;
	o.arg = &pg;
	made = 1;
	if (qemuimg_run(qemuimg_convert_argv(src, NULL, tmp, compress), &o, NULL, e) == -1)
		goto cleanup;
	/* qemu-img writes with cache=unsafe: make the data durable before it gets its name */
	if (durable && qemuimg_fsync(tmp, e) == -1)
		goto cleanup;
	if (chmod(tmp, 0600) == -1) {
		err_set(e, ERR_IO, "chmod %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	if (rename(tmp, dst) == -1) {
		err_set(e, ERR_IO, "rename %s: %s", dst, strerror(errno));
		goto cleanup;
	}
	made = 0;
	if (durable && qemuimg_fsync(dir, e) == -1)
		goto cleanup;
	rc = 0;
cleanup:
	if (made)
		(void)unlink(tmp);
	free(tmp);
	free(d1);
	free(d2);
	return rc;
}

int
qemuimg_convert(const char *src, const char *dst, int compress,
    void (*progress)(void *arg, double pct), void *arg, struct err *e)
{
	return qemuimg_convert_ex(src, dst, compress, progress, arg, -1, 0, 1, e);
}

int
qemuimg_compare(const char *a, const char *b, int *same, struct err *e)
{
	struct proc_opts	 o;
	struct proc_result	 r;
	int			 rc = -1;

	*same = 0;
	if (qemuimg_need(a, e) == -1 || qemuimg_need(b, e) == -1)
		return -1;
	memset(&o, 0, sizeof(o));
	o.ok_status_mask = 1U << 1;	/* 1: the images differ */
	if (qemuimg_run(qemuimg_compare_argv(a, b), &o, &r, e) == -1)
		goto cleanup;
	*same = r.exit_status == 0;
	rc = 0;
cleanup:
	proc_result_free(&r);
	return rc;
}
