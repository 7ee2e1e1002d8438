/* common/route_validate.h - the one set of rules for what a route table may
 * hold. weir-controller runs them per Ingress before it emits a route (a
 * value that fails drops that Ingress's affected routes with a diagnostic);
 * weir-proxy runs the same functions when it loads a table (a value that
 * fails refuses the table). Because both sides call the same code, whatever
 * the controller publishes, the proxy accepts.
 *
 * Every check returns 0 when the value is valid, else WEIR_EINVAL and, when
 * err is not NULL, one line in err (size errlen) saying why. The line quotes
 * the value with control bytes and bytes that are not UTF-8 escaped (\n,
 * \x01), so it is safe in a log line or an Event. It does not name the
 * field: the caller knows it.
 *
 * Text rules shared by every string of the table (docs/route-table.md):
 * valid UTF-8 (the JSON reader refuses anything else), no NUL, and no CR or
 * LF except in PEM. */
#ifndef WEIR_COMMON_ROUTE_VALIDATE_H
#define WEIR_COMMON_ROUTE_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <openssl/ssl.h>
#include <pcre2.h>

#include "route_table.h"

/* Longest host name (DNS: 253 bytes, labels of at most 63). */
#define ROUTE_HOST_MAX 253
#define ROUTE_LABEL_MAX 63

/* Write s into buf (size buflen, at least 8) as a double-quoted string,
 * escaping '"', '\\', control bytes and bytes that are not UTF-8 (\xNN), cut
 * after about 64 input bytes with "...". */
void route_validate_quote(const char *s, char *buf, size_t buflen);

/* True when the n bytes at s are well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
bool route_validate_utf8(const char *s, size_t n);

/* Any string of the table but PEM: UTF-8, no CR or LF. */
int route_validate_text(const char *s, char *err, size_t errlen);

/* A host name of hosts[].name (flags 0) or passthrough[].host
 * (ROUTE_HOST_EXACT: no "" and no wildcard). "" matches any host; else
 * lowercase labels of a-z 0-9 '-' '_', none empty, at most ROUTE_LABEL_MAX
 * bytes each and ROUTE_HOST_MAX in all, a '*' only as the whole first label
 * of at least two. */
#define ROUTE_HOST_EXACT 1
int route_validate_host(const char *name, int flags, char *err, size_t errlen);

/* An endpoint address: an IPv4 or IPv6 literal (inet_pton). */
int route_validate_address(const char *s, char *err, size_t errlen);

/* The ExternalName of a backend (name NULL: none), its port and how many
 * endpoints the backend lists. name is a DNS name as ROUTE_HOST_EXACT
 * allows, with an optional trailing dot, and not an IP literal; it comes
 * with a port 1..65535 and no endpoint. Without a name the port is 0. On
 * failure field (size fieldlen) is "external_name", "external_port" or
 * "endpoints". */
int route_validate_external(const char *name, unsigned port, size_t nendpoints, char *field,
                            size_t fieldlen, char *err, size_t errlen);

/* The PCRE2 pattern of a regex route compiled as the proxy matches it
 * (caseless, anchored at the start of the path). Returns the code (caller
 * frees with pcre2_code_free) or NULL with the reason in err: "bad regex:
 * <PCRE2 message> at offset N". The pattern must already be valid text. */
pcre2_code *route_regex_compile(const char *pattern, char *err, size_t errlen);

/* auth-tls-match-cn as nginx matches it against the client's subject DN:
 * case-sensitive, not anchored. Returns the code (caller frees with
 * pcre2_code_free) or NULL with the reason in err as above. */
pcre2_code *route_match_cn_compile(const char *pattern, char *err, size_t errlen);

/* routes[].path for its match kind: Exact and Prefix start with '/' and hold
 * no control byte; a regex holds no control byte and compiles (with
 * route_regex_compile) unless skip_regex_compile (the proxy compiles its
 * regexes right after parsing, with the same function). */
int route_validate_path(const char *path, enum route_match match, bool skip_regex_compile,
                        char *err, size_t errlen);

/* An RFC 9110 token: a header name, a cookie name. */
int route_validate_token(const char *s, char *err, size_t errlen);

/* A gzip_types value: "*", or lowercase media types "type/subtype" (RFC
 * 9110 tokens) separated by single spaces, no parameters. */
int route_validate_media_types(const char *s, char *err, size_t errlen);

/* A header field value (RFC 9110 5.5): UTF-8, no control byte but HTAB. */
int route_validate_header_value(const char *s, char *err, size_t errlen);

/* A header value marked expand: a header value (as above) whose every '$'
 * starts a reference to a variable route_var_lookup knows
 * (route_table.h). */
int route_validate_header_template(const char *s, char *err, size_t errlen);

/* policy.rewrites: at most ROUTE_REWRITES_MAX; a regex of at most
 * ROUTE_REWRITE_REGEX_MAX bytes that PCRE2 compiles; a replacement of at
 * most ROUTE_REWRITE_REPLACEMENT_MAX bytes, no control byte, every '$'
 * starting $1..$9 or a variable of route_var_lookup. */
#define ROUTE_REWRITES_MAX 16
#define ROUTE_REWRITE_REGEX_MAX 1024
#define ROUTE_REWRITE_REPLACEMENT_MAX 1024
int route_validate_rewrite(const struct route_rewrite *r, char *err, size_t errlen);

/* fastcgi-index: a file name of 1..ROUTE_FASTCGI_INDEX_MAX bytes of
 * [A-Za-z0-9._-], not "." or "..". */
#define ROUTE_FASTCGI_INDEX_MAX 128
int route_validate_fastcgi_index(const char *s, char *err, size_t errlen);

/* A FastCGI param name: 1..ROUTE_FASTCGI_NAME_MAX bytes of [A-Za-z0-9_]. */
#define ROUTE_FASTCGI_NAME_MAX 128
int route_validate_fastcgi_name(const char *s, char *err, size_t errlen);

/* A FastCGI param value: a header value whose every '$' starts a reference
 * to a variable of route_var_lookup or route_fastcgi_var_lookup, at most
 * ROUTE_FASTCGI_VALUE_MAX bytes. */
#define ROUTE_FASTCGI_VALUE_MAX 4096
int route_validate_fastcgi_value(const char *s, char *err, size_t errlen);

/* Most bytes of all FastCGI params of a route together (name plus value
 * each), as the controller enforces on a fastcgi-params-configmap. */
#define ROUTE_FASTCGI_PARAMS_MAX 16384

/* policy.return_body: valid UTF-8, at most ROUTE_RETURN_BODY_MAX bytes, no
 * control byte but HTAB, CR and LF (it is a body, never a header). */
int route_validate_return_body(const char *s, char *err, size_t errlen);

/* Most bytes of all auth-proxy-set-headers of a route together ("Name:
 * value" plus CRLF each): the auth request head has a fixed cap. */
#define ROUTE_AUTH_SET_HEADERS_MAX_BYTES 8192

/* One header of ext_auth.proxy_set_headers (auth-proxy-set-headers): name a
 * token that is not hop-by-hop, body framing, Host, nor one of the headers
 * the proxy itself sets on every auth request (X-Original-URL, X-Real-IP,
 * X-Forwarded-*, X-Request-ID, ...: docs/route-table.md lists them), all
 * case-insensitive; value a non-empty header value without '$' (nginx
 * variables are not expanded there, and a literal '$' would be a silent
 * surprise). */
int route_validate_auth_set_header(const char *name, const char *value, char *err, size_t errlen);

/* Path attribute of the affinity cookie (RFC 6265 path-value): no control
 * byte and no ';'. */
int route_validate_cookie_path(const char *s, char *err, size_t errlen);

/* Domain attribute of the affinity cookie (session-cookie-domain), and
 * each side of a proxy-cookie-domain or proxy-cookie-path rewrite: not
 * empty, no space, control byte or ';'. */
int route_validate_cookie_attr(const char *s, char *err, size_t errlen);

/* Each side of a proxy-redirect rewrite: not empty, no space or control
 * byte. */
int route_validate_redirect_part(const char *s, char *err, size_t errlen);

/* canary.by_header_pattern: a PCRE2 pattern that compiles (case-sensitive,
 * not anchored, as route_match_cn_compile). */
int route_validate_header_pattern(const char *s, char *err, size_t errlen);

/* upstream-hash-by-subset-size's upper bound (its lower bound is 1). */
#define ROUTE_VALIDATE_MAX_SUBSET 1000

/* SameSite attribute: exactly "None", "Lax" or "Strict". */
int route_validate_samesite(const char *s, char *err, size_t errlen);

/* A redirect target (Location): "http://...", "https://..." or a path
 * starting with '/'; no space or control byte. */
int route_validate_url(const char *s, char *err, size_t errlen);

/* A redirect status weir answers with (redirect_code): 300, 301, 302, 303,
 * 307 or 308 (304, 305 and 306 are not redirects). */
bool route_validate_redirect_code(unsigned code);

/* app-root: a path starting with '/', no space or control byte. */
int route_validate_app_root(const char *s, char *err, size_t errlen);

/* rewrite-target: what goes into the upstream request line (with $0..$9
 * captures): no space or control byte, not empty. */
int route_validate_rewrite_target(const char *s, char *err, size_t errlen);

/* upstream-vhost: a host[:port] sent as Host: not empty, no space, '/' or
 * control byte. */
int route_validate_vhost(const char *s, char *err, size_t errlen);

/* upstream-hash-by template: literal text (no control byte) and the
 * variables ($name or ${name}) $remote_addr, $binary_remote_addr,
 * $remote_port, $request_uri, $uri, $document_uri, $args, $query_string,
 * $is_args, $scheme, $host, $server_name, $request_method, $server_port,
 * $arg_X, $http_X, $cookie_X (as the proxy's balancer reads them). */
int route_validate_hash_by(const char *s, char *err, size_t errlen);

/* limit-burst-multiplier's upper bound (its lower bound is 1). */
#define ROUTE_VALIDATE_MAX_BURST 1000

/* Every field of a policy (ext_auth by the rules of common/url.h). On
 * failure field (size fieldlen) names the member
 * below "policy", e.g. "cookie.path" or "request_headers[2].name". */
int route_validate_policy(const struct route_policy *p, char *field, size_t fieldlen, char *err,
                          size_t errlen);

/* Every string field of a canary rule (by_header, by_header_value,
 * by_header_pattern, by_cookie), its weight_total (at least 1) and weight
 * (0..weight_total); field as for route_validate_policy,
 * e.g. "by_header". Index ranges are the parser's business. */
int route_validate_canary(const struct route_canary *c, char *field, size_t fieldlen, char *err,
                          size_t errlen);

/* A whole route: path for its match kind (see route_validate_path for
 * skip_regex_compile), source, policy, canary. On failure field names the
 * member below the route, e.g. "path", "policy.cookie.path",
 * "canary.by_header". */
int route_validate_route(const struct route *r, bool skip_regex_compile, char *field,
                         size_t fieldlen, char *err, size_t errlen);

/* The same with r->policy taken as valid (the caller checked that very
 * policy before: the controller's compile shares one policy among many
 * routes and checks each once). */
int route_validate_route_but_policy(const struct route *r, bool skip_regex_compile, char *field,
                                    size_t fieldlen, char *err, size_t errlen);

/* A certificate and its key as the proxy serves them: both UTF-8 PEM text,
 * the certificate (then its chain) and the private key load into a new TLS
 * server context with OpenSSL and the key belongs to the certificate. name
 * ("namespace/secret", may be "") is quoted in the reason. On success returns
 * 0 and, when out is not NULL, *out is the context (caller frees with
 * SSL_CTX_free). On failure returns WEIR_ETLS (WEIR_ENOMEM when out of
 * memory), field is "cert_pem" or "key_pem" and err the reason. */
int route_validate_cert(const char *name, const char *cert_pem, const char *key_pem, SSL_CTX **out,
                        char *field, size_t fieldlen, char *err, size_t errlen);

/* SHA-256 of cert_pem, a NUL and key_pem: one pair's identity, the same
 * wherever it is computed (the compile's good-pairs cache, the publisher's
 * certificate slots). */
void route_cert_digest(const char *cert_pem, const char *key_pem,
                       unsigned char out[ROUTE_CERT_DIGEST_LEN]);

/* The CA certificates (every PEM block a certificate, at least one) and the
 * optional CRLs (every block a CRL, at least one) a client certificate is
 * checked against, as the proxy loads them. name as for route_validate_cert.
 * On success returns 0 and, when out is not NULL, *out is a store holding
 * them, with CRL checks of the whole chain on when there are CRLs (caller
 * frees with X509_STORE_free). On failure returns WEIR_ETLS (WEIR_ENOMEM when
 * out of memory), field is "ca_pem" or "crl_pem" and err the reason. */
int route_validate_ca(const char *name, const char *ca_pem, const char *crl_pem, X509_STORE **out,
                      char *field, size_t fieldlen, char *err, size_t errlen);

/* Client-side TLS (ingress-nginx ssl-protocols): list names one or more
 * of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 separated by spaces. */
int route_validate_tls_protocols(const char *list, char *err, size_t errlen);

/* The version floor and the SSL_OP_NO_* bits of a protocol list as nginx
 * applies it (every protocol not listed is off, the floor is the lowest
 * listed); NULL or a bad list: "TLSv1.2 TLSv1.3". */
void route_tls_protocol_bounds(const char *list, int *min, long *off);

/* A server cipher list (ssl-ciphers, TLS 1.2 and older; TLS 1.3 suites are
 * not affected, as with nginx's ssl_ciphers): non-empty, only letters,
 * digits and "+:_-!@=", and OpenSSL finds at least one cipher in it. */
int route_validate_server_ciphers(const char *s, char *err, size_t errlen);

/* One block-user-agents / block-referers entry (an nginx map source
 * value): text without control bytes; "~RE" is a case-sensitive and "~*RE"
 * a case-insensitive PCRE2 pattern searched anywhere in the value (it must
 * compile); anything else is compared whole, case-insensitively. */
int route_validate_block_pattern(const char *s, char *err, size_t errlen);

/* The compiled pattern of an entry starting with "~" (caller frees with
 * pcre2_code_free), NULL with err set when it does not compile, NULL
 * without err for a plain string. */
pcre2_code *route_block_pattern_compile(const char *s, char *err, size_t errlen);

/* The values of a backend TLS profile without loading its PEM: name is
 * text; verify needs ca_pem; cert_pem and key_pem come together;
 * verify_depth at most 100; protocols (when set) names one or more of
 * TLSv1, TLSv1.1, TLSv1.2, TLSv1.3 separated by spaces; ciphers (when set)
 * is non-empty and holds only letters, digits and "+:_-!" (ingress-nginx's
 * rule). field names the member ("verify", "protocols"...). */
int route_validate_backend_tls_profile(const struct route_backend_tls_profile *b, char *field,
                                       size_t fieldlen, char *err, size_t errlen);

/* A name for policy.backend_tls.name (proxy-ssl-name): a lowercase host
 * name without wildcard (route_validate_host, ROUTE_HOST_EXACT, not "") or
 * an IP literal. */
int route_validate_backend_tls_name(const char *s, char *err, size_t errlen);

/* Build the client TLS context of a profile, as the proxy connects with it:
 * the protocols and ciphers set, verification of the peer against ca_pem
 * (every certificate of it trusted) to verify_depth when verify, and
 * cert_pem (then its chain) with key_pem presented as client certificate.
 * Fails when a PEM does not load, ca_pem holds no certificate, the key does
 * not belong to the certificate, or OpenSSL refuses the cipher list. On
 * success returns 0 and, when out is not NULL, *out is the context (caller
 * frees with SSL_CTX_free). On failure returns WEIR_ETLS (WEIR_ENOMEM when
 * out of memory), field names the member ("ca_pem", "cert_pem", "key_pem",
 * "ciphers") and err the reason. */
int route_validate_backend_tls_ctx(const struct route_backend_tls_profile *b, SSL_CTX **out,
                                   char *field, size_t fieldlen, char *err, size_t errlen);

#endif
