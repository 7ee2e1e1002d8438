/* tests/unit/cross/table_accept_test.c - property test of the promise
 * "whatever the controller publishes, the proxy accepts": many random
 * snapshots, with Ingresses, annotations, Services and Secrets made of
 * hostile strings (control bytes, CR/LF, ';', quotes, "..", bytes that are
 * not UTF-8, very long, empty), go through the controller's compile and
 * route_table_serialize; the bytes go through the proxy's route_table_parse
 * and table_new (regexes compiled, certificates loaded), which must accept
 * them every time. Diagnostics must stay one clean line each. The same
 * tables also go through the version 2 publisher (one publisher for the
 * whole run, so slots, holes and compaction churn) and the proxy's sharded
 * load (the previous table kept alive, so cached shards are reused), which
 * must accept them and serve the same hosts as version 1.
 *
 * Seeded PRNG, fixed iteration count; WEIR_PROPERTY_SEED=N replays a seed,
 * WEIR_PROPERTY_ITERATIONS=N changes the count. A failure prints the seed
 * and iteration. Links both the controller and the proxy library: the
 * programs never include each other's code, but this test joins them. */
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "compile.h"
#include "publish.h"
#include "error.h"
#include "route_table.h"
#include "route_validate.h"
#include "store.h"
#include "table.h"

#define DEFAULT_SEED 20261207u
#define DEFAULT_ITERATIONS 800

#include "test_cert.h"

/* xorshift64*: small, fast, and the same sequence on every machine. */
static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static size_t pick(size_t n)
{
	return (size_t)(rnd() % n);
}

static int chance(int percent)
{
	return (int)pick(100) < percent;
}

/* Pieces hostile strings are made of, and plausible values that lead the
 * compiler deeper (a valid duration, a CIDR, a header line...). */
static const char *const FRAGMENTS[] = {
    "",
    "..",
    ".",
    ";",
    "\"",
    "'",
    "\r\n",
    "\n",
    "\r",
    "\t",
    " ",
    "\x01",
    "\x1b[31m",
    "\x7f",
    "\xc3\xa9",         /* é */
    "\xe2\x82\xac",     /* € */
    "\xf0\x9f\x98\x80", /* an emoji */
    "\xff",
    "\xc0\xaf",     /* overlong '/' */
    "\xed\xa0\x80", /* a surrogate */
    "\xe2\x82",     /* cut short */
    "$",
    "$remote_addr",
    "$arg_x",
    "$foo",
    "/",
    "*",
    "*.",
    "-",
    "_",
    ":",
    ",",
    "(",
    ")",
    "[a-",
    "\\",
    "%2F",
    "?",
    "#",
    "=",
    "A",
    "a",
    "0",
    "example",
    ".com",
    "http://",
    "https://",
    "Lax",
    "None",
    "true",
    "cookie",
    "10s",
    "10.0.0.0/8",
    "::1",
    "X-Test: v",
    "Set-Cookie: a=b",
    "HttpOnly",
};
#define NFRAG (sizeof(FRAGMENTS) / sizeof(FRAGMENTS[0]))

static const char *const PLAUSIBLE[] = {
    "true",
    "false",
    "cookie",
    "balanced",
    "persistent",
    "ewma",
    "HTTPS",
    "60",
    "5s",
    "1500ms",
    "1m",
    "0",
    "512k",
    "100",
    "50",
    "301",
    "308",
    "10.0.0.0/8, 192.168.0.1",
    "2001:db8::/32",
    "alias.example.com",
    "*.alias.example.com",
    "X-A: 1\nX-B: two words",
    "X-Hidden, Server",
    "$remote_addr$arg_room",
    "/app",
    "/",
    "/$1",
    "https://example.com/x",
    "Strict",
    "sticky",
    "X-Canary",
    "web",
    "https://origin.example.com",
    "http://10.0.0.9:4180/oauth2/auth",
    "$remote_user$http_authorization",
};
#define NPLAUS (sizeof(PLAUSIBLE) / sizeof(PLAUSIBLE[0]))

/* A new json string: plausible, hostile pieces glued together, a long run,
 * or raw random bytes (NUL included). */
static json_object *hostile(void)
{
	char buf[9000];
	size_t n = 0;
	switch (pick(6)) {
	case 0:
		return json_object_new_string(PLAUSIBLE[pick(NPLAUS)]);
	case 1: {
		size_t len = chance(50) ? 300 : 5000;
		char c = "a/.;\xc3-"[pick(6)];
		memset(buf, c, len);
		return json_object_new_string_len(buf, (int)len);
	}
	case 2: {
		size_t len = pick(24);
		for (size_t i = 0; i < len; i++)
			buf[i] = (char)pick(256);
		return json_object_new_string_len(buf, (int)len);
	}
	default: {
		size_t k = 1 + pick(6);
		for (size_t i = 0; i < k; i++) {
			const char *f =
			    chance(30) ? PLAUSIBLE[pick(NPLAUS)] : FRAGMENTS[pick(NFRAG)];
			size_t fl = strlen(f);
			if (n + fl >= sizeof(buf))
				break;
			memcpy(buf + n, f, fl);
			n += fl;
		}
		return json_object_new_string_len(buf, (int)n);
	}
	}
}

/* A snippet of directives the controller translates, with arguments made
 * of hostile pieces (quotes, escapes, '$' variables known and unknown,
 * CR/LF, bytes that are not UTF-8), sometimes a block or an unknown
 * directive: whatever it compiles to, the proxy must load. */
static json_object *hostile_snippet(void)
{
	static const char *const dirs[] = {
	    "proxy_set_header",
	    "more_set_input_headers",
	    "more_set_headers",
	    "add_header",
	    "more_clear_headers",
	    "proxy_hide_header",
	    "return",
	    "location",
	    "lua_code",
	    "rewrite",
	};
	static const char *const words[] = {
	    "X-A",
	    "x-b",
	    "'X-C: c'",
	    "\"X-D: $host\"",
	    "$http_x_a",
	    "${scheme}",
	    "$uri",
	    "404",
	    "200",
	    "301",
	    "https://a.example/",
	    "always",
	    "\"a\\\"b\"",
	    "'\\n'",
	    "{",
	    "}",
	    "#",
	    "-s",
	    "X-*",
	    "\"\"",
	    "^/(a|b)(.*)$",
	    "/$2?x=$1",
	    "break",
	    "permanent",
	    "\"(\"",
	};
	char buf[4096];
	size_t n = 0;
	for (size_t d = 1 + pick(4); d > 0; d--) {
		const char *dir = dirs[pick(sizeof(dirs) / sizeof(dirs[0]))];
		int w = snprintf(buf + n, sizeof(buf) - n, "%s", dir);
		n += (size_t)w;
		for (size_t a = pick(4); a > 0 && n < sizeof(buf) - 200; a--) {
			const char *piece = chance(60)
			                        ? words[pick(sizeof(words) / sizeof(words[0]))]
			                        : FRAGMENTS[pick(NFRAG)];
			const char *q = chance(30) ? "\"" : chance(30) ? "'" : "";
			w = snprintf(buf + n, sizeof(buf) - n, " %s%s%s%s", q, piece,
			             chance(30) ? FRAGMENTS[pick(NFRAG)] : "", q);
			n += (size_t)w;
		}
		if (chance(92) && n < sizeof(buf) - 2)
			buf[n++] = ';';
		if (n < sizeof(buf) - 2)
			buf[n++] = chance(50) ? '\n' : ' ';
	}
	return json_object_new_string_len(buf, (int)n);
}

/* Either one of the good values or a hostile string. */
static json_object *one_of(const char *const *good, size_t n, int good_percent)
{
	if (chance(good_percent))
		return json_object_new_string(good[pick(n)]);
	return hostile();
}

/* Annotation keys with values they accept: a key given a good value lets
 * the Ingress reach the table, where the hostile values of other fields
 * (paths, names, strings accepted as text) must still be safe. */
static const struct {
	const char *key;
	const char *good[3];
	const char *bad; /* a near miss the proxy would refuse, or NULL */
} ANN[] = {
    {"affinity", {"cookie"}, NULL},
    {"affinity-canary-behavior", {"sticky", "legacy"}, "Sticky"},
    {"affinity-mode", {"balanced", "persistent"}, NULL},
    {"app-root", {"/app"}, "/a b"},
    {"auth-always-set-cookie", {"true"}, "yes"},
    {"auth-cache-duration", {"200 202 401 5m", "1m"}, "200 5x"},
    {"auth-cache-key", {"$remote_user$http_authorization", "$host$cookie_s"}, "$request_body"},
    {"auth-method", {"GET", "POST"}, "get"},
    {"auth-proxy-set-headers", {"hdrs", "default/hdrs", "hostile-hdrs"}, "other/hdrs"},
    {"auth-request-redirect", {"https://app.example.com/"}, "a\rb"},
    {"auth-response-headers", {"X-Auth-User, X-Auth-Email"}, "X-A, X:B"},
    {"auth-signin",
     {"https://$host/oauth2/start?rd=$escaped_request_uri", "http://login.example.com/"},
     "https://$host/?u=$remote_user"},
    {"auth-signin-redirect-param", {"return_to"}, "r d"},
    {"auth-url",
     {"http://10.0.0.9:4180/oauth2/auth", "https://auth.example.com/check"},
     "ftp://10.0.0.1/"},
    {"auth-tls-error-page", {"https://errors.example.com/x"}, "https://x/\ty"},
    {"auth-tls-match-cn", {"CN=(a|b)$", "CN=x"}, "CN=(a"},
    {"auth-tls-pass-certificate-to-upstream", {"true"}, NULL},
    {"auth-tls-secret", {"good", "default/badpem", "mismatch"}, "we\nb"},
    {"auth-tls-verify-client", {"on", "optional", "optional_no_ca"}, "ON"},
    {"auth-tls-verify-depth", {"2", "0"}, NULL},
    {"backend-protocol", {"HTTPS", "http", "FCGI"}, "GRPC"},
    {"canary", {"false"}, NULL},
    {"canary-by-cookie", {"canary"}, NULL},
    {"canary-by-header", {"X-Canary"}, "X Canary"},
    {"canary-by-header-pattern", {"^v[23]$", "beta|(?i)gamma"}, "(a"},
    {"canary-by-header-value", {"yes"}, "a\rb"},
    {"canary-weight", {"20"}, NULL},
    {"canary-weight-total", {"1000", "50"}, "-1"},
    {"cors-allow-credentials", {"false"}, NULL},
    {"cors-allow-headers", {"X-A, X-B"}, NULL},
    {"cors-allow-methods", {"GET"}, NULL},
    {"cors-allow-origin",
     {"https://origin.example.com"},
     "https://o\x01"
     ""},
    {"cors-expose-headers",
     {"X-Id"},
     "X-\xc0"
     "\xaf"
     ""},
    {"cors-max-age", {"60"}, NULL},
    {"custom-headers", {"hdrs", "default/hdrs", "hostile-hdrs"}, "other/hdrs"},
    {"default-backend", {"web"}, "we\nb"},
    {"denylist-source-range", {"10.0.0.0/8, 2001:db8::/32"}, NULL},
    {"drain-window", {"10s"}, NULL},
    {"fastcgi-index", {"index.php"}, "../index.php"},
    {"fastcgi-params-configmap", {"fcgi", "default/fcgi", "hostile-hdrs"}, "other/hdrs"},
    {"enable-access-log", {"false", "true"}, "off"},
    {"enable-cors", {"true"}, NULL},
    {"force-ssl-redirect", {"true"}, NULL},
    {"hide-headers", {"Server, X-Powered-By"}, "Server, X:Y"},
    {"limit-connections", {"10"}, NULL},
    {"limit-rps", {"5"}, NULL},
    {"load-balance", {"ewma"}, NULL},
    {"origin-rewrite", {"true"}, NULL},
    {"permanent-redirect", {"https://example.com/x"}, "https://x/\ty"},
    {"permanent-redirect-code", {"308"}, NULL},
    {"preserve-trailing-slash", {"true"}, NULL},
    {"proxy-body-size", {"8m", "0"}, NULL},
    {"proxy-buffer-size", {"8k", "1m", "1k"}, "4"},
    {"proxy-connect-timeout", {"5"}, NULL},
    {"proxy-cookie-domain", {"a.example b.example", "off", ".A.example\tb"}, "a b;c"},
    {"proxy-cookie-path", {"/a/ /", "off", "/x/  /y/"}, "/a"},
    {"proxy-next-upstream", {"error timeout http_503", "off"}, "error http_418"},
    {"proxy-next-upstream-timeout", {"10"}, NULL},
    {"proxy-next-upstream-tries", {"5", "0"}, NULL},
    {"proxy-read-timeout", {"3600"}, NULL},
    {"proxy-request-buffering", {"off", "on"}, "true"},
    {"proxy-buffering", {"on", "off"}, "yes"},
    {"proxy-redirect-from", {"http://a/", "default", "/in/"}, "~x"},
    {"proxy-redirect-to", {"/b/", "off", "https://b.example/"}, "a b"},
    {"proxy-send-timeout", {"1500ms"}, NULL},
    {"proxy-ssl-ciphers", {"HIGH:!aNULL", "NOSUCHCIPHER"}, "HIGH;x"},
    {"proxy-ssl-name", {"backend.internal", "10.0.0.1"}, "a b"},
    {"proxy-ssl-protocols", {"TLSv1.3", "TLSv1.2 TLSv1.3"}, "TLSv1.4"},
    {"proxy-ssl-secret", {"default/good", "default/badpem", "default/mismatch"}, "default/we\nb"},
    {"proxy-ssl-server-name", {"on"}, "true"},
    {"proxy-ssl-verify", {"on", "off"}, "On"},
    {"proxy-ssl-verify-depth", {"2", "0"}, NULL},
    {"request-base", {"true"}, NULL},
    {"request-headers",
     {"X-A: 1\nX-B: two words"},
     "X-A: a\x7f"
     "b"},
    {"response-headers",
     {"X-Frame-Options: DENY"},
     "X-A: \xff"
     ""},
    {"rewrite-target", {"/$1", "/x"}, "/a b"},
    {"server-alias", {"alias.example.com, *.b.example.com"}, "typo..example.com"},
    {"service-upstream", {"true"}, NULL},
    {"session-cookie-change-on-failure", {"true"}, "yes"},
    {"session-cookie-conditional-samesite-none", {"true", "false"}, NULL},
    {"session-cookie-domain", {".example.com"}, "a;b"},
    {"session-cookie-expires", {"3600"}, NULL},
    {"session-cookie-max-age", {"60"}, NULL},
    {"session-cookie-name", {"sticky"}, "a;b"},
    {"session-cookie-path", {"/app"}, "/app;HttpOnly"},
    {"session-cookie-samesite", {"lax", "None"}, "lax;"},
    {"session-cookie-secure", {"true"}, NULL},
    {"ssl-ciphers", {"ECDHE-RSA-AES256-GCM-SHA384", "HIGH:!aNULL", "NOSUCHCIPHER"}, "HIGH;x"},
    {"ssl-passthrough", {"false"}, NULL},
    {"ssl-redirect", {"false"}, NULL},
    {"temporal-redirect", {"/elsewhere"}, "javascript:x"},
    {"upstream-hash-by", {"$remote_addr$arg_room"}, "$foo"},
    {"upstream-hash-by-subset", {"true"}, "on"},
    {"upstream-hash-by-subset-size", {"2", "1000"}, "0"},
    {"upstream-vhost", {"internal.example:8080"}, "a b"},
    {"use-regex", {"true"}, NULL},
    {"websocket-idle-timeout", {"1h"}, NULL},
    {"websocket-max-lifetime", {"2h"}, NULL},
    {"websocket-ping-interval", {"30s"}, NULL},
    {"whitelist-source-range", {"127.0.0.1, ::1"}, "10.0.0.0/33"},
    {"x-forwarded-prefix",
     {"/base"},
     "/a\x01"
     ""},
    {"configuration-snippet",
     {"more_set_headers \"A: b\";",
      "add_header X-A \"$host $http_x_a\" always; proxy_set_header X-B $request_uri; "
      "rewrite ^/app/(.*)$ /$1?v=1 break; rewrite ^/old https://$host/new permanent;",
      "return 403 \"no\\nway\";"},
     "add_header X-A \"a\\r\\nB: c\";"},
    {"server-snippet",
     {"add_header X-S s; more_clear_headers Server;", "more_set_headers 'X-T: $scheme';"},
     "return 403;"},
    {"auth-snippet", {"proxy_set_header X-Tenant t;"}, "proxy_set_header X-T $host;"},
    {"no-such-key", {"x"}, NULL},
};
#define NANN (sizeof(ANN) / sizeof(ANN[0]))

static const char *const HOSTS[] = {
    "www.example.com", "a.example.com", "*.example.com", "", "WWW.Example.COM", "x.y"};
static const char *const PATHS[] = {"/",    "/app",     "/app/", "/(.*)", "/user/([^/]+)/api",
                                    "/a(b", "relative", "/a\nb", "/a b"};
static const char *const PATH_TYPES[] = {"Prefix", "Exact", "ImplementationSpecific"};
static const char *const SERVICES[] = {"web", "we\nb", "missing"};
static const char *const SECRETS[] = {"good", "badpem", "mismatch", "missing", "we\nb"};

static void add(json_object *o, const char *key, json_object *v)
{
	json_object_object_add(o, key, v);
}

static json_object *backend(void)
{
	json_object *be = json_object_new_object(), *svc = json_object_new_object();
	json_object *port = json_object_new_object();
	add(svc, "name", chance(75) ? json_object_new_string("web") : one_of(SERVICES, 3, 80));
	if (chance(80))
		add(port, "number", json_object_new_int(chance(90) ? 80 : (int)pick(70000)));
	else
		add(port, "name", chance(50) ? json_object_new_string("http") : hostile());
	add(svc, "port", port);
	add(be, "service", svc);
	return be;
}

static json_object *ingress(size_t i)
{
	json_object *ing = json_object_new_object(), *meta = json_object_new_object();
	json_object *spec = json_object_new_object(), *ann = json_object_new_object();
	char name[32], ts[32];
	snprintf(name, sizeof(name), "ing%zu", i);
	add(meta, "name", chance(90) ? json_object_new_string(name) : hostile());
	add(meta, "namespace", json_object_new_string("default"));
	snprintf(ts, sizeof(ts), "2026-01-%02zuT00:00:00Z", 1 + pick(28));
	add(meta, "creationTimestamp", json_object_new_string(ts));
	/* Mostly good values, so that the Ingress often reaches the table;
	 * now and then a near miss (all of them together sometimes) or a
	 * hostile string. */
	size_t nann = pick(5);
	int near_misses = chance(25);
	bool fwd_auth = false;
	for (size_t k = 0; k < nann || (near_misses && k < NANN); k++) {
		char key[96];
		size_t a = near_misses && k >= nann ? k : pick(NANN), ng = 0;
		if (k >= nann && (!ANN[a].bad || !chance(10)))
			continue;
		while (ng < 3 && ANN[a].good[ng])
			ng++;
		snprintf(key, sizeof(key), "%s%s",
		         chance(50) ? "weir.dev/" : "nginx.ingress.kubernetes.io/", ANN[a].key);
		if (ANN[a].bad && (k >= nann || chance(10)))
			add(ann, key, json_object_new_string(ANN[a].bad));
		else if (strstr(ANN[a].key, "-snippet") && chance(50))
			add(ann, key, hostile_snippet());
		else
			add(ann, key, one_of(ANN[a].good, ng, 85));
		if (strcmp(ANN[a].key, "auth-url") == 0)
			fwd_auth = true;
	}
	/* Forward auth and canaries each need a key that a random pick among
	 * this many finds too seldom: give some Ingresses one on purpose. */
	if (!fwd_auth && chance(10)) {
		add(ann, "nginx.ingress.kubernetes.io/auth-url",
		    json_object_new_string("http://10.0.0.9:4180/oauth2/auth"));
		fwd_auth = true;
	}
	size_t can[NANN], ncan = 0;
	for (size_t i = 0; chance(35) && i < NANN; i++)
		if (strncmp(ANN[i].key, "canary-", 7) == 0 ||
		    strcmp(ANN[i].key, "affinity-canary-behavior") == 0)
			can[ncan++] = i;
	if (ncan) {
		add(ann, "nginx.ingress.kubernetes.io/canary", json_object_new_string("true"));
		if (chance(50))
			add(ann, "nginx.ingress.kubernetes.io/canary-by-header-pattern",
			    chance(80) ? json_object_new_string("^(a|b)[0-9]*$") : hostile());
	}
	for (size_t m = ncan ? 1 + pick(4) : 0; m > 0; m--) {
		char key[96];
		size_t a = can[pick(ncan)];
		snprintf(key, sizeof(key), "nginx.ingress.kubernetes.io/%s", ANN[a].key);
		if (ANN[a].bad && chance(10))
			add(ann, key, json_object_new_string(ANN[a].bad));
		else
			add(ann, key, one_of(ANN[a].good, ANN[a].good[1] ? 2 : 1, 85));
	}
	/* The other forward-auth keys mean nothing without auth-url: with it,
	 * some of them (good values, near misses, hostile strings). */
	size_t fwd[NANN], nfwd = 0;
	for (size_t i = 0; fwd_auth && i < NANN; i++)
		if (strncmp(ANN[i].key, "auth-", 5) == 0 &&
		    strncmp(ANN[i].key, "auth-tls-", 9) != 0 && strcmp(ANN[i].key, "auth-url") != 0)
			fwd[nfwd++] = i;
	for (size_t m = nfwd ? 1 + pick(4) : 0; m > 0; m--) {
		char key[96];
		size_t a = fwd[pick(nfwd)];
		snprintf(key, sizeof(key), "weir.dev/%s", ANN[a].key);
		if (ANN[a].bad && chance(15))
			add(ann, key, json_object_new_string(ANN[a].bad));
		else
			add(ann, key, one_of(ANN[a].good, ANN[a].good[1] ? 2 : 1, 85));
	}
	/* FastCGI params mean nothing without backend-protocol FCGI: some
	 * Ingresses get both, drawn from a sequence of their own (as in
	 * configmap()) so the rest of the run stays as it was. */
	uint64_t saved = rng_state;
	rng_state ^= 0x6a09e667f3bcc909ull + i;
	if (chance(8)) {
		static const char *const cms[] = {"fcgi", "hostile-hdrs", "missing"};
		add(ann, "nginx.ingress.kubernetes.io/backend-protocol",
		    json_object_new_string("FCGI"));
		add(ann, "nginx.ingress.kubernetes.io/fastcgi-params-configmap",
		    one_of(cms, 3, 80));
		if (chance(50))
			add(ann, "nginx.ingress.kubernetes.io/fastcgi-index",
			    chance(80) ? json_object_new_string("index.php") : hostile());
	}
	rng_state = saved;
	add(meta, "annotations", ann);
	add(ing, "metadata", meta);
	add(spec, "ingressClassName", json_object_new_string("weir"));

	json_object *rules = json_object_new_array();
	size_t nrules = 1 + pick(3);
	for (size_t r = 0; r < nrules; r++) {
		json_object *rule = json_object_new_object(), *http = json_object_new_object();
		json_object *paths = json_object_new_array();
		if (chance(95))
			add(rule, "host", one_of(HOSTS, 6, 80));
		size_t np = 1 + pick(3);
		for (size_t p = 0; p < np; p++) {
			json_object *path = json_object_new_object();
			add(path, "path", one_of(PATHS, 9, 60));
			if (chance(95))
				add(path, "pathType", one_of(PATH_TYPES, 3, 95));
			add(path, "backend", backend());
			json_object_array_add(paths, path);
		}
		add(http, "paths", paths);
		add(rule, "http", http);
		json_object_array_add(rules, rule);
	}
	add(spec, "rules", rules);
	if (chance(40)) {
		json_object *tls = json_object_new_array(), *e = json_object_new_object();
		json_object *hosts = json_object_new_array();
		json_object_array_add(hosts, one_of(HOSTS, 6, 80));
		add(e, "hosts", hosts);
		add(e, "secretName", one_of(SECRETS, 5, 90));
		json_object_array_add(tls, e);
		add(spec, "tls", tls);
	}
	if (chance(20))
		add(spec, "defaultBackend", backend());
	add(ing, "spec", spec);
	return ing;
}

static json_object *named(const char *ns, const char *name)
{
	json_object *o = json_object_new_object(), *meta = json_object_new_object();
	add(meta, "name", json_object_new_string(name));
	if (ns)
		add(meta, "namespace", json_object_new_string(ns));
	add(o, "metadata", meta);
	return o;
}

static void put(struct store *s, enum store_kind k, json_object *o)
{
	CHECK_INT(store_upsert(s, k, o), 0);
}

/* The services (one with a line feed in its name, as a manifest may hold),
 * their endpoints, and TLS Secrets: a good pair, PEM armour around garbage,
 * and a certificate with a key that is not its own. */
static void fixed_objects(struct store *s, const char *other_key)
{
	json_object *cls = named(NULL, "weir"), *spec = json_object_new_object();
	add(spec, "controller", json_object_new_string("weir.dev/ingress-controller"));
	add(cls, "spec", spec);
	put(s, STORE_INGRESS_CLASS, cls);
	for (size_t i = 0; i < 2; i++) {
		json_object *svc = named("default", SERVICES[i]);
		json_object *sp = json_object_new_object(), *ports = json_object_new_array();
		json_object *port = json_object_new_object();
		add(port, "name", json_object_new_string("http"));
		add(port, "port", json_object_new_int(80));
		json_object_array_add(ports, port);
		add(sp, "ports", ports);
		add(svc, "spec", sp);
		put(s, STORE_SERVICE, svc);

		json_object *sl = json_object_new_object(), *meta = json_object_new_object();
		json_object *labels = json_object_new_object(), *eps = json_object_new_array();
		json_object *ep = json_object_new_object(), *addrs = json_object_new_array();
		json_object *sports = json_object_new_array(), *sport = json_object_new_object();
		add(meta, "name", json_object_new_string(i ? "slice-b" : "slice-a"));
		add(meta, "namespace", json_object_new_string("default"));
		add(labels, "kubernetes.io/service-name", json_object_new_string(SERVICES[i]));
		add(meta, "labels", labels);
		add(sl, "metadata", meta);
		add(sl, "addressType", json_object_new_string("IPv4"));
		add(sport, "name", json_object_new_string("http"));
		add(sport, "port", json_object_new_int(8080));
		json_object_array_add(sports, sport);
		add(sl, "ports", sports);
		json_object_array_add(addrs, json_object_new_string("10.0.0.1"));
		add(ep, "addresses", addrs);
		json_object_array_add(eps, ep);
		add(sl, "endpoints", eps);
		put(s, STORE_ENDPOINT_SLICE, sl);
	}
	const char *pairs[][3] = {
	    {"good", CERT_PEM, KEY_PEM},
	    {"badpem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
	     "-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n"},
	    {"mismatch", CERT_PEM, other_key},
	    {"we\nb", CERT_PEM, KEY_PEM},
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		json_object *sec = named("default", pairs[i][0]), *data = json_object_new_object();
		add(sec, "type", json_object_new_string("kubernetes.io/tls"));
		add(data, "tls.crt", json_object_new_string(pairs[i][1]));
		add(data, "tls.key", json_object_new_string(pairs[i][2]));
		/* proxy-ssl-secret reads ca.crt (the certificate is its own CA) */
		add(data, "ca.crt", json_object_new_string(pairs[i][1]));
		add(sec, "stringData", data);
		put(s, STORE_SECRET, sec);
	}
}

/* auth-proxy-set-headers: a good ConfigMap, one of hostile keys and
 * values (NUL, CR/LF, '$', names that are no token, reserved names), and
 * one in another namespace. */
static void header_configmaps(struct store *s)
{
	/* fastcgi-params-configmap: params with variables */
	json_object *fc = named("default", "fcgi"), *fdata = json_object_new_object();
	add(fdata, "SCRIPT_FILENAME", json_object_new_string("/srv$fastcgi_script_name"));
	add(fdata, "APP", json_object_new_string("${host}:$server_port $http_x_a"));
	add(fc, "data", fdata);
	put(s, STORE_CONFIGMAP, fc);
	static const char *const names[] = {"X-Tenant", "Host",       "x-tenant",        "X Bad",
	                                    "",         "Connection", "X-Forwarded-For", "A\r\nB"};
	json_object *cm = named("default", "hdrs"), *data = json_object_new_object();
	add(data, "X-Tenant", json_object_new_string("team-a"));
	add(data, "Authorization", json_object_new_string("Bearer static"));
	add(cm, "data", data);
	put(s, STORE_CONFIGMAP, cm);
	cm = named("default", "hostile-hdrs");
	data = json_object_new_object();
	for (size_t i = 1 + pick(3); i > 0; i--) {
		json_object *k = chance(50) ? json_object_new_string(names[pick(8)]) : hostile();
		add(data, json_object_get_string(k),
		    chance(50) ? json_object_new_string("v") : hostile());
		json_object_put(k);
	}
	add(cm, "data", data);
	put(s, STORE_CONFIGMAP, cm);
	cm = named("other", "hdrs");
	data = json_object_new_object();
	add(data, "X-Tenant", json_object_new_string("team-b"));
	add(cm, "data", data);
	put(s, STORE_CONFIGMAP, cm);
}

static void configmap(struct store *s)
{
	static const char *const tls[] = {"default/good", "default/badpem", "default/mismatch"};
	json_object *cm = named("weir-system", "weir"), *data = json_object_new_object();
	if (chance(50))
		add(data, "trusted-proxies", hostile());
	if (chance(50))
		add(data, "default-tls-secret", one_of(tls, 3, 70));
	if (chance(30))
		add(data, "max-header-bytes", hostile());
	static const char *const agents[] = {"BadBot, ~*crawl(er|ing)", "~^curl/7\\.", "~*("};
	static const char *const ciphers[] = {"ECDHE-RSA-AES256-GCM-SHA384", "NOPE", ""};
	static const char *const protocols[] = {"TLSv1.3", "TLSv1.2 TLSv1.3", "SSLv3"};
	static const char *const formats[] = {"$remote_addr \"$request\" $status $http_x_y",
	                                      "{\"a\": \"${host}x\"} $ $$", "$request_body"};
	if (chance(20))
		add(data, "log-format-upstream", chance(50) ? one_of(formats, 3, 70) : hostile());
	if (chance(20))
		add(data, "skip-access-log-urls", hostile());
	static const char *const ranges[] = {"192.0.2.0/24, 2001:db8::/32", "10.0.0.0/33", ""};
	/* Global lists and TLS settings: a value weir cannot read drops every
	 * Ingress (fail closed), so they come rarely, to leave tables to test. */
	if (chance(10))
		add(data, "block-user-agents", chance(50) ? one_of(agents, 3, 90) : hostile());
	if (chance(10))
		add(data, "block-referers", chance(50) ? one_of(agents, 3, 90) : hostile());
	if (chance(10))
		add(data, "block-cidrs", one_of(ranges, 3, 90));
	if (chance(10))
		add(data, "whitelist-source-range", one_of(ranges, 3, 90));
	if (chance(10))
		add(data, "ssl-ciphers", one_of(ciphers, 3, 90));
	if (chance(10))
		add(data, "ssl-protocols", one_of(protocols, 3, 90));
	/* defaults of the proxy-redirect and proxy-cookie annotations */
	static const char *const rw_keys[] = {"proxy-cookie-domain", "proxy-cookie-path",
	                                      "proxy-redirect-from", "proxy-redirect-to"};
	static const char *const rw_good[] = {"a.example b.example", "/x/ /", "http://in/",
	                                      "/out/"};
	for (size_t i = 0; i < 4; i++)
		if (chance(25))
			add(data, rw_keys[i],
			    chance(70) ? json_object_new_string(rw_good[i]) : hostile());
	/* custom-headers: the names hdrs and hostile-hdrs may set */
	if (chance(70))
		add(data, "global-allowed-response-headers",
		    chance(80) ? json_object_new_string("X-Tenant, Authorization,Connection, Host")
		               : hostile());
	/* The keys below draw from a sequence of their own, so that adding one
	 * does not move the rest of the run (the coverage checks in main). */
	uint64_t saved = rng_state;
	rng_state ^= 0x9e3779b97f4a7c15ull;
	static const char *const types[] = {"text/plain  application/JSON", "*", ""};
	if (chance(30))
		add(data, "gzip-types", chance(50) ? one_of(types, 3, 60) : hostile());
	if (chance(30))
		add(data, "use-gzip", chance(50) ? json_object_new_string("true") : hostile());
	if (chance(20))
		add(data, "gzip-level", chance(50) ? json_object_new_string("9") : hostile());
	if (chance(20))
		add(data, "enable-brotli", chance(50) ? json_object_new_string("true") : hostile());
	if (chance(20))
		add(data, "brotli-types", chance(50) ? one_of(types, 3, 60) : hostile());
	if (chance(20))
		add(data, "large-client-header-buffers",
		    chance(50) ? json_object_new_string("4 16k") : hostile());
	if (chance(20))
		add(data, "proxy-buffer-size",
		    chance(50) ? json_object_new_string("16k") : hostile());
	rng_state = saved;
	add(cm, "data", data);
	put(s, STORE_CONFIGMAP, cm);
}

/* A freshly generated P-256 key in PEM (caller frees): not the key of
 * CERT_PEM. */
static char *other_key_pem(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *out = NULL;
	CHECK(k != NULL && b != NULL);
	if (k && b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1) {
		long n = BIO_get_mem_data(b, &data);
		out = strndup(data, (size_t)n);
	}
	BIO_free(b);
	EVP_PKEY_free(k);
	CHECK(out != NULL);
	return out;
}

/* A diagnostic is one line of valid UTF-8 (it becomes a log line and an
 * Event). */
static int clean_line(const char *s)
{
	if (!s)
		return 1;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return route_validate_utf8(s, strlen(s));
}

/* Tables that reached the proxy with a host asking for client certificates:
 * the property covers auth-tls only when some do. */
static size_t nclient_auth;
/* Tables that reached the proxy with a route under forward auth (auth-url),
 * and those where such a route also has one of its other settings. */
static size_t next_auth, next_auth_more, next_auth_set;
/* Tables that reached the proxy with a response rewrite (proxy-redirect,
 * proxy-cookie-*), a canary header pattern, and custom response headers. */
static size_t nrewrite, npattern, ncustom;
static size_t nsnippet; /* served tables with add_headers, return_code or an expand header */
static size_t nfastcgi; /* served tables with FastCGI params */

/* Host h of rt as text with every index replaced by what it names, so
 * tables with different index layouts compare. Caller frees. */
static char *host_fingerprint(const struct route_table *rt, const struct route_host *h)
{
	struct route_host c = *h;
	struct route *r = calloc(h->nroutes + 1, sizeof(*r));
	char *text = NULL, *out = NULL;
	size_t len = 0, cap = 256;
	if (!r)
		return NULL;
	if (h->nroutes)
		memcpy(r, h->routes, h->nroutes * sizeof(*r));
	out = malloc(cap);
	if (!out)
		goto done;
	out[0] = '\0';
#define NAME(arr, n, i, field) ((i) >= 0 && (size_t)(i) < (n) ? (arr)[i].field : "-")
	for (size_t j = 0; j < h->nroutes; j++) {
		char line[1024];
		int k = snprintf(line, sizeof(line), "%s|%s|%s;",
		                 NAME(rt->backends, rt->nbackends, r[j].backend, name),
		                 NAME(rt->backends, rt->nbackends, r[j].canary.backend, name),
		                 NAME(rt->backend_tls, rt->nbackend_tls, r[j].backend_tls, name));
		if (k < 0 || (size_t)k >= sizeof(line))
			k = (int)sizeof(line) - 1;
		while (len + (size_t)k + 1 > cap) {
			cap *= 2;
			char *g = realloc(out, cap);
			if (!g)
				goto done;
			out = g;
		}
		memcpy(out + len, line, (size_t)k + 1);
		len += (size_t)k;
		r[j].backend = r[j].canary.backend = r[j].backend_tls = -1;
	}
	char head[1024];
	snprintf(head, sizeof(head), "cert=%s ca=%s ", NAME(rt->certs, rt->ncerts, c.cert, name),
	         NAME(rt->cas, rt->ncas, c.client_auth.ca, ca_pem));
#undef NAME
	c.routes = r;
	c.cert = -1;
	c.client_auth.ca = -1;
	if (route_host_serialize(&c, &text, &len) != 0)
		goto done;
	size_t need = strlen(out) + strlen(head) + strlen(text) + 1;
	char *all = malloc(need);
	if (all)
		snprintf(all, need, "%s%s%s", head, out, text);
	free(out);
	out = all;
done:
	free(text);
	free(r);
	return out;
}

static struct publisher *v2_publisher;
static char v2_dir[64];
static struct table *v2_prev;

/* t (compiled) published as version 2 and loaded by the proxy serves the
 * hosts v1 (the proxy's table of the version 1 text) serves. */
static int check_v2(struct route_table *t, const struct table *v1)
{
	char err[512] = "";
	bool written = false;
	struct table *v2 = NULL;
	int ok = 1;
	uint64_t gen = t->generation;
	CHECK_INT(publisher_publish(v2_publisher, t, &written), 0);
	t->generation = gen;
	int rc = table_load(v2_dir, &v2, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "proxy refused the v2 table: %s\n", err);
		return 0;
	}
	const struct route_table *a = table_routes(v1), *b = table_routes(v2);
	if (a->nhosts != b->nhosts) {
		fprintf(stderr, "v2: %zu hosts, v1: %zu\n", b->nhosts, a->nhosts);
		ok = 0;
	}
	for (size_t i = 0; ok && i < a->nhosts; i++) {
		char *fa = host_fingerprint(a, &a->hosts[i]);
		char *fb = host_fingerprint(b, &b->hosts[i]);
		if (!fa || !fb || strcmp(fa, fb) != 0) {
			fprintf(stderr, "v2 host %zu differs:\n v1 %s\n v2 %s\n", i, fa ? fa : "?",
			        fb ? fb : "?");
			ok = 0;
		}
		free(fa);
		free(fb);
	}
	table_unref(v2_prev);
	v2_prev = v2;
	return ok;
}

static int one_round(uint64_t seed, size_t iter, const char *other_key)
{
	struct store *s = store_new();
	struct compile_options o = {.ingress_class = "weir",
	                            .controller_name = "weir.dev/ingress-controller",
	                            .allow_loopback = chance(50)};
	struct diag_list d = {0};
	struct route_table *t = NULL, *rt = NULL;
	struct table *served = NULL;
	char *json = NULL, *again = NULL, err[512] = "";
	size_t len = 0, len2 = 0;
	int ok = 1;

	fixed_objects(s, other_key);
	header_configmaps(s);
	if (chance(50))
		configmap(s);
	size_t ning = 1 + pick(5);
	json_object *first = NULL;
	for (size_t i = 0; i < ning; i++) { /* refused when its name is "": as in the programs */
		json_object *ing = ingress(i);
		/* a canary attaches only to a main path of the same host and
		 * path: most canaries copy the rules of the first Ingress */
		json_object *ann =
		    json_object_object_get(json_object_object_get(ing, "metadata"), "annotations");
		if (first &&
		    json_object_object_get_ex(ann, "nginx.ingress.kubernetes.io/canary", NULL) &&
		    chance(80)) {
			json_object *rules = NULL;
			json_object_deep_copy(
			    json_object_object_get(json_object_object_get(first, "spec"), "rules"),
			    &rules, NULL);
			json_object_object_add(json_object_object_get(ing, "spec"), "rules", rules);
		}
		if (i == 0)
			first = json_object_get(ing);
		store_upsert(s, STORE_INGRESS, ing);
	}
	json_object_put(first);
	struct snapshot *snap = store_snapshot(s);
	CHECK_INT(compile_snapshot(snap, &o, &t, &d), 0);
	CHECK_INT(route_table_serialize(t, &json, &len), 0);
	int rc = route_table_parse(json, len, &rt, err, sizeof(err));
	if (rc == 0) {
		/* the reader gives back the same bytes */
		CHECK_INT(route_table_serialize(rt, &again, &len2), 0);
		if (len2 != len || memcmp(json, again, len) != 0) {
			ok = 0;
			fprintf(stderr, "serialize(parse(table)) differs\n");
		}
		rc = table_new(rt, &served, err, sizeof(err));
		rt = NULL;
	}
	if (rc == 0 && served && !check_v2(t, served))
		ok = 0;
	if (rc != 0) {
		ok = 0;
		fprintf(stderr, "proxy refused the table: %s\n%.*s\n", err,
		        (int)(len < 4000 ? len : 4000), json);
	}
	for (size_t i = 0; i < d.n; i++) {
		if (!clean_line(d.items[i].message) || !clean_line(d.items[i].key)) {
			ok = 0;
			fprintf(stderr, "diagnostic is not one clean line: %s\n",
			        d.items[i].reason);
		}
	}
	if (!ok)
		fprintf(stderr,
		        "FAILED: seed %" PRIu64 " iteration %zu (replay with "
		        "WEIR_PROPERTY_SEED=%" PRIu64 ")\n",
		        seed, iter, seed);
	CHECK(ok);
	for (size_t i = 0; served && i < table_routes(served)->nhosts; i++)
		if (table_routes(served)->hosts[i].client_auth.ca >= 0) {
			nclient_auth++;
			break;
		}
	const struct route_table *srt = served ? table_routes(served) : NULL;
	bool fa = false, fa_more = false, fa_set = false, rw = false, pat = false, cus = false,
	     sn = false;
	bool fc = false;
	for (size_t i = 0; srt && i < srt->nhosts; i++) {
		for (size_t j = 0; j < srt->hosts[i].nroutes; j++) {
			const struct route_ext_auth *ea = &srt->hosts[i].routes[j].policy->ext_auth;
			fa = fa || ea->url;
			fa_more =
			    fa_more || (ea->url && (ea->method || ea->signin || ea->cache_key ||
			                            ea->cache_duration || ea->nresponse_headers ||
			                            ea->request_redirect));
			fa_set = fa_set || (ea->url && ea->nproxy_set_headers);
			const struct route *r = &srt->hosts[i].routes[j];
			rw = rw || r->policy->proxy_redirect_from ||
			     r->policy->proxy_cookie_domain_from ||
			     r->policy->proxy_cookie_path_from;
			pat = pat || r->canary.by_header_pattern;
			cus = cus || r->policy->nresponse_headers;
			const struct route_policy *pol = srt->hosts[i].routes[j].policy;
			bool ex = false;
			for (size_t k = 0; k < pol->nrequest_headers; k++)
				ex = ex || pol->request_headers[k].expand;
			for (size_t k = 0; k < pol->nresponse_headers; k++)
				ex = ex || pol->response_headers[k].expand;
			sn = sn || ex || pol->nadd_headers || pol->return_code || pol->nrewrites;
			fc = fc ||
			     (pol->backend_protocol == ROUTE_PROTO_FCGI && pol->fastcgi.nparams);
		}
	}
	nrewrite += rw;
	npattern += pat;
	ncustom += cus;
	nsnippet += sn;
	nfastcgi += fc;
	next_auth += fa;
	next_auth_more += fa_more;
	next_auth_set += fa_set;
	table_unref(served);
	route_table_free(t);
	free(json);
	free(again);
	diag_list_cleanup(&d);
	snapshot_free(snap);
	store_free(s);
	return ok;
}

int main(void)
{
	const char *env = getenv("WEIR_PROPERTY_SEED");
	const char *iters = getenv("WEIR_PROPERTY_ITERATIONS");
	uint64_t seed = env ? strtoull(env, NULL, 10) : DEFAULT_SEED;
	size_t n = iters ? strtoul(iters, NULL, 10) : DEFAULT_ITERATIONS;
	char *other_key = other_key_pem();
	size_t failed = 0;
	rng_state = seed ? seed : 1;
	/* 400 publishes, each with an fsync: in memory when possible */
	snprintf(v2_dir, sizeof(v2_dir), "%s/weir-accept-v2-XXXXXX",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	CHECK(mkdtemp(v2_dir) != NULL);
	CHECK_INT(publisher_new(v2_dir, &v2_publisher), 0);
	for (size_t i = 0; i < n && other_key && failed < 3 && v2_publisher; i++)
		failed += !one_round(seed, i, other_key);
	free(other_key);
	table_unref(v2_prev);
	publisher_free(v2_publisher);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", v2_dir);
	CHECK_INT(system(cmd), 0);
	printf(
	    "table_accept: seed %" PRIu64 ", %zu iterations, %zu failed, %zu with client "
	    "certificates, %zu with forward auth (%zu with more than auth-url, %zu with "
	    "auth-proxy-set-headers), %zu with response rewrites, %zu with canary header "
	    "patterns, %zu with response headers, %zu with translated snippets, %zu with FastCGI "
	    "params\n",
	    seed, n, failed, nclient_auth, next_auth, next_auth_more, next_auth_set, nrewrite,
	    npattern, ncustom, nsnippet, nfastcgi);
	if (n >= DEFAULT_ITERATIONS) {
		CHECK(nclient_auth > 0);
		CHECK(next_auth_more > 0);
		CHECK(next_auth_set > 0);
		CHECK(nrewrite > 0);
		CHECK(npattern > 0);
		CHECK(ncustom > 0);
		CHECK(nsnippet > 0);
		CHECK(nfastcgi > 0);
	}
	return check_finish("table_accept_test");
}
