/* common/route_validate.c - the rules every value of a route table obeys,
 * shared by the controller (before it emits) and the proxy (when it loads). */
#include "route_validate.h"
#include "error.h"
#include "url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

static void set_field(char *field, size_t fieldlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_field(char *field, size_t fieldlen, const char *fmt, ...)
{
	if (!field || !fieldlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(field, fieldlen, fmt, ap);
	va_end(ap);
}

/* Length of the UTF-8 sequence at s (at most n bytes), or 0 when it is not
 * well-formed. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool route_validate_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		size_t k = utf8_seq(p + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

void route_validate_quote(const char *s, char *buf, size_t buflen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p), o = 0, i = 0;
	if (buflen < 8) {
		if (buflen)
			buf[0] = '\0';
		return;
	}
	buf[o++] = '"';
	while (i < n) {
		char tmp[8];
		size_t tl = 0, adv = 1;
		size_t k = utf8_seq(p + i, n - i);
		unsigned char c = p[i];
		if (i >= 64) {
			memcpy(tmp, "...", 3);
			tl = 3;
			adv = n - i;
		} else if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			tl = 2;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			tmp[0] = '\\';
			tmp[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
			tl = 2;
		} else if (c < 0x20 || c == 0x7f || !k) {
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[c >> 4];
			tmp[3] = hex[c & 15];
			tl = 4;
		} else {
			memcpy(tmp, p + i, k);
			tl = k;
			adv = k;
		}
		if (o + tl + 2 > buflen)
			break;
		memcpy(buf + o, tmp, tl);
		o += tl;
		i += adv;
	}
	buf[o++] = '"';
	buf[o] = '\0';
}

/* Control bytes of RFC 5234 (CTL): 0x00-0x1f and 0x7f. */
static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

int route_validate_text(const char *s, char *err, size_t errlen)
{
	char q[96];
	if (strpbrk(s, "\r\n")) {
		route_validate_quote(s, q, sizeof(q));
		return fail(err, errlen, "%s contains CR or LF", q);
	}
	if (!route_validate_utf8(s, strlen(s))) {
		route_validate_quote(s, q, sizeof(q));
		return fail(err, errlen, "%s is not valid UTF-8", q);
	}
	return 0;
}

/* Text with no control byte at all (except HTAB when tab_ok). */
static int no_ctl(const char *s, bool tab_ok, char *err, size_t errlen)
{
	char q[96];
	int rc = route_validate_text(s, err, errlen);
	if (rc)
		return rc;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (is_ctl(*p) && !(tab_ok && *p == '\t')) {
			route_validate_quote(s, q, sizeof(q));
			return fail(err, errlen, "%s contains a control character", q);
		}
	}
	return 0;
}

/* No control byte and no space. */
static int no_ctl_space(const char *s, char *err, size_t errlen)
{
	char q[96];
	int rc = no_ctl(s, false, err, errlen);
	if (rc)
		return rc;
	if (strchr(s, ' ')) {
		route_validate_quote(s, q, sizeof(q));
		return fail(err, errlen, "%s contains a space", q);
	}
	return 0;
}

int route_validate_host(const char *name, int flags, char *err, size_t errlen)
{
	char q[96];
	const char *c = name;
	size_t label = 0;
	bool label_start = true;
	route_validate_quote(name, q, sizeof(q));
	if (!*name) {
		if (flags & ROUTE_HOST_EXACT)
			return fail(err, errlen, "must be an exact host name, not empty");
		return 0;
	}
	if (strlen(name) > ROUTE_HOST_MAX)
		return fail(err, errlen, "%s is longer than %d bytes", q, ROUTE_HOST_MAX);
	if (c[0] == '*') {
		if (flags & ROUTE_HOST_EXACT)
			return fail(err, errlen, "%s must be an exact host name, not a wildcard",
			            q);
		if (c[1] != '.' || !c[2])
			return fail(err, errlen, "%s is not a valid host name", q);
		c += 2;
	}
	for (; *c; c++) {
		unsigned char ch = (unsigned char)*c;
		if (ch >= 'A' && ch <= 'Z')
			return fail(err, errlen, "%s must be lowercase", q);
		if (ch == '.') {
			if (label_start)
				return fail(err, errlen, "%s has an empty label", q);
			label_start = true;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      ch == '_'))
			return fail(err, errlen, "%s is not a valid host name", q);
		if (++label > ROUTE_LABEL_MAX)
			return fail(err, errlen, "%s has a label longer than %d bytes", q,
			            ROUTE_LABEL_MAX);
		label_start = false;
	}
	if (label_start)
		return fail(err, errlen, "%s has an empty label", q);
	return 0;
}

int route_validate_address(const char *s, char *err, size_t errlen)
{
	unsigned char buf[16];
	char q[96];
	if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
		return 0;
	route_validate_quote(s, q, sizeof(q));
	return fail(err, errlen, "%s is not an IP address", q);
}

int route_validate_external(const char *name, unsigned port, size_t nendpoints, char *field,
                            size_t fieldlen, char *err, size_t errlen)
{
	char q[96], host[ROUTE_HOST_MAX + 2];
	unsigned char buf[16];
	if (!name) {
		set_field(field, fieldlen, "external_port");
		return port ? fail(err, errlen, "set without external_name") : 0;
	}
	set_field(field, fieldlen, "external_name");
	route_validate_quote(name, q, sizeof(q));
	size_t n = strlen(name);
	if (n > 0 && name[n - 1] == '.')
		n--; /* a fully qualified name: no search domains */
	if (n == 0 || n > ROUTE_HOST_MAX)
		return fail(err, errlen, "%s is not a DNS name", q);
	memcpy(host, name, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
		return fail(err, errlen, "%s is an IP address: list it as an endpoint", q);
	if (strchr(host, '*') || route_validate_host(host, ROUTE_HOST_EXACT, NULL, 0) != 0)
		return fail(err, errlen, "%s is not a DNS name", q);
	if (port < 1 || port > 65535) {
		set_field(field, fieldlen, "external_port");
		return fail(err, errlen, "must be 1..65535 with external_name");
	}
	if (nendpoints) {
		set_field(field, fieldlen, "endpoints");
		return fail(err, errlen, "must be empty with external_name");
	}
	return 0;
}

pcre2_code *route_regex_compile(const char *pattern, char *err, size_t errlen)
{
	int ecode;
	PCRE2_SIZE eoff;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, strlen(pattern),
	                               PCRE2_CASELESS | PCRE2_ANCHORED, &ecode, &eoff, NULL);
	if (!re && err && errlen) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(ecode, msg, sizeof(msg));
		snprintf(err, errlen, "bad regex: %s at offset %zu", (const char *)msg,
		         (size_t)eoff);
	}
	return re;
}

pcre2_code *route_match_cn_compile(const char *pattern, char *err, size_t errlen)
{
	int ecode;
	PCRE2_SIZE eoff;
	pcre2_code *re =
	    pcre2_compile((PCRE2_SPTR)pattern, strlen(pattern), 0, &ecode, &eoff, NULL);
	if (!re && err && errlen) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(ecode, msg, sizeof(msg));
		snprintf(err, errlen, "bad regex: %s at offset %zu", (const char *)msg,
		         (size_t)eoff);
	}
	return re;
}

int route_validate_path(const char *path, enum route_match match, bool skip_regex_compile,
                        char *err, size_t errlen)
{
	char q[96];
	int rc = no_ctl(path, false, err, errlen);
	if (rc)
		return rc;
	if (match != ROUTE_MATCH_REGEX) {
		if (path[0] != '/') {
			route_validate_quote(path, q, sizeof(q));
			return fail(err, errlen, "%s must start with '/'", q);
		}
		return 0;
	}
	if (skip_regex_compile)
		return 0;
	pcre2_code *re = route_regex_compile(path, err, errlen);
	if (!re)
		return WEIR_EINVAL;
	pcre2_code_free(re);
	return 0;
}

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int route_validate_token(const char *s, char *err, size_t errlen)
{
	char q[96];
	const unsigned char *p = (const unsigned char *)s;
	for (; *p; p++)
		if (!is_tchar(*p))
			break;
	if (!*s || *p) {
		route_validate_quote(s, q, sizeof(q));
		return fail(err, errlen, "%s is not an HTTP token", q);
	}
	return 0;
}

/* One media type "type/subtype" of two non-empty lowercase tokens, len bytes. */
static bool media_type_ok(const char *s, size_t len)
{
	const char *slash = memchr(s, '/', len);
	if (!slash || slash == s || slash == s + len - 1)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (s + i == slash)
			continue;
		if (!is_tchar(c) || (c >= 'A' && c <= 'Z'))
			return false;
	}
	return true;
}

int route_validate_media_types(const char *s, char *err, size_t errlen)
{
	char q[96];
	if (strcmp(s, "*") == 0)
		return 0;
	const char *p = s;
	for (;;) {
		const char *sp = strchr(p, ' ');
		size_t len = sp ? (size_t)(sp - p) : strlen(p);
		if (!media_type_ok(p, len)) {
			route_validate_quote(s, q, sizeof(q));
			return fail(err, errlen,
			            "%s is not \"*\" or lowercase media types (type/subtype) "
			            "separated by single spaces",
			            q);
		}
		if (!sp)
			return 0;
		p = sp + 1;
	}
}

int route_validate_header_value(const char *s, char *err, size_t errlen)
{
	return no_ctl(s, true, err, errlen);
}

/* Which variables a template may name (besides enum route_var's). */
enum template_vars {
	VARS_ROUTE = 0,    /* route_var_lookup only */
	VARS_CAPTURES = 1, /* and $1..$9 (rewrite replacements) */
	VARS_FASTCGI = 2   /* and route_fastcgi_var_lookup (FastCGI params) */
};

/* Every '$' of s starts a reference to a variable of the set. */
static int check_template_vars(const char *s, enum template_vars set, char *err, size_t errlen)
{
	char q[96];
	for (const char *p = strchr(s, '$'); p; p = strchr(p, '$')) {
		if (set == VARS_CAPTURES && p[1] >= '1' && p[1] <= '9') {
			p += 2;
			continue;
		}
		const char *name;
		size_t len, n = route_template_var(p, &name, &len);
		if (n == 0) {
			route_validate_quote(s, q, sizeof(q));
			return fail(err, errlen, "%s: '$' names no variable", q);
		}
		if (route_var_lookup(name, len) == ROUTE_VAR_NONE &&
		    (set != VARS_FASTCGI ||
		     route_fastcgi_var_lookup(name, len) == ROUTE_FCGI_VAR_NONE))
			return fail(err, errlen, "variable \"$%.*s\" is not one weir expands",
			            (int)(len > 64 ? 64 : len), name);
		p += n;
	}
	return 0;
}

int route_validate_header_template(const char *s, char *err, size_t errlen)
{
	int rc = route_validate_header_value(s, err, errlen);
	return rc ? rc : check_template_vars(s, VARS_ROUTE, err, errlen);
}

int route_validate_rewrite(const struct route_rewrite *r, char *err, size_t errlen)
{
	char q[96], why[200];
	const char *re = r->regex ? r->regex : "", *rp = r->replacement ? r->replacement : "";
	if (strlen(re) == 0 || strlen(re) > ROUTE_REWRITE_REGEX_MAX)
		return fail(err, errlen, "a regex of 1 to %u bytes is needed",
		            ROUTE_REWRITE_REGEX_MAX);
	if (strlen(rp) > ROUTE_REWRITE_REPLACEMENT_MAX)
		return fail(err, errlen, "a replacement of more than %u bytes",
		            ROUTE_REWRITE_REPLACEMENT_MAX);
	int rc = no_ctl(re, false, err, errlen);
	if (rc || (rc = no_ctl(rp, false, err, errlen)))
		return rc;
	pcre2_code *code = route_match_cn_compile(re, why, sizeof(why));
	if (!code) {
		route_validate_quote(re, q, sizeof(q));
		return fail(err, errlen, "%s: %s", q, why);
	}
	pcre2_code_free(code);
	return check_template_vars(rp, VARS_CAPTURES, err, errlen);
}

int route_validate_fastcgi_index(const char *s, char *err, size_t errlen)
{
	char q[96];
	size_t n = strlen(s);
	bool ok =
	    n > 0 && n <= ROUTE_FASTCGI_INDEX_MAX && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '-' || s[i] == '_';
	if (ok)
		return 0;
	route_validate_quote(s, q, sizeof(q));
	return fail(err, errlen, "%s is not a file name of 1 to %u characters A-Z a-z 0-9 . - _", q,
	            ROUTE_FASTCGI_INDEX_MAX);
}

int route_validate_fastcgi_name(const char *s, char *err, size_t errlen)
{
	char q[96];
	size_t n = strlen(s);
	bool ok = n > 0 && n <= ROUTE_FASTCGI_NAME_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)s[i]) || s[i] == '_';
	if (ok)
		return 0;
	route_validate_quote(s, q, sizeof(q));
	return fail(err, errlen,
	            "%s is not a FastCGI param name of 1 to %u characters A-Z a-z 0-9 _", q,
	            ROUTE_FASTCGI_NAME_MAX);
}

int route_validate_fastcgi_value(const char *s, char *err, size_t errlen)
{
	size_t n = strlen(s);
	if (n > ROUTE_FASTCGI_VALUE_MAX)
		return fail(err, errlen, "a value of %zu bytes is more than the %u allowed", n,
		            ROUTE_FASTCGI_VALUE_MAX);
	int rc = route_validate_header_value(s, err, errlen);
	return rc ? rc : check_template_vars(s, VARS_FASTCGI, err, errlen);
}

int route_validate_return_body(const char *s, char *err, size_t errlen)
{
	char q[96];
	size_t n = strlen(s);
	if (n > ROUTE_RETURN_BODY_MAX)
		return fail(err, errlen, "a body of %zu bytes is more than the %u allowed", n,
		            ROUTE_RETURN_BODY_MAX);
	if (!route_validate_utf8(s, n)) {
		route_validate_quote(s, q, sizeof(q));
		return fail(err, errlen, "%s is not valid UTF-8", q);
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (is_ctl(*p) && *p != '\t' && *p != '\r' && *p != '\n') {
			route_validate_quote(s, q, sizeof(q));
			return fail(err, errlen, "%s contains a control character", q);
		}
	}
	return 0;
}

int route_validate_auth_set_header(const char *name, const char *value, char *err, size_t errlen)
{
	/* Hop-by-hop, body framing and Host: what the auth request is and how
	 * it travels is the proxy's. */
	static const char *const transport[] = {
	    "host",    "connection",        "keep-alive", "proxy-connection", "te",
	    "trailer", "transfer-encoding", "upgrade",    "content-length",   "expect"};
	/* Set by the proxy on every auth request from the request at hand;
	 * one fixed value would hide the facts the auth server decides on. */
	static const char *const per_request[] = {
	    "x-original-url",   "x-original-method", "x-original-uri",          "x-scheme",
	    "x-sent-from",      "x-real-ip",         "x-forwarded-for",         "x-forwarded-proto",
	    "x-forwarded-host", "x-forwarded-port",  "x-auth-request-redirect", "x-request-id"};
	char q[96];
	int rc = route_validate_token(name, err, errlen);
	if (rc)
		return rc;
	route_validate_quote(name, q, sizeof(q));
	for (size_t i = 0; i < sizeof(transport) / sizeof(transport[0]); i++)
		if (strcasecmp(name, transport[i]) == 0)
			return fail(err, errlen,
			            "%s is a hop-by-hop, body framing or Host header, which the "
			            "proxy sets itself on the auth request",
			            q);
	for (size_t i = 0; i < sizeof(per_request) / sizeof(per_request[0]); i++)
		if (strcasecmp(name, per_request[i]) == 0)
			return fail(err, errlen,
			            "%s is set by the proxy on every auth request from the request "
			            "at hand",
			            q);
	if ((rc = route_validate_header_value(value, err, errlen)) != 0)
		return rc;
	if (!*value)
		return fail(err, errlen, "%s has an empty value", q);
	if (strchr(value, '$')) {
		route_validate_quote(value, q, sizeof(q));
		return fail(
		    err, errlen,
		    "%s holds '$': nginx variables are not expanded in auth-proxy-set-headers "
		    "(weir sends values as written)",
		    q);
	}
	return 0;
}

int route_validate_cookie_path(const char *s, char *err, size_t errlen)
{
	char q[96];
	int rc = no_ctl(s, false, err, errlen);
	if (rc)
		return rc;
	if (strchr(s, ';')) {
		route_validate_quote(s, q, sizeof(q));
		return fail(err, errlen, "%s contains ';'", q);
	}
	return 0;
}

int route_validate_cookie_attr(const char *s, char *err, size_t errlen)
{
	char q[96];
	int rc = no_ctl_space(s, err, errlen);
	if (rc)
		return rc;
	if (!*s)
		return fail(err, errlen, "empty value");
	if (strchr(s, ';')) {
		route_validate_quote(s, q, sizeof(q));
		return fail(err, errlen, "%s contains ';'", q);
	}
	return 0;
}

int route_validate_redirect_part(const char *s, char *err, size_t errlen)
{
	int rc = no_ctl_space(s, err, errlen);
	if (rc)
		return rc;
	if (!*s)
		return fail(err, errlen, "empty value");
	return 0;
}

int route_validate_header_pattern(const char *s, char *err, size_t errlen)
{
	int rc = no_ctl(s, false, err, errlen);
	if (rc)
		return rc;
	pcre2_code *re = route_match_cn_compile(s, err, errlen);
	if (!re)
		return WEIR_EINVAL;
	pcre2_code_free(re);
	return 0;
}

int route_validate_samesite(const char *s, char *err, size_t errlen)
{
	char q[96];
	if (strcmp(s, "None") == 0 || strcmp(s, "Lax") == 0 || strcmp(s, "Strict") == 0)
		return 0;
	route_validate_quote(s, q, sizeof(q));
	return fail(err, errlen, "unknown value %s (want \"None\", \"Lax\" or \"Strict\")", q);
}

int route_validate_url(const char *s, char *err, size_t errlen)
{
	char q[96];
	int rc = no_ctl_space(s, err, errlen);
	if (rc)
		return rc;
	if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0 && s[0] != '/') {
		route_validate_quote(s, q, sizeof(q));
		return fail(err, errlen, "%s is not an http(s) URL or a path", q);
	}
	return 0;
}

bool route_validate_redirect_code(unsigned code)
{
	return code == 300 || code == 301 || code == 302 || code == 303 || code == 307 ||
	       code == 308;
}

int route_validate_app_root(const char *s, char *err, size_t errlen)
{
	char q[96];
	int rc = no_ctl_space(s, err, errlen);
	if (rc)
		return rc;
	if (s[0] != '/') {
		route_validate_quote(s, q, sizeof(q));
		return fail(err, errlen, "%s is not a path starting with /", q);
	}
	return 0;
}

int route_validate_rewrite_target(const char *s, char *err, size_t errlen)
{
	int rc = no_ctl_space(s, err, errlen);
	if (rc)
		return rc;
	if (!*s)
		return fail(err, errlen, "empty target");
	return 0;
}

int route_validate_vhost(const char *s, char *err, size_t errlen)
{
	char q[96];
	int rc = no_ctl_space(s, err, errlen);
	if (rc)
		return rc;
	if (!*s)
		return fail(err, errlen, "empty host");
	if (strchr(s, '/')) {
		route_validate_quote(s, q, sizeof(q));
		return fail(err, errlen, "%s is not a host[:port]", q);
	}
	return 0;
}

int route_validate_hash_by(const char *s, char *err, size_t errlen)
{
	static const char *const vars[] = {"remote_addr",
	                                   "binary_remote_addr",
	                                   "remote_port",
	                                   "request_uri",
	                                   "uri",
	                                   "document_uri",
	                                   "args",
	                                   "query_string",
	                                   "is_args",
	                                   "scheme",
	                                   "host",
	                                   "server_name",
	                                   "request_method",
	                                   "server_port"};
	static const char *const pref[] = {"arg_", "http_", "cookie_"};
	char q[96];
	int rc = no_ctl(s, false, err, errlen);
	if (rc)
		return rc;
	if (!*s)
		return fail(err, errlen, "empty template");
	for (const char *p = s; *p;) {
		if (*p != '$') {
			p++;
			continue;
		}
		const char *name;
		size_t len, n = route_template_var(p, &name, &len);
		bool ok = false;
		for (size_t i = 0; n && i < sizeof(vars) / sizeof(vars[0]); i++)
			if (len == strlen(vars[i]) && strncmp(name, vars[i], len) == 0)
				ok = true;
		for (size_t i = 0; n && i < sizeof(pref) / sizeof(pref[0]); i++)
			if (len > strlen(pref[i]) && strncmp(name, pref[i], strlen(pref[i])) == 0)
				ok = true;
		if (!ok) {
			char var[80];
			snprintf(var, sizeof(var), "%.*s", n ? (int)(n < 64 ? n : 64) : 1, p);
			route_validate_quote(var, q, sizeof(q));
			return fail(err, errlen, "unsupported variable %s", q);
		}
		p += n;
	}
	return 0;
}

static int check_headers(const struct route_header *h, size_t n, const char *key, char *field,
                         size_t fieldlen, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (route_validate_token(h[i].name ? h[i].name : "", err, errlen)) {
			set_field(field, fieldlen, "%s[%zu].name", key, i);
			return WEIR_EINVAL;
		}
		if ((h[i].expand ? route_validate_header_template : route_validate_header_value)(
		        h[i].value ? h[i].value : "", err, errlen)) {
			set_field(field, fieldlen, "%s[%zu].value", key, i);
			return WEIR_EINVAL;
		}
	}
	return 0;
}

typedef int (*check_cb)(const char *s, char *err, size_t errlen);

/* policy.fastcgi: an index file name; params named once each, in all at
 * most ROUTE_FASTCGI_PARAMS_MAX bytes. */
static int check_fastcgi(const struct route_fastcgi *f, char *field, size_t fieldlen, char *err,
                         size_t errlen)
{
	size_t bytes = 0;
	if (f->index && route_validate_fastcgi_index(f->index, err, errlen)) {
		set_field(field, fieldlen, "fastcgi.index");
		return WEIR_EINVAL;
	}
	for (size_t i = 0; i < f->nparams; i++) {
		const struct route_header *h = &f->params[i];
		const char *name = h->name ? h->name : "";
		if (route_validate_fastcgi_name(name, err, errlen)) {
			set_field(field, fieldlen, "fastcgi.params[%zu].name", i);
			return WEIR_EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (f->params[j].name && strcmp(f->params[j].name, name) == 0) {
				set_field(field, fieldlen, "fastcgi.params[%zu].name", i);
				return fail(err, errlen, "\"%s\" is named twice", name);
			}
		if (route_validate_fastcgi_value(h->value ? h->value : "", err, errlen)) {
			set_field(field, fieldlen, "fastcgi.params[%zu].value", i);
			return WEIR_EINVAL;
		}
		bytes += strlen(name) + strlen(h->value ? h->value : "");
		if (bytes > ROUTE_FASTCGI_PARAMS_MAX) {
			set_field(field, fieldlen, "fastcgi.params");
			return fail(err, errlen, "more than %u bytes in all",
			            ROUTE_FASTCGI_PARAMS_MAX);
		}
	}
	return 0;
}

/* Check an optional string (NULL passes) with fn; names the field on
 * failure. */
static int opt(const char *s, check_cb fn, const char *name, char *field, size_t fieldlen,
               char *err, size_t errlen)
{
	if (!s || fn(s, err, errlen) == 0)
		return 0;
	set_field(field, fieldlen, "%s", name);
	return WEIR_EINVAL;
}

/* policy.mirror: a URL with the variables of url_expand_mirror; a host set
 * only with it. */
static int check_mirror(const struct route_mirror *m, char *field, size_t fieldlen, char *err,
                        size_t errlen)
{
	char q[96];
	int rc;
	if ((rc = opt(m->url, route_validate_text, "mirror.url", field, fieldlen, err, errlen)))
		return rc;
	if (m->url && url_check_mirror(m->url) != 0) {
		set_field(field, fieldlen, "mirror.url");
		route_validate_quote(m->url, q, sizeof(q));
		return fail(err, errlen,
		            "%s is not an http(s) URL with only $request_uri, $uri, $args, $host "
		            "(none in its host)",
		            q);
	}
	if ((rc = opt(m->host, route_validate_header_value, "mirror.host", field, fieldlen, err,
	              errlen)))
		return rc;
	if (m->host && (!m->url || !*m->host)) {
		set_field(field, fieldlen, "mirror.host");
		return fail(err, errlen, "is set without mirror.url or empty");
	}
	return 0;
}

/* policy.ext_auth (forward authentication) by the rules of common/url.h. */
static int check_ext_auth(const struct route_ext_auth *a, char *field, size_t fieldlen, char *err,
                          size_t errlen)
{
	char q[96];
	struct url u;
	uint32_t ms;
	int rc;
	/* Text first (UTF-8, no CR or LF): the URL rules only look at ASCII. */
	if ((rc = opt(a->url, route_validate_text, "ext_auth.url", field, fieldlen, err, errlen)) ||
	    (rc = opt(a->signin, route_validate_text, "ext_auth.signin", field, fieldlen, err,
	              errlen)) ||
	    (rc = opt(a->cache_key, route_validate_text, "ext_auth.cache_key", field, fieldlen, err,
	              errlen)) ||
	    (rc = opt(a->cache_duration, route_validate_text, "ext_auth.cache_duration", field,
	              fieldlen, err, errlen)))
		return rc;
	if (a->url && url_parse(a->url, &u) != 0) {
		set_field(field, fieldlen, "ext_auth.url");
		route_validate_quote(a->url, q, sizeof(q));
		return fail(err, errlen, "%s is not an http(s) URL", q);
	}
	if (a->signin && url_check_signin(a->signin) != 0) {
		set_field(field, fieldlen, "ext_auth.signin");
		route_validate_quote(a->signin, q, sizeof(q));
		return fail(err, errlen, "%s is not an http(s) URL with known variables", q);
	}
	if (a->cache_key && url_check_cache_key(a->cache_key) != 0) {
		set_field(field, fieldlen, "ext_auth.cache_key");
		route_validate_quote(a->cache_key, q, sizeof(q));
		return fail(err, errlen, "%s is not a cache key template", q);
	}
	if (a->cache_duration && url_cache_valid_ms(a->cache_duration, 200, &ms) != 0) {
		set_field(field, fieldlen, "ext_auth.cache_duration");
		route_validate_quote(a->cache_duration, q, sizeof(q));
		return fail(err, errlen, "%s is not a list of [codes] time", q);
	}
	if ((rc = opt(a->method, route_validate_token, "ext_auth.method", field, fieldlen, err,
	              errlen)) ||
	    (rc = opt(a->signin_redirect_param, route_validate_token,
	              "ext_auth.signin_redirect_param", field, fieldlen, err, errlen)) ||
	    (rc = opt(a->request_redirect, route_validate_header_value, "ext_auth.request_redirect",
	              field, fieldlen, err, errlen)))
		return rc;
	for (size_t i = 0; i < a->nresponse_headers; i++) {
		if (route_validate_token(a->response_headers[i] ? a->response_headers[i] : "", err,
		                         errlen)) {
			set_field(field, fieldlen, "ext_auth.response_headers[%zu]", i);
			return WEIR_EINVAL;
		}
	}
	size_t bytes = 0;
	for (size_t i = 0; i < a->nproxy_set_headers; i++) {
		const struct route_header *h = &a->proxy_set_headers[i];
		const char *name = h->name ? h->name : "", *value = h->value ? h->value : "";
		if (h->expand) {
			set_field(field, fieldlen, "ext_auth.proxy_set_headers[%zu].expand", i);
			return fail(err, errlen,
			            "variables are not expanded in auth request headers");
		}
		if (route_validate_auth_set_header(name, value, err, errlen)) {
			set_field(field, fieldlen, "ext_auth.proxy_set_headers[%zu]", i);
			return WEIR_EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcasecmp(name, a->proxy_set_headers[j].name) == 0) {
				set_field(field, fieldlen, "ext_auth.proxy_set_headers[%zu].name",
				          i);
				route_validate_quote(name, q, sizeof(q));
				return fail(err, errlen, "%s is set twice", q);
			}
		}
		bytes += strlen(name) + 2 + strlen(value) + 2;
		if (bytes > ROUTE_AUTH_SET_HEADERS_MAX_BYTES) {
			set_field(field, fieldlen, "ext_auth.proxy_set_headers[%zu]", i);
			return fail(err, errlen, "the headers add up to more than %u bytes",
			            ROUTE_AUTH_SET_HEADERS_MAX_BYTES);
		}
	}
	return 0;
}

int route_validate_policy(const struct route_policy *p, char *field, size_t fieldlen, char *err,
                          size_t errlen)
{
	const struct route_cookie *ck = &p->cookie;
	const struct route_cors *co = &p->cors;
	int rc;
	if ((rc = opt(p->upstream_vhost, route_validate_vhost, "upstream_vhost", field, fieldlen,
	              err, errlen)) ||
	    (rc = opt(p->x_forwarded_prefix, route_validate_header_value, "x_forwarded_prefix",
	              field, fieldlen, err, errlen)) ||
	    (rc = opt(p->rewrite_target, route_validate_rewrite_target, "rewrite_target", field,
	              fieldlen, err, errlen)))
		return rc;
	if (p->redirect_code != 0 && !route_validate_redirect_code(p->redirect_code)) {
		set_field(field, fieldlen, "redirect_code");
		return fail(err, errlen, "%u is not 0, 300, 301, 302, 303, 307 or 308",
		            (unsigned)p->redirect_code);
	}
	if (p->return_code != 0 &&
	    (p->return_code < 200 || p->return_code > 599 || p->return_code == 301 ||
	     p->return_code == 302 || p->return_code == 303 || p->return_code == 307 ||
	     p->return_code == 308)) {
		set_field(field, fieldlen, "return_code");
		return fail(err, errlen, "%u is not 0 or 200..599 (redirect codes excluded)",
		            (unsigned)p->return_code);
	}
	if (p->return_body && !p->return_code) {
		set_field(field, fieldlen, "return_body");
		return fail(err, errlen, "set without return_code");
	}
	if (p->return_body && (p->return_code == 204 || p->return_code == 304)) {
		set_field(field, fieldlen, "return_body");
		return fail(err, errlen, "a %u answer has no body", (unsigned)p->return_code);
	}
	if (p->return_code && p->redirect_code) {
		set_field(field, fieldlen, "return_code");
		return fail(err, errlen, "set together with redirect_code");
	}
	if ((rc = opt(p->return_body, route_validate_return_body, "return_body", field, fieldlen,
	              err, errlen)))
		return rc;
	if (p->redirect_code && !p->redirect_url && !p->redirect_host) {
		set_field(field, fieldlen, "redirect_url");
		return fail(err, errlen, "required when redirect_code is set");
	}
	if (p->redirect_host && (!p->redirect_code || p->redirect_url)) {
		set_field(field, fieldlen, "redirect_host");
		return fail(err, errlen, "needs redirect_code and no redirect_url");
	}
	if (p->redirect_host && (!p->redirect_host[0] || p->redirect_host[0] == '*' ||
	                         route_validate_host(p->redirect_host, 0, NULL, 0) != 0)) {
		set_field(field, fieldlen, "redirect_host");
		return fail(err, errlen, "not a host name");
	}
	if ((rc = opt(p->redirect_url, route_validate_url, "redirect_url", field, fieldlen, err,
	              errlen)) ||
	    (rc = opt(p->app_root, route_validate_app_root, "app_root", field, fieldlen, err,
	              errlen)) ||
	    (rc = opt(ck->name, route_validate_token, "cookie.name", field, fieldlen, err,
	              errlen)) ||
	    (rc = opt(ck->path, route_validate_cookie_path, "cookie.path", field, fieldlen, err,
	              errlen)) ||
	    (rc = opt(ck->samesite, route_validate_samesite, "cookie.samesite", field, fieldlen,
	              err, errlen)) ||
	    (rc = opt(p->hash_by, route_validate_hash_by, "hash_by", field, fieldlen, err,
	              errlen)) ||
	    (rc = opt(co->allow_origin, route_validate_header_value, "cors.allow_origin", field,
	              fieldlen, err, errlen)) ||
	    (rc = opt(co->allow_methods, route_validate_header_value, "cors.allow_methods", field,
	              fieldlen, err, errlen)) ||
	    (rc = opt(co->allow_headers, route_validate_header_value, "cors.allow_headers", field,
	              fieldlen, err, errlen)) ||
	    (rc = opt(co->expose_headers, route_validate_header_value, "cors.expose_headers", field,
	              fieldlen, err, errlen)) ||
	    (rc = opt(p->backend_tls.name, route_validate_backend_tls_name, "backend_tls.name",
	              field, fieldlen, err, errlen)) ||
	    (rc = opt(ck->domain, route_validate_cookie_attr, "cookie.domain", field, fieldlen, err,
	              errlen)) ||
	    (rc = opt(p->proxy_redirect_from, route_validate_redirect_part, "proxy_redirect_from",
	              field, fieldlen, err, errlen)) ||
	    (rc = opt(p->proxy_redirect_to, route_validate_redirect_part, "proxy_redirect_to",
	              field, fieldlen, err, errlen)) ||
	    (rc = opt(p->proxy_cookie_domain_from, route_validate_cookie_attr,
	              "proxy_cookie_domain_from", field, fieldlen, err, errlen)) ||
	    (rc = opt(p->proxy_cookie_domain_to, route_validate_cookie_attr,
	              "proxy_cookie_domain_to", field, fieldlen, err, errlen)) ||
	    (rc = opt(p->proxy_cookie_path_from, route_validate_cookie_attr,
	              "proxy_cookie_path_from", field, fieldlen, err, errlen)) ||
	    (rc = opt(p->proxy_cookie_path_to, route_validate_cookie_attr, "proxy_cookie_path_to",
	              field, fieldlen, err, errlen)))
		return rc;
	/* The rewrites come in pairs: one side alone has no meaning. */
	if (!p->proxy_redirect_from != !p->proxy_redirect_to) {
		set_field(field, fieldlen,
		          p->proxy_redirect_from ? "proxy_redirect_to" : "proxy_redirect_from");
		return fail(err, errlen, "required with its pair");
	}
	if (!p->proxy_cookie_domain_from != !p->proxy_cookie_domain_to) {
		set_field(field, fieldlen,
		          p->proxy_cookie_domain_from ? "proxy_cookie_domain_to"
		                                      : "proxy_cookie_domain_from");
		return fail(err, errlen, "required with its pair");
	}
	if (!p->proxy_cookie_path_from != !p->proxy_cookie_path_to) {
		set_field(field, fieldlen,
		          p->proxy_cookie_path_from ? "proxy_cookie_path_to"
		                                    : "proxy_cookie_path_from");
		return fail(err, errlen, "required with its pair");
	}
	if (p->hash_by_subset_size < 1 || p->hash_by_subset_size > ROUTE_VALIDATE_MAX_SUBSET) {
		set_field(field, fieldlen, "hash_by_subset_size");
		return fail(err, errlen, "not between 1 and %d", ROUTE_VALIDATE_MAX_SUBSET);
	}
	if (ck->max_age_s < -1 || ck->expires_s < -1) {
		set_field(field, fieldlen,
		          ck->max_age_s < -1 ? "cookie.max_age_s" : "cookie.expires_s");
		return fail(err, errlen, "below -1");
	}
	if (p->body_limit < 0 || co->max_age_s < 0) {
		set_field(field, fieldlen, p->body_limit < 0 ? "body_limit" : "cors.max_age_s");
		return fail(err, errlen, "below 0");
	}
	if (p->upstream_head_max < ROUTE_HEAD_MAX_MIN ||
	    p->upstream_head_max > ROUTE_HEAD_MAX_MAX) {
		set_field(field, fieldlen, "upstream_head_max");
		return fail(err, errlen, "%u is not between %u and %u",
		            (unsigned)p->upstream_head_max, ROUTE_HEAD_MAX_MIN, ROUTE_HEAD_MAX_MAX);
	}
	if (p->limit_burst < 1 || p->limit_burst > ROUTE_VALIDATE_MAX_BURST) {
		set_field(field, fieldlen, "limit_burst");
		return fail(err, errlen, "not between 1 and %d", ROUTE_VALIDATE_MAX_BURST);
	}
	if ((rc = check_headers(p->request_headers, p->nrequest_headers, "request_headers", field,
	                        fieldlen, err, errlen)) ||
	    (rc = check_headers(p->response_headers, p->nresponse_headers, "response_headers",
	                        field, fieldlen, err, errlen)))
		return rc;
	for (size_t i = 0; i < p->nadd_headers; i++) {
		const struct route_add_header *h = &p->add_headers[i];
		if (route_validate_token(h->name ? h->name : "", err, errlen)) {
			set_field(field, fieldlen, "add_headers[%zu].name", i);
			return WEIR_EINVAL;
		}
		if ((h->expand ? route_validate_header_template : route_validate_header_value)(
		        h->value ? h->value : "", err, errlen)) {
			set_field(field, fieldlen, "add_headers[%zu].value", i);
			return WEIR_EINVAL;
		}
	}
	for (size_t i = 0; i < p->nhide_headers; i++) {
		if (route_validate_token(p->hide_headers[i] ? p->hide_headers[i] : "", err,
		                         errlen)) {
			set_field(field, fieldlen, "hide_headers[%zu]", i);
			return WEIR_EINVAL;
		}
	}
	if ((rc = check_ext_auth(&p->ext_auth, field, fieldlen, err, errlen)) != 0 ||
	    (rc = check_mirror(&p->mirror, field, fieldlen, err, errlen)) != 0)
		return rc;
	if (p->nrewrites > ROUTE_REWRITES_MAX) {
		set_field(field, fieldlen, "rewrites");
		return fail(err, errlen, "more than %u", ROUTE_REWRITES_MAX);
	}
	for (size_t i = 0; i < p->nrewrites; i++)
		if (route_validate_rewrite(&p->rewrites[i], err, errlen)) {
			set_field(field, fieldlen, "rewrites[%zu]", i);
			return WEIR_EINVAL;
		}
	return check_fastcgi(&p->fastcgi, field, fieldlen, err, errlen);
}

int route_validate_canary(const struct route_canary *c, char *field, size_t fieldlen, char *err,
                          size_t errlen)
{
	int rc;
	if ((rc = opt(c->by_header, route_validate_token, "by_header", field, fieldlen, err,
	              errlen)) ||
	    (rc = opt(c->by_header_value, route_validate_header_value, "by_header_value", field,
	              fieldlen, err, errlen)) ||
	    (rc = opt(c->by_cookie, route_validate_token, "by_cookie", field, fieldlen, err,
	              errlen)) ||
	    (rc = opt(c->by_header_pattern, route_validate_header_pattern, "by_header_pattern",
	              field, fieldlen, err, errlen)))
		return rc;
	if (c->weight_total < 1) {
		set_field(field, fieldlen, "weight_total");
		return fail(err, errlen, "below 1");
	}
	if (c->weight > c->weight_total) {
		set_field(field, fieldlen, "weight");
		return fail(err, errlen, "%u out of range 0..%u", (unsigned)c->weight,
		            (unsigned)c->weight_total);
	}
	return 0;
}

static int validate_route(const struct route *r, bool skip_regex_compile, bool policy, char *field,
                          size_t fieldlen, char *err, size_t errlen)
{
	char sub[200];
	if (route_validate_path(r->path ? r->path : "", r->match, skip_regex_compile, err,
	                        errlen)) {
		set_field(field, fieldlen, "path");
		return WEIR_EINVAL;
	}
	if (r->source && route_validate_text(r->source, err, errlen)) {
		set_field(field, fieldlen, "source");
		return WEIR_EINVAL;
	}
	if (policy && route_validate_policy(r->policy, sub, sizeof(sub), err, errlen)) {
		set_field(field, fieldlen, "policy.%s", sub);
		return WEIR_EINVAL;
	}
	if (route_validate_canary(&r->canary, sub, sizeof(sub), err, errlen)) {
		set_field(field, fieldlen, "canary.%s", sub);
		return WEIR_EINVAL;
	}
	return 0;
}

int route_validate_route(const struct route *r, bool skip_regex_compile, char *field,
                         size_t fieldlen, char *err, size_t errlen)
{
	return validate_route(r, skip_regex_compile, true, field, fieldlen, err, errlen);
}

int route_validate_route_but_policy(const struct route *r, bool skip_regex_compile, char *field,
                                    size_t fieldlen, char *err, size_t errlen)
{
	return validate_route(r, skip_regex_compile, false, field, fieldlen, err, errlen);
}

/* The last queued OpenSSL error as text (the queue is cleared). */
static void ssl_error_text(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "no PEM data");
	ERR_clear_error();
}

/* Put a PEM certificate (the leaf, then its chain) and its private key into
 * ctx; both texts already checked as UTF-8. client says which words the
 * errors use ("client certificate" for a backend profile). field names
 * cert_pem or key_pem on failure. Returns 0, WEIR_ETLS or WEIR_ENOMEM. */
static int use_cert_and_key(SSL_CTX *ctx, const char *name, bool client, const char *cert_pem,
                            const char *key_pem, char *field, size_t fieldlen, char *err,
                            size_t errlen)
{
	int rc = WEIR_ETLS;
	char why[200];
	const char *c = client ? "client " : "";
	X509 *x = NULL;
	EVP_PKEY *key = NULL;
	set_field(field, fieldlen, "cert_pem");
	BIO *bio = BIO_new_mem_buf(cert_pem, -1);
	if (!bio)
		goto oom;
	x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
	if (!x || SSL_CTX_use_certificate(ctx, x) != 1) {
		ssl_error_text(why, sizeof(why));
		snprintf(err, errlen, "bad %scertificate (%s): %s", c, name, why);
		goto out;
	}
	/* The rest of the PEM is the chain, leaf first. */
	for (;;) {
		X509 *ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!ca)
			break;
		if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
			X509_free(ca);
			ssl_error_text(why, sizeof(why));
			snprintf(err, errlen, "bad %s (%s): %s",
			         client ? "client certificate chain" : "chain", name, why);
			goto out;
		}
	}
	ERR_clear_error(); /* the end of the PEM stream queues a "no start line" */
	BIO_free(bio);
	set_field(field, fieldlen, "key_pem");
	bio = BIO_new_mem_buf(key_pem, -1);
	if (!bio)
		goto oom;
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!key) {
		ssl_error_text(why, sizeof(why));
		snprintf(err, errlen, "bad %sprivate key (%s): %s", c, name, why);
		goto out;
	}
	if (X509_check_private_key(x, key) != 1 ||
	    (client && SSL_CTX_use_PrivateKey(ctx, key) != 1)) {
		ERR_clear_error();
		snprintf(err, errlen,
		         client ? "client private key does not match its certificate (%s)"
		                : "private key does not match the certificate (%s)",
		         name);
		goto out;
	}
	if (!client &&
	    (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)) {
		ssl_error_text(why, sizeof(why));
		snprintf(err, errlen, "unusable private key (%s): %s", name, why);
		goto out;
	}
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
	rc = WEIR_ENOMEM;
out:
	EVP_PKEY_free(key);
	X509_free(x);
	BIO_free(bio);
	return rc;
}

void route_cert_digest(const char *cert_pem, const char *key_pem,
                       unsigned char out[ROUTE_CERT_DIGEST_LEN])
{
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	if (!h || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(h, cert_pem, strlen(cert_pem) + 1) != 1 || /* the NUL: unambiguous */
	    EVP_DigestUpdate(h, key_pem, strlen(key_pem)) != 1 ||
	    EVP_DigestFinal_ex(h, out, NULL) != 1)
		abort(); /* out of memory */
	EVP_MD_CTX_free(h);
}

int route_validate_cert(const char *name, const char *cert_pem, const char *key_pem, SSL_CTX **out,
                        char *field, size_t fieldlen, char *err, size_t errlen)
{
	int rc = WEIR_ETLS;
	char why[200];
	SSL_CTX *ctx = NULL;
	if (!name)
		name = "";
	set_field(field, fieldlen, "cert_pem");
	if (!cert_pem || !route_validate_utf8(cert_pem, strlen(cert_pem))) {
		snprintf(err, errlen, "bad certificate (%s): not UTF-8 PEM text", name);
		goto out;
	}
	set_field(field, fieldlen, "key_pem");
	if (!key_pem || !route_validate_utf8(key_pem, strlen(key_pem))) {
		snprintf(err, errlen, "bad private key (%s): not UTF-8 PEM text", name);
		goto out;
	}
	set_field(field, fieldlen, "cert_pem");
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		ssl_error_text(why, sizeof(why));
		snprintf(err, errlen, "cannot create TLS context: %s", why);
		rc = WEIR_ENOMEM;
		goto out;
	}
	rc = use_cert_and_key(ctx, name, false, cert_pem, key_pem, field, fieldlen, err, errlen);
	if (rc == 0 && out) {
		*out = ctx;
		ctx = NULL;
	}
out:
	SSL_CTX_free(ctx);
	return rc;
}

int route_validate_ca(const char *name, const char *ca_pem, const char *crl_pem, X509_STORE **out,
                      char *field, size_t fieldlen, char *err, size_t errlen)
{
	int rc = WEIR_ETLS, ncerts = 0, ncrls = 0;
	char why[200];
	BIO *bio = NULL;
	X509_STORE *store = NULL;
	if (!name)
		name = "";
	set_field(field, fieldlen, "ca_pem");
	if (!ca_pem || !route_validate_utf8(ca_pem, strlen(ca_pem))) {
		snprintf(err, errlen, "bad CA certificate (%s): not UTF-8 PEM text", name);
		goto out;
	}
	set_field(field, fieldlen, "crl_pem");
	if (crl_pem && !route_validate_utf8(crl_pem, strlen(crl_pem))) {
		snprintf(err, errlen, "bad CRL (%s): not UTF-8 PEM text", name);
		goto out;
	}
	set_field(field, fieldlen, "ca_pem");
	ERR_clear_error();
	store = X509_STORE_new();
	bio = BIO_new_mem_buf(ca_pem, -1);
	if (!store || !bio)
		goto oom;
	/* Every block must be a certificate (as ingress-nginx checks ca.crt). */
	for (;;) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (!x)
			break;
		int ok = X509_STORE_add_cert(store, x);
		X509_free(x);
		if (ok != 1) {
			ssl_error_text(why, sizeof(why));
			snprintf(err, errlen, "bad CA certificate (%s): %s", name, why);
			goto out;
		}
		ncerts++;
	}
	unsigned long e = ERR_peek_last_error();
	if (ncerts == 0 || (e && ERR_GET_REASON(e) != PEM_R_NO_START_LINE)) {
		ssl_error_text(why, sizeof(why));
		snprintf(err, errlen, "bad CA certificate (%s): %s", name,
		         ncerts ? why : "no PEM certificate");
		goto out;
	}
	ERR_clear_error();
	if (crl_pem) {
		set_field(field, fieldlen, "crl_pem");
		BIO_free(bio);
		bio = BIO_new_mem_buf(crl_pem, -1);
		if (!bio)
			goto oom;
		for (;;) {
			X509_CRL *crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
			if (!crl)
				break;
			int ok = X509_STORE_add_crl(store, crl);
			X509_CRL_free(crl);
			if (ok != 1) {
				ssl_error_text(why, sizeof(why));
				snprintf(err, errlen, "bad CRL (%s): %s", name, why);
				goto out;
			}
			ncrls++;
		}
		e = ERR_peek_last_error();
		if (ncrls == 0 || (e && ERR_GET_REASON(e) != PEM_R_NO_START_LINE)) {
			ssl_error_text(why, sizeof(why));
			snprintf(err, errlen, "bad CRL (%s): %s", name, ncrls ? why : "no PEM CRL");
			goto out;
		}
		ERR_clear_error();
		/* nginx's ssl_crl: the whole chain is checked against the lists. */
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	}
	if (out) {
		*out = store;
		store = NULL;
	}
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
	rc = WEIR_ENOMEM;
out:
	ERR_clear_error();
	BIO_free(bio);
	X509_STORE_free(store);
	return rc;
}

/* ------------------------------------------------------------ backend TLS */

static const struct {
	const char *name;
	long op; /* SSL_OP_NO_* that turns it off */
	int version;
} backend_protocols[] = {
    {"TLSv1", SSL_OP_NO_TLSv1, TLS1_VERSION},
    {"TLSv1.1", SSL_OP_NO_TLSv1_1, TLS1_1_VERSION},
    {"TLSv1.2", SSL_OP_NO_TLSv1_2, TLS1_2_VERSION},
    {"TLSv1.3", SSL_OP_NO_TLSv1_3, TLS1_3_VERSION},
};
#define NPROTOCOLS (sizeof(backend_protocols) / sizeof(backend_protocols[0]))
#define DEFAULT_BACKEND_PROTOCOLS "TLSv1.2 TLSv1.3"

/* Which protocols a list names (bit i: backend_protocols[i]), or -1 when a
 * word is none of them or the list is empty. */
static int protocol_mask(const char *s, char *err, size_t errlen)
{
	int mask = 0;
	for (const char *p = s; *p;) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, " ");
		size_t i = 0;
		while (i < NPROTOCOLS && !(strlen(backend_protocols[i].name) == n &&
		                           strncmp(backend_protocols[i].name, p, n) == 0))
			i++;
		if (i == NPROTOCOLS) {
			char q[96];
			route_validate_quote(s, q, sizeof(q));
			fail(err, errlen, "%s: a word is not TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3",
			     q);
			return -1;
		}
		mask |= 1 << i;
		p += n;
	}
	if (!mask) {
		fail(err, errlen, "names no protocol");
		return -1;
	}
	return mask;
}

void route_tls_protocol_bounds(const char *list, int *min, long *off)
{
	int mask = protocol_mask(list ? list : DEFAULT_BACKEND_PROTOCOLS, NULL, 0);
	if (mask < 0)
		mask = protocol_mask(DEFAULT_BACKEND_PROTOCOLS, NULL, 0);
	/* As nginx: every protocol not listed is switched off (the list may
	 * have holes), and the version floor opened to the lowest listed. */
	*off = 0;
	*min = 0;
	for (size_t i = 0; i < NPROTOCOLS; i++) {
		if (mask & (1 << i)) {
			if (!*min)
				*min = backend_protocols[i].version;
		} else {
			*off |= backend_protocols[i].op;
		}
	}
}

int route_validate_tls_protocols(const char *list, char *err, size_t errlen)
{
	return protocol_mask(list, err, errlen) < 0 ? WEIR_EINVAL : 0;
}

/* An OpenSSL cipher list's characters (letters, digits and +:_-!@=, the
 * last two for @SECLEVEL=n and @STRENGTH). */
static bool cipher_chars_ok(const char *s)
{
	if (!*s)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("+:_-!@=", *p)))
			return false;
	return true;
}

int route_validate_server_ciphers(const char *s, char *err, size_t errlen)
{
	char q[96];
	if (!cipher_chars_ok(s)) {
		route_validate_quote(s, q, sizeof(q));
		return fail(
		    err, errlen,
		    "%s: empty or holds a character other than letters, digits and +:_-!@=", q);
	}
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return fail(err, errlen, "out of memory");
	ERR_clear_error();
	int ok = SSL_CTX_set_cipher_list(ctx, s);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	if (ok != 1) {
		route_validate_quote(s, q, sizeof(q));
		return fail(err, errlen, "%s: OpenSSL knows no cipher of this list", q);
	}
	return 0;
}

int route_validate_block_pattern(const char *s, char *err, size_t errlen)
{
	if (route_validate_text(s, err, errlen) != 0)
		return WEIR_EINVAL;
	if (!*s)
		return fail(err, errlen, "empty pattern");
	if (s[0] != '~')
		return 0;
	bool caseless = s[1] == '*';
	const char *re_text = s + (caseless ? 2 : 1);
	if (!*re_text)
		return fail(err, errlen, "empty regular expression");
	pcre2_code *re = route_block_pattern_compile(s, err, errlen);
	if (!re)
		return WEIR_EINVAL;
	pcre2_code_free(re);
	return 0;
}

pcre2_code *route_block_pattern_compile(const char *s, char *err, size_t errlen)
{
	if (s[0] != '~')
		return NULL;
	bool caseless = s[1] == '*';
	const char *re_text = s + (caseless ? 2 : 1);
	int ecode;
	PCRE2_SIZE eoff;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)re_text, strlen(re_text),
	                               caseless ? PCRE2_CASELESS : 0, &ecode, &eoff, NULL);
	if (!re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(ecode, msg, sizeof(msg));
		fail(err, errlen, "bad regex: %s at offset %zu", (const char *)msg, (size_t)eoff);
	}
	return re;
}

int route_validate_backend_tls_profile(const struct route_backend_tls_profile *b, char *field,
                                       size_t fieldlen, char *err, size_t errlen)
{
	char q[96];
	if (b->name && route_validate_text(b->name, err, errlen) != 0) {
		set_field(field, fieldlen, "name");
		return WEIR_EINVAL;
	}
	if (b->verify && !b->ca_pem) {
		set_field(field, fieldlen, "ca_pem");
		return fail(err, errlen, "required when verify is true");
	}
	if (!b->cert_pem != !b->key_pem) {
		set_field(field, fieldlen, b->cert_pem ? "key_pem" : "cert_pem");
		return fail(err, errlen, "cert_pem and key_pem come together");
	}
	if (b->verify_depth > 100) {
		set_field(field, fieldlen, "verify_depth");
		return fail(err, errlen, "%u is above 100", (unsigned)b->verify_depth);
	}
	if (b->protocols && protocol_mask(b->protocols, err, errlen) < 0) {
		set_field(field, fieldlen, "protocols");
		return WEIR_EINVAL;
	}
	if (b->ciphers) {
		bool ok = b->ciphers[0] != '\0';
		for (const char *p = b->ciphers; ok && *p; p++)
			ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || strchr("+:_-!", *p);
		if (!ok) {
			set_field(field, fieldlen, "ciphers");
			route_validate_quote(b->ciphers, q, sizeof(q));
			return fail(err, errlen,
			            "%s: empty or holds a character other than letters, digits and "
			            "+:_-!",
			            q);
		}
	}
	return 0;
}

int route_validate_backend_tls_name(const char *s, char *err, size_t errlen)
{
	unsigned char addr[16];
	if (inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1)
		return 0;
	if (!*s)
		return fail(err, errlen, "empty");
	return route_validate_host(s, ROUTE_HOST_EXACT, err, errlen);
}

int route_validate_backend_tls_ctx(const struct route_backend_tls_profile *b, SSL_CTX **out,
                                   char *field, size_t fieldlen, char *err, size_t errlen)
{
	int rc = WEIR_ETLS;
	char why[200];
	const char *name = b->name ? b->name : "";
	BIO *bio = NULL;
	SSL_CTX *ctx = NULL;
	if (route_validate_backend_tls_profile(b, field, fieldlen, err, errlen) != 0)
		return WEIR_EINVAL;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx)
		goto oom;
	long ops = 0;
	int min = 0;
	route_tls_protocol_bounds(b->protocols, &min, &ops);
	SSL_CTX_set_options(ctx, (uint64_t)ops);
	SSL_CTX_set_min_proto_version(ctx, min);
	if (b->ciphers && SSL_CTX_set_cipher_list(ctx, b->ciphers) != 1) {
		set_field(field, fieldlen, "ciphers");
		ssl_error_text(why, sizeof(why));
		snprintf(err, errlen, "no usable cipher%s%s%s: %s", *name ? " (" : "", name,
		         *name ? ")" : "", why);
		goto out;
	}
	if (b->ca_pem) {
		set_field(field, fieldlen, "ca_pem");
		if (!route_validate_utf8(b->ca_pem, strlen(b->ca_pem))) {
			snprintf(err, errlen, "bad CA certificate (%s): not UTF-8 PEM text", name);
			goto out;
		}
		bio = BIO_new_mem_buf(b->ca_pem, -1);
		if (!bio)
			goto oom;
		X509_STORE *store = SSL_CTX_get_cert_store(ctx);
		size_t nca = 0;
		for (;;) {
			X509 *ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
			if (!ca)
				break;
			int added = X509_STORE_add_cert(store, ca);
			X509_free(ca);
			if (added != 1) {
				ssl_error_text(why, sizeof(why));
				snprintf(err, errlen, "bad CA certificate (%s): %s", name, why);
				goto out;
			}
			nca++;
		}
		unsigned long e = ERR_peek_last_error();
		if (nca == 0 || (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM &&
		                        ERR_GET_REASON(e) == PEM_R_NO_START_LINE))) {
			ssl_error_text(why, sizeof(why));
			snprintf(err, errlen, "bad CA certificate (%s): %s", name,
			         nca ? why : "no certificate in the PEM text");
			goto out;
		}
		ERR_clear_error();
		BIO_free(bio);
		bio = NULL;
	}
	SSL_CTX_set_verify(ctx, b->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_verify_depth(ctx, (int)b->verify_depth);
	if (b->cert_pem) {
		set_field(field, fieldlen, "cert_pem");
		if (!route_validate_utf8(b->cert_pem, strlen(b->cert_pem)) ||
		    !route_validate_utf8(b->key_pem, strlen(b->key_pem))) {
			snprintf(err, errlen, "bad client certificate (%s): not UTF-8 PEM text",
			         name);
			goto out;
		}
		rc = use_cert_and_key(ctx, name, true, b->cert_pem, b->key_pem, field, fieldlen,
		                      err, errlen);
		if (rc != 0)
			goto out;
	}
	if (out) {
		*out = ctx;
		ctx = NULL;
	}
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
	rc = WEIR_ENOMEM;
out:
	BIO_free(bio);
	SSL_CTX_free(ctx);
	return rc;
}
