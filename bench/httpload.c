/*
 * httpload.c — a small HTTP load generator on libcurl's multi interface, for bench/api:
 * CONCURRENCY clients, each GETting URL again and again over its own kept-alive connection for
 * SECONDS, with the given headers. Prints one line:
 *   requests=N errors=N rps=R p50_ms=X p99_ms=Y
 * Usage: httpload URL CONCURRENCY SECONDS [HEADER...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

static double
now_s(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

static int
cmp_double(const void *a, const void *b)
{
	double	 x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct curl_slist	*hdrs = NULL;
	CURLM			*m;
	CURL			**easy;
	CURLMsg			*msg;
	double			*started, *lat = NULL, t0, end, p50, p99;
	size_t			 nlat = 0, cap = 0, errors = 0;
	long			 code;
	int			 conc, secs, i, running, left;

	if (argc < 4) {
		fprintf(stderr, "usage: httpload URL CONCURRENCY SECONDS [HEADER...]\n");
		return 2;
	}
	conc = atoi(argv[2]);
	secs = atoi(argv[3]);
	if (conc < 1 || secs < 1)
		return 2;
	for (i = 4; i < argc; i++)
		hdrs = curl_slist_append(hdrs, argv[i]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conc);
	easy = calloc((size_t)conc, sizeof(*easy));
	started = calloc((size_t)conc, sizeof(*started));
	if (easy == NULL || started == NULL)
		abort();
	t0 = now_s();
	end = t0 + secs;
	for (i = 0; i < conc; i++) {
		easy[i] = curl_easy_init();
		curl_easy_setopt(easy[i], CURLOPT_URL, argv[1]);
		curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(easy[i], CURLOPT_PRIVATE, (void *)(long)i);
		curl_easy_setopt(easy[i], CURLOPT_TCP_NODELAY, 1L);
		started[i] = now_s();
		curl_multi_add_handle(m, easy[i]);
	}
	left = conc;
	while (left > 0) {
		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &i)) != NULL) {
			void	*priv;
			int	 k;
			double	 t;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			k = (int)(long)priv;
			t = now_s();
			code = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			if (msg->data.result != CURLE_OK || code != 200)
				errors++;
			else {
				if (nlat == cap) {
					cap = cap ? cap * 2 : 4096;
					if ((lat = realloc(lat, cap * sizeof(*lat))) == NULL)
						abort();
				}
				lat[nlat++] = (t - started[k]) * 1000.0;
			}
			curl_multi_remove_handle(m, easy[k]);
			if (t < end) {
				started[k] = now_s();
				curl_multi_add_handle(m, easy[k]);
			} else
				left--;
		}
		if (left > 0)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	qsort(lat, nlat, sizeof(*lat), cmp_double);
	p50 = nlat ? lat[nlat / 2] : 0;
	p99 = nlat ? lat[(size_t)((double)nlat * 0.99)] : 0;
	printf("requests=%zu errors=%zu rps=%.0f p50_ms=%.2f p99_ms=%.2f\n", nlat, errors,
	    (double)nlat / (now_s() - t0), p50, p99);
	for (i = 0; i < conc; i++)
		curl_easy_cleanup(easy[i]);
	curl_multi_cleanup(m);
	curl_slist_free_all(hdrs);
	free(easy);
	free(started);
	free(lat);
	curl_global_cleanup();
	return errors > 0 && nlat == 0;
}
