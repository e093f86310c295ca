/* ssh.h — the customizing step's SSH client (libssh2): an ephemeral key pair, a connection
 * that waits for a booting guest, scripts run with streamed output, SFTP copies, clean-up. */
#ifndef ISOFORGE_SSH_H
#define ISOFORGE_SSH_H

#include <signal.h>
#include <stddef.h>

#include "base/util.h"

/* Bounds (a request's inline script, a copied file, one output line). */
#define SSH_SCRIPT_MAX	(64 * 1024)
#define SSH_COPY_MAX	(1024ULL * 1024 * 1024)
#define SSH_LINE_MAX	4096

/*
 * Ephemeral key pairs. ed25519 is the default: libssh2 1.10 with OpenSSL 3 signs with it from
 * memory (a PKCS#8 PEM), and every guest sshd in scope accepts it (OpenSSH >= 6.5, Windows'
 * OpenSSH, dropbear >= 2020.79). ecdsa-p256 is for guests that refuse ed25519 (RHEL in FIPS
 * mode). RSA is not offered: libssh2 1.10 signs RSA user auth with ssh-rsa (SHA-1), which
 * OpenSSH >= 8.8 rejects.
 */
enum ssh_key_type {
	SSH_KEY_ED25519 = 0,
	SSH_KEY_ECDSA_P256
};

struct ssh_key;

/*
 * Generates a key pair in memory (never on disk; the private part in OpenSSL's secure-clearing
 * buffers and an mlock()ed copy). comment (may be NULL) ends the authorized_keys line; it must
 * be printable ASCII without newlines (ERR_INVAL). Caller frees with ssh_key_free, which wipes.
 */
struct ssh_key	*ssh_key_new(enum ssh_key_type, const char *comment, struct err *);
/* The public key as one authorized_keys line without newline: "ssh-ed25519 AAAA... comment". */
const char	*ssh_key_authorized(const struct ssh_key *);
/* The public key's fingerprint as OpenSSH prints it: "SHA256:<base64, no padding>". */
const char	*ssh_key_fingerprint(const struct ssh_key *);
/* Wipes the private key and frees (NULL-safe; *keyp becomes NULL). */
void		 ssh_key_free(struct ssh_key **);

/* What the guest is: decides the default user, remote paths and commands. */
enum ssh_guest {
	SSH_GUEST_UNIX = 0,	/* root; /tmp; sh; poweroff */
	SSH_GUEST_WINDOWS	/* Administrator; C:/Windows/Temp; powershell; shutdown /s /t 0 */
};

/*
 * How to reach the guest. Zero-initialise and set host, port and key; the rest has defaults.
 * All waiting is done in steps of at most 100 ms, checking *cancel (ERR_CANCELLED) and the
 * deadline (ERR_TIMEOUT) between them.
 */
struct ssh_opts {
	const char	*host;		/* a name or address, or an absolute path: a unix socket */
	int		 port;		/* 1..65535 (ignored for a unix socket) */
	const char	*user;		/* NULL: root (unix), Administrator (windows) */
	const struct ssh_key *key;	/* the build's ephemeral key */
	enum ssh_guest	 guest;
	/* Where ssh_run_script makes its private directory: NULL: the user's home (unix: never
	 * noexec, as /tmp can be), C:/Windows/Temp (windows). */
	const char	*workdir;
	/* Trust on first use: NULL accepts the key the guest shows (the build's own fresh guest)
	 * and records it (ssh_conn_hostkey); else the fingerprint it must show ("SHA256:..."). */
	const char	*hostkey;
	double		 attempt_s;	/* one attempt: TCP connect + SSH handshake + auth; 0: 20 s */
	double		 wait_s;	/* keep retrying refused, reset, silent or half-up sshd
					 * this long (the guest boots); 0: one attempt only */
	double		 retry_s;	/* pause between attempts; 0: 2 s */
	double		 deadline;	/* absolute util_now() time for everything done on this
					 * connection (the step's timeout); 0: none */
	const volatile sig_atomic_t *cancel;	/* non-zero: stop at the next step; NULL: never */
	int		 cancel_fd;	/* > 0: readable (an eventfd, a pipe) stops it too */
	/* Called once per failed attempt that will be retried (may be NULL): for a log line. */
	void		(*on_retry)(void *arg, int attempt, const struct err *why);
	void		*arg;
};

struct ssh_conn;

/*
 * Connects and authenticates with the ephemeral key, retrying while the guest boots (connection
 * refused, reset or timed out; sshd not answering or closing before the handshake is done)
 * until wait_s, the deadline or a cancel. Not retried: a name that does not resolve or a bad
 * port (ERR_INVAL), a host key other than opts->hostkey and a refused key (ERR_AUTH). The last
 * attempt's error is reported, with the attempt count. The strings of opts are copied; the key
 * and the cancel flag must outlive the connection. Caller closes with ssh_close.
 */
struct ssh_conn	*ssh_connect(const struct ssh_opts *, struct err *);
/* The guest's host key fingerprint ("SHA256:...") seen at connect: record it, pass it as
 * opts.hostkey when reconnecting to the same guest. */
const char	*ssh_conn_hostkey(const struct ssh_conn *);
/* Its type as the guest named it ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ...). */
const char	*ssh_conn_hostkey_type(const struct ssh_conn *);
/* Disconnects and frees (NULL-safe; *connp becomes NULL). */
void		 ssh_close(struct ssh_conn **);

/* How to run a command or script. Zero-initialise; every field has a default. */
struct ssh_run_opts {
	double		 timeout_s;	/* 0: none (the connection's deadline still applies) */
	/* Called for each line of stdout (stream 1) or stderr (stream 2), without its '\n' or
	 * '\r', NUL-terminated; lines over SSH_LINE_MAX come in pieces; a last line without a
	 * newline comes at the end. May be NULL. */
	void		(*on_line)(void *arg, int stream, const char *line);
	void		*arg;
	int		 tail_lines;	/* lines kept for ssh_run_result.tail (both streams); 0: 20 */
	size_t		 script_max;	/* ssh_run_script's bound; 0: SSH_SCRIPT_MAX */
	/* ssh_run_script only: variables for the script, "NAME=VALUE" (NAME as in the shell,
	 * VALUE any text; else ERR_INVAL), NULL-terminated, may be NULL. Unix: env(1) in front
	 * of the script (sshd's AcceptEnv is rarely open); windows: $env: lines before it. */
	const char *const *env;
};

/* What a command did. Release with ssh_run_result_free (also after a failure). */
struct ssh_run_result {
	int		 exited;	/* 1: exit_status is valid */
	int		 exit_status;
	char		*exit_signal;	/* "KILL", "TERM" ... when a signal ended it, else NULL */
	int		 timed_out;
	int		 cancelled;
	double		 elapsed_s;
	char		*tail;		/* the last tail_lines lines, '\n'-separated, or NULL */
};

void		 ssh_run_result_free(struct ssh_run_result *);

/*
 * Runs command in the guest's login shell and waits for it; returns 0 when it exited with
 * status 0. Else -1: ERR_REMOTE ("exited with status N" / "killed by signal S", then its last
 * lines), ERR_TIMEOUT, ERR_CANCELLED, or ERR_NET when the connection broke. res may be NULL.
 */
int		 ssh_exec(struct ssh_conn *, const char *command, const struct ssh_run_opts *,
		    struct ssh_run_result *, struct err *);
/*
 * Uploads script (len bytes, at most opts->script_max: ERR_INVAL) over SFTP into a new private
 * directory (mode 0700) in the workdir and runs it (unix: executed directly, so its #! line
 * chooses the interpreter, sh without one; windows: powershell -File, as NAME.ps1). name only
 * names the script in errors ("script 'marker.sh' exited with status 3: ..."). On a timeout or
 * cancel a unix guest's script is killed with its process group (SIGTERM, then SIGKILL). The
 * uploaded files are removed afterwards (while the connection lasts). Returns as ssh_exec.
 */
int		 ssh_run_script(struct ssh_conn *, const char *name, const void *script,
		    size_t len, const struct ssh_run_opts *, struct ssh_run_result *,
		    struct err *);
/*
 * Copies the local regular file src to remote_path over SFTP, replacing it, with src's mode
 * bits (& 07777, set after writing, so the guest's umask does not change them). At most max
 * bytes (0: SSH_COPY_MAX; larger: ERR_INVAL before anything is sent). timeout_s 0: none.
 */
int		 ssh_copy_file(struct ssh_conn *, const char *src, const char *remote_path,
		    unsigned long long max, double timeout_s, struct err *);
/* Writes len bytes to remote_path over SFTP (replacing it) with mode. */
int		 ssh_put_data(struct ssh_conn *, const void *data, size_t len,
		    const char *remote_path, int mode, double timeout_s, struct err *);
/* Reads remote_path (at most max bytes, else ERR_INVAL) into a NUL-terminated string; caller
 * frees. A missing file is ERR_NOTFOUND. */
char		*ssh_get_data(struct ssh_conn *, const char *remote_path, size_t max,
		    size_t *lenp, double timeout_s, struct err *);
/*
 * Removes every line holding the connection's public key from the guest's authorized_keys
 * over SFTP (path NULL: .ssh/authorized_keys in the user's home on unix,
 * C:/ProgramData/ssh/administrators_authorized_keys on windows), keeping the other lines and
 * the file's mode. *removed (may be NULL) gets how many lines went. The session stays usable.
 */
int		 ssh_remove_key(struct ssh_conn *, const char *path, int *removed, struct err *);
/* The command that powers the guest off: "poweroff" (unix), "shutdown /s /t 0" (windows). */
const char	*ssh_poweroff_command(enum ssh_guest);
/*
 * Asks the guest to power off (command NULL: ssh_poweroff_command). Succeeds when the command
 * exits with status 0, is killed by a signal or the connection drops meanwhile (the guest went
 * down: the connection is unusable then); fails when it exits non-zero or does not return
 * within timeout_s (0: 30 s). The caller then waits for the domain to stop.
 */
int		 ssh_poweroff(struct ssh_conn *, const char *command, double timeout_s,
		    struct err *);

#endif
