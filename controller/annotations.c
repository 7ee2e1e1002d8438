/* controller/annotations.c - annotation strings -> typed policy values. */
#include "annotations.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "route_validate.h"
#include "url.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return WEIR_EINVAL;
}

/* ------------------------------------------------------------ primitives */

/* Leading decimal digits into *v (no sign, no overflow); returns the rest or
 * NULL when there are no digits or it overflows. */
static const char *digits(const char *s, uint64_t *v)
{
	uint64_t n = 0;
	const char *p = s;
	while (*p >= '0' && *p <= '9') {
		if (n > (UINT64_MAX - 9) / 10)
			return NULL;
		n = n * 10 + (uint64_t)(*p - '0');
		p++;
	}
	if (p == s)
		return NULL;
	*v = n;
	return p;
}

int annotations_parse_uint(const char *s, uint64_t max, uint64_t *out, char *err, size_t errlen)
{
	uint64_t v;
	const char *rest = digits(s, &v);
	if (!rest || *rest)
		return fail(err, errlen, "\"%s\" is not a non-negative integer", s);
	if (v > max)
		return fail(err, errlen, "%s is above the maximum %llu", s,
		            (unsigned long long)max);
	*out = v;
	return 0;
}

int annotations_parse_duration_ms(const char *s, uint32_t *out, char *err, size_t errlen)
{
	uint64_t v, mult;
	const char *rest = digits(s, &v);
	if (!rest)
		return fail(err, errlen,
		            "\"%s\" is not a duration (seconds, or 500ms, 60s, 5m, 1h)", s);
	if (*rest == '\0' || strcmp(rest, "s") == 0)
		mult = 1000;
	else if (strcmp(rest, "ms") == 0)
		mult = 1;
	else if (strcmp(rest, "m") == 0)
		mult = 60000;
	else if (strcmp(rest, "h") == 0)
		mult = 3600000;
	else
		return fail(err, errlen,
		            "\"%s\" is not a duration (seconds, or 500ms, 60s, 5m, 1h)", s);
	if (v > UINT32_MAX / mult)
		return fail(err, errlen, "\"%s\" is too long", s);
	*out = (uint32_t)(v * mult);
	return 0;
}

int annotations_parse_size(const char *s, int64_t *out, char *err, size_t errlen)
{
	uint64_t v, mult = 1;
	const char *rest = digits(s, &v);
	if (!rest)
		return fail(err, errlen, "\"%s\" is not a size (bytes, or 512k, 1m, 1g)", s);
	if (*rest) {
		if (rest[1])
			return fail(err, errlen, "\"%s\" is not a size (bytes, or 512k, 1m, 1g)",
			            s);
		switch (tolower((unsigned char)*rest)) {
		case 'k':
			mult = 1024;
			break;
		case 'm':
			mult = 1024 * 1024;
			break;
		case 'g':
			mult = 1024 * 1024 * 1024;
			break;
		default:
			return fail(err, errlen, "\"%s\" is not a size (bytes, or 512k, 1m, 1g)",
			            s);
		}
	}
	if (v > (uint64_t)INT64_MAX / mult)
		return fail(err, errlen, "\"%s\" is too large", s);
	*out = (int64_t)(v * mult);
	return 0;
}

int annotations_parse_head_max(const char *s, uint32_t *out, char *err, size_t errlen)
{
	int64_t v;
	int rc = annotations_parse_size(s, &v, err, errlen);
	if (rc)
		return rc;
	if (v < ROUTE_HEAD_MAX_MIN || v > ROUTE_HEAD_MAX_MAX)
		return fail(err, errlen, "\"%s\" is out of range (1k..1m)", s);
	*out = (uint32_t)v;
	return 0;
}

int annotations_parse_bool(const char *s, bool *out, char *err, size_t errlen)
{
	if (strcmp(s, "true") == 0)
		*out = true;
	else if (strcmp(s, "false") == 0)
		*out = false;
	else
		return fail(err, errlen, "\"%s\" is not \"true\" or \"false\"", s);
	return 0;
}

int annotations_parse_next_upstream(const char *s, uint32_t *out, char *err, size_t errlen)
{
	uint32_t mask = 0;
	bool off = false, any = false;
	const char *p = s;
	while (*p) {
		if (*p == ' ' || *p == '\t') {
			p++;
			continue;
		}
		size_t n = strcspn(p, " \t");
		uint32_t bit = route_next_upstream_bit(p, n);
		if (n == 3 && memcmp(p, "off", 3) == 0)
			off = true;
		else if (!bit)
			return fail(err, errlen,
			            "\"%.*s\" is not error, timeout, invalid_header, http_500, "
			            "http_502, http_503, http_504, http_403, http_404, http_429, "
			            "non_idempotent or off",
			            (int)(n < 64 ? n : 64), p);
		mask |= bit;
		any = true;
		p += n;
	}
	if (!any)
		return fail(err, errlen, "no condition given");
	if (off && mask)
		return fail(err, errlen, "\"off\" cannot be combined with conditions");
	*out = mask;
	return 0;
}

static char *strndup_trim(const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	return strndup(s, n);
}

int annotations_parse_headers(const char *s, struct route_header **out, size_t *n, char *err,
                              size_t errlen)
{
	struct route_header *list = NULL;
	size_t count = 0;
	int rc = WEIR_EINVAL;
	const char *line = s;
	while (*line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char *l = strndup_trim(line, len);
		if (!l) {
			rc = WEIR_ENOMEM;
			goto fail_list;
		}
		if (*l) {
			char *colon = strchr(l, ':');
			char q[96];
			if (colon)
				*colon = '\0';
			if (!colon || route_validate_token(l, NULL, 0) != 0) {
				if (colon)
					*colon = ':';
				route_validate_quote(l, q, sizeof(q));
				rc = fail(err, errlen, "%s is not a \"Name: value\" line", q);
				free(l);
				goto fail_list;
			}
			*colon = ':';
			char *value = strndup_trim(colon + 1, strlen(colon + 1));
			char why[200];
			if (!value) {
				free(l);
				rc = WEIR_ENOMEM;
				goto fail_list;
			}
			if (route_validate_header_value(value, why, sizeof(why)) != 0) {
				rc = fail(err, errlen, "header %.*s: %s", (int)(colon - l), l, why);
				free(value);
				free(l);
				goto fail_list;
			}
			struct route_header *grown = realloc(list, (count + 1) * sizeof(*list));
			if (!grown) {
				free(value);
				free(l);
				rc = WEIR_ENOMEM;
				goto fail_list;
			}
			list = grown;
			list[count].name = strndup(l, (size_t)(colon - l));
			list[count].value = value;
			list[count].expand = false; /* annotation values are literal */
			count++;
			if (!list[count - 1].name || !list[count - 1].value) {
				free(l);
				rc = WEIR_ENOMEM;
				goto fail_list;
			}
		}
		free(l);
		line += len;
		if (*line == '\n')
			line++;
	}
	*out = list;
	*n = count;
	return 0;
fail_list:
	for (size_t i = 0; i < count; i++) {
		free(list[i].name);
		free(list[i].value);
	}
	free(list);
	return rc;
}

/* Split on commas and whitespace; calls each(item) for non-empty items. */
static int split_list(const char *s, int (*each)(void *ctx, const char *item), void *ctx)
{
	const char *p = s;
	while (*p) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		const char *start = p;
		while (*p && *p != ',' && !isspace((unsigned char)*p))
			p++;
		char *item = strndup(start, (size_t)(p - start));
		if (!item)
			return WEIR_ENOMEM;
		int rc = each(ctx, item);
		free(item);
		if (rc)
			return rc;
	}
	return 0;
}

struct cidr_ctx {
	struct route_cidr *list;
	size_t n;
	char *err;
	size_t errlen;
};

static int cidr_each(void *ctx, const char *item)
{
	struct cidr_ctx *c = ctx;
	struct route_cidr cidr;
	if (route_cidr_parse(item, &cidr) != 0)
		return fail(c->err, c->errlen, "\"%s\" is not a CIDR", item);
	struct route_cidr *grown = realloc(c->list, (c->n + 1) * sizeof(*grown));
	if (!grown)
		return WEIR_ENOMEM;
	c->list = grown;
	c->list[c->n++] = cidr;
	return 0;
}

int annotations_parse_cidrs(const char *s, struct route_cidr **out, size_t *n, char *err,
                            size_t errlen)
{
	struct cidr_ctx c = {.err = err, .errlen = errlen};
	int rc = split_list(s, cidr_each, &c);
	if (rc) {
		free(c.list);
		return rc;
	}
	*out = c.list;
	*n = c.n;
	return 0;
}

struct strlist_ctx {
	char **list;
	size_t n;
	bool host; /* validate as a host name (lowercased) */
	bool token;
	char *err;
	size_t errlen;
};

static int strlist_each(void *ctx, const char *item)
{
	struct strlist_ctx *c = ctx;
	char *copy = strdup(item);
	if (!copy)
		return WEIR_ENOMEM;
	if (c->host) {
		for (char *p = copy; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		if (route_validate_host(copy, 0, c->err, c->errlen) != 0) {
			free(copy);
			return WEIR_EINVAL;
		}
	}
	if (c->token && route_validate_token(copy, c->err, c->errlen) != 0) {
		free(copy);
		return WEIR_EINVAL;
	}
	char **grown = realloc(c->list, (c->n + 1) * sizeof(*grown));
	if (!grown) {
		free(copy);
		return WEIR_ENOMEM;
	}
	c->list = grown;
	c->list[c->n++] = copy;
	return 0;
}

static int parse_strlist(const char *s, bool host, bool token, char ***out, size_t *n, char *err,
                         size_t errlen)
{
	struct strlist_ctx c = {.host = host, .token = token, .err = err, .errlen = errlen};
	int rc = split_list(s, strlist_each, &c);
	if (rc) {
		for (size_t i = 0; i < c.n; i++)
			free(c.list[i]);
		free(c.list);
		return rc;
	}
	*out = c.list;
	*n = c.n;
	return 0;
}

/* ------------------------------------------------------------ policy copy */

static int dup_str(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : WEIR_ENOMEM;
}

static int dup_headers(struct route_header **dst, const struct route_header *src, size_t n)
{
	*dst = NULL;
	if (!n)
		return 0;
	*dst = calloc(n, sizeof(**dst));
	if (!*dst)
		return WEIR_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		(*dst)[i].expand = src[i].expand;
		if (dup_str(&(*dst)[i].name, src[i].name) ||
		    dup_str(&(*dst)[i].value, src[i].value))
			return WEIR_ENOMEM;
	}
	return 0;
}

int annotations_ext_auth_copy(struct route_ext_auth *dst, const struct route_ext_auth *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->always_set_cookie = src->always_set_cookie;
	if (dup_str(&dst->cache_key, src->cache_key) ||
	    dup_str(&dst->cache_duration, src->cache_duration) || dup_str(&dst->url, src->url) ||
	    dup_str(&dst->method, src->method) || dup_str(&dst->signin, src->signin) ||
	    dup_str(&dst->signin_redirect_param, src->signin_redirect_param) ||
	    dup_str(&dst->request_redirect, src->request_redirect))
		goto fail;
	if (src->nresponse_headers) {
		dst->response_headers = calloc(src->nresponse_headers, sizeof(char *));
		if (!dst->response_headers)
			goto fail;
		dst->nresponse_headers = src->nresponse_headers;
		for (size_t i = 0; i < src->nresponse_headers; i++)
			if (dup_str(&dst->response_headers[i], src->response_headers[i]))
				goto fail;
	}
	dst->nproxy_set_headers = src->nproxy_set_headers;
	if (dup_headers(&dst->proxy_set_headers, src->proxy_set_headers, src->nproxy_set_headers)) {
		if (!dst->proxy_set_headers)
			dst->nproxy_set_headers = 0;
		goto fail;
	}
	return 0;
fail:
	route_ext_auth_cleanup(dst);
	return WEIR_ENOMEM;
}

int annotations_policy_copy(struct route_policy *dst, const struct route_policy *src)
{
	int rc = WEIR_ENOMEM;
	*dst = *src;
	/* Null every owned pointer first so a partial copy cleans up safely. */
	dst->upstream_vhost = dst->x_forwarded_prefix = dst->rewrite_target = NULL;
	dst->redirect_url = dst->app_root = dst->hash_by = dst->redirect_host = NULL;
	dst->cookie.name = dst->cookie.path = dst->cookie.samesite = dst->cookie.domain = NULL;
	dst->proxy_redirect_from = dst->proxy_redirect_to = NULL;
	dst->proxy_cookie_domain_from = dst->proxy_cookie_domain_to = NULL;
	dst->proxy_cookie_path_from = dst->proxy_cookie_path_to = NULL;
	dst->allow = dst->deny = dst->limit_allow = NULL;
	dst->nlimit_allow = 0;
	dst->cors.allow_origin = dst->cors.allow_methods = NULL;
	dst->cors.allow_headers = dst->cors.expose_headers = NULL;
	dst->request_headers = dst->response_headers = NULL;
	dst->hide_headers = NULL;
	dst->nrequest_headers = dst->nresponse_headers = dst->nhide_headers = 0;
	dst->add_headers = NULL;
	dst->nadd_headers = 0;
	dst->return_body = NULL;
	memset(&dst->ext_auth, 0, sizeof(dst->ext_auth));
	dst->nallow = dst->ndeny = 0;
	dst->auth.realm = NULL;
	dst->auth.users = NULL;
	dst->auth.nusers = 0;
	dst->backend_tls.name = NULL;
	dst->mirror.url = dst->mirror.host = NULL;
	dst->fastcgi.index = NULL;
	dst->fastcgi.params = NULL;
	dst->fastcgi.nparams = 0;
	dst->rewrites = NULL;
	dst->nrewrites = 0;
	if (dup_str(&dst->backend_tls.name, src->backend_tls.name) ||
	    dup_str(&dst->fastcgi.index, src->fastcgi.index) ||
	    dup_str(&dst->mirror.url, src->mirror.url) ||
	    dup_str(&dst->mirror.host, src->mirror.host) ||
	    dup_str(&dst->upstream_vhost, src->upstream_vhost) ||
	    dup_str(&dst->x_forwarded_prefix, src->x_forwarded_prefix) ||
	    dup_str(&dst->rewrite_target, src->rewrite_target) ||
	    dup_str(&dst->redirect_url, src->redirect_url) ||
	    dup_str(&dst->redirect_host, src->redirect_host) ||
	    dup_str(&dst->return_body, src->return_body) ||
	    dup_str(&dst->app_root, src->app_root) || dup_str(&dst->hash_by, src->hash_by) ||
	    dup_str(&dst->cookie.name, src->cookie.name) ||
	    dup_str(&dst->cookie.path, src->cookie.path) ||
	    dup_str(&dst->cookie.samesite, src->cookie.samesite) ||
	    dup_str(&dst->cookie.domain, src->cookie.domain) ||
	    dup_str(&dst->proxy_redirect_from, src->proxy_redirect_from) ||
	    dup_str(&dst->proxy_redirect_to, src->proxy_redirect_to) ||
	    dup_str(&dst->proxy_cookie_domain_from, src->proxy_cookie_domain_from) ||
	    dup_str(&dst->proxy_cookie_domain_to, src->proxy_cookie_domain_to) ||
	    dup_str(&dst->proxy_cookie_path_from, src->proxy_cookie_path_from) ||
	    dup_str(&dst->proxy_cookie_path_to, src->proxy_cookie_path_to) ||
	    dup_str(&dst->cors.allow_origin, src->cors.allow_origin) ||
	    dup_str(&dst->cors.allow_methods, src->cors.allow_methods) ||
	    dup_str(&dst->cors.allow_headers, src->cors.allow_headers) ||
	    dup_str(&dst->cors.expose_headers, src->cors.expose_headers))
		goto out;
	if (src->nallow) {
		dst->allow = malloc(src->nallow * sizeof(*dst->allow));
		if (!dst->allow)
			goto out;
		memcpy(dst->allow, src->allow, src->nallow * sizeof(*dst->allow));
		dst->nallow = src->nallow;
	}
	if (src->nlimit_allow) {
		dst->limit_allow = malloc(src->nlimit_allow * sizeof(*dst->limit_allow));
		if (!dst->limit_allow)
			goto out;
		memcpy(dst->limit_allow, src->limit_allow,
		       src->nlimit_allow * sizeof(*dst->limit_allow));
		dst->nlimit_allow = src->nlimit_allow;
	}
	if (src->ndeny) {
		dst->deny = malloc(src->ndeny * sizeof(*dst->deny));
		if (!dst->deny)
			goto out;
		memcpy(dst->deny, src->deny, src->ndeny * sizeof(*dst->deny));
		dst->ndeny = src->ndeny;
	}
	dst->nrequest_headers = src->nrequest_headers;
	if (dup_headers(&dst->request_headers, src->request_headers, src->nrequest_headers)) {
		if (!dst->request_headers)
			dst->nrequest_headers = 0;
		goto out;
	}
	dst->nresponse_headers = src->nresponse_headers;
	if (dup_headers(&dst->response_headers, src->response_headers, src->nresponse_headers)) {
		if (!dst->response_headers)
			dst->nresponse_headers = 0;
		goto out;
	}
	dst->fastcgi.nparams = src->fastcgi.nparams;
	if (dup_headers(&dst->fastcgi.params, src->fastcgi.params, src->fastcgi.nparams)) {
		if (!dst->fastcgi.params)
			dst->fastcgi.nparams = 0;
		goto out;
	}
	if (src->nadd_headers) {
		dst->add_headers = calloc(src->nadd_headers, sizeof(*dst->add_headers));
		if (!dst->add_headers)
			goto out;
		dst->nadd_headers = src->nadd_headers;
		for (size_t i = 0; i < src->nadd_headers; i++) {
			dst->add_headers[i].always = src->add_headers[i].always;
			dst->add_headers[i].expand = src->add_headers[i].expand;
			if (dup_str(&dst->add_headers[i].name, src->add_headers[i].name) ||
			    dup_str(&dst->add_headers[i].value, src->add_headers[i].value))
				goto out;
		}
	}
	if (src->nhide_headers) {
		dst->hide_headers = calloc(src->nhide_headers, sizeof(char *));
		if (!dst->hide_headers)
			goto out;
		dst->nhide_headers = src->nhide_headers;
		for (size_t i = 0; i < src->nhide_headers; i++)
			if (dup_str(&dst->hide_headers[i], src->hide_headers[i]))
				goto out;
	}
	if (dup_str(&dst->auth.realm, src->auth.realm))
		goto out;
	if (src->auth.nusers) {
		dst->auth.users = calloc(src->auth.nusers, sizeof(*dst->auth.users));
		if (!dst->auth.users)
			goto out;
		dst->auth.nusers = src->auth.nusers;
		for (size_t i = 0; i < src->auth.nusers; i++)
			if (dup_str(&dst->auth.users[i].name, src->auth.users[i].name) ||
			    dup_str(&dst->auth.users[i].hash, src->auth.users[i].hash))
				goto out;
	}
	if (annotations_ext_auth_copy(&dst->ext_auth, &src->ext_auth))
		goto out;
	if (src->nrewrites) {
		dst->rewrites = calloc(src->nrewrites, sizeof(*dst->rewrites));
		if (!dst->rewrites)
			goto out;
		dst->nrewrites = src->nrewrites;
		for (size_t i = 0; i < src->nrewrites; i++) {
			dst->rewrites[i].flag = src->rewrites[i].flag;
			if (dup_str(&dst->rewrites[i].regex, src->rewrites[i].regex) ||
			    dup_str(&dst->rewrites[i].replacement, src->rewrites[i].replacement))
				goto out;
		}
	}
	rc = 0;
out:
	if (rc)
		route_policy_cleanup(dst);
	return rc;
}

/* ------------------------------------------------------------ annotations */

struct pctx {
	struct annotations *a;
	int64_t perm_code; /* -1: not set */
	char *perm_url;
	char *temp_url;
	int64_t temp_code;          /* -1: not set */
	const char *key;            /* full key of the annotation being parsed */
	const char *auth_other_key; /* auth-realm or auth-secret-type, borrowed */
	const char *tls_other_key;  /* an auth-tls-* key other than the secret */
	char *redirect_from;        /* proxy-redirect-from/-to as given */
	char *redirect_to;
	bool redirect_to_given; /* proxy-redirect-to present, even when refused */
	const char *redirect_from_key;
	const char *mirror_other_key; /* mirror-host or mirror-request-body, borrowed */
	const char *fastcgi_keys[2];  /* fastcgi-index, -params-configmap, borrowed */
	const char *weight_key;       /* canary-weight as written, borrowed */
	const char *weight_total_key; /* canary-weight-total as written, borrowed */
	char *err;
	size_t errlen;
};

typedef int (*handler_cb)(struct pctx *c, const char *v);

static int set_str(char **dst, const char *v)
{
	char *copy = strdup(v);
	if (!copy)
		return WEIR_ENOMEM;
	free(*dst);
	*dst = copy;
	return 0;
}

#define DURATION_HANDLER(fn, field, extra)                                                         \
	static int fn(struct pctx *c, const char *v)                                               \
	{                                                                                          \
		int rc = annotations_parse_duration_ms(v, &c->a->field, c->err, c->errlen);        \
		if (rc == 0) {                                                                     \
			extra;                                                                     \
		}                                                                                  \
		return rc;                                                                         \
	}

DURATION_HANDLER(h_connect, policy.connect_timeout_ms, c->a->connect_timeout_set = true)
DURATION_HANDLER(h_read, policy.read_timeout_ms, c->a->read_timeout_set = true)
DURATION_HANDLER(h_send, policy.send_timeout_ms, c->a->send_timeout_set = true)
DURATION_HANDLER(h_ws_idle, policy.ws_idle_timeout_ms, c->a->ws_idle_set = true)
DURATION_HANDLER(h_ws_life, policy.ws_max_lifetime_ms, )
DURATION_HANDLER(h_ws_ping, policy.ws_ping_interval_ms, )
DURATION_HANDLER(h_drain, policy.drain_window_ms, c->a->drain_window_set = true)

static int h_next_upstream(struct pctx *c, const char *v)
{
	int rc = annotations_parse_next_upstream(v, &c->a->policy.next_upstream, c->err, c->errlen);
	if (rc == 0)
		c->a->next_upstream_set = true;
	return rc;
}

static int h_next_tries(struct pctx *c, const char *v)
{
	uint64_t u;
	int rc = annotations_parse_uint(v, 1000, &u, c->err, c->errlen);
	if (rc == 0) {
		c->a->policy.next_upstream_tries = (uint32_t)u;
		c->a->next_tries_set = true;
	}
	return rc;
}

DURATION_HANDLER(h_next_timeout, policy.next_upstream_timeout_ms, c->a->next_timeout_set = true)

static int h_body(struct pctx *c, const char *v)
{
	int rc = annotations_parse_size(v, &c->a->policy.body_limit, c->err, c->errlen);
	if (rc == 0)
		c->a->body_limit_set = true;
	return rc;
}

static int h_head_max(struct pctx *c, const char *v)
{
	int rc = annotations_parse_head_max(v, &c->a->policy.upstream_head_max, c->err, c->errlen);
	if (rc == 0)
		c->a->head_max_set = true;
	return rc;
}

#define BOOL_HANDLER(fn, field)                                                                    \
	static int fn(struct pctx *c, const char *v)                                               \
	{                                                                                          \
		return annotations_parse_bool(v, &c->a->field, c->err, c->errlen);                 \
	}

static int h_ssl_redirect(struct pctx *c, const char *v)
{
	int rc = annotations_parse_bool(v, &c->a->ssl_redirect, c->err, c->errlen);
	if (rc == 0)
		c->a->ssl_redirect_set = true;
	return rc;
}

BOOL_HANDLER(h_force_ssl, force_ssl_redirect)
BOOL_HANDLER(h_trailing, policy.preserve_trailing_slash)
BOOL_HANDLER(h_passthrough, ssl_passthrough)
BOOL_HANDLER(h_access_log, policy.access_log)
BOOL_HANDLER(h_use_regex, use_regex)
BOOL_HANDLER(h_service_upstream, service_upstream)
BOOL_HANDLER(h_cookie_secure, policy.cookie.secure)
BOOL_HANDLER(h_cors, policy.cors.enabled)
BOOL_HANDLER(h_cors_cred, policy.cors.allow_credentials)
BOOL_HANDLER(h_request_base, policy.request_base)
BOOL_HANDLER(h_origin_rewrite, policy.origin_rewrite)
BOOL_HANDLER(h_canary, canary)
BOOL_HANDLER(h_global_auth, global_auth)
BOOL_HANDLER(h_cookie_samesite_cond, policy.cookie.conditional_samesite_none)
BOOL_HANDLER(h_cookie_change, policy.cookie.change_on_failure)
BOOL_HANDLER(h_hash_subset, policy.hash_by_subset)

/* A string value checked by its route_validate rule. */
#define STR_HANDLER(fn, field, check)                                                              \
	static int fn(struct pctx *c, const char *v)                                               \
	{                                                                                          \
		int rc = check(v, c->err, c->errlen);                                              \
		return rc ? rc : set_str(&c->a->field, v);                                         \
	}

STR_HANDLER(h_cookie_path, policy.cookie.path, route_validate_cookie_path)
STR_HANDLER(h_cors_origin, policy.cors.allow_origin, route_validate_header_value)
STR_HANDLER(h_cors_methods, policy.cors.allow_methods, route_validate_header_value)
STR_HANDLER(h_cors_headers, policy.cors.allow_headers, route_validate_header_value)
STR_HANDLER(h_cors_expose, policy.cors.expose_headers, route_validate_header_value)
STR_HANDLER(h_rewrite, policy.rewrite_target, route_validate_rewrite_target)
STR_HANDLER(h_canary_value, canary_rule.by_header_value, route_validate_header_value)
STR_HANDLER(h_vhost, policy.upstream_vhost, route_validate_vhost)
STR_HANDLER(h_cookie_domain, policy.cookie.domain, route_validate_cookie_attr)
STR_HANDLER(h_canary_pattern, canary_rule.by_header_pattern, route_validate_header_pattern)

/* nginx reads a first argument starting with '~' as a regular expression;
 * weir rewrites by literal prefix only, so it refuses those rather than
 * compare them as text. */
static int no_regex(struct pctx *c, const char *v)
{
	if (v[0] == '~')
		return fail(c->err, c->errlen,
		            "\"%.64s\" is a regular expression (~); weir matches literal text only",
		            v);
	return 0;
}

/* proxy-redirect-from: "off", "default" or the text to replace; resolved
 * with proxy-redirect-to once every key is read. */
static int h_redirect_from(struct pctx *c, const char *v)
{
	int rc = 0;
	if (strcmp(v, "off") != 0 && strcmp(v, "default") != 0 &&
	    ((rc = route_validate_redirect_part(v, c->err, c->errlen)) != 0 ||
	     (rc = no_regex(c, v)) != 0))
		return rc;
	c->redirect_from_key = c->key;
	return set_str(&c->redirect_from, v);
}

static int h_redirect_to(struct pctx *c, const char *v)
{
	int rc = 0;
	c->redirect_to_given = true;
	if (strcmp(v, "off") != 0 && (rc = route_validate_redirect_part(v, c->err, c->errlen)) != 0)
		return rc;
	return set_str(&c->redirect_to, v);
}

/* proxy-cookie-domain / proxy-cookie-path: "off", or "FROM TO" (two
 * tokens separated by white space). */
static int cookie_rewrite(struct pctx *c, const char *v, char **from, char **to)
{
	char a[512], b[512], extra[2];
	int rc;
	if (strcmp(v, "off") == 0) {
		free(*from);
		free(*to);
		*from = *to = NULL;
		return 0;
	}
	if (strlen(v) >= sizeof(a) || sscanf(v, "%511s %511s %1s", a, b, extra) != 2)
		return fail(c->err, c->errlen, "\"%.64s\" is neither \"off\" nor \"FROM TO\"", v);
	if ((rc = route_validate_cookie_attr(a, c->err, c->errlen)) != 0 ||
	    (rc = route_validate_cookie_attr(b, c->err, c->errlen)) != 0 ||
	    (rc = no_regex(c, a)) != 0)
		return rc;
	if ((rc = set_str(from, a)) != 0)
		return rc;
	return set_str(to, b);
}

static int h_cookie_rw_domain(struct pctx *c, const char *v)
{
	return cookie_rewrite(c, v, &c->a->policy.proxy_cookie_domain_from,
	                      &c->a->policy.proxy_cookie_domain_to);
}

static int h_cookie_rw_path(struct pctx *c, const char *v)
{
	return cookie_rewrite(c, v, &c->a->policy.proxy_cookie_path_from,
	                      &c->a->policy.proxy_cookie_path_to);
}

static int h_hash_subset_size(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, ROUTE_VALIDATE_MAX_SUBSET, &n, c->err, c->errlen);
	if (rc == 0 && n < 1)
		rc = fail(c->err, c->errlen, "\"%s\" is below 1", v);
	if (rc == 0)
		c->a->policy.hash_by_subset_size = (uint32_t)n;
	return rc;
}

static int h_canary_weight_total(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, UINT32_MAX, &n, c->err, c->errlen);
	if (rc)
		return rc;
	/* ingress-nginx's balancer draws out of 100 when the total is lower */
	c->a->canary_rule.weight_total = n < 100 ? 100 : (uint32_t)n;
	c->weight_total_key = c->key;
	return 0;
}

static int h_canary_affinity(struct pctx *c, const char *v)
{
	if (strcmp(v, "sticky") == 0)
		c->a->canary_rule.affinity_behavior = ROUTE_CANARY_STICKY;
	else if (strcmp(v, "legacy") == 0)
		c->a->canary_rule.affinity_behavior = ROUTE_CANARY_LEGACY;
	else
		return fail(c->err, c->errlen, "\"%s\" is not sticky or legacy", v);
	return 0;
}

/* x-forwarded-prefix: "" sends no header (as ingress-nginx), not an error. */
static int h_xfp(struct pctx *c, const char *v)
{
	int rc = route_validate_header_value(v, c->err, c->errlen);
	if (rc)
		return rc;
	if (!*v) {
		free(c->a->policy.x_forwarded_prefix);
		c->a->policy.x_forwarded_prefix = NULL;
		return 0;
	}
	return set_str(&c->a->policy.x_forwarded_prefix, v);
}

static int h_token(struct pctx *c, const char *v, char **dst)
{
	int rc = route_validate_token(v, c->err, c->errlen);
	return rc ? rc : set_str(dst, v);
}

static int h_cookie_name(struct pctx *c, const char *v)
{
	return h_token(c, v, &c->a->policy.cookie.name);
}
static int h_canary_header(struct pctx *c, const char *v)
{
	return h_token(c, v, &c->a->canary_rule.by_header);
}
static int h_canary_cookie(struct pctx *c, const char *v)
{
	return h_token(c, v, &c->a->canary_rule.by_cookie);
}

static int h_cookie_max_age(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, INT32_MAX, &n, c->err, c->errlen);
	if (rc == 0)
		c->a->policy.cookie.max_age_s = (int64_t)n;
	return rc;
}

static int h_cookie_expires(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, INT32_MAX, &n, c->err, c->errlen);
	if (rc == 0)
		c->a->policy.cookie.expires_s = (int64_t)n;
	return rc;
}

static int h_samesite(struct pctx *c, const char *v)
{
	static const char *const ok[] = {"None", "Lax", "Strict"};
	for (size_t i = 0; i < 3; i++)
		if (strcasecmp(v, ok[i]) == 0)
			return set_str(&c->a->policy.cookie.samesite, ok[i]);
	return fail(c->err, c->errlen, "\"%s\" is not None, Lax or Strict", v);
}

static int h_affinity(struct pctx *c, const char *v)
{
	if (strcmp(v, "cookie") != 0)
		return fail(c->err, c->errlen, "\"%s\" is not supported (only \"cookie\")", v);
	c->a->policy.affinity = ROUTE_AFFINITY_COOKIE;
	return 0;
}

static int h_affinity_mode(struct pctx *c, const char *v)
{
	if (strcmp(v, "balanced") == 0)
		c->a->policy.affinity_mode = ROUTE_AFFINITY_BALANCED;
	else if (strcmp(v, "persistent") == 0)
		c->a->policy.affinity_mode = ROUTE_AFFINITY_PERSISTENT;
	else
		return fail(c->err, c->errlen, "\"%s\" is not balanced or persistent", v);
	return 0;
}

static int h_hash_by(struct pctx *c, const char *v)
{
	int rc = route_validate_hash_by(v, c->err, c->errlen);
	return rc ? rc : set_str(&c->a->policy.hash_by, v);
}

static int h_balance(struct pctx *c, const char *v)
{
	if (strcmp(v, "round_robin") == 0)
		c->a->policy.balance = ROUTE_BALANCE_ROUND_ROBIN;
	else if (strcmp(v, "ewma") == 0)
		c->a->policy.balance = ROUTE_BALANCE_EWMA;
	else
		return fail(c->err, c->errlen, "\"%s\" is not round_robin or ewma", v);
	return 0;
}

static int h_protocol(struct pctx *c, const char *v)
{
	if (strcasecmp(v, "HTTP") == 0)
		c->a->policy.backend_protocol = ROUTE_PROTO_HTTP;
	else if (strcasecmp(v, "HTTPS") == 0)
		c->a->policy.backend_protocol = ROUTE_PROTO_HTTPS;
	else if (strcasecmp(v, "FCGI") == 0)
		c->a->policy.backend_protocol = ROUTE_PROTO_FCGI;
	else if (strcasecmp(v, "GRPC") == 0)
		c->a->policy.backend_protocol = ROUTE_PROTO_GRPC;
	else if (strcasecmp(v, "GRPCS") == 0)
		c->a->policy.backend_protocol = ROUTE_PROTO_GRPCS;
	else if (strcasecmp(v, "AUTO_HTTP") == 0)
		c->a->policy.backend_protocol = ROUTE_PROTO_AUTO_HTTP;
	else
		return fail(c->err, c->errlen,
		            "\"%s\" is not supported (HTTP, HTTPS, AUTO_HTTP, GRPC, GRPCS or FCGI)",
		            v);
	return 0;
}

static int h_allow(struct pctx *c, const char *v)
{
	struct route_policy *p = &c->a->policy;
	struct route_cidr *list;
	size_t n = 0;
	int rc = annotations_parse_cidrs(v, &list, &n, c->err, c->errlen);
	if (rc)
		return rc;
	free(p->allow);
	p->allow = list;
	p->nallow = n;
	return 0;
}

static int h_deny(struct pctx *c, const char *v)
{
	struct route_policy *p = &c->a->policy;
	struct route_cidr *list;
	size_t n = 0;
	int rc = annotations_parse_cidrs(v, &list, &n, c->err, c->errlen);
	if (rc)
		return rc;
	free(p->deny);
	p->deny = list;
	p->ndeny = n;
	return 0;
}

static int h_limit_conn(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, UINT32_MAX, &n, c->err, c->errlen);
	if (rc == 0)
		c->a->policy.limit_connections = (uint32_t)n;
	return rc;
}

static int h_limit_rps(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, UINT32_MAX, &n, c->err, c->errlen);
	if (rc == 0)
		c->a->policy.limit_rps = (uint32_t)n;
	return rc;
}

static int h_limit_rpm(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, UINT32_MAX, &n, c->err, c->errlen);
	if (rc == 0)
		c->a->policy.limit_rpm = (uint32_t)n;
	return rc;
}

static int h_limit_burst(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, ROUTE_VALIDATE_MAX_BURST, &n, c->err, c->errlen);
	if (rc == 0 && n < 1)
		rc = fail(c->err, c->errlen, "\"%s\" is below 1", v);
	if (rc == 0)
		c->a->policy.limit_burst = (uint32_t)n;
	return rc;
}

static int h_limit_allow(struct pctx *c, const char *v)
{
	struct route_policy *p = &c->a->policy;
	struct route_cidr *list;
	size_t n;
	int rc = annotations_parse_cidrs(v, &list, &n, c->err, c->errlen);
	if (rc)
		return rc;
	free(p->limit_allow);
	p->limit_allow = list;
	p->nlimit_allow = n;
	return 0;
}

static int h_satisfy(struct pctx *c, const char *v)
{
	if (strcmp(v, "any") != 0 && strcmp(v, "all") != 0)
		return fail(c->err, c->errlen, "\"%s\" is neither \"all\" nor \"any\"", v);
	c->a->policy.satisfy_any = strcmp(v, "any") == 0;
	return 0;
}

static int h_cors_max_age(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, INT32_MAX, &n, c->err, c->errlen);
	if (rc == 0)
		c->a->policy.cors.max_age_s = (int64_t)n;
	return rc;
}

static int h_canary_weight(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, UINT32_MAX, &n, c->err, c->errlen);
	if (rc == 0) {
		c->a->canary_rule.weight = (uint32_t)n;
		c->weight_key = c->key;
	}
	return rc;
}

static int h_app_root(struct pctx *c, const char *v)
{
	int rc = route_validate_app_root(v, c->err, c->errlen);
	return rc ? rc : set_str(&c->a->policy.app_root, v);
}

static int h_perm(struct pctx *c, const char *v)
{
	int rc = route_validate_url(v, c->err, c->errlen);
	return rc ? rc : set_str(&c->perm_url, v);
}

static int h_perm_code(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, 999, &n, c->err, c->errlen);
	if (rc)
		return rc;
	if (n != 301 && n != 302 && n != 307 && n != 308)
		return fail(c->err, c->errlen, "%s is not 301, 302, 307 or 308", v);
	c->perm_code = (int64_t)n;
	return 0;
}

static int h_temp(struct pctx *c, const char *v)
{
	int rc = route_validate_url(v, c->err, c->errlen);
	return rc ? rc : set_str(&c->temp_url, v);
}

/* ingress-nginx takes 300..307 (else 302); 304, 305 and 306 are no
 * redirects, so weir refuses them with the codes outside that range. */
static int h_temp_code(struct pctx *c, const char *v)
{
	uint64_t n = 0;
	int rc = annotations_parse_uint(v, 999, &n, c->err, c->errlen);
	if (rc)
		return rc;
	if (n < 300 || n > 307 || !route_validate_redirect_code((unsigned)n))
		return fail(c->err, c->errlen, "%s is not 300, 301, 302, 303 or 307", v);
	c->temp_code = (int64_t)n;
	return 0;
}

struct errors_ctx {
	struct route_policy *policy;
	int min;
	char *err;
	size_t errlen;
};

static int error_code_each(void *ctx, const char *item)
{
	struct errors_ctx *e = ctx;
	uint64_t n = 0;
	if (annotations_parse_uint(item, 999, &n, NULL, 0) != 0 || n < (uint64_t)e->min ||
	    n > ROUTE_CUSTOM_ERROR_MAX)
		return fail(e->err, e->errlen, "\"%s\" is not a status code %d..%d", item, e->min,
		            ROUTE_CUSTOM_ERROR_MAX);
	route_custom_error_set(e->policy, (int)n);
	return 0;
}

int annotations_parse_custom_errors(const char *s, int min, struct route_policy *policy, char *err,
                                    size_t errlen)
{
	struct route_policy scratch;
	memset(&scratch, 0, sizeof(scratch));
	struct errors_ctx e = {.policy = &scratch, .min = min, .err = err, .errlen = errlen};
	int rc = split_list(s, error_code_each, &e);
	if (rc)
		return rc;
	memcpy(policy->custom_errors, scratch.custom_errors, sizeof(policy->custom_errors));
	return 0;
}

/* The annotation takes 400..599, as ingress-nginx's validation does. */
static int h_custom_errors(struct pctx *c, const char *v)
{
	int rc = annotations_parse_custom_errors(v, 400, &c->a->policy, c->err, c->errlen);
	if (rc == 0)
		c->a->custom_errors_set = route_custom_errors_any(&c->a->policy);
	return rc;
}

/* weir speaks HTTP/1.1 to every upstream; 1.0 is refused rather than
 * silently sent as 1.1. */
static int h_http_version(struct pctx *c, const char *v)
{
	if (strcmp(v, "1.1") == 0)
		return 0;
	if (strcmp(v, "1.0") == 0)
		return fail(c->err, c->errlen,
		            "\"1.0\" is not supported: weir speaks HTTP/1.1 to upstreams");
	return fail(c->err, c->errlen, "\"%s\" is not \"1.0\" or \"1.1\"", v);
}

BOOL_HANDLER(h_from_to_www, from_to_www)

static int h_port_in_redirects(struct pctx *c, const char *v)
{
	int rc = annotations_parse_bool(v, &c->a->policy.port_in_redirects, c->err, c->errlen);
	if (rc == 0)
		c->a->port_in_redirects_set = true;
	return rc;
}

static bool is_dns_label(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > 63 || v[0] == '-' || v[n - 1] == '-')
		return false;
	for (const char *p = v; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
			return false;
	return true;
}

static int h_default_backend(struct pctx *c, const char *v)
{
	if (!is_dns_label(v))
		return fail(c->err, c->errlen, "\"%s\" is not a Service name", v);
	return set_str(&c->a->default_backend, v);
}

static int h_alias(struct pctx *c, const char *v)
{
	char **list;
	size_t n;
	int rc = parse_strlist(v, true, false, &list, &n, c->err, c->errlen);
	if (rc)
		return rc;
	for (size_t i = 0; i < c->a->nserver_alias; i++)
		free(c->a->server_alias[i]);
	free(c->a->server_alias);
	c->a->server_alias = list;
	c->a->nserver_alias = n;
	return 0;
}

static int h_req_headers(struct pctx *c, const char *v)
{
	struct route_policy *p = &c->a->policy;
	return annotations_parse_headers(v, &p->request_headers, &p->nrequest_headers, c->err,
	                                 c->errlen);
}

static int h_resp_headers(struct pctx *c, const char *v)
{
	struct route_policy *p = &c->a->policy;
	return annotations_parse_headers(v, &p->response_headers, &p->nresponse_headers, c->err,
	                                 c->errlen);
}

static int h_hide(struct pctx *c, const char *v)
{
	struct route_policy *p = &c->a->policy;
	return parse_strlist(v, false, true, &p->hide_headers, &p->nhide_headers, c->err,
	                     c->errlen);
}

/* auth-type: ingress-nginx knows basic and digest; weir checks basic only,
 * so digest is refused rather than served without authentication. */
static int h_auth_type(struct pctx *c, const char *v)
{
	int rc = set_str(&c->a->auth_type_key, c->key);
	if (rc)
		return rc;
	if (strcmp(v, "digest") == 0)
		return fail(c->err, c->errlen,
		            "digest authentication is not implemented by weir (only basic)");
	if (strcmp(v, "basic") != 0)
		return fail(c->err, c->errlen, "\"%s\" is not basic or digest", v);
	c->a->policy.auth.type = ROUTE_AUTH_BASIC;
	return 0;
}

/* Secret and ConfigMap names are DNS subdomains; a namespace is a DNS
 * label. */
static bool is_dns_name(const char *v, size_t n, bool label)
{
	if (n == 0 || n > (label ? 63u : 253u) || !isalnum((unsigned char)v[0]) ||
	    !isalnum((unsigned char)v[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)v[i]) || isdigit((unsigned char)v[i]) || v[i] == '-' ||
		      (!label && v[i] == '.')))
			return false;
	return true;
}

/* A Secret or ConfigMap reference: "name" (unless need_ns) or
 * "namespace/name". */
static bool ref_ok(const char *v, bool need_ns)
{
	const char *slash = strchr(v, '/');
	if (!slash)
		return !need_ns && is_dns_name(v, strlen(v), false);
	return is_dns_name(v, (size_t)(slash - v), true) &&
	       is_dns_name(slash + 1, strlen(slash + 1), false);
}

static int h_auth_secret(struct pctx *c, const char *v)
{
	int rc = set_str(&c->a->auth_secret_key, c->key);
	if (rc)
		return rc;
	if (!ref_ok(v, false))
		return fail(c->err, c->errlen, "\"%s\" is not a Secret name or namespace/name", v);
	return set_str(&c->a->auth_secret, v);
}

static int h_auth_secret_type(struct pctx *c, const char *v)
{
	c->auth_other_key = c->key;
	if (strcmp(v, "auth-file") == 0)
		c->a->auth_map = false;
	else if (strcmp(v, "auth-map") == 0)
		c->a->auth_map = true;
	else
		return fail(c->err, c->errlen, "\"%s\" is not auth-file or auth-map", v);
	return 0;
}

/* The realm is quoted into WWW-Authenticate: the characters ingress-nginx
 * accepts (letters, digits, space and "-._~/:") cannot end the quoted
 * string. */
static int h_auth_realm(struct pctx *c, const char *v)
{
	c->auth_other_key = c->key;
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-._~/: ", *p))
			return fail(
			    c->err, c->errlen,
			    "\"%s\" holds a character other than letters, digits, space and "
			    "-._~/:",
			    v);
	return set_str(&c->a->policy.auth.realm, v);
}

static int h_tls_secret(struct pctx *c, const char *v)
{
	int rc = set_str(&c->a->tls_secret_key, c->key);
	if (rc)
		return rc;
	if (!ref_ok(v, false))
		return fail(c->err, c->errlen, "\"%s\" is not a Secret name or namespace/name", v);
	return set_str(&c->a->tls_secret, v);
}

static int h_tls_verify(struct pctx *c, const char *v)
{
	static const char *const names[] = {"off", "on", "optional", "optional_no_ca"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(v, names[i]) == 0) {
			c->a->tls_auth.verify = (enum route_verify_client)i;
			if (i != ROUTE_VERIFY_OFF) /* off alone asks for nothing */
				c->tls_other_key = c->key;
			return 0;
		}
	}
	c->tls_other_key = c->key;
	return fail(c->err, c->errlen, "\"%s\" is not on, off, optional or optional_no_ca", v);
}

/* ingress-nginx reads 0 as its default, 1. */
static int h_tls_depth(struct pctx *c, const char *v)
{
	uint64_t n;
	c->tls_other_key = c->key;
	int rc = annotations_parse_uint(v, ROUTE_VERIFY_DEPTH_MAX, &n, c->err, c->errlen);
	if (rc == 0)
		c->a->tls_auth.verify_depth = n ? (uint32_t)n : 1;
	return rc;
}

/* nginx's error_page also takes a local path or a named location (an
 * internal redirect); weir answers with a 302, which only an absolute URL
 * makes the same for the client. */
static int h_tls_error_page(struct pctx *c, const char *v)
{
	c->tls_other_key = c->key;
	int rc = route_validate_url(v, c->err, c->errlen);
	if (rc)
		return rc;
	if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
		return fail(c->err, c->errlen,
		            "\"%s\" is not an absolute http:// or https:// URL (weir redirects "
		            "to it; nginx's internal redirects are not supported)",
		            v);
	return set_str(&c->a->tls_auth.error_page, v);
}

static int h_tls_pass_cert(struct pctx *c, const char *v)
{
	c->tls_other_key = c->key;
	return annotations_parse_bool(v, &c->a->tls_auth.pass_certificate, c->err, c->errlen);
}

/* As ingress-nginx: "CN=" then a regex; nginx matches the whole value
 * against the subject DN. */
static int h_tls_match_cn(struct pctx *c, const char *v)
{
	c->tls_other_key = c->key;
	int rc = route_validate_header_value(v, c->err, c->errlen);
	if (rc)
		return rc;
	if (strncmp(v, "CN=", 3) != 0)
		return fail(c->err, c->errlen, "\"%s\" does not start with CN=", v);
	pcre2_code *re = route_match_cn_compile(v, c->err, c->errlen);
	if (!re)
		return WEIR_EINVAL;
	pcre2_code_free(re);
	return set_str(&c->a->tls_auth.match_cn, v);
}

/* proxy-ssl-*: TLS to HTTPS backends. ingress-nginx reads on/off; weir
 * refuses any other word rather than guess (a typo in proxy-ssl-verify
 * must not silently mean off). */
static int on_off(struct pctx *c, const char *v, bool *out)
{
	if (strcmp(v, "on") == 0)
		*out = true;
	else if (strcmp(v, "off") == 0)
		*out = false;
	else
		return fail(c->err, c->errlen, "\"%s\" is not on or off", v);
	return 0;
}

static int h_pssl_verify(struct pctx *c, const char *v)
{
	int rc = set_str(&c->a->proxy_ssl_verify_key, c->key);
	return rc ? rc : on_off(c, v, &c->a->proxy_ssl.verify);
}

static int h_pssl_server_name(struct pctx *c, const char *v)
{
	return on_off(c, v, &c->a->policy.backend_tls.server_name);
}

static int h_pssl_name(struct pctx *c, const char *v)
{
	if (route_validate_backend_tls_name(v, c->err, c->errlen) != 0)
		return WEIR_EINVAL;
	return set_str(&c->a->policy.backend_tls.name, v);
}

/* ingress-nginx: 0 means the default, 1. */
static int h_pssl_depth(struct pctx *c, const char *v)
{
	uint64_t d;
	int rc = annotations_parse_uint(v, 100, &d, c->err, c->errlen);
	if (rc == 0)
		c->a->proxy_ssl.verify_depth = d ? (uint32_t)d : 1;
	return rc;
}

static int h_pssl_protocols(struct pctx *c, const char *v)
{
	struct route_backend_tls_profile probe = {.protocols = (char *)v, .verify_depth = 1};
	char field[32];
	if (route_validate_backend_tls_profile(&probe, field, sizeof(field), c->err, c->errlen))
		return WEIR_EINVAL;
	return set_str(&c->a->proxy_ssl.protocols, v);
}

static int h_pssl_ciphers(struct pctx *c, const char *v)
{
	struct route_backend_tls_profile probe = {.ciphers = (char *)v, .verify_depth = 1};
	char field[32];
	if (route_validate_backend_tls_profile(&probe, field, sizeof(field), c->err, c->errlen))
		return WEIR_EINVAL;
	return set_str(&c->a->proxy_ssl.ciphers, v);
}

static int h_ssl_ciphers(struct pctx *c, const char *v)
{
	if (route_validate_server_ciphers(v, c->err, c->errlen))
		return WEIR_EINVAL;
	int rc = set_str(&c->a->ssl_ciphers_key, c->key);
	return rc ? rc : set_str(&c->a->ssl_ciphers, v);
}

static int h_pssl_secret(struct pctx *c, const char *v)
{
	int rc = set_str(&c->a->proxy_ssl_secret_key, c->key);
	if (rc)
		return rc;
	if (!ref_ok(v, true))
		return fail(c->err, c->errlen, "\"%s\" is not namespace/name of a Secret", v);
	return set_str(&c->a->proxy_ssl_secret, v);
}

/* ---- forward authentication (auth-url and friends) */

/* auth-url: an http(s) URL whose only variable may be $host (compile puts
 * the route's host name in its place, annotations_auth_url_expand). A URL
 * with a query but no path ("http://auth?code=200") gets the path "/". */
static int h_auth_url(struct pctx *c, const char *v)
{
	struct url u;
	char *norm = NULL, *probe = annotations_auth_url_expand(v, "host.example");
	if (!probe)
		return WEIR_ENOMEM;
	const char *scheme_end = strstr(v, "://");
	size_t alen = scheme_end ? strcspn(scheme_end + 3, "/?") : 0;
	if (scheme_end && scheme_end[3 + alen] == '?') {
		size_t head = (size_t)(scheme_end + 3 + alen - v);
		norm = malloc(strlen(v) + 2);
		if (!norm) {
			free(probe);
			return WEIR_ENOMEM;
		}
		memcpy(norm, v, head);
		norm[head] = '/';
		strcpy(norm + head + 1, v + head);
		free(probe);
		probe = annotations_auth_url_expand(norm, "host.example");
		if (!probe) {
			free(norm);
			return WEIR_ENOMEM;
		}
	}
	int ok = url_parse(probe, &u) == 0;
	free(probe);
	if (!ok) {
		free(norm);
		return fail(c->err, c->errlen,
		            "\"%s\" is not an http(s) URL without user info, fragment or "
		            "nginx variables other than $host",
		            v);
	}
	int rc = set_str(&c->a->policy.ext_auth.url, norm ? norm : v);
	free(norm);
	return rc;
}

char *annotations_auth_url_expand(const char *url, const char *host)
{
	size_t hl = strlen(host), n = 0;
	for (const char *p = url; *p; p++)
		n += strncmp(p, "$host", 5) == 0 || strncmp(p, "${host}", 7) == 0 ? hl : 1;
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (const char *p = url; *p;) {
		/* "$hostname" is another variable: left as is (url_parse refuses '$') */
		if (strncmp(p, "${host}", 7) == 0) {
			memcpy(o, host, hl);
			o += hl;
			p += 7;
		} else if (strncmp(p, "$host", 5) == 0 &&
		           !((p[5] >= 'a' && p[5] <= 'z') || (p[5] >= 'A' && p[5] <= 'Z') ||
		             (p[5] >= '0' && p[5] <= '9') || p[5] == '_')) {
			memcpy(o, host, hl);
			o += hl;
			p += 5;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

/* The ConfigMap whose data are the headers of the auth request; compile
 * reads it (and refuses another namespace than the Ingress's). */
static int h_auth_proxy_headers(struct pctx *c, const char *v)
{
	int rc = set_str(&c->a->auth_headers_key, c->key);
	if (rc)
		return rc;
	if (!ref_ok(v, false))
		return fail(c->err, c->errlen, "\"%s\" is not a ConfigMap name or namespace/name",
		            v);
	return set_str(&c->a->auth_headers, v);
}

/* custom-headers: a ConfigMap whose data are headers added to every
 * response of the Ingress's routes. */
static int h_custom_headers(struct pctx *c, const char *v)
{
	int rc = set_str(&c->a->custom_headers_key, c->key);
	if (rc)
		return rc;
	if (!ref_ok(v, false))
		return fail(c->err, c->errlen, "\"%s\" is not a ConfigMap name or namespace/name",
		            v);
	return set_str(&c->a->custom_headers, v);
}

/* fastcgi-index: the file name appended to a path ending in '/'. */
static int h_fastcgi_index(struct pctx *c, const char *v)
{
	c->fastcgi_keys[0] = c->key;
	int rc = route_validate_fastcgi_index(v, c->err, c->errlen);
	return rc ? rc : set_str(&c->a->policy.fastcgi.index, v);
}

/* fastcgi-params-configmap: a ConfigMap whose data are FastCGI params. */
static int h_fastcgi_params(struct pctx *c, const char *v)
{
	c->fastcgi_keys[1] = c->key;
	int rc = set_str(&c->a->fastcgi_params_key, c->key);
	if (rc)
		return rc;
	if (!ref_ok(v, false))
		return fail(c->err, c->errlen, "\"%s\" is not a ConfigMap name or namespace/name",
		            v);
	return set_str(&c->a->fastcgi_params, v);
}

static int h_auth_method(struct pctx *c, const char *v)
{
	static const char *const ok[] = {"GET",    "HEAD",    "POST",  "PUT",    "PATCH",
	                                 "DELETE", "OPTIONS", "TRACE", "CONNECT"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(v, ok[i]) == 0)
			return set_str(&c->a->policy.ext_auth.method, v);
	return fail(c->err, c->errlen, "\"%s\" is not an HTTP method", v);
}

static int h_auth_signin(struct pctx *c, const char *v)
{
	if (url_check_signin(v) != 0)
		return fail(c->err, c->errlen,
		            "\"%s\" is not an http(s) URL (variables: $scheme, $host, $http_host, "
		            "$best_http_host, $pass_access_scheme, $request_uri, "
		            "$escaped_request_uri)",
		            v);
	return set_str(&c->a->policy.ext_auth.signin, v);
}

static int h_auth_rd_param(struct pctx *c, const char *v)
{
	return h_token(c, v, &c->a->policy.ext_auth.signin_redirect_param);
}

static int h_auth_redirect(struct pctx *c, const char *v)
{
	int rc = route_validate_header_value(v, c->err, c->errlen);
	return rc ? rc : set_str(&c->a->policy.ext_auth.request_redirect, v);
}

static int h_auth_resp_headers(struct pctx *c, const char *v)
{
	struct route_ext_auth *a = &c->a->policy.ext_auth;
	return parse_strlist(v, false, true, &a->response_headers, &a->nresponse_headers, c->err,
	                     c->errlen);
}

BOOL_HANDLER(h_auth_cookie, policy.ext_auth.always_set_cookie)

static int h_auth_cache_key(struct pctx *c, const char *v)
{
	if (url_check_cache_key(v) != 0)
		return fail(c->err, c->errlen,
		            "\"%s\" is not a cache key (literal text and $remote_user, $host, "
		            "$http_host, $request_uri, $uri, $remote_addr, $scheme, $http_NAME, "
		            "$cookie_NAME, $arg_NAME)",
		            v);
	return set_str(&c->a->policy.ext_auth.cache_key, v);
}

static int h_auth_cache_duration(struct pctx *c, const char *v)
{
	uint32_t ms;
	if (url_cache_valid_ms(v, 200, &ms) != 0)
		return fail(c->err, c->errlen,
		            "\"%s\" is not a list of \"[code ...] time\" (e.g. \"200 202 401 5m\")",
		            v);
	return set_str(&c->a->policy.ext_auth.cache_duration, v);
}

/* mirror-target: an http(s) URL; the proxy fills in $request_uri, $uri,
 * $args and $host per request. "" leaves mirroring off (as ingress-nginx). */
static int h_mirror_target(struct pctx *c, const char *v)
{
	if (!*v)
		return 0;
	if (url_check_mirror(v) != 0)
		return fail(c->err, c->errlen,
		            "\"%s\" is not an http(s) URL without user info or fragment, with no "
		            "nginx variables but $request_uri, $uri, $args, $host (and none of "
		            "them in its host)",
		            v);
	return set_str(&c->a->policy.mirror.url, v);
}

static int h_mirror_host(struct pctx *c, const char *v)
{
	c->mirror_other_key = c->key;
	if (!*v)
		return 0;
	if (strchr(v, '$'))
		return fail(c->err, c->errlen, "\"%s\": nginx variables are not expanded here", v);
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return fail(c->err, c->errlen, "\"%s\" is not a host", v);
	return set_str(&c->a->policy.mirror.host, v);
}

/* proxy-request-buffering, proxy-buffering: "on" or "off" (on_off). */
static int h_request_buffering(struct pctx *c, const char *v)
{
	return on_off(c, v, &c->a->policy.request_buffering);
}

static int h_response_buffering(struct pctx *c, const char *v)
{
	return on_off(c, v, &c->a->policy.response_buffering);
}

static int h_mirror_body(struct pctx *c, const char *v)
{
	c->mirror_other_key = c->key;
	if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
		return fail(c->err, c->errlen, "\"%s\" is neither \"on\" nor \"off\"", v);
	c->a->policy.mirror.no_request_body = strcmp(v, "off") == 0;
	return 0;
}

static const struct {
	const char *name;
	handler_cb fn;
} handlers[] = {
    {"affinity", h_affinity},
    {"affinity-mode", h_affinity_mode},
    {"allowlist-source-range", h_allow},
    {"app-root", h_app_root},
    {"auth-always-set-cookie", h_auth_cookie},
    {"auth-cache-duration", h_auth_cache_duration},
    {"auth-cache-key", h_auth_cache_key},
    {"auth-method", h_auth_method},
    {"auth-proxy-set-headers", h_auth_proxy_headers},
    {"auth-realm", h_auth_realm},
    {"auth-request-redirect", h_auth_redirect},
    {"auth-response-headers", h_auth_resp_headers},
    {"auth-secret", h_auth_secret},
    {"auth-secret-type", h_auth_secret_type},
    {"auth-signin", h_auth_signin},
    {"auth-signin-redirect-param", h_auth_rd_param},
    {"auth-tls-error-page", h_tls_error_page},
    {"auth-tls-match-cn", h_tls_match_cn},
    {"auth-tls-pass-certificate-to-upstream", h_tls_pass_cert},
    {"auth-tls-secret", h_tls_secret},
    {"auth-tls-verify-client", h_tls_verify},
    {"auth-tls-verify-depth", h_tls_depth},
    {"auth-type", h_auth_type},
    {"affinity-canary-behavior", h_canary_affinity},
    {"auth-url", h_auth_url},
    {"backend-protocol", h_protocol},
    {"canary", h_canary},
    {"canary-by-cookie", h_canary_cookie},
    {"canary-by-header", h_canary_header},
    {"canary-by-header-pattern", h_canary_pattern},
    {"canary-by-header-value", h_canary_value},
    {"canary-weight", h_canary_weight},
    {"canary-weight-total", h_canary_weight_total},
    {"cors-allow-credentials", h_cors_cred},
    {"cors-allow-headers", h_cors_headers},
    {"cors-allow-methods", h_cors_methods},
    {"cors-allow-origin", h_cors_origin},
    {"cors-expose-headers", h_cors_expose},
    {"cors-max-age", h_cors_max_age},
    {"custom-http-errors", h_custom_errors},
    {"custom-headers", h_custom_headers},
    {"fastcgi-index", h_fastcgi_index},
    {"fastcgi-params-configmap", h_fastcgi_params},
    {"default-backend", h_default_backend},
    {"denylist-source-range", h_deny},
    {"drain-window", h_drain},
    {"enable-access-log", h_access_log},
    {"enable-cors", h_cors},
    {"enable-global-auth", h_global_auth},
    {"force-ssl-redirect", h_force_ssl},
    {"from-to-www-redirect", h_from_to_www},
    {"hide-headers", h_hide},
    {"limit-connections", h_limit_conn},
    {"limit-allowlist", h_limit_allow},
    {"limit-burst-multiplier", h_limit_burst},
    {"limit-rpm", h_limit_rpm},
    {"limit-rps", h_limit_rps},
    {"limit-whitelist", h_limit_allow}, /* alias of limit-allowlist */
    {"load-balance", h_balance},
    {"mirror-host", h_mirror_host},
    {"mirror-request-body", h_mirror_body},
    {"proxy-request-buffering", h_request_buffering},
    {"proxy-buffering", h_response_buffering},
    {"mirror-target", h_mirror_target},
    {"origin-rewrite", h_origin_rewrite},
    {"permanent-redirect", h_perm},
    {"permanent-redirect-code", h_perm_code},
    {"preserve-trailing-slash", h_trailing},
    {"proxy-body-size", h_body},
    {"proxy-buffer-size", h_head_max},
    {"proxy-connect-timeout", h_connect},
    {"proxy-http-version", h_http_version},
    {"proxy-cookie-domain", h_cookie_rw_domain},
    {"proxy-cookie-path", h_cookie_rw_path},
    {"proxy-next-upstream", h_next_upstream},
    {"proxy-next-upstream-timeout", h_next_timeout},
    {"proxy-next-upstream-tries", h_next_tries},
    {"proxy-read-timeout", h_read},
    {"proxy-redirect-from", h_redirect_from},
    {"proxy-redirect-to", h_redirect_to},
    {"proxy-send-timeout", h_send},
    {"proxy-ssl-ciphers", h_pssl_ciphers},
    {"proxy-ssl-name", h_pssl_name},
    {"proxy-ssl-protocols", h_pssl_protocols},
    {"proxy-ssl-secret", h_pssl_secret},
    {"proxy-ssl-server-name", h_pssl_server_name},
    {"proxy-ssl-verify", h_pssl_verify},
    {"proxy-ssl-verify-depth", h_pssl_depth},
    {"request-base", h_request_base},
    {"request-headers", h_req_headers},
    {"response-headers", h_resp_headers},
    {"rewrite-target", h_rewrite},
    {"server-alias", h_alias},
    {"service-upstream", h_service_upstream},
    {"session-cookie-change-on-failure", h_cookie_change},
    {"session-cookie-conditional-samesite-none", h_cookie_samesite_cond},
    {"session-cookie-domain", h_cookie_domain},
    {"session-cookie-expires", h_cookie_expires},
    {"session-cookie-max-age", h_cookie_max_age},
    {"session-cookie-name", h_cookie_name},
    {"session-cookie-path", h_cookie_path},
    {"session-cookie-samesite", h_samesite},
    {"session-cookie-secure", h_cookie_secure},
    {"satisfy", h_satisfy},
    {"ssl-ciphers", h_ssl_ciphers},
    {"ssl-passthrough", h_passthrough},
    {"ssl-redirect", h_ssl_redirect},
    {"temporal-redirect", h_temp},
    {"temporal-redirect-code", h_temp_code},
    {"upstream-hash-by", h_hash_by},
    {"upstream-hash-by-subset", h_hash_subset},
    {"upstream-hash-by-subset-size", h_hash_subset_size},
    {"upstream-vhost", h_vhost},
    {"use-port-in-redirects", h_port_in_redirects},
    {"use-regex", h_use_regex},
    {"websocket-idle-timeout", h_ws_idle},
    {"websocket-max-lifetime", h_ws_life},
    {"websocket-ping-interval", h_ws_ping},
    {"whitelist-source-range", h_allow}, /* alias of allowlist-source-range */
    {"x-forwarded-prefix", h_xfp},
};

static const char *const snippets[] = {"configuration-snippet", "server-snippet", "auth-snippet",
                                       "stream-snippet", "modsecurity-snippet"};

/* Old names still read for a key: when the canonical key is present under
 * either prefix, the alias is not read. */
static const struct {
	const char *alias;
	const char *canonical;
} aliases[] = {
    {"whitelist-source-range", "allowlist-source-range"},
    {"limit-whitelist", "limit-allowlist"},
};

/* ingress-nginx keys that restrict who may reach a route or how it is
 * protected in transit, and that weir does not act on yet. Serving the route
 * without them would give it less protection than its author asked for, so
 * they drop the Ingress (fail closed). inert: the one value that asks for no
 * protection (the key's "off" setting) and so is harmless to ignore; NULL
 * when every value restricts. Keep the README's security table in step:
 * tests/golden/test_security_table.py checks each row against weir. */
static const struct {
	const char *name;
	const char *inert;
} unenforced[] = {
    /* clang-format off */
    {"enable-modsecurity", "false"},
    {"enable-owasp-core-rules", "false"},
    {"modsecurity-transaction-id", NULL},
    {"secure-verify-ca-secret", NULL},
    /* clang-format on */
};

/* ingress-nginx keys that tune a part of nginx weir has no counterpart of:
 * ignored like unknown keys, with the reason. */
static const struct {
	const char *name;
	const char *why;
} inapplicable[] = {
    /* clang-format off */
    {"client-body-buffer-size", "nginx buffer sizing; weir holds a buffered request body in memory (proxy-request-buffering, up to 1 MiB)"},
    {"enable-rewrite-log", "nginx's rewrite debug log; weir has no nginx rewrite module"},
    {"http2-push-preload", "HTTP/2 server push (browsers have dropped it)"},
    {"proxy-buffers-number", "nginx buffer sizing; weir holds a buffered response in memory (proxy-buffering, up to 1 MiB)"},
    {"proxy-busy-buffers-size", "nginx buffer sizing; weir holds a buffered response in memory (proxy-buffering, up to 1 MiB)"},
    {"proxy-max-temp-file-size", "nginx spools responses to disk; weir streams them"},
    /* clang-format on */
};

/* The snippet_kind a snippet key is translated as, or -1 (refused whole:
 * stream-snippet, modsecurity-snippet). */
static int snippet_kind_of(const char *suffix)
{
	if (strcmp(suffix, "configuration-snippet") == 0)
		return SNIPPET_CONFIGURATION;
	if (strcmp(suffix, "server-snippet") == 0)
		return SNIPPET_SERVER;
	if (strcmp(suffix, "auth-snippet") == 0)
		return SNIPPET_AUTH;
	return -1;
}

static const char *inapplicable_why(const char *suffix)
{
	for (size_t i = 0; i < sizeof(inapplicable) / sizeof(inapplicable[0]); i++)
		if (strcmp(suffix, inapplicable[i].name) == 0)
			return inapplicable[i].why;
	return NULL;
}

bool annotations_is_unenforced_security(const char *suffix, const char *value)
{
	for (size_t i = 0; i < sizeof(unenforced) / sizeof(unenforced[0]); i++)
		if (strcmp(suffix, unenforced[i].name) == 0)
			return !unenforced[i].inert || strcmp(value, unenforced[i].inert) != 0;
	return false;
}

enum annotation_support annotations_key_support(const char *suffix, const char **detail)
{
	const char *d = NULL;
	enum annotation_support st = ANNOTATION_IGNORED;
	bool handled = false;
	/* The order annotations_parse checks them in. */
	switch (snippet_kind_of(suffix)) {
	case SNIPPET_CONFIGURATION:
		st = ANNOTATION_ACTS;
		d = "a subset: proxy_set_header, more_set_input_headers, add_header, "
		    "more_set_headers, more_clear_headers, proxy_hide_header, return, rewrite "
		    "(break, redirect, permanent); any other directive drops the Ingress";
		goto out;
	case SNIPPET_SERVER:
		st = ANNOTATION_ACTS;
		d = "a subset: add_header, more_set_headers, more_set_input_headers, "
		    "more_clear_headers, proxy_hide_header, for the Ingress's own routes; any "
		    "other directive drops the Ingress";
		goto out;
	case SNIPPET_AUTH:
		st = ANNOTATION_ACTS;
		d = "proxy_set_header only, with auth-url; any other directive drops the Ingress";
		goto out;
	default:
		break;
	}
	for (size_t s = 0; s < sizeof(snippets) / sizeof(snippets[0]); s++)
		if (strcmp(suffix, snippets[s]) == 0) {
			st = ANNOTATION_REFUSED;
			goto out;
		}
	for (size_t h = 0; h < sizeof(handlers) / sizeof(handlers[0]); h++)
		handled = handled || strcmp(suffix, handlers[h].name) == 0;
	if (handled) {
		st = ANNOTATION_ACTS;
		for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
			if (strcmp(suffix, aliases[i].alias) == 0) {
				st = ANNOTATION_TRANSLATED;
				d = aliases[i].canonical;
			}
		goto out;
	}
	for (size_t i = 0; i < sizeof(unenforced) / sizeof(unenforced[0]); i++)
		if (strcmp(suffix, unenforced[i].name) == 0) {
			st = ANNOTATION_FAIL_CLOSED;
			d = unenforced[i].inert;
		}
	if (st == ANNOTATION_IGNORED && (d = inapplicable_why(suffix)))
		st = ANNOTATION_INAPPLICABLE;
out:
	if (detail)
		*detail = d;
	return st;
}

const char *annotations_handled_key(size_t i)
{
	return i < sizeof(handlers) / sizeof(handlers[0]) ? handlers[i].name : NULL;
}

static int add_issue(struct annotation_issues *is, const char *key, const char *reason,
                     const char *message, bool fatal)
{
	struct annotation_issue *grown = realloc(is->items, (is->n + 1) * sizeof(*grown));
	if (!grown)
		return WEIR_ENOMEM;
	is->items = grown;
	struct annotation_issue *i = &is->items[is->n];
	i->key = strdup(key);
	i->reason = strdup(reason);
	i->message = strdup(message);
	i->fatal = fatal;
	is->n++;
	if (!i->key || !i->reason || !i->message)
		return WEIR_ENOMEM;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The part after a supported prefix, or NULL. */
static const char *suffix_of(const char *key, bool *weir)
{
	size_t wl = strlen(ANNOTATIONS_WEIR_PREFIX), nl = strlen(ANNOTATIONS_NGINX_PREFIX);
	if (strncmp(key, ANNOTATIONS_WEIR_PREFIX, wl) == 0) {
		*weir = true;
		return key + wl;
	}
	if (strncmp(key, ANNOTATIONS_NGINX_PREFIX, nl) == 0) {
		*weir = false;
		return key + nl;
	}
	return NULL;
}

/* True when suffix is an alias and its canonical key is set under either
 * prefix. */
static bool canonical_present(json_object *annotations, const char *suffix)
{
	char key[256];
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (strcmp(suffix, aliases[i].alias) != 0)
			continue;
		snprintf(key, sizeof(key), "%s%s", ANNOTATIONS_WEIR_PREFIX, aliases[i].canonical);
		if (json_object_object_get_ex(annotations, key, NULL))
			return true;
		snprintf(key, sizeof(key), "%s%s", ANNOTATIONS_NGINX_PREFIX, aliases[i].canonical);
		if (json_object_object_get_ex(annotations, key, NULL))
			return true;
	}
	return false;
}

/* True when the weir.dev/ form of suffix is set (it wins over the nginx
 * one). */
static bool weir_key_present(json_object *annotations, const char *suffix)
{
	char wkey[256];
	snprintf(wkey, sizeof(wkey), "%s%s", ANNOTATIONS_WEIR_PREFIX, suffix);
	return json_object_object_get_ex(annotations, wkey, NULL);
}

/* Fold the translated snippets into a->policy (rules in README "Snippets"):
 * - server-snippet and configuration-snippet: add_header of the
 *   configuration-snippet replaces the server-snippet's (nginx inherits a
 *   server block's add_header only into a location that has none); both
 *   setting request headers, response headers or hiding headers is refused
 *   (headers-more's and proxy_hide_header's inheritance is not translated).
 * - with the annotations: request-headers / response-headers first, a
 *   snippet header of the same name replaces the annotation's; hide-headers
 *   and snippet hides are joined; a snippet "return" together with
 *   permanent-redirect, temporal-redirect or app-root is refused.
 * - auth-snippet headers go to ext_auth.proxy_set_headers (compile adds
 *   auth-proxy-set-headers, the snippet winning on a name); without
 *   auth-url they do nothing (a warning). */
static int merge_snippets(struct annotations *a, struct snippet_policy *sp,
                          struct annotation_issues *issues)
{
	struct snippet_policy *cs = &sp[SNIPPET_CONFIGURATION], *ss = &sp[SNIPPET_SERVER];
	struct snippet_policy *as = &sp[SNIPPET_AUTH];
	struct route_policy *p = &a->policy;
	const char *both = NULL;
	int rc;
	if (cs->nrequest_headers && ss->nrequest_headers)
		both = "set request headers (more_set_input_headers)";
	else if (cs->nresponse_headers && ss->nresponse_headers)
		both = "set response headers (more_set_headers)";
	else if (cs->nhide_headers && ss->nhide_headers)
		both = "hide headers";
	if (both) {
		char msg[256];
		snprintf(msg, sizeof(msg),
		         "server-snippet and configuration-snippet both %s; how nginx inherits one "
		         "into the other is not translated; this Ingress is skipped",
		         both);
		return add_issue(issues, a->snippet_key[SNIPPET_SERVER], "SnippetNotTranslated",
		                 msg, true);
	}
	if (cs->nrewrites && (cs->redirect_code || cs->return_code))
		return add_issue(issues, a->snippet_key[SNIPPET_CONFIGURATION],
		                 "SnippetNotTranslated",
		                 "directives \"rewrite\" and \"return\" in one snippet depend on "
		                 "their order, which is not translated; this Ingress is skipped",
		                 true);
	if (cs->nrewrites) {
		p->rewrites = cs->rewrites;
		p->nrewrites = cs->nrewrites;
		cs->rewrites = NULL;
		cs->nrewrites = 0;
	}
	if (cs->redirect_code || cs->return_code) {
		if (p->redirect_code || p->app_root)
			return add_issue(
			    issues, a->snippet_key[SNIPPET_CONFIGURATION], "SnippetNotTranslated",
			    "directive \"return\" together with permanent-redirect, "
			    "temporal-redirect or app-root is not translated; this Ingress "
			    "is skipped",
			    true);
		p->redirect_code = cs->redirect_code;
		p->redirect_url = cs->redirect_url;
		cs->redirect_url = NULL;
		p->return_code = cs->return_code;
		p->return_body = cs->return_body;
		cs->return_body = NULL;
	}
	for (int k = 0; k < 2; k++) {
		struct snippet_policy *s = k ? cs : ss;
		for (size_t i = 0; i < s->nrequest_headers; i++)
			if ((rc = snippet_headers_set(&p->request_headers, &p->nrequest_headers,
			                              s->request_headers[i].name,
			                              s->request_headers[i].value,
			                              s->request_headers[i].expand)))
				return rc;
		for (size_t i = 0; i < s->nresponse_headers; i++)
			if ((rc = snippet_headers_set(&p->response_headers, &p->nresponse_headers,
			                              s->response_headers[i].name,
			                              s->response_headers[i].value,
			                              s->response_headers[i].expand)))
				return rc;
		for (size_t i = 0; i < s->nhide_headers; i++)
			if ((rc = snippet_names_add(&p->hide_headers, &p->nhide_headers,
			                            s->hide_headers[i])))
				return rc;
	}
	struct snippet_policy *add = cs->nadd_headers ? cs : ss;
	p->add_headers = add->add_headers;
	p->nadd_headers = add->nadd_headers;
	add->add_headers = NULL;
	add->nadd_headers = 0;
	if (as->nauth_headers) {
		if (!p->ext_auth.url)
			return add_issue(issues, a->snippet_key[SNIPPET_AUTH], "UnknownAnnotation",
			                 "has no effect without auth-url (ignored)", false);
		p->ext_auth.proxy_set_headers = as->auth_headers;
		p->ext_auth.nproxy_set_headers = as->nauth_headers;
		as->auth_headers = NULL;
		as->nauth_headers = 0;
	}
	return 0;
}

int annotations_parse(json_object *annotations, uint32_t drain_default_ms, struct annotations *out,
                      struct annotation_issues *issues)
{
	int rc = WEIR_ENOMEM;
	const char **keys = NULL;
	size_t nkeys = 0;
	char err[256], msg[512];
	struct pctx c = {
	    .a = out, .perm_code = -1, .temp_code = -1, .err = err, .errlen = sizeof(err)};
	struct snippet_policy snip[3];
	memset(snip, 0, sizeof(snip));

	memset(out, 0, sizeof(*out));
	route_policy_init(&out->policy);
	out->policy.request_buffering = true; /* ingress-nginx's default */
	if (!out->policy.cookie.name || !out->policy.cors.allow_origin)
		return WEIR_ENOMEM;
	out->policy.drain_window_ms = drain_default_ms;
	out->ssl_redirect = true;
	out->backend_tls_profile = -1;
	out->global_auth = true;
	out->canary_rule.backend = -1;
	out->canary_rule.weight_total = 100;
	route_client_auth_init(&out->tls_auth);
	out->proxy_ssl.verify_depth = 1;

	if (annotations && json_object_is_type(annotations, json_type_object)) {
		keys = calloc((size_t)json_object_object_length(annotations) + 1, sizeof(*keys));
		if (!keys)
			goto out;
		json_object_object_foreach(annotations, k, v)
		{
			(void)v;
			keys[nkeys++] = k;
		}
		qsort(keys, nkeys, sizeof(*keys), cmp_str);
	}
	for (size_t i = 0; i < nkeys; i++) {
		bool weir;
		const char *suffix = suffix_of(keys[i], &weir);
		if (!suffix)
			continue;
		json_object *jv = json_object_object_get(annotations, keys[i]);
		const char *v = json_object_get_string(jv);
		if (!v)
			v = "";
		bool snippet = false;
		for (size_t s = 0; s < sizeof(snippets) / sizeof(snippets[0]); s++)
			if (strcmp(suffix, snippets[s]) == 0)
				snippet = true;
		int kind = snippet_kind_of(suffix);
		if (kind >= 0) {
			if (!weir && weir_key_present(annotations, suffix))
				continue; /* weir.dev/ wins over the same nginx key */
			size_t vlen = jv ? (size_t)json_object_get_string_len(jv) : 0;
			char serr[512];
			serr[0] = '\0';
			int sr = snippet_translate(v, vlen, (enum snippet_kind)kind, &snip[kind],
			                           serr, sizeof(serr));
			if (sr == WEIR_ENOMEM)
				goto out;
			if (sr) {
				/* nothing of a refused snippet is kept */
				snippet_policy_cleanup(&snip[kind]);
				snprintf(msg, sizeof(msg), "%s; this Ingress is skipped", serr);
				if (add_issue(issues, keys[i], "SnippetNotTranslated", msg, true))
					goto out;
				continue;
			}
			free(out->snippet_key[kind]);
			if (!(out->snippet_key[kind] = strdup(keys[i])))
				goto out;
			continue;
		}
		if (snippet) {
			if (add_issue(issues, keys[i], "SnippetRefused",
			              "snippet annotations are refused; this Ingress is skipped",
			              true))
				goto out;
			continue;
		}
		handler_cb fn = NULL;
		for (size_t h = 0; h < sizeof(handlers) / sizeof(handlers[0]); h++)
			if (strcmp(suffix, handlers[h].name) == 0)
				fn = handlers[h].fn;
		if (!fn && annotations_is_unenforced_security(suffix, v)) {
			if (add_issue(issues, keys[i], "SecurityNotEnforced",
			              "restricts access but weir does not enforce it yet; this "
			              "Ingress is not served (fail closed)",
			              true))
				goto out;
			continue;
		}
		if (!fn) {
			const char *why = inapplicable_why(suffix);
			if (why)
				snprintf(msg, sizeof(msg), "does not apply to weir (%s; ignored)",
				         why);
			if (add_issue(issues, keys[i], "UnknownAnnotation",
			              why    ? msg
			              : weir ? "unknown annotation (ignored)"
			                     : "not supported by weir (ignored)",
			              false))
				goto out;
			continue;
		}
		if (canonical_present(annotations, suffix))
			continue;
		if (!weir && weir_key_present(annotations, suffix))
			continue; /* weir.dev/ wins over the same nginx key */
		err[0] = '\0';
		c.key = keys[i];
		int hr = fn(&c, v);
		if (hr == WEIR_ENOMEM)
			goto out;
		if (hr) {
			snprintf(msg, sizeof(msg), "invalid value: %s", err);
			if (add_issue(issues, keys[i], "InvalidAnnotation", msg, true))
				goto out;
		}
	}
	if (!out->policy.ext_auth.url)
		route_ext_auth_cleanup(
		    &out->policy.ext_auth); /* the other auth-* keys need auth-url */
	if (out->policy.backend_protocol != ROUTE_PROTO_FCGI) {
		free(out->policy.fastcgi.index);
		out->policy.fastcgi.index = NULL;
		free(out->fastcgi_params);
		free(out->fastcgi_params_key);
		out->fastcgi_params = out->fastcgi_params_key = NULL;
		for (int k = 0; k < 2; k++)
			if (c.fastcgi_keys[k] &&
			    add_issue(issues, c.fastcgi_keys[k], "IgnoredAnnotation",
			              "has no effect without backend-protocol FCGI", false))
				goto out;
	}
	if (!out->policy.mirror.url && c.mirror_other_key) {
		free(out->policy.mirror.host);
		out->policy.mirror.host = NULL;
		out->policy.mirror.no_request_body = false;
		if (add_issue(issues, c.mirror_other_key, "IgnoredAnnotation",
		              "has no effect without mirror-target", false))
			goto out;
	}
	/* Fail closed: half an authentication setup drops the Ingress. */
	if (out->policy.auth.type == ROUTE_AUTH_BASIC && !out->auth_secret_key) {
		if (add_issue(issues, out->auth_type_key, "InvalidAnnotation",
		              "auth-type is set without auth-secret", true))
			goto out;
	} else if (!out->auth_type_key && (out->auth_secret_key || c.auth_other_key)) {
		if (add_issue(
		        issues, out->auth_secret_key ? out->auth_secret_key : c.auth_other_key,
		        "InvalidAnnotation",
		        "authentication is configured without auth-type (weir does not guess it)",
		        true))
			goto out;
	}
	/* auth-tls settings with no CA to check against: fail closed rather
	 * than serve without the client certificates they ask about. */
	if (!out->tls_secret_key && c.tls_other_key) {
		if (add_issue(issues, c.tls_other_key, "InvalidAnnotation",
		              "client certificate settings without auth-tls-secret", true))
			goto out;
	}
	/* proxy-redirect: "off" or "default" in -from turns it off (ingress-nginx
	 * writes nginx's "proxy_redirect default" then, whose rule only rewrites
	 * ingress-nginx's internal upstream name, which no backend sends); else a
	 * rewrite needs a -to other than "off". */
	if (c.redirect_from && strcmp(c.redirect_from, "off") != 0 &&
	    strcmp(c.redirect_from, "default") != 0 && c.redirect_to &&
	    strcmp(c.redirect_to, "off") != 0) {
		out->policy.proxy_redirect_from = c.redirect_from;
		out->policy.proxy_redirect_to = c.redirect_to;
		c.redirect_from = c.redirect_to = NULL;
	} else if (c.redirect_from && strcmp(c.redirect_from, "off") != 0 &&
	           strcmp(c.redirect_from, "default") != 0 &&
	           (!c.redirect_to_given || c.redirect_to)) {
		if (add_issue(issues, c.redirect_from_key, "IgnoredAnnotation",
		              "has no effect without a proxy-redirect-to other than \"off\" (as in "
		              "ingress-nginx)",
		              false))
			goto out;
	}
	/* canary-by-header-pattern is ignored when canary-by-header-value is set */
	if (out->canary_rule.by_header_value) {
		free(out->canary_rule.by_header_pattern);
		out->canary_rule.by_header_pattern = NULL;
	}
	if (out->canary_rule.weight > out->canary_rule.weight_total) {
		snprintf(msg, sizeof(msg), "invalid value: %u is above the weight total %u",
		         (unsigned)out->canary_rule.weight,
		         (unsigned)out->canary_rule.weight_total);
		if (add_issue(issues, c.weight_key ? c.weight_key : c.weight_total_key,
		              "InvalidAnnotation", msg, true))
			goto out;
	}
	if (c.perm_url) {
		out->policy.redirect_code = (uint16_t)(c.perm_code > 0 ? c.perm_code : 301);
		out->policy.redirect_url = c.perm_url;
		c.perm_url = NULL;
	} else if (c.temp_url) {
		out->policy.redirect_code = (uint16_t)(c.temp_code > 0 ? c.temp_code : 302);
		out->policy.redirect_url = c.temp_url;
		c.temp_url = NULL;
	}
	if ((rc = merge_snippets(out, snip, issues)) != 0)
		goto out;
	rc = 0;
out:
	for (int k = 0; k < 3; k++)
		snippet_policy_cleanup(&snip[k]);
	free(c.perm_url);
	free(c.temp_url);
	free(c.redirect_from);
	free(c.redirect_to);
	free(keys);
	return rc;
}

void annotations_cleanup(struct annotations *a)
{
	route_policy_cleanup(&a->policy);
	free(a->default_backend);
	for (size_t i = 0; i < a->nserver_alias; i++)
		free(a->server_alias[i]);
	free(a->server_alias);
	free(a->canary_rule.by_header);
	free(a->canary_rule.by_header_value);
	free(a->canary_rule.by_header_pattern);
	free(a->canary_rule.by_cookie);
	free(a->custom_headers);
	free(a->custom_headers_key);
	free(a->fastcgi_params);
	free(a->fastcgi_params_key);
	free(a->auth_type_key);
	free(a->auth_secret_key);
	free(a->auth_secret);
	free(a->tls_secret);
	free(a->tls_secret_key);
	free(a->ssl_ciphers);
	free(a->ssl_ciphers_key);
	route_client_auth_cleanup(&a->tls_auth);
	free(a->proxy_ssl_secret_key);
	free(a->proxy_ssl_secret);
	free(a->proxy_ssl_verify_key);
	free(a->auth_headers);
	free(a->auth_headers_key);
	for (int k = 0; k < 3; k++)
		free(a->snippet_key[k]);
	route_backend_tls_profile_cleanup(&a->proxy_ssl);
	memset(a, 0, sizeof(*a));
}

void annotation_issues_cleanup(struct annotation_issues *issues)
{
	for (size_t i = 0; i < issues->n; i++) {
		free(issues->items[i].key);
		free(issues->items[i].reason);
		free(issues->items[i].message);
	}
	free(issues->items);
	issues->items = NULL;
	issues->n = 0;
}
