/* controller/explain.c - the compiled table as readable, deterministic text:
 * hosts and their routes in match order, each route's backend and endpoints,
 * then only the policy fields that differ from the defaults. */
#include "explain.h"

#include <inttypes.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "auth_hash.h"
#include "error.h"
#include "route_validate.h"

static const char *match_name(enum route_match m)
{
	switch (m) {
	case ROUTE_MATCH_EXACT:
		return "exact";
	case ROUTE_MATCH_PREFIX:
		return "prefix";
	default:
		return "regex";
	}
}

static bool str_differs(const char *a, const char *b)
{
	if (!a || !b)
		return a != b;
	return strcmp(a, b) != 0;
}

static void put_str(FILE *out, const char *ind, const char *key, const char *v, const char *def)
{
	if (str_differs(v, def))
		fprintf(out, "%s%s: %s\n", ind, key, v ? v : "(none)");
}

static void put_u64(FILE *out, const char *ind, const char *key, int64_t v, int64_t def)
{
	if (v != def)
		fprintf(out, "%s%s: %" PRId64 "\n", ind, key, v);
}

static void put_bool(FILE *out, const char *ind, const char *key, bool v, bool def)
{
	if (v != def)
		fprintf(out, "%s%s: %s\n", ind, key, v ? "true" : "false");
}

static void put_cidrs(FILE *out, const char *ind, const char *key, const struct route_cidr *c,
                      size_t n)
{
	if (!n)
		return;
	fprintf(out, "%s%s: ", ind, key);
	for (size_t i = 0; i < n; i++) {
		char buf[64];
		route_cidr_format(&c[i], buf, sizeof(buf));
		fprintf(out, "%s%s", i ? ", " : "", buf);
	}
	fputc('\n', out);
}

static void put_endpoints(FILE *out, const char *ind, const struct route_table *t, int idx)
{
	if (idx < 0 || (size_t)idx >= t->nbackends)
		return;
	const struct route_backend *b = &t->backends[idx];
	if (b->external_name) {
		fprintf(out, "%sexternal name %s port %u (resolved by the proxy)\n", ind,
		        b->external_name, b->external_port);
		return;
	}
	if (!b->nendpoints) {
		fprintf(out, "%sendpoints: none (503)\n", ind);
		return;
	}
	for (size_t i = 0; i < b->nendpoints; i++) {
		const struct route_endpoint *e = &b->endpoints[i];
		bool v6 = strchr(e->address, ':') != NULL;
		fprintf(out, "%sendpoint %s%s%s:%u%s", ind, v6 ? "[" : "", e->address,
		        v6 ? "]" : "", e->port, e->draining ? " (draining)" : "");
		if (e->weight != 1)
			fprintf(out, " weight %" PRIu32, e->weight);
		fputc('\n', out);
	}
}

static const char *backend_name(const struct route_table *t, int idx)
{
	if (idx < 0 || (size_t)idx >= t->nbackends)
		return "(none)";
	return t->backends[idx].name;
}

/* r's policy, and the indexes r keeps for it */
static void put_policy(FILE *out, const char *ind, const struct route_table *t,
                       const struct route *r)
{
	const struct route_policy *p = r->policy;
	struct route_policy d;
	route_policy_init(&d);
	put_u64(out, ind, "connect_timeout_ms", p->connect_timeout_ms, d.connect_timeout_ms);
	put_u64(out, ind, "read_timeout_ms", p->read_timeout_ms, d.read_timeout_ms);
	put_u64(out, ind, "send_timeout_ms", p->send_timeout_ms, d.send_timeout_ms);
	if (p->next_upstream != d.next_upstream) {
		fprintf(out, "%snext_upstream:", ind);
		for (int i = 0; i < ROUTE_NEXT_COUNT; i++)
			if (p->next_upstream & (1u << i))
				fprintf(out, " %s", route_next_upstream_name(i));
		fprintf(out, "%s\n", p->next_upstream ? "" : " off");
	}
	put_u64(out, ind, "next_upstream_tries", p->next_upstream_tries, d.next_upstream_tries);
	put_u64(out, ind, "next_upstream_timeout_ms", p->next_upstream_timeout_ms,
	        d.next_upstream_timeout_ms);
	put_u64(out, ind, "body_limit", p->body_limit, d.body_limit);
	put_u64(out, ind, "upstream_head_max", p->upstream_head_max, d.upstream_head_max);
	if (p->backend_protocol != d.backend_protocol)
		fprintf(out, "%sbackend_protocol: %s\n", ind,
		        route_protocol_name(p->backend_protocol));
	put_bool(out, ind, "ssl_redirect", p->ssl_redirect, d.ssl_redirect);
	put_bool(out, ind, "port_in_redirects", p->port_in_redirects, d.port_in_redirects);
	put_bool(out, ind, "preserve_trailing_slash", p->preserve_trailing_slash,
	         d.preserve_trailing_slash);
	put_str(out, ind, "upstream_vhost", p->upstream_vhost, d.upstream_vhost);
	put_str(out, ind, "x_forwarded_prefix", p->x_forwarded_prefix, d.x_forwarded_prefix);
	put_str(out, ind, "rewrite_target", p->rewrite_target, d.rewrite_target);
	put_u64(out, ind, "redirect_code", p->redirect_code, d.redirect_code);
	put_str(out, ind, "redirect_url", p->redirect_url, d.redirect_url);
	put_str(out, ind, "redirect_host", p->redirect_host, d.redirect_host);
	put_str(out, ind, "app_root", p->app_root, d.app_root);
	if (route_custom_errors_any(p)) {
		fprintf(out, "%scustom_errors:", ind);
		for (int code = ROUTE_CUSTOM_ERROR_MIN; code <= ROUTE_CUSTOM_ERROR_MAX; code++)
			if (route_custom_error_has(p, code))
				fprintf(out, " %d", code);
		fprintf(out, " -> %s\n",
		        r->error_backend >= 0 ? backend_name(t, r->error_backend)
		                              : "no default backend (404)");
	} else if (r->error_backend >= 0) {
		fprintf(out, "%serror_backend: %s\n", ind, backend_name(t, r->error_backend));
	}
	put_u64(out, ind, "return_code", p->return_code, d.return_code);
	if (p->return_body) {
		char qb[96];
		route_validate_quote(p->return_body, qb, sizeof(qb));
		fprintf(out, "%sreturn_body: %s\n", ind, qb);
	}
	if (p->affinity != d.affinity)
		fprintf(out, "%saffinity: %s\n", ind,
		        p->affinity == ROUTE_AFFINITY_COOKIE ? "cookie" : "none");
	if (p->affinity_mode != d.affinity_mode)
		fprintf(out, "%saffinity_mode: %s\n", ind,
		        p->affinity_mode == ROUTE_AFFINITY_PERSISTENT ? "persistent" : "balanced");
	put_str(out, ind, "cookie.name", p->cookie.name, d.cookie.name);
	put_str(out, ind, "cookie.path", p->cookie.path, d.cookie.path);
	put_u64(out, ind, "cookie.max_age_s", p->cookie.max_age_s, d.cookie.max_age_s);
	put_u64(out, ind, "cookie.expires_s", p->cookie.expires_s, d.cookie.expires_s);
	put_bool(out, ind, "cookie.secure", p->cookie.secure, d.cookie.secure);
	put_str(out, ind, "cookie.samesite", p->cookie.samesite, d.cookie.samesite);
	put_str(out, ind, "cookie.domain", p->cookie.domain, d.cookie.domain);
	put_bool(out, ind, "cookie.conditional_samesite_none", p->cookie.conditional_samesite_none,
	         d.cookie.conditional_samesite_none);
	put_bool(out, ind, "cookie.change_on_failure", p->cookie.change_on_failure,
	         d.cookie.change_on_failure);
	put_str(out, ind, "hash_by", p->hash_by, d.hash_by);
	put_bool(out, ind, "hash_by_subset", p->hash_by_subset, d.hash_by_subset);
	put_u64(out, ind, "hash_by_subset_size", p->hash_by_subset_size, d.hash_by_subset_size);
	put_str(out, ind, "proxy_redirect_from", p->proxy_redirect_from, d.proxy_redirect_from);
	put_str(out, ind, "proxy_redirect_to", p->proxy_redirect_to, d.proxy_redirect_to);
	put_str(out, ind, "proxy_cookie_domain_from", p->proxy_cookie_domain_from,
	        d.proxy_cookie_domain_from);
	put_str(out, ind, "proxy_cookie_domain_to", p->proxy_cookie_domain_to,
	        d.proxy_cookie_domain_to);
	put_str(out, ind, "proxy_cookie_path_from", p->proxy_cookie_path_from,
	        d.proxy_cookie_path_from);
	put_str(out, ind, "proxy_cookie_path_to", p->proxy_cookie_path_to, d.proxy_cookie_path_to);
	if (p->balance != d.balance)
		fprintf(out, "%sbalance: %s\n", ind,
		        p->balance == ROUTE_BALANCE_EWMA ? "ewma" : "round_robin");
	put_cidrs(out, ind, "allow", p->allow, p->nallow);
	put_cidrs(out, ind, "deny", p->deny, p->ndeny);
	put_u64(out, ind, "limit_connections", p->limit_connections, d.limit_connections);
	put_u64(out, ind, "limit_rps", p->limit_rps, d.limit_rps);
	put_u64(out, ind, "limit_rpm", p->limit_rpm, d.limit_rpm);
	put_u64(out, ind, "limit_burst", p->limit_burst, d.limit_burst);
	put_cidrs(out, ind, "limit_allow", p->limit_allow, p->nlimit_allow);
	put_bool(out, ind, "satisfy_any", p->satisfy_any, d.satisfy_any);
	if (p->auth.type == ROUTE_AUTH_BASIC) {
		/* user names and hash formats, never the hashes */
		fprintf(out, "%sauth: basic, realm \"%s\", %zu user%s:", ind,
		        p->auth.realm ? p->auth.realm : "", p->auth.nusers,
		        p->auth.nusers == 1 ? "" : "s");
		for (size_t i = 0; i < p->auth.nusers; i++)
			fprintf(out, "%s %s (%s)", i ? "," : "", p->auth.users[i].name,
			        auth_hash_kind_name(auth_hash_kind(p->auth.users[i].hash)));
		fputc('\n', out);
	}
	put_bool(out, ind, "cors.enabled", p->cors.enabled, d.cors.enabled);
	put_str(out, ind, "cors.allow_origin", p->cors.allow_origin, d.cors.allow_origin);
	put_str(out, ind, "cors.allow_methods", p->cors.allow_methods, d.cors.allow_methods);
	put_str(out, ind, "cors.allow_headers", p->cors.allow_headers, d.cors.allow_headers);
	put_str(out, ind, "cors.expose_headers", p->cors.expose_headers, d.cors.expose_headers);
	put_bool(out, ind, "cors.allow_credentials", p->cors.allow_credentials,
	         d.cors.allow_credentials);
	put_u64(out, ind, "cors.max_age_s", p->cors.max_age_s, d.cors.max_age_s);
	put_u64(out, ind, "ws_idle_timeout_ms", p->ws_idle_timeout_ms, d.ws_idle_timeout_ms);
	put_u64(out, ind, "ws_max_lifetime_ms", p->ws_max_lifetime_ms, d.ws_max_lifetime_ms);
	put_u64(out, ind, "ws_ping_interval_ms", p->ws_ping_interval_ms, d.ws_ping_interval_ms);
	put_u64(out, ind, "drain_window_ms", p->drain_window_ms, d.drain_window_ms);
	put_bool(out, ind, "request_base", p->request_base, d.request_base);
	put_bool(out, ind, "origin_rewrite", p->origin_rewrite, d.origin_rewrite);
	put_bool(out, ind, "access_log", p->access_log, d.access_log);
	for (size_t i = 0; i < p->nrequest_headers; i++)
		fprintf(out, "%srequest_header: %s: %s%s\n", ind, p->request_headers[i].name,
		        p->request_headers[i].value,
		        p->request_headers[i].expand ? " (expand)" : "");
	for (size_t i = 0; i < p->nresponse_headers; i++)
		fprintf(out, "%sresponse_header: %s: %s%s\n", ind, p->response_headers[i].name,
		        p->response_headers[i].value,
		        p->response_headers[i].expand ? " (expand)" : "");
	for (size_t i = 0; i < p->nadd_headers; i++)
		fprintf(out, "%sadd_header: %s: %s%s%s\n", ind, p->add_headers[i].name,
		        p->add_headers[i].value, p->add_headers[i].always ? " (always)" : "",
		        p->add_headers[i].expand ? " (expand)" : "");
	for (size_t i = 0; i < p->nhide_headers; i++)
		fprintf(out, "%shide_header: %s\n", ind, p->hide_headers[i]);
	put_str(out, ind, "ext_auth.url", p->ext_auth.url, NULL);
	put_str(out, ind, "ext_auth.method", p->ext_auth.method, NULL);
	put_str(out, ind, "ext_auth.signin", p->ext_auth.signin, NULL);
	put_str(out, ind, "ext_auth.signin_redirect_param", p->ext_auth.signin_redirect_param,
	        NULL);
	put_str(out, ind, "ext_auth.request_redirect", p->ext_auth.request_redirect, NULL);
	put_bool(out, ind, "ext_auth.always_set_cookie", p->ext_auth.always_set_cookie, false);
	put_str(out, ind, "ext_auth.cache_key", p->ext_auth.cache_key, NULL);
	put_str(out, ind, "ext_auth.cache_duration", p->ext_auth.cache_duration, NULL);
	for (size_t i = 0; i < p->ext_auth.nresponse_headers; i++)
		fprintf(out, "%sext_auth.response_header: %s\n", ind,
		        p->ext_auth.response_headers[i]);
	for (size_t i = 0; i < p->ext_auth.nproxy_set_headers; i++)
		fprintf(out, "%sext_auth.proxy_set_header: %s: %s\n", ind,
		        p->ext_auth.proxy_set_headers[i].name,
		        p->ext_auth.proxy_set_headers[i].value);
	put_str(out, ind, "mirror.url", p->mirror.url, NULL);
	put_str(out, ind, "mirror.host", p->mirror.host, NULL);
	put_bool(out, ind, "mirror.request_body", !p->mirror.no_request_body, true);
	static const char *const rewrite_flags[] = {"break", "redirect", "permanent"};
	for (size_t i = 0; i < p->nrewrites; i++)
		fprintf(out, "%srewrite: %s -> %s (%s)\n", ind, p->rewrites[i].regex,
		        p->rewrites[i].replacement, rewrite_flags[p->rewrites[i].flag]);
	/* the controller's default is ingress-nginx's on */
	if (!p->request_buffering)
		fprintf(out, "%srequest_buffering: off\n", ind);
	if (p->response_buffering)
		fprintf(out, "%sresponse_buffering: on\n", ind);
	put_str(out, ind, "fastcgi.index", p->fastcgi.index, NULL);
	for (size_t i = 0; i < p->fastcgi.nparams; i++)
		fprintf(out, "%sfastcgi.param: %s=%s\n", ind, p->fastcgi.params[i].name,
		        p->fastcgi.params[i].value);
	if (r->backend_tls >= 0 || p->backend_tls.name || p->backend_tls.server_name) {
		fprintf(out, "%sbackend_tls:", ind);
		if (r->backend_tls >= 0)
			fprintf(out, " profile %d", r->backend_tls);
		if (p->backend_tls.name)
			fprintf(out, " name %s", p->backend_tls.name);
		if (p->backend_tls.server_name)
			fprintf(out, " sni");
		fputc('\n', out);
	}
	route_policy_cleanup(&d);
}

/* The subjects of the certificates of a PEM text, never the text (a key
 * stays out of the output). */
static void put_subjects(FILE *out, const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x;
	const char *sep = " ";
	while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		char buf[256];
		X509_NAME_oneline(X509_get_subject_name(x), buf, sizeof(buf));
		fprintf(out, "%s%s", sep, buf);
		sep = ", ";
		X509_free(x);
	}
	BIO_free(bio);
}

static void put_backend_tls(FILE *out, const struct route_table *t)
{
	/* Left out when empty, so tables without profiles read as before. */
	if (t->nbackend_tls)
		fprintf(out, "backend tls:\n");
	for (size_t i = 0; i < t->nbackend_tls; i++) {
		const struct route_backend_tls_profile *b = &t->backend_tls[i];
		fprintf(out, "  %zu: %s%s, verify %s, depth %u, protocols %s, ciphers %s\n", i,
		        b->name && *b->name ? "secret " : "no secret",
		        b->name && *b->name ? b->name : "", b->verify ? "on" : "off",
		        (unsigned)b->verify_depth, b->protocols ? b->protocols : "(default)",
		        b->ciphers ? b->ciphers : "(default)");
		if (b->ca_pem) {
			fprintf(out, "    ca:");
			put_subjects(out, b->ca_pem);
			fputc('\n', out);
		}
		if (b->cert_pem) {
			fprintf(out, "    client cert:");
			put_subjects(out, b->cert_pem);
			fputc('\n', out);
		}
	}
}

static void put_canary(FILE *out, const struct route_table *t, const struct route_canary *c)
{
	if (c->backend < 0)
		return;
	fprintf(out, "      canary -> %s\n", backend_name(t, c->backend));
	put_endpoints(out, "        ", t, c->backend);
	if (c->by_header)
		fprintf(out, "        by_header: %s\n", c->by_header);
	if (c->by_header_value)
		fprintf(out, "        by_header_value: %s\n", c->by_header_value);
	if (c->by_header_pattern)
		fprintf(out, "        by_header_pattern: %s\n", c->by_header_pattern);
	if (c->by_cookie)
		fprintf(out, "        by_cookie: %s\n", c->by_cookie);
	fprintf(out, "        weight: %" PRIu32 "\n", c->weight);
	if (c->weight_total != 100)
		fprintf(out, "        weight_total: %" PRIu32 "\n", c->weight_total);
	if (c->affinity_behavior == ROUTE_CANARY_LEGACY)
		fprintf(out, "        affinity_behavior: legacy\n");
}

static void put_settings(FILE *out, const struct route_settings *s)
{
	struct route_table *d = route_table_new();
	if (!d)
		return;
	const struct route_settings *ds = &d->settings;
	bool any =
	    s->ntrusted_proxies || s->max_header_bytes != ds->max_header_bytes ||
	    s->max_header_line != ds->max_header_line ||
	    s->upstream_head_max != ds->upstream_head_max ||
	    s->header_timeout_ms != ds->header_timeout_ms ||
	    s->keepalive_timeout_ms != ds->keepalive_timeout_ms ||
	    s->upstream_keepalive != ds->upstream_keepalive ||
	    s->drain_window_ms != ds->drain_window_ms ||
	    s->max_connections != ds->max_connections ||
	    s->use_forwarded_headers != ds->use_forwarded_headers ||
	    s->compute_full_forwarded_for != ds->compute_full_forwarded_for ||
	    s->use_proxy_protocol != ds->use_proxy_protocol ||
	    str_differs(s->forwarded_for_header, ds->forwarded_for_header) ||
	    s->nproxy_real_ip_cidr || s->hsts != ds->hsts || s->hsts_max_age != ds->hsts_max_age ||
	    s->hsts_include_subdomains != ds->hsts_include_subdomains ||
	    s->hsts_preload != ds->hsts_preload || s->use_gzip != ds->use_gzip ||
	    s->gzip_level != ds->gzip_level || s->gzip_min_length != ds->gzip_min_length ||
	    str_differs(s->gzip_types, ds->gzip_types) || s->enable_brotli != ds->enable_brotli ||
	    s->brotli_level != ds->brotli_level || s->brotli_min_length != ds->brotli_min_length ||
	    str_differs(s->brotli_types, ds->brotli_types) || s->ssl_protocols || s->ssl_ciphers ||
	    s->nblock_cidrs || s->nblock_user_agents || s->nblock_referers || !s->access_log ||
	    s->access_log_format || s->access_log_escape || s->naccess_log_skip ||
	    s->server_tokens || s->allow_backend_server_header ||
	    s->limit_req_status != ds->limit_req_status ||
	    s->limit_conn_status != ds->limit_conn_status || s->use_http2 != ds->use_http2 ||
	    s->http2_max_concurrent_streams != ds->http2_max_concurrent_streams ||
	    s->http2_cleartext != ds->http2_cleartext ||
	    s->http2_max_field_size != ds->http2_max_field_size ||
	    s->http2_max_header_size != ds->http2_max_header_size;
	fprintf(out, "settings:%s\n", any ? "" : " defaults");
	put_cidrs(out, "  ", "trusted_proxies", s->trusted_proxies, s->ntrusted_proxies);
	put_u64(out, "  ", "max_header_bytes", s->max_header_bytes, ds->max_header_bytes);
	put_u64(out, "  ", "max_header_line", s->max_header_line, ds->max_header_line);
	put_u64(out, "  ", "upstream_head_max", s->upstream_head_max, ds->upstream_head_max);
	put_u64(out, "  ", "header_timeout_ms", s->header_timeout_ms, ds->header_timeout_ms);
	put_u64(out, "  ", "keepalive_timeout_ms", s->keepalive_timeout_ms,
	        ds->keepalive_timeout_ms);
	put_u64(out, "  ", "upstream_keepalive", s->upstream_keepalive, ds->upstream_keepalive);
	put_u64(out, "  ", "drain_window_ms", s->drain_window_ms, ds->drain_window_ms);
	put_u64(out, "  ", "max_connections", s->max_connections, ds->max_connections);
	put_bool(out, "  ", "use_forwarded_headers", s->use_forwarded_headers,
	         ds->use_forwarded_headers);
	put_bool(out, "  ", "compute_full_forwarded_for", s->compute_full_forwarded_for,
	         ds->compute_full_forwarded_for);
	put_bool(out, "  ", "use_proxy_protocol", s->use_proxy_protocol, ds->use_proxy_protocol);
	put_str(out, "  ", "forwarded_for_header", s->forwarded_for_header,
	        ds->forwarded_for_header);
	put_cidrs(out, "  ", "proxy_real_ip_cidr", s->proxy_real_ip_cidr, s->nproxy_real_ip_cidr);
	put_bool(out, "  ", "hsts", s->hsts, ds->hsts);
	put_u64(out, "  ", "hsts_max_age", s->hsts_max_age, ds->hsts_max_age);
	put_bool(out, "  ", "hsts_include_subdomains", s->hsts_include_subdomains,
	         ds->hsts_include_subdomains);
	put_bool(out, "  ", "hsts_preload", s->hsts_preload, ds->hsts_preload);
	if (s->ssl_protocols)
		fprintf(out, "  ssl_protocols: %s\n", s->ssl_protocols);
	if (s->ssl_ciphers)
		fprintf(out, "  ssl_ciphers: %s\n", s->ssl_ciphers);
	put_cidrs(out, "  ", "block_cidrs", s->block_cidrs, s->nblock_cidrs);
	for (size_t i = 0; i < s->nblock_user_agents; i++)
		fprintf(out, "  block_user_agents[%zu]: %s\n", i, s->block_user_agents[i]);
	for (size_t i = 0; i < s->nblock_referers; i++)
		fprintf(out, "  block_referers[%zu]: %s\n", i, s->block_referers[i]);
	put_bool(out, "  ", "access_log", s->access_log, ds->access_log);
	if (s->access_log_format)
		fprintf(out, "  access_log_format: %s\n", s->access_log_format);
	if (s->access_log_escape)
		fprintf(out, "  access_log_escape: %s\n",
		        s->access_log_escape == ROUTE_LOG_ESCAPE_JSON ? "json" : "none");
	for (size_t i = 0; i < s->naccess_log_skip; i++)
		fprintf(out, "  access_log_skip[%zu]: %s\n", i, s->access_log_skip[i]);
	put_bool(out, "  ", "use_gzip", s->use_gzip, ds->use_gzip);
	put_u64(out, "  ", "gzip_level", s->gzip_level, ds->gzip_level);
	put_u64(out, "  ", "gzip_min_length", s->gzip_min_length, ds->gzip_min_length);
	put_str(out, "  ", "gzip_types", s->gzip_types, ds->gzip_types);
	put_bool(out, "  ", "enable_brotli", s->enable_brotli, ds->enable_brotli);
	put_u64(out, "  ", "brotli_level", s->brotli_level, ds->brotli_level);
	put_u64(out, "  ", "brotli_min_length", s->brotli_min_length, ds->brotli_min_length);
	put_str(out, "  ", "brotli_types", s->brotli_types, ds->brotli_types);
	put_bool(out, "  ", "server_tokens", s->server_tokens, ds->server_tokens);
	put_bool(out, "  ", "allow_backend_server_header", s->allow_backend_server_header,
	         ds->allow_backend_server_header);
	put_u64(out, "  ", "limit_req_status", s->limit_req_status, ds->limit_req_status);
	put_u64(out, "  ", "limit_conn_status", s->limit_conn_status, ds->limit_conn_status);
	put_bool(out, "  ", "use_http2", s->use_http2, ds->use_http2);
	put_u64(out, "  ", "http2_max_concurrent_streams", s->http2_max_concurrent_streams,
	        ds->http2_max_concurrent_streams);
	put_bool(out, "  ", "http2_cleartext", s->http2_cleartext, ds->http2_cleartext);
	put_u64(out, "  ", "http2_max_field_size", s->http2_max_field_size,
	        ds->http2_max_field_size);
	put_u64(out, "  ", "http2_max_header_size", s->http2_max_header_size,
	        ds->http2_max_header_size);
	route_table_free(d);
}

int explain_write(FILE *out, const struct route_table *t, const struct diag_list *diags)
{
	fprintf(out, "hosts:%s\n", t->nhosts ? "" : " none");
	for (size_t i = 0; i < t->nhosts; i++) {
		const struct route_host *h = &t->hosts[i];
		const char *cert =
		    h->cert >= 0 && (size_t)h->cert < t->ncerts ? t->certs[h->cert].name : NULL;
		fprintf(out, "  host %s (%s%s)\n", *h->name ? h->name : "* (any host)",
		        cert ? "cert " : "default cert", cert ? cert : "");
		const struct route_client_auth *ca = &h->client_auth;
		if (ca->ca >= 0 && (size_t)ca->ca < t->ncas) {
			static const char *const verify[] = {"off", "on", "optional",
			                                     "optional_no_ca"};
			fprintf(out, "    client certificates: CA %s%s, verify %s, depth %u",
			        t->cas[ca->ca].name, t->cas[ca->ca].crl_pem ? " (with CRL)" : "",
			        verify[ca->verify], ca->verify_depth);
			if (ca->pass_certificate)
				fprintf(out, ", passed upstream");
			if (ca->match_cn)
				fprintf(out, ", match %s", ca->match_cn);
			if (ca->error_page)
				fprintf(out, ", error page %s", ca->error_page);
			fprintf(out, "\n");
		}
		if (h->ssl_ciphers)
			fprintf(out, "    ssl ciphers: %s\n", h->ssl_ciphers);
		if (!h->nroutes)
			fprintf(out, "    no routes\n");
		for (size_t j = 0; j < h->nroutes; j++) {
			const struct route *r = &h->routes[j];
			fprintf(out, "    %s %s -> %s (from %s)\n", match_name(r->match), r->path,
			        backend_name(t, r->backend), r->source ? r->source : "");
			put_endpoints(out, "      ", t, r->backend);
			put_policy(out, "      ", t, r);
			put_canary(out, t, &r->canary);
		}
	}
	if (t->default_backend >= 0) {
		fprintf(out, "default backend: %s\n", backend_name(t, t->default_backend));
		put_endpoints(out, "  ", t, t->default_backend);
	} else {
		fprintf(out, "default backend: none (404)\n");
	}
	if (t->default_cert >= 0 && (size_t)t->default_cert < t->ncerts)
		fprintf(out, "default cert: %s\n", t->certs[t->default_cert].name);
	else
		fprintf(out, "default cert: built-in self-signed\n");
	fprintf(out, "passthrough:%s\n", t->npassthrough ? "" : " none");
	for (size_t i = 0; i < t->npassthrough; i++) {
		fprintf(out, "  %s -> %s\n", t->passthrough[i].host,
		        backend_name(t, t->passthrough[i].backend));
		put_endpoints(out, "    ", t, t->passthrough[i].backend);
		put_cidrs(out, "    ", "allow", t->passthrough[i].allow, t->passthrough[i].nallow);
		put_cidrs(out, "    ", "deny", t->passthrough[i].deny, t->passthrough[i].ndeny);
	}
	put_backend_tls(out, t);
	put_settings(out, &t->settings);
	fprintf(out, "diagnostics:%s\n", diags && diags->n ? "" : " none");
	for (size_t i = 0; diags && i < diags->n; i++) {
		const struct diag *d = &diags->items[i];
		fprintf(out, "  Warning %s %s%s%s: ", d->kind, d->ns && *d->ns ? d->ns : "",
		        d->ns && *d->ns ? "/" : "", d->name);
		if (d->key)
			fprintf(out, "%s: ", d->key);
		fprintf(out, "%s (%s)\n", d->message, d->reason);
	}
	return ferror(out) ? WEIR_EIO : 0;
}
