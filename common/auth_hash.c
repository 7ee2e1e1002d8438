/* common/auth_hash.c - recognise the password hash formats weir checks. */
#include "auth_hash.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The alphabet of crypt(3) hashes and salts (and of bcrypt, in another
 * order, which does not matter for a membership test). */
static bool is_crypt64(char c)
{
	return c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	       (c >= 'a' && c <= 'z');
}

static bool all_crypt64(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_crypt64(s[i]))
			return false;
	return true;
}

static bool is_base64(char c)
{
	return c == '+' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	       (c >= 'a' && c <= 'z');
}

/* "salt$digest" after a "$id$" prefix: a salt of 1..max_salt characters
 * without '$' (printable ASCII), then a digest of exactly digest_len crypt64
 * characters and nothing after it. */
static bool salt_digest(const char *s, size_t min_salt, size_t max_salt, size_t digest_len)
{
	const char *dollar = strchr(s, '$');
	if (!dollar)
		return false;
	size_t salt = (size_t)(dollar - s);
	if (salt < min_salt || salt > max_salt)
		return false;
	for (size_t i = 0; i < salt; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == ':')
			return false;
	const char *d = dollar + 1;
	return strlen(d) == digest_len && all_crypt64(d, digest_len);
}

/* SHA-crypt: optional "rounds=N$" (N decimal), then the salt (at most 16
 * characters) and the digest. *too_slow: N above the limit. */
static bool sha_crypt(const char *s, size_t digest_len, bool *too_slow)
{
	*too_slow = false;
	if (strncmp(s, "rounds=", 7) == 0) {
		const char *p = s + 7;
		size_t digits = 0;
		unsigned long n = 0;
		while (p[digits] >= '0' && p[digits] <= '9') {
			n = n * 10 + (unsigned long)(p[digits] - '0');
			digits++;
			if (digits > 9)
				return false;
		}
		if (digits == 0 || p[digits] != '$')
			return false;
		if (n > AUTH_HASH_SHA_CRYPT_MAX_ROUNDS) {
			*too_slow = true;
			return false;
		}
		s = p + digits + 1;
	}
	return salt_digest(s, 0, 16, digest_len);
}

/* The kind, and in *why the reason of a refusal (static). */
static enum auth_hash_kind classify(const char *h, const char **why)
{
	size_t n = strlen(h);
	bool slow = false;
	*why = "password hash format weir cannot check (it checks bcrypt $2y$/$2a$/$2b$, apr1, "
	       "{SHA}, and "
	       "crypt DES, $1$, $5$, $6$)";
	if (n == 60 && h[0] == '$' && h[1] == '2' && (h[2] == 'a' || h[2] == 'b' || h[2] == 'y') &&
	    h[3] == '$' && h[4] >= '0' && h[4] <= '3' && h[5] >= '0' && h[5] <= '9' &&
	    h[6] == '$') {
		int cost = (h[4] - '0') * 10 + (h[5] - '0');
		if (cost < 4 || cost > 31 || !all_crypt64(h + 7, 53))
			return AUTH_HASH_UNKNOWN;
		if (cost > AUTH_HASH_BCRYPT_MAX_COST) {
			*why = "bcrypt cost above 12 (each check would stall a proxy worker)";
			return AUTH_HASH_UNKNOWN;
		}
		return AUTH_HASH_BCRYPT;
	}
	if (strncmp(h, "$apr1$", 6) == 0)
		return salt_digest(h + 6, 1, 8, 22) ? AUTH_HASH_APR1 : AUTH_HASH_UNKNOWN;
	if (strncmp(h, "$1$", 3) == 0)
		return salt_digest(h + 3, 1, 8, 22) ? AUTH_HASH_MD5_CRYPT : AUTH_HASH_UNKNOWN;
	if (strncmp(h, "$5$", 3) == 0 || strncmp(h, "$6$", 3) == 0) {
		bool sha256 = h[1] == '5';
		if (sha_crypt(h + 3, sha256 ? 43 : 86, &slow))
			return sha256 ? AUTH_HASH_SHA256_CRYPT : AUTH_HASH_SHA512_CRYPT;
		if (slow)
			*why =
			    "SHA-crypt rounds above 100000 (each check would stall a proxy worker)";
		return AUTH_HASH_UNKNOWN;
	}
	if (strncmp(h, "{SHA}", 5) == 0) {
		/* 20 bytes -> 28 base64 characters, the last one padding */
		if (n != 33 || h[32] != '=')
			return AUTH_HASH_UNKNOWN;
		for (size_t i = 5; i < 32; i++)
			if (!is_base64(h[i]))
				return AUTH_HASH_UNKNOWN;
		return AUTH_HASH_SHA1;
	}
	if (n == 13 && all_crypt64(h, 13))
		return AUTH_HASH_DES;
	return AUTH_HASH_UNKNOWN;
}

enum auth_hash_kind auth_hash_kind(const char *h)
{
	const char *why;
	return classify(h, &why);
}

const char *auth_hash_refusal(const char *h)
{
	const char *why;
	return classify(h, &why) == AUTH_HASH_UNKNOWN ? why : NULL;
}

const char *auth_hash_kind_name(enum auth_hash_kind kind)
{
	switch (kind) {
	case AUTH_HASH_BCRYPT:
		return "bcrypt";
	case AUTH_HASH_APR1:
		return "apr1";
	case AUTH_HASH_SHA1:
		return "{SHA}";
	case AUTH_HASH_MD5_CRYPT:
		return "md5-crypt";
	case AUTH_HASH_SHA256_CRYPT:
		return "sha256-crypt";
	case AUTH_HASH_SHA512_CRYPT:
		return "sha512-crypt";
	case AUTH_HASH_DES:
		return "des-crypt";
	default:
		return "unknown";
	}
}
