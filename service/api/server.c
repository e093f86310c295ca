/* server.c — isoforge-api's HTTP side on libmicrohttpd: a pool of threads, the OpenStack
 * conventions every answer follows (request id, microversion, error bodies, bounded bodies). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "base/log.h"
#include "base/util.h"
#include "drivers/http.h"
#include "drivers/keystone.h"
#include "service/api/api.h"

/* A thread's own service session (a libcurl handle and a Keystone session are used from one
 * thread at a time); all are kept on a list so that api_free frees them. */
struct api_tls {
	struct api_tls		*next;
	struct http_client	*http;
	struct keystone		*ks;
};

static __thread struct api_tls *api_tls_self;

struct keystone *
api_service_session(struct api *a, struct err *err)
{
	struct keystone_auth	 auth;
	struct http_opts	 ho;
	struct api_tls		*t;

	if (api_tls_self != NULL)
		return api_tls_self->ks;
	memset(&ho, 0, sizeof(ho));
	ho.ca_file = a->cfg->cafile;
	ho.timeout_s = 30;
	ho.connect_timeout_s = 5;
	ho.retries = 1;
	ho.user_agent = "isoforge-api";
	memset(&auth, 0, sizeof(auth));
	auth.auth_url = a->cfg->auth_url;
	auth.username = a->cfg->username;
	auth.password = a->cfg->password;
	auth.user_domain_name = a->cfg->user_domain_name;
	auth.project_name = a->cfg->project_name;
	auth.project_domain_name = a->cfg->project_domain_name;
	auth.region = a->cfg->region_name;
	auth.interface = a->cfg->interface;
	t = xcalloc(1, sizeof(*t));
	t->http = http_client_new(&ho);
	if ((t->ks = keystone_new(t->http, &auth, err)) == NULL) {
		http_client_free(&t->http);
		free(t);
		return NULL;
	}
	pthread_mutex_lock(&a->tls_mu);
	t->next = a->tls;
	a->tls = t;
	pthread_mutex_unlock(&a->tls_mu);
	api_tls_self = t;
	return t->ks;
}

void
api_tls_free_all(struct api *a)
{
	struct api_tls	*t;

	pthread_mutex_lock(&a->tls_mu);
	while ((t = a->tls) != NULL) {
		a->tls = t->next;
		keystone_free(&t->ks);
		http_client_free(&t->http);
		free(t);
	}
	pthread_mutex_unlock(&a->tls_mu);
	api_tls_self = NULL;
}

static const char *
api_status_title(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

void
api_error(struct api_req *r, int status, const char *code, const char *fmt, ...)
{
	va_list	 ap;
	char	*detail, *fullcode;
	json_t	*e;

	va_start(ap, fmt);
	detail = xvasprintf(fmt, ap);
	va_end(ap);
	fullcode = xasprintf(API_SERVICE_TYPE ".%s", code);
	e = json_pack("{s:s, s:s, s:i, s:s, s:s}", "request_id", r->request_id, "code", fullcode,
	    "status", status, "title", api_status_title(status), "detail", detail);
	json_decref(r->answer);
	r->answer = json_pack("{s:[o]}", "errors", e);
	r->status = status;
	if (status >= 500)
		log_warnx("%s %s %s: %d %s", r->request_id, r->method, r->path, status, detail);
	free(fullcode);
	free(detail);
}

const char *
api_query(struct api_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *
api_header(struct api_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* The deepest nesting of arrays and objects in JSON text (strings skipped); no parse. */
static int
api_json_depth(const char *s, size_t n)
{
	size_t	 i;
	int	 depth = 0, max = 0, in_str = 0;

	for (i = 0; i < n; i++) {
		if (in_str) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				in_str = 0;
			continue;
		}
		switch (s[i]) {
		case '"':
			in_str = 1;
			break;
		case '[':
		case '{':
			if (++depth > max)
				max = depth;
			break;
		case ']':
		case '}':
			depth--;
			break;
		}
	}
	return max;
}

json_t *
api_body_json(struct api_req *r)
{
	json_error_t	 je;
	const char	*ct;
	json_t		*root;

	if (r->body_too_big) {
		api_error(r, 413, "body_too_large", "body: larger than %ld bytes ([api] max_body)",
		    r->api->cfg->api_max_body);
		return NULL;
	}
	ct = api_header(r, "Content-Type");
	if (ct != NULL && strncmp(ct, "application/json", 16) != 0) {
		api_error(r, 415, "unsupported_media_type", "body: Content-Type must be "
		    "application/json");
		return NULL;
	}
	if (r->body.len == 0) {
		api_error(r, 400, "invalid_body", "body: missing (a JSON object)");
		return NULL;
	}
	if (api_json_depth(r->body.data, r->body.len) > r->api->cfg->api_max_depth) {
		api_error(r, 400, "invalid_body", "body: nested deeper than %ld levels",
		    r->api->cfg->api_max_depth);
		return NULL;
	}
	root = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL) {
		api_error(r, 400, "invalid_body", "body: not valid JSON: line %d: %s", je.line,
		    je.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		api_error(r, 400, "invalid_body", "body: must be a JSON object");
		return NULL;
	}
	return root;
}

/* Parses OpenStack-API-Version for our service type; 0 or -1 (answered 400/406). */
static int
api_microversion(struct api_req *r)
{
	const char	*h = api_header(r, "OpenStack-API-Version"), *p, *v;
	size_t		 tl = strlen(API_SERVICE_TYPE);
	char		*end;
	long		 major, minor;

	r->minor = API_VERSION_MIN;
	if (h == NULL)
		return 0;
	/* "image-build 1.0" or a comma-separated list naming several services */
	for (p = h; *p != '\0'; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
		while (*p == ' ')
			p++;
		if (strncasecmp(p, API_SERVICE_TYPE, tl) != 0 || p[tl] != ' ')
			continue;
		v = p + tl;
		while (*v == ' ')
			v++;
		if (strncmp(v, "latest", 6) == 0 && (v[6] == '\0' || v[6] == ',' || v[6] == ' ')) {
			r->minor = API_VERSION_MAX;
			return 0;
		}
		major = strtol(v, &end, 10);
		if (end == v || *end != '.' || end[1] < '0' || end[1] > '9') {
			api_error(r, 400, "invalid_version", "OpenStack-API-Version: '%.32s' is not "
			    "'image-build 1.N' or 'latest'", v);
			return -1;
		}
		minor = strtol(end + 1, &end, 10);
		if (major != 1 || minor < API_VERSION_MIN || minor > API_VERSION_MAX) {
			api_error(r, 406, "version_not_supported", "OpenStack-API-Version: %ld.%ld "
			    "is outside 1.%d..1.%d", major, minor, API_VERSION_MIN,
			    API_VERSION_MAX);
			return -1;
		}
		r->minor = (int)minor;
		return 0;
	}
	return 0;
}

/* Sends what the handler left in r. */
static enum MHD_Result
api_send(struct api_req *r)
{
	struct MHD_Response	*resp;
	enum MHD_Result		 ret;
	char			*text = NULL, ver[48];

	if (r->answer != NULL)
		text = json_dumps(r->answer, JSON_COMPACT);
	resp = MHD_create_response_from_buffer(text != NULL ? strlen(text) : 0, text,
	    MHD_RESPMEM_MUST_COPY);
	free(text);
	if (resp == NULL)
		return MHD_NO;
	if (r->answer != NULL)
		MHD_add_response_header(resp, "Content-Type", "application/json");
	MHD_add_response_header(resp, "x-openstack-request-id", r->request_id);
	snprintf(ver, sizeof(ver), API_SERVICE_TYPE " 1.%d", r->minor);
	MHD_add_response_header(resp, "OpenStack-API-Version", ver);
	MHD_add_response_header(resp, "Vary", "OpenStack-API-Version");
	if (r->location != NULL)
		MHD_add_response_header(resp, "Location", r->location);
	if (r->www_authenticate != NULL)
		MHD_add_response_header(resp, "WWW-Authenticate", r->www_authenticate);
	ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	log_debug("%s %s %s: %d", r->request_id, r->method, r->path, r->status);
	return ret;
}

static void
api_req_free(struct api_req *r)
{
	if (r == NULL)
		return;
	buf_free(&r->body);
	api_caller_clear(&r->caller);
	json_decref(r->answer);
	free(r->location);
	free(r->www_authenticate);
	free(r);
}

static void
api_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	api_req_free(*con_cls);
	*con_cls = NULL;
}

/* libmicrohttpd's access handler: first call makes the context, then body chunks, then the
 * answer. */
static enum MHD_Result
api_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct api	*a = cls;
	struct api_req	*r = *con_cls;
	const char	*cl;
	char		 uuid[37];

	(void)version;
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		r->api = a;
		r->conn = c;
		r->method = method;
		r->path = url;
		buf_init(&r->body);
		util_uuid(uuid);
		snprintf(r->request_id, sizeof(r->request_id), "req-%s", uuid);
		*con_cls = r;
		/* a declared length beyond the bound is refused before reading anything */
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		if (cl != NULL && strtoll(cl, NULL, 10) > a->cfg->api_max_body) {
			r->minor = API_VERSION_MIN;
			api_error(r, 413, "body_too_large", "body: larger than %ld bytes "
			    "([api] max_body)", a->cfg->api_max_body);
			return api_send(r);
		}
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (r->body.len + *upload_size > (size_t)a->cfg->api_max_body)
			r->body_too_big = 1;	/* the rest is read and dropped */
		else
			buf_append(&r->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (api_microversion(r) == 0)
		api_route(r);
	if (r->status == 0)
		api_error(r, 500, "internal", "no answer");
	return api_send(r);
}

static void
api_mhd_log(void *arg, const char *fmt, va_list ap)
{
	char	*msg;
	size_t	 n;

	(void)arg;
	msg = xvasprintf(fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	log_warnx("http: %s", msg);
	free(msg);
}

struct api *
api_new(struct config *cfg, struct loop *loop, struct err *err)
{
	struct api	*a;
	const char	*host;
	char		*bracketed;

	a = xcalloc(1, sizeof(*a));
	a->cfg = cfg;
	a->loop = loop;
	pthread_mutex_init(&a->tls_mu, NULL);
	host = cfg->api_host != NULL ? cfg->api_host : cfg->host;
	a->host = xstrdup(host);
	/* a host name with characters a queue name should not have: keep [A-Za-z0-9._-] */
	for (char *p = a->host; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			*p = '_';
	if (cfg->api_public_url != NULL) {
		a->base_url = xstrdup(cfg->api_public_url);
		while (strlen(a->base_url) > 0 && a->base_url[strlen(a->base_url) - 1] == '/')
			a->base_url[strlen(a->base_url) - 1] = '\0';
	} else {
		bracketed = strchr(cfg->api_bind_host, ':') != NULL ?
		    xasprintf("[%s]", cfg->api_bind_host) : xstrdup(cfg->api_bind_host);
		a->base_url = xasprintf("http://%s:%ld", bracketed, cfg->api_bind_port);
		free(bracketed);
	}
	a->auth = api_auth_cache_new((size_t)cfg->api_token_cache_size);
	if ((a->view = api_view_open(a, err)) == NULL) {
		api_free(&a);
		return NULL;
	}
	return a;
}

int
api_start(struct api *a, struct err *err)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	unsigned		 flags;

	memset(&ss, 0, sizeof(ss));
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (inet_pton(AF_INET, a->cfg->api_bind_host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)a->cfg->api_bind_port);
	} else if (inet_pton(AF_INET6, a->cfg->api_bind_host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)a->cfg->api_bind_port);
		flags |= MHD_USE_IPv6;
	} else {
		err_set(err, ERR_INVAL, "[api] bind_host: not an address");
		return -1;
	}
	if (api_view_start(a->view, err) != 0)
		return -1;
	a->mhd = MHD_start_daemon(flags, (uint16_t)a->cfg->api_bind_port, NULL, NULL,
	    api_on_request, a,
	    MHD_OPTION_EXTERNAL_LOGGER, api_mhd_log, a,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)a->cfg->api_threads,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
	    MHD_OPTION_NOTIFY_COMPLETED, api_on_completed, a,
	    MHD_OPTION_END);
	if (a->mhd == NULL) {
		err_set(err, ERR_IO, "cannot listen on %s port %ld", a->cfg->api_bind_host,
		    a->cfg->api_bind_port);
		return -1;
	}
	return 0;
}

/* Stops answering: the HTTP threads end (requests in progress are finished). */
void
api_stop(struct api *a)
{
	if (a->mhd != NULL) {
		MHD_stop_daemon(a->mhd);
		a->mhd = NULL;
	}
}

void
api_free(struct api **ap)
{
	struct api	*a;

	if (ap == NULL || (a = *ap) == NULL)
		return;
	api_stop(a);
	api_view_close(&a->view);
	api_auth_cache_free(&a->auth);
	api_tls_free_all(a);
	pthread_mutex_destroy(&a->tls_mu);
	free(a->host);
	free(a->base_url);
	free(a);
	*ap = NULL;
}
