/* ssh.c — libssh2 in non-blocking mode, driven by poll() in 100 ms ticks so every wait can be
 * cancelled or run out; the ephemeral key is generated with OpenSSL and kept in memory only. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "base/log.h"
#include "drivers/ssh.h"

#define SSH_TICK_MS		100
#define SSH_ATTEMPT_S		20
#define SSH_RETRY_S		2
#define SSH_TAIL_LINES		20
#define SSH_GRACE_S		10	/* clean-up after a timeout or cancel */
#define SSH_POWEROFF_S		30
#define SSH_CHUNK		32768
#define SSH_AUTHKEYS_MAX	(1024 * 1024)
#define SSH_MSG_TAIL		600	/* bytes of a command's last lines in an error message */

/* ---- the ephemeral key ---- */

struct ssh_key {
	char	*pem;		/* the private key, PKCS#8 PEM; wiped on free */
	size_t	 pem_len;
	int	 locked;	/* pem is mlock()ed */
	char	*blob64;	/* base64 public key blob: the authorized_keys line's 2nd field */
	char	*authorized;
	char	 fingerprint[64];
};

/* Appends an SSH wire "string" (32-bit big-endian length, bytes). */
static void
ssh_put_string(struct buf *b, const void *p, size_t n)
{
	unsigned char	 len[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16),
			    (unsigned char)(n >> 8), (unsigned char)n };

	buf_append(b, len, 4);
	buf_append(b, p, n);
}

/* Base64 of n bytes; caller frees. */
static char *
ssh_base64(const unsigned char *p, size_t n)
{
	char	*out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

/* "SHA256:<base64 without padding>" of a 32-byte digest, as OpenSSH prints fingerprints. */
static void
ssh_fingerprint(const unsigned char *sha256, char out[64])
{
	char	*b = ssh_base64(sha256, 32);
	size_t	 n = strlen(b);

	while (n > 0 && b[n - 1] == '=')
		b[--n] = '\0';
	snprintf(out, 64, "SHA256:%s", b);
	free(b);
}

/* OpenSSL's queued error as text, for a message. */
static const char *
ssh_ossl_error(char *buf, size_t n)
{
	unsigned long	 code = ERR_get_error();

	if (code == 0)
		return "unknown error";
	ERR_error_string_n(code, buf, n);
	ERR_clear_error();
	return buf;
}

struct ssh_key *
ssh_key_new(enum ssh_key_type type, const char *comment, struct err *e)
{
	struct ssh_key	*k = NULL;
	struct buf	 blob;
	EVP_PKEY	*pk = NULL;
	BIO		*bio = NULL;
	unsigned char	 raw[160], md[32];
	size_t		 rawlen = sizeof(raw);
	const char	*name, *p;
	char		*pem, ebuf[256];
	long		 n;
	int		 ok;

	buf_init(&blob);
	for (p = comment; p != NULL && *p != '\0'; p++)
		if (*p < 0x20 || *p > 0x7e) {
			err_set(e, ERR_INVAL, "ssh key comment: only printable ASCII is allowed");
			goto cleanup;
		}
	switch (type) {
	case SSH_KEY_ED25519:
		name = "ssh-ed25519";
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		ok = pk != NULL && EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) == 1;
		break;
	case SSH_KEY_ECDSA_P256:
		name = "ecdsa-sha2-nistp256";
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		/* the uncompressed point (0x04 || X || Y), as RFC 5656 wants it */
		ok = pk != NULL && EVP_PKEY_get_octet_string_param(pk,
		    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, raw, sizeof(raw), &rawlen) == 1;
		break;
	default:
		err_set(e, ERR_INVAL, "ssh key: unknown type %d", (int)type);
		goto cleanup;
	}
	if (!ok) {
		err_set(e, ERR_INTERNAL, "ssh key generation (%s): %s", name,
		    ssh_ossl_error(ebuf, sizeof(ebuf)));
		goto cleanup;
	}
	ssh_put_string(&blob, name, strlen(name));
	if (type == SSH_KEY_ECDSA_P256)
		ssh_put_string(&blob, "nistp256", 8);
	ssh_put_string(&blob, raw, rawlen);

	/* BIO_s_secmem: OpenSSL clears the buffer when it frees it */
	if ((bio = BIO_new(BIO_s_secmem())) == NULL ||
	    PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (n = BIO_get_mem_data(bio, &pem)) <= 0) {
		err_set(e, ERR_INTERNAL, "ssh key: PEM encoding: %s",
		    ssh_ossl_error(ebuf, sizeof(ebuf)));
		goto cleanup;
	}
	k = xcalloc(1, sizeof(*k));
	k->pem_len = (size_t)n;
	k->pem = xmalloc(k->pem_len + 1);
	/* kept out of swap where the limit allows; a failure only loses that */
	k->locked = mlock(k->pem, k->pem_len + 1) == 0;
	memcpy(k->pem, pem, k->pem_len);
	k->pem[k->pem_len] = '\0';
	k->blob64 = ssh_base64((const unsigned char *)blob.data, blob.len);
	k->authorized = comment != NULL && *comment != '\0' ?
	    xasprintf("%s %s %s", name, k->blob64, comment) : xasprintf("%s %s", name, k->blob64);
	if (EVP_Digest(blob.data, blob.len, md, NULL, EVP_sha256(), NULL) != 1) {
		err_set(e, ERR_INTERNAL, "ssh key: SHA-256: %s", ssh_ossl_error(ebuf, sizeof(ebuf)));
		ssh_key_free(&k);
		goto cleanup;
	}
	ssh_fingerprint(md, k->fingerprint);
cleanup:
	BIO_free(bio);
	EVP_PKEY_free(pk);
	OPENSSL_cleanse(raw, sizeof(raw));
	buf_free(&blob);
	return k;
}

const char *
ssh_key_authorized(const struct ssh_key *k)
{
	return k->authorized;
}

const char *
ssh_key_fingerprint(const struct ssh_key *k)
{
	return k->fingerprint;
}

void
ssh_key_free(struct ssh_key **kp)
{
	struct ssh_key	*k;

	if (kp == NULL || *kp == NULL)
		return;
	k = *kp;
	OPENSSL_cleanse(k->pem, k->pem_len + 1);
	if (k->locked)
		(void)munlock(k->pem, k->pem_len + 1);
	free(k->pem);
	free(k->blob64);
	free(k->authorized);
	free(k);
	*kp = NULL;
}

/* ---- waiting: one tick at a time, watching the cancel flag and the clock ---- */

struct ssh_conn {
	struct ssh_opts	 o;		/* the caller's options; the strings are ours below */
	char		*host, *user, *want_hostkey, *workdir;
	char		 label[320];	/* "root@127.0.0.1:2222", for messages */
	int		 fd;
	LIBSSH2_SESSION	*s;
	LIBSSH2_SFTP	*sftp;
	char		 hostkey[64];
	char		 hostkey_type[32];
	int		 broken;	/* the connection is gone: every call fails at once */
};

/* The limits of one operation. */
struct ssh_op {
	double	 until;		/* absolute util_now() time; 0: none */
	double	 timeout_s;	/* the operation's own timeout, for messages; 0: none */
	int	 cleanup;	/* a clean-up: ignores the cancel flag, bounded by until */
};

enum { SW_READY, SW_TIMEOUT, SW_CANCEL, SW_ERROR };

/* An operation limited by timeout_s (0: none) and the connection's deadline. */
static struct ssh_op
ssh_op(const struct ssh_conn *c, double timeout_s)
{
	struct ssh_op	 op = { 0, timeout_s, 0 };

	if (timeout_s > 0)
		op.until = util_now() + timeout_s;
	if (c->o.deadline > 0 && (op.until == 0 || c->o.deadline < op.until))
		op.until = c->o.deadline;
	return op;
}

/* A clean-up after a failure, a timeout or a cancel: SSH_GRACE_S, whatever the flag says. */
static struct ssh_op
ssh_op_cleanup(void)
{
	struct ssh_op	 op = { util_now() + SSH_GRACE_S, SSH_GRACE_S, 1 };

	return op;
}

/* SW_CANCEL or SW_TIMEOUT when op must stop now, else SW_READY. */
static int
ssh_check(const struct ssh_conn *c, const struct ssh_op *op)
{
	if (!op->cleanup && ((c->o.cancel != NULL && *c->o.cancel) ||
	    (c->o.cancel_fd > 0 && util_wait_fd(c->o.cancel_fd, 0))))
		return SW_CANCEL;
	if (op->until > 0 && util_now() >= op->until)
		return SW_TIMEOUT;
	return SW_READY;
}

/* Milliseconds to poll: one tick, or less before until. */
static int
ssh_tick_ms(const struct ssh_op *op)
{
	double	 left;

	if (op->until <= 0)
		return SSH_TICK_MS;
	left = (op->until - util_now()) * 1000.0 + 1;
	if (left < 1)
		return 1;
	return left < SSH_TICK_MS ? (int)left : SSH_TICK_MS;
}

/* Waits (one tick at most) for fd to become ready for events; fd -1 just sleeps. */
static int
ssh_poll(const struct ssh_conn *c, const struct ssh_op *op, int fd, short events)
{
	struct pollfd	 pfd = { fd, events, 0 };
	int		 w;

	if ((w = ssh_check(c, op)) != SW_READY)
		return w;
	if (poll(&pfd, fd == -1 ? 0 : 1, ssh_tick_ms(op)) == -1 && errno != EINTR)
		return SW_ERROR;
	return SW_READY;
}

/* Waits until the socket can do what libssh2 was blocked on (one tick at most). */
static int
ssh_wait(const struct ssh_conn *c, const struct ssh_op *op)
{
	int	 dirs = libssh2_session_block_directions(c->s);
	short	 ev = 0;

	if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
		ev |= POLLIN;
	if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		ev |= POLLOUT;
	return ssh_poll(c, op, c->fd, ev != 0 ? ev : POLLIN);
}

/* Fills e for a wait that did not end in SW_READY. */
static void
ssh_err_wait(const struct ssh_conn *c, struct err *e, const struct ssh_op *op, int w,
    const char *what)
{
	if (w == SW_CANCEL)
		err_set(e, ERR_CANCELLED, "%s: %s: cancelled", c->label, what);
	else if (w == SW_TIMEOUT && c->o.deadline > 0 && op->until >= c->o.deadline &&
	    !op->cleanup)
		err_set(e, ERR_TIMEOUT, "%s: %s: the step's deadline passed", c->label, what);
	else if (w == SW_TIMEOUT)
		err_set(e, ERR_TIMEOUT, "%s: %s: timed out after %.0f s", c->label, what,
		    op->timeout_s);
	else
		err_set(e, ERR_IO, "%s: %s: poll: %s", c->label, what, strerror(errno));
}

/* Translates a libssh2 error (rc and the session's last message) into e: the one place. */
static void
ssh_err_lib(struct ssh_conn *c, struct err *e, int rc, const char *what)
{
	enum err_kind	 kind = ERR_REMOTE;
	char		*msg = NULL, detail[128] = "";
	unsigned long	 fx;

	if (c->s != NULL)
		(void)libssh2_session_last_error(c->s, &msg, NULL, 0);
	switch (rc) {
	case LIBSSH2_ERROR_SOCKET_DISCONNECT:
	case LIBSSH2_ERROR_SOCKET_RECV:
	case LIBSSH2_ERROR_SOCKET_SEND:
	case LIBSSH2_ERROR_SOCKET_TIMEOUT:
	case LIBSSH2_ERROR_BANNER_RECV:
	case LIBSSH2_ERROR_BANNER_SEND:
	case LIBSSH2_ERROR_KEX_FAILURE:
	case LIBSSH2_ERROR_TIMEOUT:
		kind = ERR_NET;
		c->broken = 1;
		break;
	case LIBSSH2_ERROR_AUTHENTICATION_FAILED:
	case LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED:
		kind = ERR_AUTH;
		break;
	case LIBSSH2_ERROR_SFTP_PROTOCOL:
		fx = c->sftp != NULL ? libssh2_sftp_last_error(c->sftp) : 0;
		if (fx == LIBSSH2_FX_NO_SUCH_FILE || fx == LIBSSH2_FX_NO_SUCH_PATH) {
			kind = ERR_NOTFOUND;
			msg = "no such file or directory";
		} else if (fx == LIBSSH2_FX_PERMISSION_DENIED || fx == LIBSSH2_FX_WRITE_PROTECT) {
			msg = "permission denied";
		} else if (fx == LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM ||
		    fx == LIBSSH2_FX_QUOTA_EXCEEDED) {
			msg = "no space left";
		} else if (fx == LIBSSH2_FX_FILE_ALREADY_EXISTS) {
			kind = ERR_CONFLICT;
			msg = "already exists";
		} else {
			snprintf(detail, sizeof(detail), "SFTP status %lu", fx);
			msg = detail;
		}
		break;
	default:
		break;
	}
	if (msg == NULL || *msg == '\0') {
		snprintf(detail, sizeof(detail), "libssh2 error %d", rc);
		msg = detail;
	}
	err_set(e, kind, "%s: %s: %s", c->label, what, msg);
}

/* Fills e after a libssh2 call loop ended: by a wait (rc still EAGAIN) or by rc. */
static void
ssh_err_call(struct ssh_conn *c, struct err *e, const struct ssh_op *op, int rc, int w,
    const char *what)
{
	if (rc == LIBSSH2_ERROR_EAGAIN)
		ssh_err_wait(c, e, op, w, what);
	else
		ssh_err_lib(c, e, rc, what);
}

/* ---- connecting ---- */

static pthread_once_t	 ssh_once = PTHREAD_ONCE_INIT;
static int		 ssh_init_rc;

static void
ssh_init(void)
{
	ssh_init_rc = libssh2_init(0);
}

/* Finishes a non-blocking connect() of fd by op; -1 with errno (ETIMEDOUT, ECANCELED). */
static int
ssh_connect_fd(const struct ssh_conn *c, const struct ssh_op *op, int fd,
    const struct sockaddr *sa, socklen_t len)
{
	socklen_t	 sl = sizeof(int);
	int		 w, soerr = 0;

	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -1;
	for (;;) {
		struct pollfd	 pfd = { fd, POLLOUT, 0 };

		if ((w = ssh_check(c, op)) != SW_READY) {
			errno = w == SW_CANCEL ? ECANCELED : ETIMEDOUT;
			return -1;
		}
		if (poll(&pfd, 1, ssh_tick_ms(op)) > 0)
			break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
		return -1;
	if (soerr != 0) {
		errno = soerr;
		return -1;
	}
	return 0;
}

/* Opens the stream to the guest's sshd (TCP, or a unix socket); the fd, or -1 with e (and
 * *fatal when retrying cannot help). */
static int
ssh_dial(struct ssh_conn *c, const struct ssh_op *op, int *fatal, struct err *e)
{
	struct addrinfo		 hints, *res = NULL, *ai;
	struct sockaddr_un	 sun;
	char			 port[16];
	int			 fd = -1, rc, saved = ECONNREFUSED;

	if (c->host[0] == '/') {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, c->host, strlen(c->host) + 1);
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) == -1 ||
		    ssh_connect_fd(c, op, fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
			saved = errno;
			goto fail;
		}
		return fd;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%d", c->o.port);
	if ((rc = getaddrinfo(c->host, port, &hints, &res)) != 0) {
		*fatal = rc != EAI_AGAIN;
		err_set(e, rc == EAI_AGAIN ? ERR_NET : ERR_INVAL, "%s: cannot resolve '%s': %s",
		    c->label, c->host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    ai->ai_protocol);
		if (fd != -1 && ssh_connect_fd(c, op, fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno;
		if (fd != -1)
			close(fd);
		fd = -1;
		if (saved == ECANCELED || saved == ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd != -1)
		return fd;
fail:
	if (fd != -1)
		close(fd);
	if (saved == ECANCELED) {
		*fatal = 1;
		err_set(e, ERR_CANCELLED, "%s: connect: cancelled", c->label);
	} else if (saved == ETIMEDOUT) {
		err_set(e, ERR_TIMEOUT, "%s: connect: timed out", c->label);
	} else {
		err_set(e, ERR_NET, "%s: connect: %s", c->label, strerror(saved));
	}
	return -1;
}

/* Ends the session and closes the socket, quickly: a dead guest must not hold us. */
static void
ssh_drop(struct ssh_conn *c)
{
	struct ssh_op	 op = ssh_op_cleanup();

	op.until = util_now() + 2;
	if (c->s != NULL && !c->broken) {
		while (c->sftp != NULL && libssh2_sftp_shutdown(c->sftp) == LIBSSH2_ERROR_EAGAIN)
			if (ssh_wait(c, &op) != SW_READY)
				break;
		while (libssh2_session_disconnect(c->s, "isoforge: done") == LIBSSH2_ERROR_EAGAIN)
			if (ssh_wait(c, &op) != SW_READY)
				break;
	}
	/* an SFTP session not shut down above goes with the session (its channel's destructor) */
	c->sftp = NULL;
	/* with the socket shut down whatever libssh2 still sends fails at once */
	if (c->fd != -1)
		(void)shutdown(c->fd, SHUT_RDWR);
	if (c->s != NULL) {
		while (libssh2_session_free(c->s) == LIBSSH2_ERROR_EAGAIN)
			if (ssh_poll(c, &op, -1, 0) != SW_READY)
				break;
		c->s = NULL;
	}
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->broken = 0;
}

/* The key type named at the start of an SSH public key blob, into out. */
static void
ssh_blob_type(const unsigned char *blob, size_t len, char *out, size_t max)
{
	size_t	 n;

	snprintf(out, max, "unknown");
	if (blob == NULL || len < 4)
		return;
	n = (size_t)blob[0] << 24 | (size_t)blob[1] << 16 | (size_t)blob[2] << 8 | blob[3];
	if (n == 0 || n >= max || n > len - 4)
		return;
	memcpy(out, blob + 4, n);
	out[n] = '\0';
}

/* One attempt: connect, handshake, check the host key, authenticate; by op->until. */
static int
ssh_attempt(struct ssh_conn *c, const struct ssh_op *op, int *fatal, struct err *e)
{
	const unsigned char	*hash, *blob;
	size_t			 bloblen;
	int			 rc, w = SW_READY, type;

	if ((c->fd = ssh_dial(c, op, fatal, e)) == -1)
		return -1;
	if ((c->s = libssh2_session_init_ex(NULL, NULL, NULL, c)) == NULL) {
		*fatal = 1;
		err_set(e, ERR_INTERNAL, "%s: libssh2_session_init failed", c->label);
		return -1;
	}
	libssh2_session_set_blocking(c->s, 0);
	while ((rc = libssh2_session_handshake(c->s, c->fd)) == LIBSSH2_ERROR_EAGAIN)
		if ((w = ssh_wait(c, op)) != SW_READY)
			break;
	if (rc != 0) {
		*fatal = w == SW_CANCEL;
		ssh_err_call(c, e, op, rc, w, "SSH handshake");
		/* a guest that is still booting fails here in many ways: all are worth a retry */
		if (e != NULL && e->kind == ERR_REMOTE)
			e->kind = ERR_NET;
		return -1;
	}
	hash = (const unsigned char *)libssh2_hostkey_hash(c->s, LIBSSH2_HOSTKEY_HASH_SHA256);
	blob = (const unsigned char *)libssh2_session_hostkey(c->s, &bloblen, &type);
	if (hash == NULL || blob == NULL) {
		*fatal = 1;
		err_set(e, ERR_INTERNAL, "%s: no host key after the handshake", c->label);
		return -1;
	}
	ssh_fingerprint(hash, c->hostkey);
	ssh_blob_type(blob, bloblen, c->hostkey_type, sizeof(c->hostkey_type));
	if (c->want_hostkey != NULL && strcmp(c->want_hostkey, c->hostkey) != 0) {
		*fatal = 1;
		err_set(e, ERR_AUTH, "%s: host key changed: the guest shows %s %s, expected %s",
		    c->label, c->hostkey_type, c->hostkey, c->want_hostkey);
		return -1;
	}
	while ((rc = libssh2_userauth_publickey_frommemory(c->s, c->user, strlen(c->user),
	    NULL, 0, c->o.key->pem, c->o.key->pem_len, NULL)) == LIBSSH2_ERROR_EAGAIN)
		if ((w = ssh_wait(c, op)) != SW_READY)
			break;
	if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
		*fatal = 1;
		err_set(e, ERR_AUTH, "%s: the guest refused key %s for user %s", c->label,
		    c->o.key->fingerprint, c->user);
		return -1;
	}
	if (rc != 0) {
		*fatal = w == SW_CANCEL;
		ssh_err_call(c, e, op, rc, w, "authentication");
		return -1;
	}
	return 0;
}

/* Checks the options; fills c's copies. */
static int
ssh_conn_init(struct ssh_conn *c, const struct ssh_opts *o, struct err *e)
{
	c->o = *o;
	c->fd = -1;
	if (o->host == NULL || *o->host == '\0') {
		err_set(e, ERR_INVAL, "ssh: no host");
		return -1;
	}
	if (o->key == NULL) {
		err_set(e, ERR_INVAL, "ssh %s: no key", o->host);
		return -1;
	}
	if (o->host[0] == '/' && strlen(o->host) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		err_set(e, ERR_INVAL, "ssh %s: unix socket path too long", o->host);
		return -1;
	}
	if (o->host[0] != '/' && (o->port < 1 || o->port > 65535)) {
		err_set(e, ERR_INVAL, "ssh %s: bad port %d (1..65535)", o->host, o->port);
		return -1;
	}
	/* the workdir goes into a shell command between single quotes */
	if (o->workdir != NULL && (*o->workdir == '\0' || strpbrk(o->workdir, "'\n\r") != NULL)) {
		err_set(e, ERR_INVAL, "ssh %s: bad workdir (empty, or a quote or newline in it)",
		    o->host);
		return -1;
	}
	c->host = xstrdup(o->host);
	c->user = xstrdup(o->user != NULL ? o->user :
	    o->guest == SSH_GUEST_WINDOWS ? "Administrator" : "root");
	c->want_hostkey = o->hostkey != NULL ? xstrdup(o->hostkey) : NULL;
	c->workdir = o->workdir != NULL ? xstrdup(o->workdir) : NULL;
	c->o.host = c->host;
	c->o.user = c->user;
	c->o.hostkey = c->want_hostkey;
	c->o.workdir = c->workdir;
	if (c->host[0] == '/')
		snprintf(c->label, sizeof(c->label), "ssh %s@%s", c->user, c->host);
	else if (strchr(c->host, ':') != NULL)
		snprintf(c->label, sizeof(c->label), "ssh %s@[%s]:%d", c->user, c->host, o->port);
	else
		snprintf(c->label, sizeof(c->label), "ssh %s@%s:%d", c->user, c->host, o->port);
	if (o->attempt_s <= 0)
		c->o.attempt_s = SSH_ATTEMPT_S;
	if (o->retry_s <= 0)
		c->o.retry_s = SSH_RETRY_S;
	return 0;
}

struct ssh_conn *
ssh_connect(const struct ssh_opts *o, struct err *e)
{
	struct ssh_conn	*c = xcalloc(1, sizeof(*c));
	struct ssh_op	 op, pause;
	struct err	 ae;
	double		 start = util_now(), wait_until;
	int		 attempt, fatal, w;

	if (ssh_conn_init(c, o, e) == -1)
		goto fail;
	pthread_once(&ssh_once, ssh_init);
	if (ssh_init_rc != 0) {
		err_set(e, ERR_INTERNAL, "%s: libssh2_init failed", c->label);
		goto fail;
	}
	wait_until = start + c->o.wait_s;
	for (attempt = 1;; attempt++) {
		err_clear(&ae);
		fatal = 0;
		op = ssh_op(c, c->o.attempt_s);
		if (ssh_attempt(c, &op, &fatal, &ae) == 0) {
			log_debug("%s: connected (attempt %d, %.1f s), host key %s %s", c->label,
			    attempt, util_now() - start, c->hostkey_type, c->hostkey);
			return c;
		}
		ssh_drop(c);
		if (ae.kind == ERR_CANCELLED || ae.kind == ERR_INVAL || ae.kind == ERR_AUTH ||
		    ae.kind == ERR_INTERNAL || fatal) {
			err_set(e, ae.kind, "%s", ae.msg);
			goto fail;
		}
		if (c->o.deadline > 0 && util_now() + c->o.retry_s >= c->o.deadline) {
			err_set(e, ERR_TIMEOUT, "%s: no SSH by the step's deadline (%d attempts in "
			    "%.0f s); last: %s", c->label, attempt, util_now() - start, ae.msg);
			goto fail;
		}
		if (c->o.wait_s <= 0 || util_now() + c->o.retry_s >= wait_until) {
			if (attempt == 1)
				err_set(e, ae.kind, "%s", ae.msg);
			else
				err_set(e, ae.kind, "%s: no SSH after %d attempts in %.0f s; last: %s",
				    c->label, attempt, util_now() - start, ae.msg);
			goto fail;
		}
		log_debug("%s: attempt %d: %s; retrying", c->label, attempt, ae.msg);
		if (c->o.on_retry != NULL)
			c->o.on_retry(c->o.arg, attempt, &ae);
		pause = ssh_op(c, c->o.retry_s);
		while ((w = ssh_poll(c, &pause, -1, 0)) == SW_READY)
			;
		if (w == SW_CANCEL || (w == SW_TIMEOUT && c->o.deadline > 0 &&
		    util_now() >= c->o.deadline)) {
			ssh_err_wait(c, e, &pause, w, "waiting for SSH");
			goto fail;
		}
	}
fail:
	ssh_close(&c);
	return NULL;
}

const char *
ssh_conn_hostkey(const struct ssh_conn *c)
{
	return c->hostkey;
}

const char *
ssh_conn_hostkey_type(const struct ssh_conn *c)
{
	return c->hostkey_type;
}

void
ssh_close(struct ssh_conn **cp)
{
	struct ssh_conn	*c;

	if (cp == NULL || *cp == NULL)
		return;
	c = *cp;
	ssh_drop(c);
	free(c->host);
	free(c->user);
	free(c->want_hostkey);
	free(c->workdir);
	free(c);
	*cp = NULL;
}

/* ---- output lines ---- */

/* Splits a command's output into lines for the callback, and keeps the last ones. */
struct ssh_lines {
	struct buf	 part[2];	/* stdout, stderr: the line being read */
	int		 after_cr[2];	/* the last byte was '\r' */
	char		**ring;		/* the last lines, both streams */
	int		 nring, head, count;
	void		(*on_line)(void *, int, const char *);
	void		*arg;
};

static void
ssh_lines_init(struct ssh_lines *l, const struct ssh_run_opts *ro)
{
	memset(l, 0, sizeof(*l));
	buf_init(&l->part[0]);
	buf_init(&l->part[1]);
	l->nring = ro->tail_lines > 0 ? ro->tail_lines : SSH_TAIL_LINES;
	l->ring = xcalloc((size_t)l->nring, sizeof(char *));
	l->on_line = ro->on_line;
	l->arg = ro->arg;
}

static void
ssh_lines_emit(struct ssh_lines *l, int i)
{
	struct buf	*b = &l->part[i];
	const char	*line = b->data != NULL ? b->data : "";

	if (l->on_line != NULL)
		l->on_line(l->arg, i + 1, line);
	free(l->ring[l->head]);
	l->ring[l->head] = xstrdup(line);
	l->head = (l->head + 1) % l->nring;
	if (l->count < l->nring)
		l->count++;
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

/* Feeds n bytes of stream i (0 stdout, 1 stderr): "\n", "\r\n" and "\r" end lines. */
static void
ssh_lines_feed(struct ssh_lines *l, int i, const char *p, size_t n)
{
	size_t	 k;

	for (k = 0; k < n; k++) {
		if (p[k] == '\n') {
			if (!l->after_cr[i])
				ssh_lines_emit(l, i);
			l->after_cr[i] = 0;
		} else if (p[k] == '\r') {
			if (l->part[i].len > 0)
				ssh_lines_emit(l, i);
			l->after_cr[i] = 1;
		} else {
			buf_append(&l->part[i], &p[k], 1);
			l->after_cr[i] = 0;
			if (l->part[i].len >= SSH_LINE_MAX)
				ssh_lines_emit(l, i);
		}
	}
}

/* The last lines, oldest first, '\n'-separated; caller frees (NULL when there are none). */
static char *
ssh_lines_tail(const struct ssh_lines *l)
{
	struct buf	 b;
	int		 k;

	if (l->count == 0)
		return NULL;
	buf_init(&b);
	for (k = 0; k < l->count; k++) {
		if (k > 0)
			buf_puts(&b, "\n");
		buf_puts(&b, l->ring[(l->head - l->count + k + l->nring) % l->nring]);
	}
	return buf_release(&b);
}

/* "; last lines: a | b | c" with as many of the last lines as fit in SSH_MSG_TAIL bytes. */
static void
ssh_lines_msg(const struct ssh_lines *l, char *out, size_t max)
{
	size_t	 used = 0, n;
	int	 k, first;

	out[0] = '\0';
	/* how many of the newest lines fit */
	for (k = 0; k < l->count; k++) {
		n = strlen(l->ring[(l->head - 1 - k + 2 * l->nring) % l->nring]) + 3;
		if (used + n > SSH_MSG_TAIL && k > 0)
			break;
		used += n;
	}
	if (k == 0)
		return;
	snprintf(out, max, "; last lines: ");
	for (first = k - 1; first >= 0; first--) {
		const char	*line = l->ring[(l->head - 1 - first + 2 * l->nring) % l->nring];
		size_t		 len = strlen(out);

		snprintf(out + len, max - len, "%s%.*s", first == k - 1 ? "" : " | ",
		    SSH_MSG_TAIL, line);
	}
}

static void
ssh_lines_free(struct ssh_lines *l)
{
	int	 k;

	buf_free(&l->part[0]);
	buf_free(&l->part[1]);
	for (k = 0; k < l->nring; k++)
		free(l->ring[k]);
	free(l->ring);
}

void
ssh_run_result_free(struct ssh_run_result *r)
{
	if (r == NULL)
		return;
	free(r->exit_signal);
	free(r->tail);
	r->exit_signal = NULL;
	r->tail = NULL;
}

/* ---- channels ---- */

/* Opens a session channel by op; NULL with e. */
static LIBSSH2_CHANNEL *
ssh_channel(struct ssh_conn *c, const struct ssh_op *op, struct err *e)
{
	LIBSSH2_CHANNEL	*ch;
	int		 w = SW_READY;

	if (c->broken) {
		err_set(e, ERR_NET, "%s: the connection is gone", c->label);
		return NULL;
	}
	while ((ch = libssh2_channel_open_session(c->s)) == NULL &&
	    libssh2_session_last_errno(c->s) == LIBSSH2_ERROR_EAGAIN)
		if ((w = ssh_wait(c, op)) != SW_READY)
			break;
	if (ch == NULL)
		ssh_err_call(c, e, op, libssh2_session_last_errno(c->s), w, "open a channel");
	return ch;
}

/* Frees a channel, closing it first; bounded by a short grace. */
static void
ssh_channel_free(struct ssh_conn *c, LIBSSH2_CHANNEL *ch)
{
	struct ssh_op	 op = ssh_op_cleanup();

	if (ch == NULL)
		return;
	op.until = util_now() + 2;
	if (!c->broken)
		while (libssh2_channel_close(ch) == LIBSSH2_ERROR_EAGAIN)
			if (ssh_wait(c, &op) != SW_READY)
				break;
	while (libssh2_channel_free(ch) == LIBSSH2_ERROR_EAGAIN)
		if (c->broken || ssh_wait(c, &op) != SW_READY)
			break;
}

/* Reads what both streams have now into l; 1 when something came, 0 not, -1 on error. */
static int
ssh_drain(struct ssh_conn *c, LIBSSH2_CHANNEL *ch, struct ssh_lines *l, struct err *e)
{
	char	 buf[SSH_CHUNK];
	ssize_t	 n;
	int	 i, got = 0;

	for (i = 0; i < 2; i++)
		for (;;) {
			n = libssh2_channel_read_ex(ch, i == 0 ? 0 : SSH_EXTENDED_DATA_STDERR, buf,
			    sizeof(buf));
			if (n == LIBSSH2_ERROR_EAGAIN || n == 0)
				break;
			if (n < 0) {
				ssh_err_lib(c, e, (int)n, "reading the command's output");
				return -1;
			}
			ssh_lines_feed(l, i, buf, (size_t)n);
			got = 1;
		}
	return got;
}

/* After EOF: waits for the channel's close (exit status, signal) within op, fills res. */
static void
ssh_exit_status(struct ssh_conn *c, LIBSSH2_CHANNEL *ch, const struct ssh_op *op,
    struct ssh_run_result *res)
{
	char	*sig = NULL;
	size_t	 siglen = 0;

	while (!c->broken && libssh2_channel_close(ch) == LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(c, op) != SW_READY)
			break;
	while (!c->broken && libssh2_channel_wait_closed(ch) == LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(c, op) != SW_READY)
			break;
	if (libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL, NULL, NULL) == 0 &&
	    sig != NULL) {
		res->exit_signal = xstrndup(sig, siglen);
		libssh2_free(c->s, sig);
		return;
	}
	res->exited = 1;
	res->exit_status = libssh2_channel_get_exit_status(ch);
}

/*
 * Runs command, streaming its lines; what names it in messages. When the op runs out or is
 * cancelled and kill_dir is set (a unix script's private directory with its pid file), the
 * script's process group is killed. The one exec loop of this file.
 */
static int
ssh_exec_in(struct ssh_conn *c, const char *what, const char *command, const char *kill_dir,
    const struct ssh_run_opts *ro, struct ssh_run_result *res, struct err *e)
{
	static const struct ssh_run_opts none;
	struct ssh_run_result	 local;
	struct ssh_lines	 l;
	struct ssh_op		 op, grace;
	LIBSSH2_CHANNEL		*ch = NULL;
	char			 tail[SSH_MSG_TAIL + 64];
	double			 start = util_now();
	int			 rc = -1, w = SW_READY, got;

	if (ro == NULL)
		ro = &none;
	if (res == NULL)
		res = &local;
	memset(res, 0, sizeof(*res));
	ssh_lines_init(&l, ro);
	op = ssh_op(c, ro->timeout_s);
	if ((ch = ssh_channel(c, &op, e)) == NULL)
		goto done;
	while ((rc = libssh2_channel_exec(ch, command)) == LIBSSH2_ERROR_EAGAIN)
		if ((w = ssh_wait(c, &op)) != SW_READY)
			break;
	if (rc != 0) {
		ssh_err_call(c, e, &op, rc, w, what);
		goto timeout_or_fail;
	}
	/* no input: a script that reads stdin gets EOF instead of waiting for the timeout */
	while ((rc = libssh2_channel_send_eof(ch)) == LIBSSH2_ERROR_EAGAIN)
		if ((w = ssh_wait(c, &op)) != SW_READY)
			break;
	rc = -1;
	for (;;) {
		int	 eof = libssh2_channel_eof(ch);

		if ((got = ssh_drain(c, ch, &l, e)) == -1)
			goto done;
		if (eof)
			break;
		if (got)
			continue;
		if ((w = ssh_wait(c, &op)) != SW_READY) {
			ssh_err_wait(c, e, &op, w, what);
			goto timeout_or_fail;
		}
	}
	grace = ssh_op_cleanup();
	ssh_exit_status(c, ch, &grace, res);
	rc = 0;
	goto done;

timeout_or_fail:
	res->timed_out = w == SW_TIMEOUT;
	res->cancelled = w == SW_CANCEL;
	if ((res->timed_out || res->cancelled) && kill_dir != NULL && !c->broken) {
		/* SIGTERM to the script's process group (OpenSSH made it a session leader) and to
		 * its process tree as /proc shows it before (dropbear does not start a new group),
		 * SIGKILL to what is left after 3 s. Two ways of naming a group: dash wants
		 * "kill -s SIG -- -PGID", busybox ash rejects the "--". */
		char	*kill = xasprintf("p=$(cat '%s/pid' 2>/dev/null) && [ -n \"$p\" ] || exit 0; "
			    "kids() { q=$1; for s in /proc/[0-9]*/stat; do "
			    "read -r l 2>/dev/null < \"$s\" || continue; set -- ${l##*) }; "
			    "[ \"$2\" = \"$q\" ] && { s=${s#/proc/}; echo \"${s%%/stat}\"; }; done; }; "
			    "all=$p; todo=$p; while [ -n \"$todo\" ]; do next=; "
			    "for q in $todo; do next=\"$next $(kids $q)\"; done; set -- $next; todo=$*; "
			    "all=\"$all $todo\"; done; "
			    "g() { kill -s $1 -- -$p 2>/dev/null || kill -s $1 -$p 2>/dev/null; "
			    "kill -s $1 $all 2>/dev/null; }; "
			    "alive() { for q in $all; do kill -s 0 $q 2>/dev/null && return 0; done; "
			    "return 1; }; "
			    "g TERM; for i in 1 2 3; do alive || exit 0; sleep 1; done; g KILL; exit 0",
			    kill_dir);
		struct ssh_op	 kop = ssh_op_cleanup();
		LIBSSH2_CHANNEL	*kch;
		struct ssh_lines kl;
		struct err	 ke;

		err_clear(&ke);
		ssh_lines_init(&kl, &none);	/* the kill's own output: not the script's */
		if ((kch = ssh_channel(c, &kop, &ke)) != NULL) {
			while (libssh2_channel_exec(kch, kill) == LIBSSH2_ERROR_EAGAIN)
				if (ssh_wait(c, &kop) != SW_READY)
					break;
			while (!libssh2_channel_eof(kch) && ssh_drain(c, kch, &kl, &ke) != -1 &&
			    ssh_wait(c, &kop) == SW_READY)
				;
			ssh_channel_free(c, kch);
		}
		ssh_lines_free(&kl);
		/* the killed script's channel ends: its last words and how it ended */
		while (!c->broken && !libssh2_channel_eof(ch) && ssh_drain(c, ch, &l, &ke) != -1 &&
		    ssh_wait(c, &kop) == SW_READY)
			;
		ssh_exit_status(c, ch, &kop, res);
		if (res->exit_signal == NULL)
			res->exited = 0;
		free(kill);
	}
	rc = -1;
done:
	if (rc == -1 && e != NULL) {
		res->timed_out |= e->kind == ERR_TIMEOUT;
		res->cancelled |= e->kind == ERR_CANCELLED;
	}
	ssh_channel_free(c, ch);
	if (l.part[0].len > 0)
		ssh_lines_emit(&l, 0);
	if (l.part[1].len > 0)
		ssh_lines_emit(&l, 1);
	res->elapsed_s = util_now() - start;
	res->tail = ssh_lines_tail(&l);
	ssh_lines_msg(&l, tail, sizeof(tail));
	if (rc == 0 && res->exit_signal != NULL) {
		err_set(e, ERR_REMOTE, "%s: %s killed by signal %s%s", c->label, what,
		    res->exit_signal, tail);
		rc = -1;
	} else if (rc == 0 && res->exit_status != 0) {
		err_set(e, ERR_REMOTE, "%s: %s exited with status %d%s", c->label, what,
		    res->exit_status, tail);
		rc = -1;
	} else if (rc == -1 && (res->timed_out || res->cancelled) && e != NULL &&
	    strlen(e->msg) + strlen(tail) < sizeof(e->msg)) {
		/* the timeout message is already there: add what the command said last */
		memcpy(e->msg + strlen(e->msg), tail, strlen(tail) + 1);
	}
	ssh_lines_free(&l);
	if (res == &local)
		ssh_run_result_free(&local);
	return rc;
}

int
ssh_exec(struct ssh_conn *c, const char *command, const struct ssh_run_opts *ro,
    struct ssh_run_result *res, struct err *e)
{
	char	 what[96];

	snprintf(what, sizeof(what), "command '%.60s%s'", command,
	    strlen(command) > 60 ? "..." : "");
	return ssh_exec_in(c, what, command, NULL, ro, res, e);
}

/* ---- SFTP ---- */

/* The connection's SFTP session, started on first use. */
static LIBSSH2_SFTP *
ssh_sftp(struct ssh_conn *c, const struct ssh_op *op, struct err *e)
{
	int	 w = SW_READY;

	if (c->broken) {
		err_set(e, ERR_NET, "%s: the connection is gone", c->label);
		return NULL;
	}
	if (c->sftp != NULL)
		return c->sftp;
	while ((c->sftp = libssh2_sftp_init(c->s)) == NULL &&
	    libssh2_session_last_errno(c->s) == LIBSSH2_ERROR_EAGAIN)
		if ((w = ssh_wait(c, op)) != SW_READY)
			break;
	if (c->sftp == NULL)
		ssh_err_call(c, e, op, libssh2_session_last_errno(c->s), w, "start SFTP");
	return c->sftp;
}

/* Opens remote path over SFTP (flags LIBSSH2_FXF_*); NULL with e. */
static LIBSSH2_SFTP_HANDLE *
ssh_sftp_open(struct ssh_conn *c, const struct ssh_op *op, const char *path,
    unsigned long flags, long mode, const char *what, struct err *e)
{
	LIBSSH2_SFTP_HANDLE	*h = NULL;
	int			 w = SW_READY;

	if (ssh_sftp(c, op, e) == NULL)
		return NULL;
	while ((h = libssh2_sftp_open_ex(c->sftp, path, (unsigned)strlen(path), flags, mode,
	    LIBSSH2_SFTP_OPENFILE)) == NULL &&
	    libssh2_session_last_errno(c->s) == LIBSSH2_ERROR_EAGAIN)
		if ((w = ssh_wait(c, op)) != SW_READY)
			break;
	if (h == NULL)
		ssh_err_call(c, e, op, libssh2_session_last_errno(c->s), w, what);
	return h;
}

/* Closes an SFTP handle; -1 with e when the close fails (a write that did not land). */
static int
ssh_sftp_close(struct ssh_conn *c, LIBSSH2_SFTP_HANDLE *h, const struct ssh_op *op,
    const char *what, struct err *e)
{
	int	 rc, w = SW_READY;

	if (h == NULL)
		return 0;
	while ((rc = libssh2_sftp_close_handle(h)) == LIBSSH2_ERROR_EAGAIN)
		if ((w = ssh_wait(c, op)) != SW_READY)
			break;
	if (rc != 0) {
		ssh_err_call(c, e, op, rc, w, what);
		return -1;
	}
	return 0;
}

/* Writes all of p to h. */
static int
ssh_sftp_write(struct ssh_conn *c, LIBSSH2_SFTP_HANDLE *h, const struct ssh_op *op,
    const char *p, size_t n, const char *what, struct err *e)
{
	ssize_t	 rc;
	int	 w;

	while (n > 0) {
		rc = libssh2_sftp_write(h, p, n);
		if (rc == LIBSSH2_ERROR_EAGAIN) {
			if ((w = ssh_wait(c, op)) != SW_READY) {
				ssh_err_wait(c, e, op, w, what);
				return -1;
			}
			continue;
		}
		if (rc < 0) {
			ssh_err_lib(c, e, (int)rc, what);
			return -1;
		}
		p += rc;
		n -= (size_t)rc;
	}
	return 0;
}

/* Sets h's permission bits. */
static int
ssh_sftp_chmod(struct ssh_conn *c, LIBSSH2_SFTP_HANDLE *h, const struct ssh_op *op, int mode,
    const char *what, struct err *e)
{
	LIBSSH2_SFTP_ATTRIBUTES	 a;
	int			 rc, w = SW_READY;

	memset(&a, 0, sizeof(a));
	a.flags = LIBSSH2_SFTP_ATTR_PERMISSIONS;
	a.permissions = (unsigned long)mode & 07777;
	while ((rc = libssh2_sftp_fsetstat(h, &a)) == LIBSSH2_ERROR_EAGAIN)
		if ((w = ssh_wait(c, op)) != SW_READY)
			break;
	if (rc != 0) {
		ssh_err_call(c, e, op, rc, w, what);
		return -1;
	}
	return 0;
}

/* Writes data to path (created or truncated); mode -1 leaves the bits of an existing file. */
static int
ssh_put(struct ssh_conn *c, const struct ssh_op *op, const void *data, size_t len,
    const char *path, int mode, struct err *e)
{
	LIBSSH2_SFTP_HANDLE	*h;
	char			 what[160];
	int			 rc = -1;

	snprintf(what, sizeof(what), "write %.120s", path);
	h = ssh_sftp_open(c, op, path, LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC,
	    mode >= 0 ? mode & 0777 : 0600, what, e);
	if (h == NULL)
		return -1;
	if (ssh_sftp_write(c, h, op, data, len, what, e) == -1 ||
	    (mode >= 0 && ssh_sftp_chmod(c, h, op, mode, what, e) == -1))
		goto cleanup;
	rc = 0;
cleanup:
	if (ssh_sftp_close(c, h, op, what, e) == -1)
		rc = -1;
	return rc;
}

int
ssh_put_data(struct ssh_conn *c, const void *data, size_t len, const char *remote_path,
    int mode, double timeout_s, struct err *e)
{
	struct ssh_op	 op = ssh_op(c, timeout_s);

	return ssh_put(c, &op, data, len, remote_path, mode & 07777, e);
}

int
ssh_copy_file(struct ssh_conn *c, const char *src, const char *remote_path,
    unsigned long long max, double timeout_s, struct err *e)
{
	struct ssh_op		 op = ssh_op(c, timeout_s);
	LIBSSH2_SFTP_HANDLE	*h = NULL;
	struct stat		 st;
	char			 what[160] = "", *buf = NULL;
	ssize_t			 n;
	int			 fd, rc = -1;

	if (max == 0)
		max = SSH_COPY_MAX;
	if ((fd = open(src, O_RDONLY | O_CLOEXEC)) == -1 || fstat(fd, &st) == -1) {
		err_set(e, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "%s: %s", src,
		    strerror(errno));
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(e, ERR_INVAL, "%s: not a regular file", src);
		goto cleanup;
	}
	if ((unsigned long long)st.st_size > max) {
		err_set(e, ERR_INVAL, "%s: %lld bytes, more than the %llu allowed", src,
		    (long long)st.st_size, max);
		goto cleanup;
	}
	snprintf(what, sizeof(what), "copy %.60s to %.60s", src, remote_path);
	h = ssh_sftp_open(c, &op, remote_path,
	    LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC, st.st_mode & 0777, what, e);
	if (h == NULL)
		goto cleanup;
	buf = xmalloc(SSH_CHUNK);
	for (;;) {
		if ((n = read(fd, buf, SSH_CHUNK)) == -1) {
			if (errno == EINTR)
				continue;
			err_set(e, ERR_IO, "%s: %s", src, strerror(errno));
			goto cleanup;
		}
		if (n == 0)
			break;
		if (ssh_sftp_write(c, h, &op, buf, (size_t)n, what, e) == -1)
			goto cleanup;
	}
	if (ssh_sftp_chmod(c, h, &op, (int)(st.st_mode & 07777), what, e) == -1)
		goto cleanup;
	rc = 0;
cleanup:
	if (h != NULL && ssh_sftp_close(c, h, &op, what, e) == -1)
		rc = -1;
	free(buf);
	if (fd != -1)
		close(fd);
	return rc;
}

/* Reads path (at most max bytes) by op; caller frees. */
static char *
ssh_get(struct ssh_conn *c, const struct ssh_op *op, const char *path, size_t max,
    size_t *lenp, struct err *e)
{
	LIBSSH2_SFTP_HANDLE	*h;
	struct buf		 b;
	char			 what[160], chunk[SSH_CHUNK];
	ssize_t			 n;
	int			 w, ok = 0;

	buf_init(&b);
	snprintf(what, sizeof(what), "read %.120s", path);
	if ((h = ssh_sftp_open(c, op, path, LIBSSH2_FXF_READ, 0, what, e)) == NULL)
		return NULL;
	for (;;) {
		n = libssh2_sftp_read(h, chunk, sizeof(chunk));
		if (n == LIBSSH2_ERROR_EAGAIN) {
			if ((w = ssh_wait(c, op)) != SW_READY) {
				ssh_err_wait(c, e, op, w, what);
				goto cleanup;
			}
			continue;
		}
		if (n < 0) {
			ssh_err_lib(c, e, (int)n, what);
			goto cleanup;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > max) {
			err_set(e, ERR_INVAL, "%s: %s: more than %zu bytes", c->label, what, max);
			goto cleanup;
		}
		buf_append(&b, chunk, (size_t)n);
	}
	ok = 1;
cleanup:
	if (ssh_sftp_close(c, h, op, what, e) == -1)
		ok = 0;
	if (!ok) {
		buf_free(&b);
		return NULL;
	}
	if (lenp != NULL)
		*lenp = b.len;
	if (b.data == NULL)
		return xstrdup("");
	return buf_release(&b);
}

char *
ssh_get_data(struct ssh_conn *c, const char *remote_path, size_t max, size_t *lenp,
    double timeout_s, struct err *e)
{
	struct ssh_op	 op = ssh_op(c, timeout_s);

	return ssh_get(c, &op, remote_path, max, lenp, e);
}

/* Removes a remote file or (dir 1) an empty directory; failures only logged: clean-up. */
static void
ssh_unlink(struct ssh_conn *c, const struct ssh_op *op, const char *path, int dir)
{
	int	 rc;

	if (c->broken || c->sftp == NULL)
		return;
	while ((rc = dir ? libssh2_sftp_rmdir_ex(c->sftp, path, (unsigned)strlen(path)) :
	    libssh2_sftp_unlink_ex(c->sftp, path, (unsigned)strlen(path))) ==
	    LIBSSH2_ERROR_EAGAIN)
		if (ssh_wait(c, op) != SW_READY)
			break;
	if (rc != 0)
		log_debug("%s: remove %s: failed (%d)", c->label, path, rc);
}

/* ---- scripts ---- */

/* Checks a script's variables: "NAME=VALUE", NAME as in the shell. */
static int
ssh_env_check(const char *const *env, struct err *e)
{
	const char	*p;
	int		 i;

	for (i = 0; env != NULL && env[i] != NULL; i++) {
		for (p = env[i]; *p != '=' && *p != '\0'; p++)
			if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_' ||
			    (p > env[i] && *p >= '0' && *p <= '9')))
				break;
		if (*p != '=' || p == env[i]) {
			err_set(e, ERR_INVAL, "script variable '%.40s': not NAME=VALUE", env[i]);
			return -1;
		}
	}
	return 0;
}

/* Appends s quoted for a POSIX shell ('...', a quote as '\''), or for PowerShell ('...', a
 * quote doubled). */
static void
ssh_quote(struct buf *b, const char *s, int powershell)
{
	buf_puts(b, "'");
	for (; *s != '\0'; s++) {
		if (*s == '\'')
			buf_puts(b, powershell ? "''" : "'\\''");
		else
			buf_append(b, s, 1);
	}
	buf_puts(b, "'");
}

int
ssh_run_script(struct ssh_conn *c, const char *name, const void *script, size_t len,
    const struct ssh_run_opts *ro, struct ssh_run_result *res, struct err *e)
{
	struct ssh_op	 op = ssh_op(c, ro != NULL ? ro->timeout_s : 0), clean;
	size_t		 max = ro != NULL && ro->script_max > 0 ? ro->script_max : SSH_SCRIPT_MAX;
	int		 win = c->o.guest == SSH_GUEST_WINDOWS, made = 0, uploaded = 0, rc = -1;
	int		 w = SW_READY;
	const char *const *env = ro != NULL ? ro->env : NULL;
	struct buf	 body, cmd;
	unsigned char	 rnd[8];
	char		 hex[17], what[128], *dir = NULL, *path = NULL, *pid = NULL;
	int		 i;

	if (res != NULL)
		memset(res, 0, sizeof(*res));
	if (name == NULL || *name == '\0')
		name = "script";
	snprintf(what, sizeof(what), "script '%.80s'", name);
	if (len > max) {
		err_set(e, ERR_INVAL, "%s is %zu bytes, more than the %zu allowed", what, len, max);
		return -1;
	}
	if (ssh_env_check(env, e) == -1)
		return -1;
	buf_init(&body);
	buf_init(&cmd);
	util_random(rnd, sizeof(rnd));
	util_hex(rnd, sizeof(rnd), hex);
	/* unix default: the user's home (relative SFTP paths and the command's cwd both are) */
	if (c->o.workdir != NULL)
		dir = xasprintf("%s/isoforge-%s", c->o.workdir, hex);
	else
		dir = win ? xasprintf("C:/Windows/Temp/isoforge-%s", hex) :
		    xasprintf(".isoforge-%s", hex);
	path = xasprintf("%s/%s", dir, win ? "script.ps1" : "script");
	pid = xasprintf("%s/pid", dir);
	if (ssh_sftp(c, &op, e) == NULL)
		goto cleanup;
	while ((rc = libssh2_sftp_mkdir_ex(c->sftp, dir, (unsigned)strlen(dir), 0700)) ==
	    LIBSSH2_ERROR_EAGAIN)
		if ((w = ssh_wait(c, &op)) != SW_READY)
			break;
	if (rc != 0) {
		ssh_err_call(c, e, &op, rc, w, "create the script's directory");
		rc = -1;
		goto cleanup;
	}
	made = 1;
	rc = -1;
	/* windows: the variables as the script's first lines; unix: env(1) in front of it */
	for (i = 0; win && env != NULL && env[i] != NULL; i++) {
		const char	*eq = strchr(env[i], '=');

		buf_printf(&body, "$env:%.*s = ", (int)(eq - env[i]), env[i]);
		ssh_quote(&body, eq + 1, 1);
		buf_puts(&body, "\r\n");
	}
	buf_append(&body, script, len);
	if (ssh_put(c, &op, body.data, body.len, path, 0700, e) == -1)
		goto cleanup;
	uploaded = 1;
	if (win) {
		buf_printf(&cmd, "powershell -NoProfile -NonInteractive -ExecutionPolicy Bypass "
		    "-File \"%s\"", path);
	} else {
		/* $$ is the script's pid (exec, and env execs too): the pid file for a kill */
		buf_printf(&cmd, "echo $$ > '%s' && exec ", pid);
		if (env != NULL && env[0] != NULL)
			buf_puts(&cmd, "env ");
		for (i = 0; env != NULL && env[i] != NULL; i++) {
			ssh_quote(&cmd, env[i], 0);
			buf_puts(&cmd, " ");
		}
		buf_printf(&cmd, "'%s%s'", path[0] == '/' ? "" : "./", path);
	}
	rc = ssh_exec_in(c, what, cmd.data, win ? NULL : dir, ro, res, e);
cleanup:
	clean = ssh_op_cleanup();
	if (uploaded)
		ssh_unlink(c, &clean, path, 0);
	if (made) {
		if (!win)
			ssh_unlink(c, &clean, pid, 0);
		ssh_unlink(c, &clean, dir, 1);
	}
	buf_free(&cmd);
	buf_free(&body);
	free(pid);
	free(path);
	free(dir);
	return rc;
}

/* ---- the end of customizing ---- */

/* 1 when line's key field is blob64 (authorized_keys: [options] type base64 [comment]). */
static int
ssh_line_has_key(const char *line, size_t n, const char *blob64)
{
	size_t	 bl = strlen(blob64), i;

	for (i = 0; i + bl <= n; i++)
		if ((i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t') &&
		    memcmp(line + i, blob64, bl) == 0 &&
		    (i + bl == n || line[i + bl] == ' ' || line[i + bl] == '\t' ||
		    line[i + bl] == '\r'))
			return 1;
	return 0;
}

int
ssh_remove_key(struct ssh_conn *c, const char *path, int *removed, struct err *e)
{
	struct ssh_op	 op = ssh_op(c, SSH_POWEROFF_S);
	struct buf	 keep;
	struct err	 ge;
	const char	*p, *nl;
	char		*data = NULL;
	size_t		 len = 0, n;
	int		 gone = 0, rc = -1;

	buf_init(&keep);
	if (removed != NULL)
		*removed = 0;
	if (path == NULL)
		path = c->o.guest == SSH_GUEST_WINDOWS ?
		    "C:/ProgramData/ssh/administrators_authorized_keys" : ".ssh/authorized_keys";
	err_clear(&ge);
	if ((data = ssh_get(c, &op, path, SSH_AUTHKEYS_MAX, &len, &ge)) == NULL) {
		if (ge.kind == ERR_NOTFOUND)
			rc = 0;	/* no file, no key */
		else
			err_set(e, ge.kind, "%s", ge.msg);
		goto cleanup;
	}
	for (p = data; p < data + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(data + len - p));
		if (nl == NULL)
			nl = data + len;
		n = (size_t)(nl - p);
		if (ssh_line_has_key(p, n, c->o.key->blob64)) {
			gone++;
			continue;
		}
		buf_append(&keep, p, n);
		if (nl < data + len)
			buf_append(&keep, "\n", 1);
	}
	/* rewritten in place: the file keeps its owner, mode and (windows) ACL */
	if (gone > 0 && ssh_put(c, &op, keep.data != NULL ? keep.data : "", keep.len, path, -1,
	    e) == -1)
		goto cleanup;
	if (removed != NULL)
		*removed = gone;
	log_debug("%s: removed %d line(s) with key %s from %s", c->label, gone,
	    c->o.key->fingerprint, path);
	rc = 0;
cleanup:
	buf_free(&keep);
	free(data);
	return rc;
}

const char *
ssh_poweroff_command(enum ssh_guest g)
{
	return g == SSH_GUEST_WINDOWS ? "shutdown /s /t 0" : "poweroff";
}

int
ssh_poweroff(struct ssh_conn *c, const char *command, double timeout_s, struct err *e)
{
	struct ssh_run_opts	 ro;
	struct ssh_run_result	 res;
	struct err		 pe;
	char			 what[96];
	int			 rc;

	memset(&ro, 0, sizeof(ro));
	ro.timeout_s = timeout_s > 0 ? timeout_s : SSH_POWEROFF_S;
	if (command == NULL)
		command = ssh_poweroff_command(c->o.guest);
	snprintf(what, sizeof(what), "power-off command '%.60s'", command);
	err_clear(&pe);
	rc = ssh_exec_in(c, what, command, NULL, &ro, &res, &pe);
	/* the guest going down under us (the connection, or the command killed by the shutdown)
	 * is what was asked for */
	if (rc == -1 && (pe.kind == ERR_NET || res.exit_signal != NULL)) {
		log_debug("%s: the power-off ended the session: %s", c->label, pe.msg);
		ssh_run_result_free(&res);
		c->broken = 1;
		return 0;
	}
	ssh_run_result_free(&res);
	if (rc == -1)
		err_set(e, pe.kind, "%s", pe.msg);
	return rc;
}
