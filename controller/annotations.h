/* controller/annotations.h - Ingress annotations (weir.dev/ and
 * nginx.ingress.kubernetes.io/) parsed into typed policy values. Pure. */
#ifndef WEIR_CONTROLLER_ANNOTATIONS_H
#define WEIR_CONTROLLER_ANNOTATIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "route_table.h"
#include "snippet.h"

#define ANNOTATIONS_WEIR_PREFIX "weir.dev/"
#define ANNOTATIONS_NGINX_PREFIX "nginx.ingress.kubernetes.io/"

/* One Ingress's annotations, resolved. Ingress-level decisions that depend on
 * other objects (host TLS, regex mode, canary target) are left to compile. */
struct annotations {
	struct route_policy policy; /* defaults + values; ssl_redirect and
	                               ws_idle_timeout_ms not yet resolved */
	bool use_regex;
	bool ssl_redirect;        /* ssl-redirect, default true */
	bool force_ssl_redirect;  /* force-ssl-redirect, default false */
	bool ssl_redirect_set;    /* ssl-redirect given (else the ConfigMap's) */
	bool body_limit_set;      /* proxy-body-size given (else the ConfigMap's) */
	bool connect_timeout_set; /* proxy-connect-timeout given (else the ConfigMap's) */
	bool send_timeout_set;    /* proxy-send-timeout given (else the ConfigMap's) */
	bool read_timeout_set;    /* proxy-read-timeout given (else the ConfigMap's) */
	bool ws_idle_set;         /* websocket-idle-timeout given */
	bool drain_window_set;    /* drain-window given */
	bool next_upstream_set;   /* proxy-next-upstream given (else the ConfigMap's) */
	bool next_tries_set;      /* proxy-next-upstream-tries given */
	bool next_timeout_set;    /* proxy-next-upstream-timeout given */
	bool head_max_set;        /* proxy-buffer-size given (else the ConfigMap's) */
	bool ssl_passthrough;
	bool service_upstream;
	char *default_backend;      /* service name in the Ingress namespace; NULL: none */
	bool custom_errors_set;     /* custom-http-errors named codes (else the ConfigMap's) */
	bool from_to_www;           /* from-to-www-redirect */
	bool port_in_redirects_set; /* use-port-in-redirects given (else the ConfigMap's) */
	size_t nserver_alias;
	char **server_alias; /* lowercase host names */
	bool global_auth;    /* enable-global-auth, default true */
	bool canary;
	struct route_canary canary_rule; /* backend -1; strings owned */
	/* auth-type: basic sets policy.auth.type and auth-realm policy.auth.realm;
	 * compile reads the Secret into policy.auth.users. Keys are the full
	 * annotation keys as written (for diagnostics); NULL when absent. */
	char *auth_type_key;
	char *auth_secret_key;
	char *auth_secret; /* auth-secret: "name" or "namespace/name" */
	bool auth_map;     /* auth-secret-type: auth-map (default auth-file) */
	/* auth-tls-*: client certificate authentication, applied by compile to
	 * every host of the Ingress. tls_auth holds the settings (ca -1 until
	 * compile reads the Secret named by tls_secret); tls_secret_key is the
	 * auth-tls-secret key as written, NULL when absent. */
	/* ssl-ciphers: the host's TLS cipher list (server level, as
	 * ingress-nginx: one per host); ssl_ciphers_key is the key as written. */
	char *ssl_ciphers;
	char *ssl_ciphers_key;
	char *tls_secret; /* "name" or "namespace/name" */
	char *tls_secret_key;
	struct route_client_auth tls_auth;
	/* proxy-ssl-*: verify, verify_depth, protocols and ciphers are here;
	 * compile reads the Secret named by proxy-ssl-secret into its PEM
	 * fields and sets backend_tls_profile to its place in the table's
	 * backend_tls (-1 here: none). proxy-ssl-name and proxy-ssl-server-name
	 * go straight to policy.backend_tls. */
	struct route_backend_tls_profile proxy_ssl;
	int backend_tls_profile;
	char *proxy_ssl_secret;     /* "namespace/name"; NULL: absent */
	char *proxy_ssl_secret_key; /* full annotation keys as written, NULL: absent */
	char *proxy_ssl_verify_key;
	/* auth-proxy-set-headers: the ConfigMap ("name" or "namespace/name")
	 * compile reads into policy.ext_auth.proxy_set_headers, and the key
	 * as written; NULL when absent. */
	char *auth_headers;
	char *auth_headers_key;
	/* custom-headers: the ConfigMap ("name" or "namespace/name") compile
	 * reads into policy.response_headers, and the key as written; NULL when
	 * absent. */
	char *custom_headers;
	char *custom_headers_key;
	/* fastcgi-params-configmap: the ConfigMap ("name" or "namespace/name")
	 * compile reads into policy.fastcgi.params, and the key as written;
	 * NULL when absent (or backend-protocol is not FCGI). */
	char *fastcgi_params;
	char *fastcgi_params_key;
	/* configuration-snippet, server-snippet, auth-snippet (enum
	 * snippet_kind order): the full keys as written, NULL when absent. Their
	 * translation is already merged into policy (docs: README "Snippets"). */
	char *snippet_key[3];
};

/* One finding: key is the full annotation key. fatal: the value is bad or
 * refused and the Ingress's routes must be dropped. Strings owned by the
 * list. */
struct annotation_issue {
	char *key;
	char *reason; /* CamelCase */
	char *message;
	bool fatal;
};

struct annotation_issues {
	size_t n;
	struct annotation_issue *items;
};

/* Parse metadata.annotations (a json object of strings, borrowed; NULL is
 * fine) into out (caller storage; release with annotations_cleanup, also on
 * failure). Findings are appended to issues (caller storage, zeroed; release
 * with annotation_issues_cleanup), in key order. drain_default_ms is the
 * global drain-window. Returns 0, or WEIR_ENOMEM. */
int annotations_parse(json_object *annotations, uint32_t drain_default_ms, struct annotations *out,
                      struct annotation_issues *issues);
void annotations_cleanup(struct annotations *a);
void annotation_issues_cleanup(struct annotation_issues *issues);

/* True when suffix (an annotation key without its prefix) restricts access
 * or transport security, weir does not enforce it, and value asks for that
 * protection: such a key drops its Ingress (fail closed). */
bool annotations_is_unenforced_security(const char *suffix, const char *value);

/* What weir does with an annotation key, as annotations_parse decides it. */
enum annotation_support {
	ANNOTATION_ACTS,         /* a handler reads it (detail: NULL, or the subset it
	                            acts on, for the translated snippets) */
	ANNOTATION_TRANSLATED,   /* read as another key (detail: that key) */
	ANNOTATION_IGNORED,      /* reported as unsupported, no effect */
	ANNOTATION_INAPPLICABLE, /* ignored: tunes something weir does not have
	                            (detail: what and why) */
	ANNOTATION_FAIL_CLOSED,  /* drops its Ingress (detail: the harmless value or
	                            NULL when every value drops it) */
	ANNOTATION_REFUSED,      /* a snippet weir never translates (stream-snippet,
	                            modsecurity-snippet): drops its Ingress whatever
	                            the value */
};

/* The support of suffix (an annotation key without its prefix) whatever its
 * value. *detail (may be NULL) is set to a static string or NULL, as the enum
 * says. */
enum annotation_support annotations_key_support(const char *suffix, const char **detail);

/* The i-th key (without prefix, in table order) that a handler reads, or NULL past
 * the last one. Static strings. */
const char *annotations_handled_key(size_t i);

/* Value parsers. Each returns 0 and sets *out, or WEIR_EINVAL (then *out is
 * untouched) and, when err is not NULL, a short reason in err. */

/* Duration: plain seconds ("60") or a number with unit ms, s, m, h ("60s",
 * "5m", "1500ms"), non-negative, at most 2^32-1 ms. */
int annotations_parse_duration_ms(const char *s, uint32_t *out, char *err, size_t errlen);
/* Size: bytes with optional unit k, m, g (either case), e.g. "1m", "512k",
 * "0". */
int annotations_parse_size(const char *s, int64_t *out, char *err, size_t errlen);

/* proxy-buffer-size (annotation and ConfigMap): a size as
 * annotations_parse_size, between ROUTE_HEAD_MAX_MIN and ROUTE_HEAD_MAX_MAX. */
int annotations_parse_head_max(const char *s, uint32_t *out, char *err, size_t errlen);
/* Boolean: exactly "true" or "false". */
int annotations_parse_bool(const char *s, bool *out, char *err, size_t errlen);
/* Non-negative decimal integer up to max. */
int annotations_parse_uint(const char *s, uint64_t max, uint64_t *out, char *err, size_t errlen);
/* proxy-next-upstream: conditions separated by spaces (error timeout
 * invalid_header http_500 http_502 http_503 http_504 http_403 http_404
 * http_429 non_idempotent), or "off" alone (*out 0). */
int annotations_parse_next_upstream(const char *s, uint32_t *out, char *err, size_t errlen);
/* custom-http-errors: status codes min..599 separated by commas (and
 * spaces); on success they replace policy->custom_errors (none given: all
 * cleared). */
int annotations_parse_custom_errors(const char *s, int min, struct route_policy *policy, char *err,
                                    size_t errlen);
/* "Name: value" lines; names and values as route_validate_token and
 * route_validate_header_value say.
 * Empty lines skipped. *out (caller frees names, values and array). */
int annotations_parse_headers(const char *s, struct route_header **out, size_t *n, char *err,
                              size_t errlen);
/* Comma-separated CIDRs; *out caller frees. */
int annotations_parse_cidrs(const char *s, struct route_cidr **out, size_t *n, char *err,
                            size_t errlen);
/* Deep copy of a forward-auth policy into dst (caller storage, zeroed or
 * released; release with route_ext_auth_cleanup). Returns 0 or WEIR_ENOMEM
 * (dst then released). */
int annotations_ext_auth_copy(struct route_ext_auth *dst, const struct route_ext_auth *src);

/* Deep copy of a policy into dst (caller storage; release with
 * route_policy_cleanup). Returns 0 or WEIR_ENOMEM. */
int annotations_policy_copy(struct route_policy *dst, const struct route_policy *src);

/* url with every $host (or ${host}) replaced by host, in a new string
 * (caller frees); NULL when out of memory. */
char *annotations_auth_url_expand(const char *url, const char *host);

#endif
