/* hash.c — sha512 + md5 through OpenSSL's EVP interface. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "drivers/hash.h"
#include "base/log.h"

#define HASH_CHUNK		(1 << 20)
#define HASH_PARALLEL_MIN	(32LL << 20)	/* smaller: one thread, no start-up */

struct hash_ctx {
	EVP_MD_CTX	*sha512;
	EVP_MD_CTX	*md5;
};

struct hash_ctx *
hash_new(void)
{
	struct hash_ctx	*h = xcalloc(1, sizeof(*h));

	h->sha512 = EVP_MD_CTX_new();
	h->md5 = EVP_MD_CTX_new();
	if (h->sha512 == NULL || h->md5 == NULL ||
	    EVP_DigestInit_ex(h->sha512, EVP_sha512(), NULL) != 1 ||
	    EVP_DigestInit_ex(h->md5, EVP_md5(), NULL) != 1)
		fatalx("cannot initialise sha512/md5");
	return h;
}

void
hash_update(struct hash_ctx *h, const void *p, size_t n)
{
	if (EVP_DigestUpdate(h->sha512, p, n) != 1 || EVP_DigestUpdate(h->md5, p, n) != 1)
		fatalx("digest update failed");
}

void
hash_final(struct hash_ctx *h, char sha512_hex[129], char md5_hex[33])
{
	unsigned char	 d[EVP_MAX_MD_SIZE];
	unsigned int	 n;

	if (EVP_DigestFinal_ex(h->sha512, d, &n) != 1 || n != 64)
		fatalx("sha512 final failed");
	util_hex(d, n, sha512_hex);
	if (EVP_DigestFinal_ex(h->md5, d, &n) != 1 || n != 16)
		fatalx("md5 final failed");
	util_hex(d, n, md5_hex);
}

void
hash_free(struct hash_ctx **hp)
{
	if (hp == NULL || *hp == NULL)
		return;
	EVP_MD_CTX_free((*hp)->sha512);
	EVP_MD_CTX_free((*hp)->md5);
	free(*hp);
	*hp = NULL;
}

/* One digest of a whole file, read on its own (hash_file's second thread). */
struct hash_one {
	const char	*path;
	const EVP_MD	*md;
	unsigned char	 d[EVP_MAX_MD_SIZE];
	unsigned int	 n;
	int		 rc;
	int		 errno_;
};

static void *
hash_one_run(void *arg)
{
	struct hash_one	*h = arg;
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();
	char		*chunk = xmalloc(HASH_CHUNK);
	ssize_t		 n;
	int		 fd;

	h->rc = -1;
	if ((fd = open(h->path, O_RDONLY | O_CLOEXEC)) == -1) {
		h->errno_ = errno;
		goto cleanup;
	}
	if (ctx == NULL || EVP_DigestInit_ex(ctx, h->md, NULL) != 1)
		fatalx("cannot initialise a digest");
	while ((n = read(fd, chunk, HASH_CHUNK)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			h->errno_ = errno;
			goto cleanup;
		}
		if (EVP_DigestUpdate(ctx, chunk, (size_t)n) != 1)
			fatalx("digest update failed");
	}
	if (EVP_DigestFinal_ex(ctx, h->d, &h->n) != 1)
		fatalx("digest final failed");
	h->rc = 0;
cleanup:
	if (fd != -1)
		close(fd);
	EVP_MD_CTX_free(ctx);
	free(chunk);
	return NULL;
}

/*
 * A big file's two digests on two threads, each reading the file itself (from the page cache,
 * where a file just written or read is): sha512 and md5 cost ~1.1 and ~1.7 s per GiB here
 * on one core, so two threads take the longer of the two instead of their sum.
 */
static int
hash_file_parallel(const char *path, char sha512_hex[129], char md5_hex[33], struct err *e)
{
	struct hash_one	 sha = { path, EVP_sha512(), { 0 }, 0, -1, 0 };
	struct hash_one	 md5 = { path, EVP_md5(), { 0 }, 0, -1, 0 };
	pthread_t	 t;
	int		 started;

	started = pthread_create(&t, NULL, hash_one_run, &md5) == 0;
	hash_one_run(&sha);
	if (started)
		pthread_join(t, NULL);
	else
		hash_one_run(&md5);
	if (sha.rc == -1 || md5.rc == -1) {
		err_set(e, (sha.rc == -1 ? sha.errno_ : md5.errno_) == ENOENT ? ERR_NOTFOUND :
		    ERR_IO, "%s: %s", path, strerror(sha.rc == -1 ? sha.errno_ : md5.errno_));
		return -1;
	}
	if (sha.n != 64 || md5.n != 16)
		fatalx("sha512/md5: unexpected digest sizes");
	util_hex(sha.d, sha.n, sha512_hex);
	util_hex(md5.d, md5.n, md5_hex);
	return 0;
}

int
hash_file(const char *path, char sha512_hex[129], char md5_hex[33], struct err *e)
{
	static __thread char	 chunk[1 << 20];
	struct hash_ctx		*h = NULL;
	ssize_t			 n;
	int			 fd, rc = -1;

	struct stat		 st;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= HASH_PARALLEL_MIN) {
		close(fd);
		return hash_file_parallel(path, sha512_hex, md5_hex, e);
	}
	h = hash_new();
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			err_set(e, ERR_IO, "%s: %s", path, strerror(errno));
			goto cleanup;
		}
		hash_update(h, chunk, (size_t)n);
	}
	hash_final(h, sha512_hex, md5_hex);
	rc = 0;
cleanup:
	hash_free(&h);
	close(fd);
	return rc;
}

struct hash_job {
	pthread_t	 thread;
	int		 started;
	char		*path;
	char		 sha512[129];
	char		 md5[33];
	int		 rc;
	struct err	 err;
};

static void *
hash_job_run(void *arg)
{
	struct hash_job	*j = arg;

	j->rc = hash_file(j->path, j->sha512, j->md5, &j->err);
	return NULL;
}

struct hash_job *
hash_file_start(const char *path)
{
	struct hash_job	*j = xcalloc(1, sizeof(*j));

	j->path = xstrdup(path);
	err_clear(&j->err);
	if (pthread_create(&j->thread, NULL, hash_job_run, j) == 0)
		j->started = 1;
	else
		(void)hash_job_run(j);	/* no thread: at once */
	return j;
}

int
hash_job_wait(struct hash_job **jp, char sha512_hex[129], char md5_hex[33], struct err *e)
{
	struct hash_job	*j;
	int		 rc;

	if (jp == NULL || (j = *jp) == NULL)
		return 0;
	if (j->started)
		pthread_join(j->thread, NULL);
	rc = j->rc;
	if (rc == 0) {
		if (sha512_hex != NULL)
			memcpy(sha512_hex, j->sha512, sizeof(j->sha512));
		if (md5_hex != NULL)
			memcpy(md5_hex, j->md5, sizeof(j->md5));
	} else if (e != NULL)
		err_set(e, j->err.kind, "%s", j->err.msg);
	free(j->path);
	free(j);
	*jp = NULL;
	return rc;
}
