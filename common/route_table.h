/* common/route_table.h - the route table: the one contract between
 * weir-controller (which compiles and writes it) and weir-proxy (which loads
 * and serves it). Neither side includes the other's code; both include this.
 *
 * On disk the table is one JSON document, ROUTE_TABLE_FILE inside the publish
 * directory, replaced atomically (write a temporary file, then rename). The
 * format is described field by field in docs/route-table.md; the JSON keys
 * are the field names below. Version ROUTE_TABLE_VERSION; a reader refuses
 * any other version whole.
 *
 * JSON encoding rules (the reader fills defaults for every absent key, so a
 * hand-written table may hold only what differs from the defaults):
 * - top level: {"version":1,"generation":N,"settings":{...},"hosts":[...],
 *   "backends":[...],"certs":[...],"default_cert":-1,"default_backend":-1,
 *   "passthrough":[...]}; "version" is required.
 * - hosts[]: {"name":"a.example.com","cert":-1,"routes":[...]}.
 * - routes[]: {"path":"/x","match":"prefix","backend":0,"source":"ns/name",
 *   "policy":{...},"canary":{...}}; "path" and "match" are required.
 * - enums are lowercase strings: match "exact"|"prefix"|"regex";
 *   backend_protocol "HTTP"|"HTTPS" (upper case, as the annotation);
 *   balance "round_robin"|"ewma"; affinity "none"|"cookie";
 *   affinity_mode "balanced"|"persistent".
 * - CIDR lists are arrays of strings; header lists are arrays of
 *   {"name":..,"value":..} ("expand":true marks a template, see struct
 *   route_header); add_headers entries add "always"; hide_headers is an
 *   array of strings.
 * - durations are integers in milliseconds (keys ending _ms) or seconds
 *   (keys ending _s); sizes in bytes.
 * - endpoints[]: {"address":"10.0.0.5","port":8080,"weight":1,"draining":false}.
 * - certs[]: {"name":"ns/secret","cert_pem":"-----BEGIN...","key_pem":"..."}.
 * - cas[]: {"name":"ns/secret","ca_pem":"-----BEGIN...","crl_pem":"..."};
 *   hosts[].client_auth: {"ca":0,"verify":"on","verify_depth":1,...}.
 * - backend_tls[]: {"name":"ns/secret","verify":true,"verify_depth":1,
 *   "protocols":null,"ciphers":null,"ca_pem":..,"cert_pem":..,"key_pem":..},
 *   referenced by routes[].policy.backend_tls.profile (struct route's
 *   backend_tls).
 *
 * Everything a request needs is resolved by the controller before the table
 * is written: annotation defaults, the ssl-redirect decision, the WebSocket
 * idle timeout (websocket-idle-timeout, else an explicit proxy-read-timeout,
 * else 3600 s), route order. The proxy only matches and acts.
 */
#ifndef WEIR_COMMON_ROUTE_TABLE_H
#define WEIR_COMMON_ROUTE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROUTE_TABLE_VERSION 1
#define ROUTE_TABLE_FILE "routes.json"

/* Sharded tables (version 2, docs/route-table.md "Sharded tables"):
 * ROUTE_TABLE_FILE is then an index holding everything version 1 holds but
 * "hosts", "backends" and "certs", which are arrays of shard ids; shard <id>
 * is the file ROUTE_SHARD_DIR/<id>.json whose bytes have SHA-256 <id>
 * (lowercase hex), holding one hosts[], backends[] or certs[] element of
 * version 1. Indexes inside a host shard refer to the arrays of the index
 * that names it. A backends or certs slot may be "" (a hole nothing refers
 * to). */
#define ROUTE_INDEX_VERSION 2
#define ROUTE_SHARD_DIR "shards"
#define ROUTE_SHARD_ID_LEN 64

/* Hard caps a parser enforces so a corrupt file cannot exhaust memory. */
#define ROUTE_TABLE_MAX_BYTES (512u * 1024u * 1024u)
/* auth-tls-verify-depth at most this (nginx takes any int; longer chains
 * are not seen in practice). */
#define ROUTE_VERIFY_DEPTH_MAX 100
/* policy.return_body at most this many bytes. */
#define ROUTE_RETURN_BODY_MAX 1024
/* How much of a body route_policy.request_buffering and
 * response_buffering hold in memory. */
#define ROUTE_REQUEST_BUFFER_MAX (1024u * 1024u)
#define ROUTE_RESPONSE_BUFFER_MAX (1024u * 1024u)

/* Bounds of route_policy.upstream_head_max (proxy-buffer-size). */
#define ROUTE_HEAD_MAX_MIN 1024u
#define ROUTE_HEAD_MAX_MAX (1024u * 1024u)
/* ingress-nginx's gzip-types default (text/html is always compressed). */
#define ROUTE_GZIP_TYPES_DEFAULT                                                                   \
	"application/atom+xml application/javascript application/x-javascript application/json "   \
	"application/rss+xml application/vnd.ms-fontobject application/x-font-ttf "                \
	"application/x-web-app-manifest+json application/xhtml+xml application/xml "               \
	"font/opentype image/svg+xml image/x-icon text/css text/javascript text/plain "            \
	"text/x-component"
/* ingress-nginx's brotli-types default (text/html is always compressed). */
#define ROUTE_BROTLI_TYPES_DEFAULT "application/xml+rss " ROUTE_GZIP_TYPES_DEFAULT

enum route_match {
	ROUTE_MATCH_EXACT = 0,  /* JSON "exact": whole path, case-sensitive */
	ROUTE_MATCH_PREFIX = 1, /* JSON "prefix": element-wise on '/', trailing '/' ignored */
	ROUTE_MATCH_REGEX = 2   /* JSON "regex": PCRE2, case-insensitive, anchored at the
	                           start of the path (ingress-nginx "~*" location) */
};

/* JSON "HTTP", "HTTPS", "FCGI" (FastCGI responder, struct route_fastcgi),
 * "GRPC" (HTTP/2 with prior knowledge), "GRPCS" (HTTP/2 over TLS), "AUTO_HTTP"
 * (HTTPS to the upstream when the client came over TLS, else HTTP) */
enum route_protocol {
	ROUTE_PROTO_HTTP = 0,
	ROUTE_PROTO_HTTPS = 1,
	ROUTE_PROTO_FCGI = 2,
	ROUTE_PROTO_GRPC = 3,
	ROUTE_PROTO_GRPCS = 4,
	ROUTE_PROTO_AUTO_HTTP = 5
};
enum route_balance { ROUTE_BALANCE_ROUND_ROBIN = 0, ROUTE_BALANCE_EWMA = 1 };
enum route_affinity { ROUTE_AFFINITY_NONE = 0, ROUTE_AFFINITY_COOKIE = 1 };
enum route_affinity_mode { ROUTE_AFFINITY_BALANCED = 0, ROUTE_AFFINITY_PERSISTENT = 1 };

/* "Name: value" to set (replacing any header of that name). Names are HTTP
 * tokens; values hold no CR, LF or NUL (the parser refuses them). With
 * expand (JSON "expand": true; only in policy.request_headers and
 * policy.response_headers) the value is a template whose $name / ${name}
 * references the proxy replaces per request (route_template_var lists the
 * names); without it the value is sent byte for byte, '$' included. */
struct route_header {
	char *name;
	char *value;
	bool expand; /* false */
};

/* nginx add_header (configuration-snippet): appended to the response
 * after the upstream's headers (a same-named upstream header stays) when
 * the status is 200, 201, 204, 206, 301, 302, 303, 304, 307 or 308, on
 * every status when always. JSON {"name":..,"value":..,"always":false,
 * "expand":false};
 * name and value as struct route_header. */
struct route_add_header {
	char *name;
	char *value;
	bool always; /* false */
	bool expand; /* false; as struct route_header */
};

/* nginx "rewrite REGEX REPLACEMENT FLAG" (configuration-snippet; JSON
 * {"regex":..,"replacement":..,"flag":"break"|"redirect"|"permanent"}).
 * The route's rewrites are tried in order against the request path as
 * received (PCRE2, case-sensitive unless the regex says (?i), not
 * anchored unless it says ^); the first that matches decides: break
 * sends the replacement upstream as the request target (rewrite_target is
 * then not applied), redirect answers 302 and permanent 301 with it as
 * Location. In the replacement $1..$9 are the regex's captures and the
 * other $name / ${name} the variables of enum route_var; when it holds a
 * '?' the request's query is appended after '&' (none when it ends in '?'),
 * else the query is kept as is. */
enum route_rewrite_flag {
	ROUTE_REWRITE_BREAK = 0,
	ROUTE_REWRITE_REDIRECT = 1,
	ROUTE_REWRITE_PERMANENT = 2
};
struct route_rewrite {
	char *regex;
	char *replacement;
	enum route_rewrite_flag flag;
};

/* FastCGI (ingress-nginx backend-protocol FCGI; JSON key "fastcgi"), used
 * when policy.backend_protocol is ROUTE_PROTO_FCGI. The proxy sends nginx's
 * fastcgi_params set (QUERY_STRING, REQUEST_METHOD, CONTENT_TYPE,
 * CONTENT_LENGTH, SCRIPT_NAME, REQUEST_URI, DOCUMENT_URI, DOCUMENT_ROOT,
 * SERVER_PROTOCOL, REQUEST_SCHEME, HTTPS, GATEWAY_INTERFACE,
 * SERVER_SOFTWARE, REMOTE_ADDR, REMOTE_PORT, SERVER_ADDR, SERVER_PORT,
 * SERVER_NAME, REDIRECT_STATUS) and the request headers as HTTP_*; params
 * replace a default of the same name. */
struct route_fastcgi {
	/* fastcgi-index: NULL: none; else appended to $fastcgi_script_name
	 * when the path ends in '/' (route_validate_fastcgi_index) */
	char *index;
	/* fastcgi-params-configmap: JSON [{"name":..,"value":..}]; names
	 * [A-Za-z0-9_], values templates of route_fastcgi_var names */
	size_t nparams;
	struct route_header *params;
};

/* An IPv4 or IPv6 network; JSON: "10.0.0.0/8", "2001:db8::/32", or a bare
 * address meaning /32 or /128. */
struct route_cidr {
	uint8_t family; /* 4 or 6 */
	uint8_t prefix_len;
	uint8_t addr[16]; /* network byte order; IPv4 in the first 4 bytes */
};

struct route_cookie {
	char *name;        /* default "INGRESSCOOKIE" */
	char *path;        /* NULL: the route's path (Exact/Prefix) or "/" */
	int64_t max_age_s; /* -1: not set */
	int64_t expires_s; /* -1: not set */
	bool secure;
	char *samesite; /* NULL: not set; else "None", "Lax" or "Strict" */
	char *domain;   /* NULL: no Domain attribute (session-cookie-domain) */
	/* SameSite=None left out for user agents known to mishandle it
	 * (session-cookie-conditional-samesite-none) */
	bool conditional_samesite_none;
	/* a retry that leaves the cookie's endpoint (proxy-next-upstream) re-sets
	 * the cookie to the endpoint that answered (session-cookie-change-on-failure) */
	bool change_on_failure;
};

struct route_cors {
	bool enabled;
	char *allow_origin;     /* default "*" */
	char *allow_methods;    /* default "GET, PUT, POST, DELETE, PATCH, OPTIONS" */
	char *allow_headers;    /* default ingress-nginx's list */
	char *expose_headers;   /* NULL: none */
	bool allow_credentials; /* default true */
	int64_t max_age_s;      /* default 1728000 */
};

/* affinity-canary-behavior: "sticky" (a client the affinity cookie ties to
 * the canary stays there) or "legacy" (the canary's answers set no cookie). */
enum route_canary_affinity { ROUTE_CANARY_STICKY = 0, ROUTE_CANARY_LEGACY = 1 };

struct route_canary {
	int backend;             /* index into route_table.backends; -1: no canary */
	char *by_header;         /* NULL: not set */
	char *by_header_value;   /* NULL: header value "always" selects the canary */
	char *by_header_pattern; /* NULL; else a PCRE2 pattern (case-sensitive, not
	                            anchored) the header value must match; unused when
	                            by_header_value is set */
	char *by_cookie;         /* NULL: not set */
	uint32_t weight;         /* 0..weight_total: share of the rest sent to the canary */
	uint32_t weight_total;   /* 100; at least 1 */
	enum route_canary_affinity affinity_behavior; /* sticky */
};

enum route_auth_type { ROUTE_AUTH_NONE = 0, ROUTE_AUTH_BASIC = 1 }; /* "none", "basic" */

/* One htpasswd entry: the proxy takes the first user of the list whose name
 * equals the one in the request's credentials. */
struct route_auth_user {
	char *name; /* non-empty, no ':' */
	char *hash; /* a format of common/auth_hash.h (bcrypt, apr1, {SHA}, crypt) */
};

/* HTTP basic authentication (auth-type: basic). With type basic and no users
 * every request is refused (the controller never writes that). */
struct route_auth {
	enum route_auth_type type;
	char *realm; /* NULL or "": realm "" (ingress-nginx's default); no '"', no backslash */
	size_t nusers;
	struct route_auth_user *users;
};

/* TLS to an HTTPS upstream (proxy-ssl-*): which client profile, and the
 * name verified and sent as SNI. Only read when backend_protocol is HTTPS. */
struct route_backend_tls {
	char *name;       /* NULL: the Host sent upstream (upstream_vhost, else the
	                     request's host without port, else the endpoint address) */
	bool server_name; /* send name as SNI (proxy-ssl-server-name, default off) */
};

/* Forward authentication (ingress-nginx auth-url and friends; JSON key
 * "ext_auth", kept apart from the basic authentication of struct route_auth): before the
 * request goes upstream, its head is sent to url; 2xx lets it through, 401
 * answers 401 (or 302 to signin), 403 answers 403, anything else 500. */
struct route_ext_auth {
	char *url;                   /* NULL: off; else an http(s) URL (common/url.h) */
	char *method;                /* NULL: GET (auth-method) */
	char *signin;                /* NULL: none; else 401 becomes 302 here */
	char *signin_redirect_param; /* NULL: "rd" */
	char *request_redirect;      /* X-Auth-Request-Redirect; NULL: the request URI */
	bool always_set_cookie;      /* auth Set-Cookie also on 401/403 answers */
	size_t nresponse_headers;    /* auth response headers copied upstream */
	char **response_headers;
	char *cache_key;      /* NULL: answers not cached; else a template (url_check_cache_key) */
	char *cache_duration; /* NULL: "200 202 401 5m"; else url_cache_valid_ms syntax */
	/* auth-proxy-set-headers: set on the auth request, replacing a client
	 * header of the same name (route_validate_auth_set_header) */
	size_t nproxy_set_headers;
	struct route_header *proxy_set_headers;
};

/* Request mirroring (ingress-nginx mirror-target, mirror-host,
 * mirror-request-body; JSON key "mirror"): a copy of each request (method,
 * URI, headers and, unless no_request_body, the body) is sent to url and its
 * answer ignored; the client's request neither waits for it nor fails with
 * it (proxy/mirror.h). */
struct route_mirror {
	char *url;            /* NULL: off; else an http(s) URL that may hold
	                         $request_uri, $uri, $args, $host (url_check_mirror) */
	char *host;           /* NULL: url's host without port; else the Host sent */
	bool no_request_body; /* mirror-request-body off (JSON "request_body": false) */
};

/* proxy-next-upstream: when a failed attempt moves on to another endpoint
 * (nginx proxy_next_upstream). JSON: an array of the names below in this
 * order, [] for "off"; absent: ["error","timeout"]. */
enum route_next_upstream {
	ROUTE_NEXT_ERROR = 1u << 0,          /* "error": connect, send or head read failed */
	ROUTE_NEXT_TIMEOUT = 1u << 1,        /* "timeout": connect or head read timed out */
	ROUTE_NEXT_INVALID_HEADER = 1u << 2, /* "invalid_header": bad response head */
	ROUTE_NEXT_HTTP_500 = 1u << 3,
	ROUTE_NEXT_HTTP_502 = 1u << 4,
	ROUTE_NEXT_HTTP_503 = 1u << 5,
	ROUTE_NEXT_HTTP_504 = 1u << 6,
	ROUTE_NEXT_HTTP_403 = 1u << 7,
	ROUTE_NEXT_HTTP_404 = 1u << 8,
	ROUTE_NEXT_HTTP_429 = 1u << 9,
	ROUTE_NEXT_NON_IDEMPOTENT = 1u << 10 /* POST, LOCK, PATCH retried after being sent */
};
#define ROUTE_NEXT_DEFAULT (ROUTE_NEXT_ERROR | ROUTE_NEXT_TIMEOUT)
#define ROUTE_NEXT_COUNT 11

/* The name of bit i (0..ROUTE_NEXT_COUNT-1) of enum route_next_upstream,
 * static storage. */
/* The JSON name of a backend protocol ("HTTP", "GRPCS"...). */
const char *route_protocol_name(enum route_protocol p);
const char *route_next_upstream_name(int i);

/* The bit of the condition named by s[0..len) ("http_503"...), or 0 when
 * the name is unknown ("off" is not a condition). */
uint32_t route_next_upstream_bit(const char *s, size_t len);

/* custom-http-errors codes: 300..599 (the range nginx's error_page takes). */
#define ROUTE_CUSTOM_ERROR_MIN 300
#define ROUTE_CUSTOM_ERROR_MAX 599
#define ROUTE_CUSTOM_ERROR_WORDS 5 /* 64-bit words for 300 bits */

/* Everything the proxy does for a matched route besides picking a backend. */
struct route_policy {
	uint32_t connect_timeout_ms; /* 5000 */
	uint32_t read_timeout_ms;    /* 60000: between two reads from the upstream */
	uint32_t send_timeout_ms;    /* 60000: between two writes to the upstream */
	int64_t body_limit;          /* bytes; 1048576; 0 = unlimited; over it: 413 */
	/* proxy-buffer-size: the largest upstream response head in bytes, status
	 * line and blank line included (4096, ROUTE_HEAD_MAX_MIN..ROUTE_HEAD_MAX_MAX);
	 * a longer one: 502, as nginx's "upstream sent too big header" */
	uint32_t upstream_head_max;
	/* proxy-next-upstream: enum route_next_upstream bits (ROUTE_NEXT_DEFAULT);
	 * -tries: attempts in all, the first included (3; 0: no limit);
	 * -timeout: time from the first attempt after which none starts (0: no limit) */
	uint32_t next_upstream;
	uint32_t next_upstream_tries;
	uint32_t next_upstream_timeout_ms;
	enum route_protocol backend_protocol;
	bool ssl_redirect;            /* plain-HTTP requests get 308 to https (resolved) */
	bool preserve_trailing_slash; /* keep a trailing '/' in that redirect */
	/* use-port-in-redirects: the ssl-redirect Location names the proxy's HTTPS
	 * listen port, a from-to-www one the port the request arrived on */
	bool port_in_redirects;
	char *upstream_vhost;     /* NULL: Host passes unchanged */
	char *x_forwarded_prefix; /* NULL: no X-Forwarded-Prefix */
	char *rewrite_target;     /* NULL: path unchanged; may hold $1..$9 */
	uint16_t redirect_code;   /* 0: none; else 300..308 (see route_validate) to redirect_url,
	                             or to redirect_host */
	char *redirect_url;
	/* from-to-www-redirect: NULL; else (with redirect_code, without
	 * redirect_url) every request is redirected to the same scheme, this
	 * host, the port of the request's Host header and the request target */
	char *redirect_host;
	/* A fixed answer made by the proxy without contacting the upstream
	 * (snippet "return CODE text"): 0: none; else 200..599 but not a
	 * redirect code, with return_body (NULL: empty; at most
	 * ROUTE_RETURN_BODY_MAX bytes) as text/plain. */
	uint16_t return_code;
	char *return_body;
	char *app_root; /* NULL: none; else requests for exactly "/" get 302 here */
	/* custom-http-errors: bit (code - ROUTE_CUSTOM_ERROR_MIN) is set for each
	 * code whose answer (from the upstream, or the proxy's own 502/503/504
	 * when the upstream cannot answer) is replaced by the route's error_backend's answer
	 * to a request for "/" carrying X-Code and its companions; none: off */
	uint64_t custom_errors[ROUTE_CUSTOM_ERROR_WORDS];
	enum route_affinity affinity;
	enum route_affinity_mode affinity_mode;
	struct route_cookie cookie;
	char *hash_by; /* upstream-hash-by template, e.g. "$remote_addr"; NULL: none */
	/* upstream-hash-by-subset: the key picks a subset of hash_by_subset_size
	 * endpoints (3), and a random endpoint of it serves the request */
	bool hash_by_subset;
	uint32_t hash_by_subset_size;
	/* proxy-redirect-from/-to: a Location or Refresh (its url=) of the
	 * upstream's response that starts with from gets that prefix replaced by
	 * to (case-sensitive). Both NULL: unchanged; else both set. */
	char *proxy_redirect_from;
	char *proxy_redirect_to;
	/* proxy-cookie-domain "FROM TO": a Domain attribute of the upstream's
	 * Set-Cookie equal to from (case-insensitive, a leading '.' ignored on
	 * both) becomes to. proxy-cookie-path "FROM TO": a Path attribute that
	 * starts with from (case-sensitive) gets that prefix replaced by to. Each
	 * pair both NULL (off) or both set. */
	char *proxy_cookie_domain_from;
	char *proxy_cookie_domain_to;
	char *proxy_cookie_path_from;
	char *proxy_cookie_path_to;
	enum route_balance balance;
	size_t nallow; /* whitelist-source-range: when non-empty, others get 403 */
	struct route_cidr *allow;
	size_t ndeny; /* denylist-source-range: these get 403 */
	struct route_cidr *deny;
	uint32_t limit_connections; /* 0: none; per client IP, per replica */
	uint32_t limit_rps;         /* 0: none; per client IP, per replica; over it: 503 */
	uint32_t limit_rpm;         /* 0: none; per client IP and minute, per replica; 503 */
	uint32_t limit_burst;       /* 5: limit_rps and limit_rpm allow rate x this at once */
	size_t nlimit_allow;        /* limit-allowlist: clients exempt from the three limits */
	struct route_cidr *limit_allow;
	/* satisfy any: with allow non-empty, a client inside it skips auth and
	 * ext_auth, one outside is let through by them (not refused 403 for
	 * being outside); deny still refuses. false: all checks must pass. */
	bool satisfy_any;
	struct route_cors cors;
	uint32_t ws_idle_timeout_ms;  /* 3600000 (resolved, see top of file) */
	uint32_t ws_max_lifetime_ms;  /* 0: none */
	uint32_t ws_ping_interval_ms; /* 0: off */
	uint32_t drain_window_ms;     /* 30000 */
	bool request_base;            /* set X-Request-Base: scheme://host/prefix */
	bool origin_rewrite;          /* rewrite Origin and Referer to the upstream host */
	bool access_log;              /* true: its requests are logged (enable-access-log) */
	size_t nrequest_headers;
	struct route_header *request_headers;
	size_t nresponse_headers;
	struct route_header *response_headers;
	size_t nadd_headers; /* nginx add_header, after response_headers */
	struct route_add_header *add_headers;
	size_t nhide_headers; /* response header names to remove */
	char **hide_headers;
	struct route_auth auth;         /* 401 unless the request carries valid credentials */
	struct route_ext_auth ext_auth; /* forward authentication (auth-url) */
	struct route_backend_tls backend_tls;
	struct route_mirror mirror; /* request mirroring (mirror-target) */
	struct route_fastcgi fastcgi;
	size_t nrewrites; /* snippet rewrites, in order (struct route_rewrite) */
	struct route_rewrite *rewrites;
	/* proxy-request-buffering: false (the table's default; the controller
	 * writes ingress-nginx's on); true: a request body is read before the
	 * upstream is contacted, up to ROUTE_REQUEST_BUFFER_MAX bytes in memory,
	 * then the rest streams. proxy-buffering: false; true: the response is
	 * read ahead of the client up to ROUTE_RESPONSE_BUFFER_MAX bytes. */
	bool request_buffering;
	bool response_buffering;
	/* references held by routes (route_policy_new/_ref/_unref); 0 in a
	 * policy that is not on the heap. Not part of the policy's value. */
	unsigned refs;
};

/* A route's indexes into its table's arrays live here, not in its policy,
 * so that one policy can serve routes of different tables (JSON: the
 * policy's "error_backend" and "backend_tls":{"profile"}). */
struct route {
	char *path; /* Exact/Prefix: begins with '/'; Regex: the pattern */
	enum route_match match;
	int backend; /* index into route_table.backends; -1: none (redirect-only route) */
	/* custom-http-errors: index into backends whose answer replaces the
	 * codes of policy->custom_errors; -1: such answers become 404 */
	int error_backend;
	/* index into route_table.backend_tls (used when policy->backend_protocol
	 * is HTTPS); -1: no verification, no client certificate, TLS 1.2 and 1.3 */
	int backend_tls;
	char *source; /* "namespace/name" of the Ingress it came from (logs, metrics) */
	/* Never NULL in a table. Shared: routes with equal policies may hold the
	 * same one (route_policy_ref), so nothing changes a policy a table holds. */
	struct route_policy *policy;
	struct route_canary canary;
};

/* auth-tls-verify-client; JSON "off", "on", "optional", "optional_no_ca". */
enum route_verify_client {
	ROUTE_VERIFY_OFF = 0,
	ROUTE_VERIFY_ON = 1,            /* a certificate the CA verifies is required */
	ROUTE_VERIFY_OPTIONAL = 2,      /* none, or one the CA verifies */
	ROUTE_VERIFY_OPTIONAL_NO_CA = 3 /* none, or any (chain errors but expiry let through) */
};

/* Client certificate authentication of a host (ingress-nginx auth-tls-*,
 * server level: it covers every route of the host). Asked for in the TLS
 * handshake of a connection whose SNI selects the host; checked on every
 * HTTPS request whose Host selects it. */
struct route_client_auth {
	int ca; /* index into route_table.cas; -1: no client certificate asked */
	enum route_verify_client verify; /* "on" */
	uint32_t verify_depth;           /* 1: chain length past the client certificate */
	char *error_page;                /* NULL: 400; else a 302 to this URL */
	bool pass_certificate;           /* send the URL-encoded PEM as ssl-client-cert */
	char *match_cn; /* NULL; else a PCRE2 pattern (case-sensitive, not anchored) the
	                   subject DN (RFC 2253, "CN=a,O=b") must match, else 403 */
};

/* One virtual host. Routes are in match order: the proxy takes the first
 * route that matches (the controller sorts them: longest path first, Exact
 * before Prefix on a tie, regex routes as ingress-nginx orders them). */
struct route_host {
	char *name; /* lowercase, no port; "" matches any host; "*.a.b" matches one label */
	int cert;   /* index into route_table.certs; -1: the default certificate */
	struct route_client_auth client_auth;
	char *ssl_ciphers; /* NULL: settings.ssl_ciphers (ssl-ciphers annotation, server level) */
	size_t nroutes;
	struct route *routes;
};

struct route_endpoint {
	char *address; /* IPv4 or IPv6 literal */
	uint16_t port;
	uint32_t weight; /* >= 1 */
	bool draining;   /* terminating but still serving: no new requests, tunnels drained */
};

struct route_backend {
	char *name; /* "namespace/service:port", unique in the table */
	size_t nendpoints;
	struct route_endpoint *endpoints; /* sorted by address, then port */
	/* A Service of type ExternalName: the DNS name the proxy resolves (then
	 * endpoints is empty) and the port it connects to; NULL and 0 else. */
	char *external_name;
	uint16_t external_port;
};

#define ROUTE_CERT_DIGEST_LEN 32

struct route_cert {
	char *name;     /* "namespace/secret" */
	char *cert_pem; /* certificate chain, PEM */
	char *key_pem;  /* private key, PEM */
	/* route_cert_digest of the pair, set by the controller's compile so the
	 * publisher knows a certificate without reading its PEM again; not in
	 * the JSON. All zero: not computed. */
	unsigned char digest[ROUTE_CERT_DIGEST_LEN];
};

/* Certificate authorities a client certificate may chain to (the ca.crt of
 * an auth-tls-secret), and the revocation lists of its ca.crl. Hosts that
 * name CAs with the same content share one entry. */
struct route_ca {
	char *name;    /* "namespace/secret" of the first Ingress that named it */
	char *ca_pem;  /* one or more certificates, PEM */
	char *crl_pem; /* NULL: none; else one or more CRLs, PEM */
};

/* A client TLS profile for HTTPS upstreams (proxy-ssl-secret and its
 * companions); the proxy builds one client SSL_CTX per entry. */
struct route_backend_tls_profile {
	char *name;            /* "namespace/secret" or "" (errors) */
	bool verify;           /* verify the upstream's certificate against ca_pem */
	uint32_t verify_depth; /* 1: leaf signed by a CA of ca_pem; 0..100 */
	char *protocols;       /* NULL: "TLSv1.2 TLSv1.3"; else names among TLSv1, TLSv1.1,
	                          TLSv1.2, TLSv1.3 separated by spaces */
	char *ciphers;  /* NULL: OpenSSL's default; else an OpenSSL cipher list (TLS <= 1.2) */
	char *ca_pem;   /* NULL: none (then verify is false); trusted CAs, PEM */
	char *cert_pem; /* NULL: no client certificate; else with key_pem */
	char *key_pem;
};

/* ssl-passthrough: TLS connections whose SNI equals host are relayed as raw
 * TCP to the backend, never decrypted. */
struct route_passthrough {
	char *host;
	int backend;
	/* The Ingress's allowlist-source-range / denylist-source-range, checked
	 * against the client address before anything is relayed: a refused
	 * client's connection is closed. */
	size_t nallow;
	struct route_cidr *allow;
	size_t ndeny;
	struct route_cidr *deny;
};

struct route_settings {
	size_t ntrusted_proxies; /* X-Forwarded-* from other peers are replaced */
	struct route_cidr *trusted_proxies;
	uint32_t max_header_bytes; /* 32768; over it: 431 */
	/* 0: none; else the longest line of a request head, CRLF included
	 * (large-client-header-buffers' size, as nginx): a longer request line
	 * gets 414, a longer header line 400 */
	uint32_t max_header_line;
	/* proxy-buffer-size of the ConfigMap: policy.upstream_head_max for the
	 * requests no route matches (the default backend); 4096 */
	uint32_t upstream_head_max;
	uint32_t header_timeout_ms;    /* 10000; slow request head: 408 */
	uint32_t keepalive_timeout_ms; /* 75000: idle client keep-alive */
	uint32_t upstream_keepalive;   /* 32: idle connections kept per endpoint */
	uint32_t drain_window_ms;      /* 30000: WebSocket drain on proxy shutdown */
	uint32_t max_connections; /* 16384: client connections per worker; 0: file limit only */
	/* The real client address (ingress-nginx use-forwarded-headers & co). */
	bool use_forwarded_headers;      /* false: trust proxy_real_ip_cidr peers' X-Forwarded-* */
	bool compute_full_forwarded_for; /* false: X-Forwarded-For keeps the chain */
	bool use_proxy_protocol;         /* false: every connection starts with a PROXY header */
	char *forwarded_for_header;      /* "X-Forwarded-For": where the client address is read */
	size_t nproxy_real_ip_cidr;      /* peers believed for forwarded addresses */
	struct route_cidr *proxy_real_ip_cidr;
	/* Strict-Transport-Security on HTTPS responses. */
	bool hsts;                    /* true */
	uint32_t hsts_max_age;        /* 31536000 seconds */
	bool hsts_include_subdomains; /* true */
	bool hsts_preload;            /* false */
	/* TLS of client connections (ingress-nginx ssl-protocols, ssl-ciphers). */
	char *ssl_protocols; /* NULL: "TLSv1.2 TLSv1.3" */
	char *ssl_ciphers;   /* NULL: ROUTE_DEFAULT_SSL_CIPHERS (TLS <= 1.2 only) */
	/* Refused with 403 before any route (block-cidrs, block-user-agents,
	 * block-referers): client addresses, and User-Agent / Referer patterns
	 * (route_validate_block_pattern). */
	size_t nblock_cidrs;
	struct route_cidr *block_cidrs;
	size_t nblock_user_agents;
	char **block_user_agents;
	size_t nblock_referers;
	char **block_referers;
	/* The access log (ingress-nginx disable-access-log, log-format-upstream,
	 * log-format-escape-json / -none, skip-access-log-urls). */
	bool access_log;         /* true: one line per request on standard output */
	char *access_log_format; /* NULL: ingress-nginx's default (common/log_format.h) */
	int access_log_escape;   /* ROUTE_LOG_ESCAPE_* */
	size_t naccess_log_skip; /* request URIs (whole, case ignored) not logged */
	char **access_log_skip;
	/* Response compression (ingress-nginx use-gzip and its companions). */
	bool use_gzip;            /* false */
	uint32_t gzip_level;      /* 1: zlib level, 1..9 */
	uint32_t gzip_min_length; /* 256: a response whose Content-Length is below it is sent
	                             as is (one without Content-Length may be compressed) */
	char *gzip_types;         /* ROUTE_GZIP_TYPES_DEFAULT: lowercase media types (type/subtype)
	                             separated by single spaces, or "*" for any; text/html always */
	/* Brotli (ingress-nginx enable-brotli and its companions); preferred over
	 * gzip when the client accepts both. */
	bool enable_brotli;         /* false */
	uint32_t brotli_level;      /* 4: quality, 0..11 */
	uint32_t brotli_min_length; /* 20: as gzip_min_length */
	char *brotli_types;         /* ROUTE_BROTLI_TYPES_DEFAULT: as gzip_types */
	/* The Server response header (ingress-nginx server-tokens,
	 * allow-backend-server-header). server_tokens false: no Server header
	 * of weir's own; true: "Server: weir/<version>" on every answer whose
	 * upstream's Server is not passed on. allow_backend_server_header
	 * false: an upstream's Server header is dropped (nginx's proxy_hide_header
	 * default). Both false by default. */
	bool server_tokens;
	bool allow_backend_server_header;
	/* limit-req-status-code, limit-conn-status-code: the answer to a
	 * request over limit-rps/limit-rpm, and over limit-connections (503,
	 * 400..599) */
	uint32_t limit_req_status;
	uint32_t limit_conn_status;
	/* HTTP/2 from clients (ingress-nginx use-http2,
	 * http2-max-concurrent-streams): offered by ALPN on HTTPS (true); the
	 * streams one connection may have open (128). http2_cleartext: HTTP/2
	 * with prior knowledge (h2c) on the HTTP port too (false; weir's own) */
	bool use_http2;
	uint32_t http2_max_concurrent_streams;
	bool http2_cleartext;
	/* http2-max-field-size, http2-max-header-size (ingress-nginx keys,
	 * which newer nginx folds into large-client-header-buffers): on an
	 * HTTP/2 stream, the longest header name or value once decoded (0:
	 * max_header_line when set, else no cap), and the whole decoded header
	 * list as SETTINGS_MAX_HEADER_LIST_SIZE counts it, 32 bytes per field
	 * included (0: max_header_bytes). Over either: 431 for that stream. */
	uint32_t http2_max_field_size;
	uint32_t http2_max_header_size;
};

/* The most http2_max_header_size may be (1 MiB, the proxy's cap on any
 * request head), and http2_max_field_size (64 KiB: libnghttp2 refuses a
 * longer string with a connection error). */
#define ROUTE_HTTP2_HEADER_MAX 1048576u
#define ROUTE_HTTP2_FIELD_MAX 65536u

enum { ROUTE_LOG_ESCAPE_DEFAULT = 0, ROUTE_LOG_ESCAPE_JSON = 1, ROUTE_LOG_ESCAPE_NONE = 2 };

/* ingress-nginx's default ssl-ciphers. */
#define ROUTE_DEFAULT_SSL_CIPHERS                                                                  \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"   \
	"DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256"

struct route_table {
	uint32_t version;    /* ROUTE_TABLE_VERSION */
	uint64_t generation; /* set by the publisher, grows with each publish */
	struct route_settings settings;
	size_t nhosts; /* sorted by name, unique */
	struct route_host *hosts;
	size_t nbackends;
	struct route_backend *backends;
	size_t ncerts;
	struct route_cert *certs;
	size_t ncas;
	struct route_ca *cas;
	int default_cert;    /* index into certs; -1: the proxy's built-in self-signed one */
	int default_backend; /* index into backends; -1: unmatched requests get 404 */
	size_t npassthrough;
	struct route_passthrough *passthrough;
	size_t nbackend_tls;
	struct route_backend_tls_profile *backend_tls;
};

/* The nginx variables an expanded header value may name, as the proxy
 * fills them per request: "host" (the request's Host without port, lower
 * case), "scheme" ("http" or "https" as the client connected),
 * "request_uri" (the request target as received), "remote_addr" (the real
 * client address), "request_id" (weir's request ID), "req_id" (the
 * X-Request-ID weir sends upstream: a trusted peer's, else request_id) and
 * "http_<name>" (the request headers named <name> with '_' for '-', any
 * case, joined with ", "; empty when absent). */
enum route_var {
	ROUTE_VAR_NONE = 0, /* not a variable weir expands */
	ROUTE_VAR_HOST,
	ROUTE_VAR_SCHEME,
	ROUTE_VAR_REQUEST_URI,
	ROUTE_VAR_REMOTE_ADDR,
	ROUTE_VAR_REQUEST_ID,
	ROUTE_VAR_REQ_ID,
	ROUTE_VAR_HTTP, /* http_<name>: the header name follows "http_" */
};

/* The variables a FastCGI param value (struct route_fastcgi) may name
 * besides those of enum route_var, as nginx fills them: "uri" and
 * "document_uri" (the path sent, after rewrite-target, percent-decoded),
 * "fastcgi_script_name" (that path, plus the index when it ends in '/'),
 * "fastcgi_path_info" (empty), "args" and "query_string" (the query sent),
 * "is_args" ("?" when there is a query), "request_method", "content_type",
 * "content_length", "server_name" (as "host"), "server_port",
 * "server_addr", "server_protocol", "remote_port", "https" ("on" over TLS,
 * else empty) and "document_root" and "realpath_root" ("/etc/nginx/html":
 * ingress-nginx sets no root, so nginx's built-in one). */
enum route_fastcgi_var {
	ROUTE_FCGI_VAR_NONE = 0,
	ROUTE_FCGI_VAR_URI,
	ROUTE_FCGI_VAR_SCRIPT_NAME,
	ROUTE_FCGI_VAR_PATH_INFO,
	ROUTE_FCGI_VAR_ARGS,
	ROUTE_FCGI_VAR_IS_ARGS,
	ROUTE_FCGI_VAR_METHOD,
	ROUTE_FCGI_VAR_CONTENT_TYPE,
	ROUTE_FCGI_VAR_CONTENT_LENGTH,
	ROUTE_FCGI_VAR_SERVER_NAME,
	ROUTE_FCGI_VAR_SERVER_PORT,
	ROUTE_FCGI_VAR_SERVER_ADDR,
	ROUTE_FCGI_VAR_SERVER_PROTOCOL,
	ROUTE_FCGI_VAR_REMOTE_PORT,
	ROUTE_FCGI_VAR_HTTPS,
	ROUTE_FCGI_VAR_DOCUMENT_ROOT,
};

/* The nginx document root ingress-nginx leaves in place ($document_root). */
#define ROUTE_FASTCGI_DOCUMENT_ROOT "/etc/nginx/html"

/* Which FastCGI-only variable name[0..len) is (ROUTE_FCGI_VAR_NONE for the
 * names of enum route_var and for unknown ones). */
enum route_fastcgi_var route_fastcgi_var_lookup(const char *name, size_t len);

/* The reference starting at s[0] == '$' in a template: "$name" (name
 * characters [A-Za-z0-9_], as many as follow) or "${name}". Sets *name and
 * *name_len (borrowed from s) and returns the bytes the reference spans, or
 * 0 when no name follows or "${" is not closed. */
size_t route_template_var(const char *s, const char **name, size_t *name_len);

/* Which variable name[0..len) is (ROUTE_VAR_NONE when weir does not expand
 * it; "http_" alone is none). */
enum route_var route_var_lookup(const char *name, size_t len);

/* Allocate an empty table with the default settings, version and
 * default_cert/default_backend at -1. Caller frees with route_table_free().
 * Returns NULL on out-of-memory. */
struct route_table *route_table_new(void);

/* Free a table and everything it owns. NULL is fine. */
void route_table_free(struct route_table *table);

/* Client auth defaults (ca -1, verify on, verify_depth 1) into caller
 * storage; _cleanup frees its strings and resets it to those defaults. */
void route_client_auth_init(struct route_client_auth *a);
void route_client_auth_cleanup(struct route_client_auth *a);

/* Fill caller storage with the defaults listed on each field above (owned
 * strings are NULL or strdup'd defaults). Release with route_policy_cleanup(). */
void route_policy_init(struct route_policy *policy);
void route_policy_cleanup(struct route_policy *policy);
/* A policy of its own for a route: route_policy_init'ed on the heap, one
 * reference; NULL when out of memory. */
struct route_policy *route_policy_new(void);
/* One more reference to p; returns p. */
struct route_policy *route_policy_ref(struct route_policy *p);
/* Drops a reference (NULL: nothing); the last one cleans up and frees p. */
void route_policy_unref(struct route_policy *p);
/* custom-http-errors: whether code is in the policy's list; set one code
 * (ROUTE_CUSTOM_ERROR_MIN..MAX, others ignored); whether any is set. */
bool route_custom_error_has(const struct route_policy *policy, int code);
void route_custom_error_set(struct route_policy *policy, int code);
bool route_custom_errors_any(const struct route_policy *policy);

/* Free what a route_ext_auth owns and zero it (route_policy_cleanup calls it). */
void route_ext_auth_cleanup(struct route_ext_auth *auth);

/* Free what a backend TLS profile owns and zero it (caller storage). */
void route_backend_tls_profile_cleanup(struct route_backend_tls_profile *profile);

/* Parse and structurally validate a JSON table of len bytes. On success
 * returns 0 and *out owns a new table (caller frees). On failure returns a
 * negative WEIR_E* code, *out is untouched and err (size errlen) holds one
 * line naming the JSON path of the problem, e.g.
 * "hosts[3].routes[0].backend: index 9 out of range". Checks: version,
 * keys and types, indexes in range, CIDRs parse, ports 1..65535, host and
 * backend names unique, and every value by the rules of route_validate.h
 * (the ones the controller checked before writing). Regexes are compiled
 * (route_regex_compile) and PEM loaded (route_validate_cert) by the proxy
 * after parsing, not here. */
int route_table_parse(const char *json, size_t len, struct route_table **out, char *err,
                      size_t errlen);

/* Serialize a table as JSON with a stable key order, so the same table gives
 * byte-identical text. On success returns 0 and *out (caller frees) holds
 * *len bytes plus a terminating NUL. */
int route_table_serialize(const struct route_table *table, char **out, size_t *len);

/* A version 2 index may name its hosts, backends or certs through lists:
 * "host_lists", "backend_lists", "cert_lists" are arrays of ids of list
 * shards, each a JSON array of the shard ids of consecutive positions
 * (docs/route-table.md "Id lists"). ROUTE_INDEX_KINDS arrays: hosts,
 * backends, certs, in that order. */
#define ROUTE_INDEX_KINDS 3

/* One list shard of an index: its id and the positions it gives. */
struct route_index_list {
	char id[ROUTE_SHARD_ID_LEN + 1];
	size_t start, n;
};

/* The shard ids a version 2 index names (owned strings), with the lists
 * it named them through expanded. */
struct route_index {
	size_t nhosts;
	char **hosts; /* one per host, in the index's order */
	size_t nbackends;
	char **backends; /* one per backends slot; "" for a hole */
	size_t ncerts;
	char **certs;  /* one per certs slot; "" for a hole */
	char *ids_mem; /* when set, every id above lies in it (one allocation) */
	/* Per kind, the lists the index named the array through (none: the
	 * ids were in the index itself). */
	struct route_index_list *lists[ROUTE_INDEX_KINDS];
	size_t nlists[ROUTE_INDEX_KINDS];
};

/* Where a parser gets the list shards an index names (kind: 0 hosts, 1
 * backends, 2 certs). read either sets *text (malloc'd, *len bytes, the
 * file's bytes already checked against id; the parser frees it) or *ids
 * and *n (ids already checked, borrowed until the parse returns). Returns
 * 0, or WEIR_E* with err saying why. */
struct route_list_reader {
	int (*read)(void *arg, int kind, const char *id, char **text, size_t *len,
	            char *const **ids, size_t *n, char *err, size_t errlen);
	void *arg;
};

/* A reader of list shards from files: arg is the directory holding
 * ROUTE_SHARD_DIR (the publish directory); a file whose bytes do not have
 * its name's SHA-256 is refused. */
int route_list_read_file(void *dir, int kind, const char *id, char **text, size_t *len,
                         char *const **ids, size_t *n, char *err, size_t errlen);

/* The text of a list shard naming ids[0..n) (caller frees *out,
 * deterministic). */
int route_id_list_serialize(char *const *ids, size_t n, char **out, size_t *len);

/* Free an index and its ids. NULL is fine. */
void route_index_free(struct route_index *ix);

/* The shard id of a shard's bytes: their SHA-256 in lowercase hex. */
void route_shard_id(const char *text, size_t len, char id[ROUTE_SHARD_ID_LEN + 1]);

/* True when s is a shard id: ROUTE_SHARD_ID_LEN lowercase hex digits. */
bool route_shard_id_valid(const char *s);

/* As route_table_parse, but a version 2 index is accepted too when index is
 * not NULL: then *out holds everything but hosts (nhosts 0), backends and
 * certs (nbackends and ncerts zeroed entries, one per slot, to be filled
 * from the shards), its version
 * is ROUTE_INDEX_VERSION and *index (caller frees with route_index_free)
 * the shard ids; for a version 1 table *index is NULL. Without index, a
 * version 2 document is refused (WEIR_EVERSION) with a message saying so. */
int route_table_parse_any(const char *json, size_t len, struct route_table **out,
                          struct route_index **index, char *err, size_t errlen);

/* As route_table_parse_any, and an index naming id lists gets them from
 * lists (NULL: such an index is refused, WEIR_EINVAL, saying so). */
int route_table_parse_index(const char *json, size_t len, const struct route_list_reader *lists,
                            struct route_table **out, struct route_index **index, char *err,
                            size_t errlen);

/* Parse one host shard (a version 1 hosts[] element) into caller storage
 * *out (released with route_host_cleanup). Every value is validated as in
 * route_table_parse except the indexes into the index's arrays, which only
 * must not be below -1: check them with route_host_check_refs against each
 * index the shard is used with. Returns 0 or WEIR_E* with err naming the
 * JSON path ("host.routes[0].path: ..."). */
int route_host_shard_parse(const char *json, size_t len, struct route_host *out, char *err,
                           size_t errlen);

/* Parse one certificate shard (a version 1 certs[] element) into *out
 * (released with route_cert_cleanup). Returns 0 or WEIR_E* with err. */
int route_cert_shard_parse(const char *json, size_t len, struct route_cert *out, char *err,
                           size_t errlen);

/* Parse one backend shard (a version 1 backends[] element) into *out
 * (released with route_backend_cleanup). Returns 0 or WEIR_E* with err. */
int route_backend_shard_parse(const char *json, size_t len, struct route_backend *out, char *err,
                              size_t errlen);

/* Free what a host, a backend or a certificate owns and reset it (caller
 * storage). */
void route_host_cleanup(struct route_host *h);
void route_backend_cleanup(struct route_backend *b);
/* Same name, endpoints (address, port, weight, draining, in order) and
 * external name and port. */
bool route_backend_equal(const struct route_backend *a, const struct route_backend *b);
void route_cert_cleanup(struct route_cert *c);

/* The highest index a host refers to in each array of its table (-1:
 * none), so a shard can be checked against a new index in O(1). */
struct route_host_refs {
	int backend; /* routes[].backend, routes[].canary.backend, routes[].error_backend */
	int cert;
	int ca;          /* client_auth.ca */
	int backend_tls; /* routes[].backend_tls */
};
void route_host_refs(const struct route_host *h, struct route_host_refs *out);

/* 0 when every index of refs lies inside t's arrays; else WEIR_EINVAL and
 * err names the first one out of range. */
int route_host_check_refs(const struct route_host_refs *refs, const struct route_table *t,
                          char *err, size_t errlen);

/* The version 2 index of table (its hosts and certs are not read) naming
 * the shards of ix, serialized as route_table_serialize does (caller
 * frees *out). A kind with lists in ix (nlists > 0) is written as its
 * lists' ids, not its shard ids. */
int route_index_serialize(const struct route_table *table, const struct route_index *ix, char **out,
                          size_t *len);

/* One host, backend or certificate as the text of its shard (caller frees
 * *out): deterministic, as route_table_serialize. */
int route_host_serialize(const struct route_host *host, char **out, size_t *len);
int route_backend_serialize(const struct route_backend *backend, char **out, size_t *len);
int route_cert_serialize(const struct route_cert *cert, char **out, size_t *len);
/* A policy as the text a route's "policy" member holds (without the
 * route's indexes), in {"policy":{...}} (caller frees *out). Two policies
 * with the same text are the same to the proxy, which reads nothing else
 * of them: the controller shares one between such routes. */
int route_policy_serialize(const struct route_policy *policy, char **out, size_t *len);

/* Parse "a.b.c.d/n", "x::y/n" or a bare address. Returns 0 or WEIR_EINVAL. */
int route_cidr_parse(const char *s, struct route_cidr *out);

/* Format a CIDR as text into buf (at least 64 bytes). */
void route_cidr_format(const struct route_cidr *cidr, char *buf, size_t buflen);

/* True when the address (4 or 16 bytes, network order, per family) lies in
 * the network. An IPv4-mapped IPv6 address matches IPv4 networks. */
bool route_cidr_contains(const struct route_cidr *cidr, int family, const uint8_t *addr);

#endif
