/* proxy/auth_basic.c - "Authorization: Basic" checks against a route's
 * htpasswd users, with a bounded per-worker cache of successes. */
#include "auth_basic.h"

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "auth_hash.h"
#include "error.h"
#include "metrics.h"
#include "policy.h"

#define CRED_MAX 4096u /* longest decoded "user:password" accepted */

struct cache_slot {
	unsigned char key[32]; /* SHA-256 of route, stored hash and Authorization value */
	uint64_t expires_ms;   /* 0: empty */
};

struct auth_basic_cache {
	const void *table; /* the table the entries were checked against */
	struct cache_slot slots[AUTH_BASIC_CACHE_SLOTS];
	struct crypt_data cd; /* crypt_rn scratch (about 32 KiB) */
};

int auth_basic_cache_new(struct auth_basic_cache **out)
{
	struct auth_basic_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return WEIR_ENOMEM;
	*out = c;
	return 0;
}

void auth_basic_cache_free(struct auth_basic_cache *cache)
{
	if (!cache)
		return;
	OPENSSL_cleanse(cache, sizeof(*cache));
	free(cache);
}

/* ---- hash checks ---- */

static const char itoa64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* n characters of crypt's base-64 for the low bits of v, least significant
 * first. */
static char *put64(char *p, unsigned long v, int n)
{
	while (n-- > 0) {
		*p++ = itoa64[v & 0x3f];
		v >>= 6;
	}
	return p;
}

static bool md5_step(EVP_MD_CTX *md, const void *a, size_t alen, const void *b, size_t blen,
                     const void *c, size_t clen, unsigned char out[16])
{
	unsigned int n = 0;
	return EVP_DigestInit_ex(md, EVP_md5(), NULL) == 1 &&
	       (!alen || EVP_DigestUpdate(md, a, alen) == 1) &&
	       (!blen || EVP_DigestUpdate(md, b, blen) == 1) &&
	       (!clen || EVP_DigestUpdate(md, c, clen) == 1) &&
	       EVP_DigestFinal_ex(md, out, &n) == 1 && n == 16;
}

/* Apache's "$apr1$" hash: the MD5-based crypt of FreeBSD (as published by
 * Poul-Henning Kamp) with the magic string "$apr1$". out receives the full
 * "$apr1$salt$digest" string (at least 40 bytes). */
static bool apr1(const char *pw, size_t pwlen, const char *salt, size_t saltlen, char *out,
                 size_t outlen)
{
	static const char magic[] = "$apr1$";
	const size_t mlen = sizeof(magic) - 1;
	unsigned char fin[16], alt[16];
	bool ok = false;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || outlen < mlen + saltlen + 1 + 22 + 1)
		goto out;
	/* alternate sum: MD5(pw salt pw) */
	if (!md5_step(md, pw, pwlen, salt, saltlen, pw, pwlen, alt))
		goto out;
	/* every later init reuses the MD5 set up above (a new fetch per round
	 * would cost more than the digest itself) */
	/* main sum: pw magic salt, then alt repeated over pw's length, then
	 * one byte per bit of pw's length (NUL for a set bit, pw[0] else) */
	if (EVP_DigestInit_ex2(md, NULL, NULL) != 1 || EVP_DigestUpdate(md, pw, pwlen) != 1 ||
	    EVP_DigestUpdate(md, magic, mlen) != 1 || EVP_DigestUpdate(md, salt, saltlen) != 1)
		goto out;
	for (size_t left = pwlen; left > 0; left -= left > 16 ? 16 : left)
		if (EVP_DigestUpdate(md, alt, left > 16 ? 16 : left) != 1)
			goto out;
	for (size_t bits = pwlen; bits; bits >>= 1)
		if (EVP_DigestUpdate(md, (bits & 1) ? "" : pw, 1) != 1)
			goto out;
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(md, fin, &n) != 1)
		goto out;
	/* 1000 rounds that mix pw, salt and the previous sum */
	for (int i = 0; i < 1000; i++) {
		const void *first = (i & 1) ? (const void *)pw : fin;
		size_t flen = (i & 1) ? pwlen : 16;
		const void *last = (i & 1) ? (const void *)fin : pw;
		size_t llen = (i & 1) ? 16 : pwlen;
		unsigned char next[16];
		if (EVP_DigestInit_ex2(md, NULL, NULL) != 1 ||
		    (flen && EVP_DigestUpdate(md, first, flen) != 1) ||
		    ((i % 3) && EVP_DigestUpdate(md, salt, saltlen) != 1) ||
		    ((i % 7) && pwlen && EVP_DigestUpdate(md, pw, pwlen) != 1) ||
		    (llen && EVP_DigestUpdate(md, last, llen) != 1) ||
		    EVP_DigestFinal_ex(md, next, &n) != 1)
			goto out;
		memcpy(fin, next, 16);
	}
	char *p = out;
	memcpy(p, magic, mlen);
	p += mlen;
	memcpy(p, salt, saltlen);
	p += saltlen;
	*p++ = '$';
	/* the digest bytes in the order of the original algorithm */
	static const int order[5][3] = {{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}};
	for (int i = 0; i < 5; i++)
		p = put64(p,
		          ((unsigned long)fin[order[i][0]] << 16) |
		              ((unsigned long)fin[order[i][1]] << 8) | fin[order[i][2]],
		          4);
	p = put64(p, fin[11], 2);
	*p = '\0';
	ok = true;
out:
	OPENSSL_cleanse(fin, sizeof(fin));
	OPENSSL_cleanse(alt, sizeof(alt));
	EVP_MD_CTX_free(md);
	return ok;
}

/* Constant-time equality of two NUL-terminated strings of public length. */
static bool same(const char *a, const char *b)
{
	size_t n = strlen(a);
	return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

bool auth_basic_verify(struct auth_basic_cache *cache, const char *password, size_t len,
                       const char *hash)
{
	enum auth_hash_kind kind = auth_hash_kind(hash);
	bool ok = false;
	switch (kind) {
	case AUTH_HASH_APR1: {
		const char *salt = hash + 6;
		const char *end = strchr(salt, '$');
		char buf[64];
		if (end && apr1(password, len, salt, (size_t)(end - salt), buf, sizeof(buf)))
			ok = same(buf, hash);
		OPENSSL_cleanse(buf, sizeof(buf));
		break;
	}
	case AUTH_HASH_SHA1: {
		unsigned char d[EVP_MAX_MD_SIZE];
		unsigned int n = 0;
		char b64[64];
		if (EVP_Digest(password, len, d, &n, EVP_sha1(), NULL) == 1 && n == 20) {
			EVP_EncodeBlock((unsigned char *)b64, d, 20);
			ok = same(b64, hash + 5);
		}
		OPENSSL_cleanse(d, sizeof(d));
		break;
	}
	case AUTH_HASH_BCRYPT:
	case AUTH_HASH_MD5_CRYPT:
	case AUTH_HASH_SHA256_CRYPT:
	case AUTH_HASH_SHA512_CRYPT:
	case AUTH_HASH_DES: {
		/* crypt takes a C string: a password holding NUL cannot match */
		char pw[CRED_MAX + 1];
		struct crypt_data *cd = cache ? &cache->cd : calloc(1, sizeof(*cd));
		if (!cd || len > CRED_MAX || memchr(password, '\0', len)) {
			if (!cache)
				free(cd);
			break;
		}
		memcpy(pw, password, len);
		pw[len] = '\0';
		const char *got = crypt_rn(pw, hash, cd, (int)sizeof(*cd));
		/* crypt_rn answers "*0"/"*1" (never equal to a valid hash) on error */
		ok = got && same(got, hash);
		OPENSSL_cleanse(pw, len);
		OPENSSL_cleanse(cd->output, sizeof(cd->output));
		if (!cache)
			free(cd);
		break;
	}
	default:
		break;
	}
	return ok;
}

/* ---- the request check ---- */

static int b64val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Strict base64 (padding optional, as nginx's decoder) into out (cap
 * bytes). Returns the decoded length, or -1. */
static long b64decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
	while (n && s[n - 1] == '=')
		n--;
	if (n % 4 == 1 || n / 4 * 3 + 3 > cap)
		return -1;
	size_t k = 0;
	unsigned long acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (unsigned char)(acc >> bits);
		}
	}
	return (long)k;
}

static int deny(const struct route *route, const struct http_request *req, char *out, size_t cap)
{
	metrics_basic_auth(METRICS_BASIC_AUTH_REFUSED);
	static const char head[] = "WWW-Authenticate: Basic realm=\"", tail[] = "\"\r\n";
	const char *realm = route->policy->auth.realm ? route->policy->auth.realm : "";
	size_t room = cap > sizeof(head) + sizeof(tail) ? cap - sizeof(head) - sizeof(tail) : 0;
	size_t rlen = strlen(realm);
	/* a realm too long for the buffer is cut, never the header line */
	int n = snprintf(out, cap, "%s%.*s%s", head, (int)(rlen < room ? rlen : room), realm, tail);
	const char *ao;
	size_t aol;
	if (n > 0 && (size_t)n < cap && policy_cors_allow_origin(route, req, &ao, &aol)) {
		int k = snprintf(out + n, cap - (size_t)n,
		                 "Access-Control-Allow-Origin: %.*s\r\n%s", (int)aol, ao,
		                 route->policy->cors.allow_credentials
		                     ? "Access-Control-Allow-Credentials: true\r\n"
		                     : "");
		if (k < 0 || (size_t)k >= cap - (size_t)n)
			out[n] = '\0';
	}
	return 401;
}

/* 4-way set associative: a set of ways for the key; a hit, or else the
 * way that expires first (an empty one has expired at 0) for an insert. */
#define CACHE_WAYS 4u

static struct cache_slot *cache_find(struct auth_basic_cache *c, const unsigned char key[32],
                                     uint64_t now_ms, bool *hit)
{
	size_t set = (key[0] | (size_t)key[1] << 8) % (AUTH_BASIC_CACHE_SLOTS / CACHE_WAYS);
	struct cache_slot *ways = &c->slots[set * CACHE_WAYS], *victim = ways;
	*hit = false;
	for (size_t i = 0; i < CACHE_WAYS; i++) {
		if (ways[i].expires_ms > now_ms &&
		    CRYPTO_memcmp(ways[i].key, key, sizeof(ways[i].key)) == 0) {
			*hit = true;
			return &ways[i];
		}
		if (ways[i].expires_ms < victim->expires_ms)
			victim = &ways[i];
	}
	return victim;
}

static bool cache_key(const struct route *route, const char *hash, const struct http_header *h,
                      unsigned char key[32])
{
	unsigned int n = 0;
	bool ok = false;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, &route, sizeof(route)) == 1 &&
	    EVP_DigestUpdate(md, hash, strlen(hash) + 1) == 1 &&
	    EVP_DigestUpdate(md, h->value, h->value_len) == 1 &&
	    EVP_DigestFinal_ex(md, key, &n) == 1 && n == 32)
		ok = true;
	EVP_MD_CTX_free(md);
	return ok;
}

int auth_basic_check(struct auth_basic_cache *cache, const void *table, const struct route *route,
                     const struct http_request *req, uint64_t now_ms, char *extra, size_t cap)
{
	if (cap)
		extra[0] = '\0';
	if (!route || route->policy->auth.type != ROUTE_AUTH_BASIC)
		return 0;
	if (cache->table != table) {
		memset(cache->slots, 0, sizeof(cache->slots));
		cache->table = table;
	}
	const struct http_header *h = NULL;
	for (size_t i = 0; i < req->nheaders; i++) {
		if (!http_name_is(&req->headers[i], "Authorization"))
			continue;
		if (h) {
			metrics_basic_auth(METRICS_BASIC_AUTH_REFUSED);
			return 400; /* nginx: "client sent duplicate header line" */
		}
		h = &req->headers[i];
	}
	if (!h)
		return deny(route, req, extra, cap);
	/* "Basic" (any case), spaces, the base64 token, optional trailing OWS */
	const char *v = h->value;
	size_t n = h->value_len;
	if (n < 6 || strncasecmp(v, "Basic ", 6) != 0)
		return deny(route, req, extra, cap);
	v += 6;
	n -= 6;
	while (n && *v == ' ') {
		v++;
		n--;
	}
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	unsigned char cred[CRED_MAX + 3];
	long clen = b64decode(v, n, cred, sizeof(cred));
	const unsigned char *colon = clen > 0 ? memchr(cred, ':', (size_t)clen) : NULL;
	int status = 401;
	if (!colon)
		goto out;
	size_t ulen = (size_t)(colon - cred);
	const char *hash = NULL;
	for (size_t i = 0; i < route->policy->auth.nusers && !hash; i++) {
		const struct route_auth_user *u = &route->policy->auth.users[i];
		if (strlen(u->name) == ulen && memcmp(u->name, cred, ulen) == 0)
			hash = u->hash;
	}
	if (!hash)
		goto out;
	unsigned char key[32];
	bool hit = false;
	struct cache_slot *s =
	    cache_key(route, hash, h, key) ? cache_find(cache, key, now_ms, &hit) : NULL;
	if (hit) {
		metrics_basic_auth(METRICS_BASIC_AUTH_CACHED);
		status = 0;
		goto out;
	}
	if (!auth_basic_verify(cache, (const char *)colon + 1, (size_t)clen - ulen - 1, hash))
		goto out;
	if (s) {
		memcpy(s->key, key, sizeof(key));
		s->expires_ms = now_ms + AUTH_BASIC_CACHE_TTL_MS;
	}
	metrics_basic_auth(METRICS_BASIC_AUTH_VERIFIED);
	status = 0;
out:
	OPENSSL_cleanse(cred, sizeof(cred));
	return status ? deny(route, req, extra, cap) : 0;
}
