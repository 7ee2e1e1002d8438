/* common/auth_hash.h - which password hash formats of an htpasswd line weir
 * can check. Syntax only, no cryptography: the controller refuses a Secret
 * with any other format, the route table reader refuses a table holding one,
 * and the proxy dispatches its check on the kind. */
#ifndef WEIR_COMMON_AUTH_HASH_H
#define WEIR_COMMON_AUTH_HASH_H

enum auth_hash_kind {
	AUTH_HASH_UNKNOWN = 0,
	AUTH_HASH_BCRYPT,       /* $2a$, $2b$, $2y$ + 2-digit cost + 53 characters */
	AUTH_HASH_APR1,         /* $apr1$salt$ + 22 characters (Apache MD5) */
	AUTH_HASH_SHA1,         /* {SHA} + base64 of the 20-byte SHA-1 digest */
	AUTH_HASH_MD5_CRYPT,    /* $1$salt$ + 22 characters (glibc MD5 crypt) */
	AUTH_HASH_SHA256_CRYPT, /* $5$[rounds=N$]salt$ + 43 characters */
	AUTH_HASH_SHA512_CRYPT, /* $6$[rounds=N$]salt$ + 86 characters */
	AUTH_HASH_DES           /* 13 characters of ./0-9A-Za-z (traditional crypt) */
};

/* The proxy checks a password on its event loop: a work factor above these
 * would stall a worker for seconds per check (wrong passwords are never
 * cached), so such hashes are refused like unknown ones. bcrypt cost 12 is
 * about 0.3 s on one core. */
#define AUTH_HASH_BCRYPT_MAX_COST 12
#define AUTH_HASH_SHA_CRYPT_MAX_ROUNDS 100000

/* The kind of a hash string (borrowed, NUL-terminated); AUTH_HASH_UNKNOWN
 * when it is none of the formats above, is malformed, or is over the work
 * factor limits above. */
enum auth_hash_kind auth_hash_kind(const char *hash);

/* Why auth_hash_kind refuses a hash, as a static phrase ("bcrypt cost above
 * 12 (...)", "format weir cannot check (...)"), or NULL when it does not. */
const char *auth_hash_refusal(const char *hash);

/* Static short name of a kind ("bcrypt", "apr1", "{SHA}", "md5-crypt",
 * "sha256-crypt", "sha512-crypt", "des-crypt", "unknown"). */
const char *auth_hash_kind_name(enum auth_hash_kind kind);

#endif
