/* controller/k8s_client.c - HTTPS to the Kubernetes API with libcurl.
 *
 * Every transfer (plain request, list page or watch) borrows a connection slot from a small
 * pool guarded by a mutex: an easy handle and the private multi handle that drives it. The
 * multi handle holds the connection cache, so a slot handed back after a clean transfer keeps
 * its keep-alive connection (and the easy handle its TLS session) for the next call from any
 * thread: the pages of a list go over one connection instead of one TLS handshake each. A slot
 * is in one transfer at a time, so each watch is still its own HTTP/1.1 connection (see
 * k8s_watch.c for why). A transfer that fails, times out, is stopped or aborted by its
 * callback may leave a half-read response on its connection: its slot is closed, never pooled.
 * The multi handle is polled every 100 ms so a stop flag interrupts a stream promptly. CA,
 * client certificate and key are handed to curl from memory. */
#include "k8s_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "error.h"
#include "k8s_config.h"
#include "log.h"

#define POOL_MAX 8                   /* the watches of every kind at once, and one more */
#define RESP_MAX ((size_t)256 << 20) /* response bodies */
#define ERRBODY_MAX ((size_t)1 << 20)
#define CONNECT_TIMEOUT_MS 5000L
#define REQUEST_TIMEOUT_MS 30000L
#define TOKEN_BUF 16384

static const char *const LOG_C = "controller.k8s_client";

/* One connection slot: an easy handle and the multi handle that runs its transfers (and keeps
 * its connections between them). */
struct conn {
	CURL *h;
	CURLM *m;
};

struct k8s_client {
	const struct k8s_config *cfg;
	pthread_mutex_t mu;
	struct conn pool[POOL_MAX];
	int npool;
	time_t denied_logged; /* last time a 401/403 was logged at warn level */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : WEIR_EIO;
}

/* Close a slot's connections and free it; the easy handle is in no multi handle. */
static void conn_close(struct conn *cn)
{
	curl_multi_cleanup(cn->m);
	curl_easy_cleanup(cn->h);
	cn->m = NULL;
	cn->h = NULL;
}

int k8s_client_new(const struct k8s_config *cfg, struct k8s_client **out)
{
	struct k8s_client *c;

	*out = NULL;
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc)
		return curl_init_rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return WEIR_ENOMEM;
	c->cfg = cfg;
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return 0;
}

void k8s_client_free(struct k8s_client *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->npool; i++)
		conn_close(&c->pool[i]);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* Take a slot from the pool (or a new one) into *cn. Returns 0 or WEIR_ENOMEM. */
static int pool_take(struct k8s_client *c, struct conn *cn)
{
	bool found = false;

	pthread_mutex_lock(&c->mu);
	if (c->npool) {
		*cn = c->pool[--c->npool];
		found = true;
	}
	pthread_mutex_unlock(&c->mu);
	if (found)
		return 0;
	cn->h = curl_easy_init();
	cn->m = curl_multi_init();
	if (!cn->h || !cn->m) {
		conn_close(cn);
		return WEIR_ENOMEM;
	}
	return 0;
}

/* Hand the slot back (reuse: its last transfer completed, so its connection is idle and
 * reusable) or close it. Either way *cn is emptied. */
static void pool_give(struct k8s_client *c, struct conn *cn, bool reuse)
{
	if (reuse) {
		/* Nothing this call set (callbacks and their data on its stack, headers, timeouts,
		 * the body) stays on the handle; its connections, DNS and TLS session caches do. */
		curl_easy_reset(cn->h);
		pthread_mutex_lock(&c->mu);
		if (c->npool < POOL_MAX) {
			c->pool[c->npool++] = *cn;
			cn->h = NULL;
			cn->m = NULL;
		}
		pthread_mutex_unlock(&c->mu);
	}
	conn_close(cn);
}

/* Capped growable buffer for response bodies. */
struct body {
	char *data;
	size_t len, cap, max;
	int overflow;
};

static int body_append(struct body *b, const char *p, size_t n)
{
	if (n > b->max - b->len) {
		b->overflow = 1;
		return -1;
	}
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		char *nd;

		while (ncap < b->len + n + 1)
			ncap *= 2;
		if (ncap > b->max + 1)
			ncap = b->max + 1;
		nd = realloc(b->data, ncap);
		if (!nd)
			return -1;
		b->data = nd;
		b->cap = ncap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static char *body_take(struct body *b)
{
	char *d = b->data;

	if (!d) {
		d = malloc(1);
		if (d)
			d[0] = '\0';
	}
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

/* State of one transfer, shared with the curl callbacks. */
struct xfer {
	CURL *h;
	struct body body;     /* whole body (plain requests) or error body (streams) */
	k8s_stream_cb stream; /* non-NULL: stream 2xx bodies here */
	void *stream_arg;
	int stream_rc; /* non-zero rc returned by stream */
	const atomic_bool *stop;
	int checked_status; /* streams: 0 unknown, 1 streaming, 2 error body */
};

static size_t write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;

	if (x->stream) {
		if (!x->checked_status) {
			long code = 0;

			curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
			x->checked_status = code >= 200 && code < 300 ? 1 : 2;
		}
		if (x->checked_status == 1) {
			int rc = x->stream(x->stream_arg, p, n);

			if (rc) {
				x->stream_rc = rc;
				return 0; /* aborts with CURLE_WRITE_ERROR */
			}
			return n;
		}
		/* Error bodies (a Status object) are small; keep the first MiB. */
		if (x->body.len < x->body.max)
			body_append(&x->body, p,
			            n < x->body.max - x->body.len ? n : x->body.max - x->body.len);
		return n;
	}
	if (body_append(&x->body, p, n))
		return 0;
	return n;
}

static int xferinfo_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	struct xfer *x = arg;

	return x->stop && atomic_load(x->stop) ? 1 : 0;
}

static int map_curl_error(CURLcode cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return WEIR_ETIMEDOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
		return WEIR_ETLS;
	case CURLE_OUT_OF_MEMORY:
		return WEIR_ENOMEM;
	case CURLE_ABORTED_BY_CALLBACK:
		return WEIR_ECANCELED;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
		return WEIR_ECLOSED;
	default:
		return WEIR_EIO;
	}
}

/* Set everything common to requests and streams on h. Returns the header list (caller frees
 * with curl_slist_free_all) or NULL with *rc set. */
static struct curl_slist *setup(struct k8s_client *c, CURL *h, const char *method, const char *path,
                                const char *body, const char *content_type, struct xfer *x,
                                char *errbuf, int *rc)
{
	const struct k8s_config *cfg = c->cfg;
	struct curl_slist *hdrs = NULL, *t;
	char *url = NULL, *auth = NULL;
	char token[TOKEN_BUF];
	const char *pem;
	size_t len;

	*rc = k8s_config_token(cfg, token, sizeof(token));
	if (*rc)
		return NULL;
	if (asprintf(&url, "%s%s", k8s_config_server(cfg), path) < 0)
		abort();
	curl_easy_setopt(h, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);
	/* A pooled connection idle longer than the keepalive idle time is not reused: one that
	 * died silently (an API server gone without a reset) would hold a list page until its
	 * 120 s bound, where a new connection fails within the 5 s connect timeout. The pages of
	 * a list and a watch after its list follow each other within milliseconds. */
	curl_easy_setopt(h, CURLOPT_MAXAGE_CONN, 30L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "weir-controller/" WEIR_VERSION);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	/* Only ever send credentials to the configured server. */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	if (k8s_config_insecure(cfg)) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if ((pem = k8s_config_ca_pem(cfg, &len)) != NULL) {
		struct curl_blob blob = {.data = (void *)pem, .len = len, .flags = CURL_BLOB_COPY};

		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
	}
	if ((pem = k8s_config_cert_pem(cfg, &len)) != NULL) {
		struct curl_blob blob = {.data = (void *)pem, .len = len, .flags = CURL_BLOB_COPY};

		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &blob);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
	}
	if ((pem = k8s_config_key_pem(cfg, &len)) != NULL) {
		struct curl_blob blob = {.data = (void *)pem, .len = len, .flags = CURL_BLOB_COPY};

		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &blob);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (token[0]) {
		if (asprintf(&auth, "Authorization: Bearer %s", token) < 0)
			abort();
		t = curl_slist_append(hdrs, auth);
		memset(auth, 0, strlen(auth));
		free(auth);
		if (!t)
			goto oom;
		hdrs = t;
	}
	memset(token, 0, sizeof(token));
	if (body) {
		char *ct = NULL;

		if (asprintf(&ct, "Content-Type: %s",
		             content_type ? content_type : "application/json") < 0)
			abort();
		t = curl_slist_append(hdrs, ct);
		free(ct);
		if (!t)
			goto oom;
		hdrs = t;
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	}
	/* No "Expect: 100-continue" round trip for bodies. */
	t = curl_slist_append(hdrs, "Expect:");
	if (!t)
		goto oom;
	hdrs = t;
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	else if (!(strcmp(method, "POST") == 0 && body))
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	*rc = 0;
	return hdrs;
oom:
	curl_slist_free_all(hdrs);
	*rc = WEIR_ENOMEM;
	return NULL;
}

void k8s_status_text(const char *body, long code, char *buf, size_t len)
{
	json_object *st = body ? json_tokener_parse(body) : NULL;
	json_object *m = NULL;

	if (st && json_object_object_get_ex(st, "message", &m) &&
	    json_object_is_type(m, json_type_string))
		snprintf(buf, len, "HTTP %ld: %s", code, json_object_get_string(m));
	else
		snprintf(buf, len, "HTTP %ld", code);
	json_object_put(st);
}

/*
 * A refused request means the role lacks a rule, the token is bad, or the
 * API server's authorizer is still warming up after a restart: an operator
 * must see it, but a retry loop must not flood the log with it.
 */
static void log_denied(struct k8s_client *c, const char *method, const char *path, long status,
                       const char *resp)
{
	time_t now = time(NULL);
	bool loud;

	pthread_mutex_lock(&c->mu);
	loud = now - c->denied_logged >= 60;
	if (loud)
		c->denied_logged = now;
	pthread_mutex_unlock(&c->mu);
	if (loud) {
		char text[512];

		k8s_status_text(resp, status, text, sizeof(text));
		log_warn(LOG_C, "%s %s: %s", method, path, text);
	}
}

/* Run the transfer set up on cn->h to its end with cn->m, polling stop (may be NULL) every
 * 100 ms. Returns 0 with *cc the transfer's result, WEIR_ECANCELED when stop became true, or
 * WEIR_EIO when the multi handle failed. The easy handle is out of the multi handle again on
 * return. */
static int run(struct conn *cn, const atomic_bool *stop, CURLcode *cc)
{
	CURLMsg *msg;
	int running = 1, left, rc = 0;

	*cc = CURLE_OK;
	if (curl_multi_add_handle(cn->m, cn->h) != CURLM_OK)
		return WEIR_EIO;
	while (running) {
		CURLMcode mc = curl_multi_perform(cn->m, &running);

		if (mc != CURLM_OK) {
			rc = WEIR_EIO;
			goto out;
		}
		if (!running)
			break;
		if (stop && atomic_load(stop)) {
			rc = WEIR_ECANCELED;
			goto out;
		}
		mc = curl_multi_poll(cn->m, NULL, 0, 100, NULL);
		if (mc != CURLM_OK) {
			rc = WEIR_EIO;
			goto out;
		}
	}
	while ((msg = curl_multi_info_read(cn->m, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE)
			*cc = msg->data.result;
out:
	curl_multi_remove_handle(cn->m, cn->h);
	return rc;
}

int k8s_request(struct k8s_client *c, const char *method, const char *path, const char *body,
                const char *content_type, long *status, char **resp)
{
	struct xfer x = {.body = {.max = RESP_MAX}};
	struct curl_slist *hdrs;
	struct conn cn;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	bool done = false;
	int rc;

	*status = 0;
	*resp = NULL;
	rc = pool_take(c, &cn);
	if (rc)
		return rc;
	x.h = cn.h;
	hdrs = setup(c, x.h, method, path, body, content_type, &x, errbuf, &rc);
	if (!hdrs)
		goto out_handle;
	curl_easy_setopt(x.h, CURLOPT_TIMEOUT_MS, REQUEST_TIMEOUT_MS);
	rc = run(&cn, NULL, &cc);
	if (rc)
		goto out_hdrs;
	if (cc != CURLE_OK) {
		rc = x.body.overflow ? WEIR_ETOOBIG : map_curl_error(cc);
		log_debug(LOG_C, "%s %s: %s", method, path,
		          errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out_hdrs;
	}
	done = true;
	curl_easy_getinfo(x.h, CURLINFO_RESPONSE_CODE, status);
	if (*status == 401)
		k8s_config_token_recheck(c->cfg);
	*resp = body_take(&x.body);
	if (*status == 401 || *status == 403)
		log_denied(c, method, path, *status, *resp);
	rc = *resp ? 0 : WEIR_ENOMEM;
out_hdrs:
	curl_slist_free_all(hdrs);
out_handle:
	pool_give(c, &cn, done);
	free(x.body.data);
	return rc;
}

int k8s_stream(struct k8s_client *c, const char *path, long max_seconds, k8s_stream_cb data_cb,
               void *arg, const atomic_bool *stop, long *status, char **errbody)
{
	struct xfer x = {
	    .body = {.max = ERRBODY_MAX}, .stream = data_cb, .stream_arg = arg, .stop = stop};
	struct curl_slist *hdrs = NULL;
	struct conn cn;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	int rc;

	*status = 0;
	if (errbody)
		*errbody = NULL;
	rc = pool_take(c, &cn);
	if (rc)
		return rc;
	x.h = cn.h;
	hdrs = setup(c, x.h, "GET", path, NULL, NULL, &x, errbuf, &rc);
	if (!hdrs)
		goto out;
	if (max_seconds > 0)
		curl_easy_setopt(x.h, CURLOPT_TIMEOUT_MS, max_seconds * 1000L);
	rc = run(&cn, stop, &cc);
	if (rc)
		goto out;
	curl_easy_getinfo(x.h, CURLINFO_RESPONSE_CODE, status);
	if (*status == 401)
		k8s_config_token_recheck(c->cfg);
	if (cc != CURLE_OK) {
		if (x.stream_rc)
			rc = x.stream_rc;
		else if (stop && atomic_load(stop))
			rc = WEIR_ECANCELED;
		else
			rc = map_curl_error(cc);
		if (!x.stream_rc && rc != WEIR_ECANCELED)
			log_debug(LOG_C, "GET %s: %s", path,
			          errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	if (errbody && x.checked_status == 2)
		*errbody = body_take(&x.body);
	rc = 0;
out:
	/* Only a transfer that ran to its end leaves a connection fit for the next one. */
	pool_give(c, &cn, rc == 0);
	curl_slist_free_all(hdrs);
	free(x.body.data);
	return rc;
}
