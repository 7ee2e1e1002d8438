/* tests/unit/proxy/auth_basic_test.c - password hash checks against vectors
 * made with Apache's htpasswd (apache2-utils: -B, -m, -s, -d) and
 * `openssl passwd` (-1, -5, -6, -apr1), the hash format recogniser, and the
 * Authorization check with its cache. Includes auth_basic.c to look at the
 * cache slots. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/auth_hash.h"
#include "proxy/auth_basic.c"
#include "request_fixture.h"

struct vector {
	const char *password;
	const char *hash;
	enum auth_hash_kind kind;
};

/* htpasswd -nb[B -C 5|m|s|d] alice PW; openssl passwd -1|-5|-6|-apr1 PW */
static const struct vector vectors[] = {
    {"s3cret", "$2y$05$V3xn4kR7s6R0tvL0ko6DOuIlV08jNmoWXavDrHv/LBwiFmDe5RaMm", AUTH_HASH_BCRYPT},
    {"s3cret", "$apr1$7Y9EPK6s$.OpmsreXWRiQLkvTNuLjA0", AUTH_HASH_APR1},
    {"s3cret", "{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=", AUTH_HASH_SHA1},
    {"s3cret", "h.w.pfYUgbGFQ", AUTH_HASH_DES},
    {"s3cret", "$1$bDtnUs.v$Zk3r8.2vWEvZQRyIINd/g.", AUTH_HASH_MD5_CRYPT},
    {"s3cret", "$5$IIqS07.7sRMD2zV4$psJtFRgc0GbsOpq71JSk/tRUlLMs3kf89GnNdAbXub/",
     AUTH_HASH_SHA256_CRYPT},
    {"s3cret",
     "$6$SuTXZsPAjTppJheW$DK1.5P18gQSdHG.GBETi/YYRRY2r3KetwCO9HnrzpFgPVx2.yhoDsPnvvWwA6UxM."
     "7NvDwgA00yZWSOKm9OQe1",
     AUTH_HASH_SHA512_CRYPT},
    {"s3cret", "$apr1$f6noDlO1$04GYuzomxdDNh883VjAEy.", AUTH_HASH_APR1},
    /* longer than one MD5 block of the apr1 alternate sum */
    {"correct horse battery staple!",
     "$2y$05$KtlXRGixbBVE3xRSO22rzOl2MVevf7tJWdKZfGDFl/hqy4EdbdbC6", AUTH_HASH_BCRYPT},
    {"correct horse battery staple!", "$apr1$SU1oCmfl$KAf4hSGRF4GyrbssP4IeL1", AUTH_HASH_APR1},
    {"correct horse battery staple!", "{SHA}qT1861E8QFXOjyu7ooYZNtKFMYY=", AUTH_HASH_SHA1},
    {"correct horse battery staple!", "$1$bWK4EOHk$SDINZM.m5lCdAj3XZiMvO0", AUTH_HASH_MD5_CRYPT},
    {"correct horse battery staple!", "$apr1$B5SeM9gc$yaBbAX9l9DmsrlbkD7dzE.", AUTH_HASH_APR1},
    /* a ':' in the password (only the first ':' of the credentials splits) */
    {"pa:ss", "$2y$05$reoTdqy9CilTkrWDDa2bu.Wb8mB1Hvxm63TmVAssLiIR.AuHyTxlC", AUTH_HASH_BCRYPT},
    {"pa:ss", "$apr1$Ca4AODK1$7wJeK5fB1y.eXJIlh8XVF/", AUTH_HASH_APR1},
    {"pa:ss", "{SHA}XyRLaTIb/WCdo8CuWc58gPVHl68=", AUTH_HASH_SHA1},
    {"pa:ss", "cc5nPb5Kc5TJM", AUTH_HASH_DES},
    {"pa:ss",
     "$6$FV9kyDMZHg0kJSrI$4TnTOcS0GSb7z1Hwg8TYmzUQFiGNmEcxE3n5FL7g6bKPjxpYPDiJaelii/3V02."
     "IPluXOPAjsPcf9EnCsm9Ug/",
     AUTH_HASH_SHA512_CRYPT},
    /* UTF-8 bytes */
    {"p\xc3\xa4ssw\xc3\xb6rd", "$2y$05$qT1M0gnF/M8mnIWZhByKf.PLAssYa70Q0aQ2jt41mYMkJIx9k3zYq",
     AUTH_HASH_BCRYPT},
    {"p\xc3\xa4ssw\xc3\xb6rd", "$apr1$gFUbMwzQ$7aC5Ir/3QY5AImQ60cqkh1", AUTH_HASH_APR1},
    {"p\xc3\xa4ssw\xc3\xb6rd", "{SHA}9Rfd8dMqES/xrVXGbRsSyzjn6Pc=", AUTH_HASH_SHA1},
    {"p\xc3\xa4ssw\xc3\xb6rd", "$5$0a9hYjnfOPo9UeAn$yNLT5bbnSVYEcp6VP.iwj9khimvb.3KSS9HQwNm9O8/",
     AUTH_HASH_SHA256_CRYPT},
    {"x", "$5$saltsalt$hcyDOxdIg0p3xyqtpHh/v8Ph.am06tQaovp1KpEklb7", AUTH_HASH_SHA256_CRYPT},
};

static void test_vectors(struct auth_basic_cache *cache)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		size_t n = strlen(v->password);
		CHECK_INT(auth_hash_kind(v->hash), v->kind);
		CHECK(auth_basic_verify(cache, v->password, n, v->hash));
		CHECK(auth_basic_verify(NULL, v->password, n, v->hash));
		/* one byte off, one byte short, one byte more, empty */
		char wrong[64];
		snprintf(wrong, sizeof(wrong), "%s", v->password);
		wrong[0] ^= 1;
		CHECK(!auth_basic_verify(cache, wrong, n, v->hash));
		CHECK(!auth_basic_verify(cache, v->password, n - 1, v->hash));
		if (v->kind != AUTH_HASH_DES || n < 8) {
			snprintf(wrong, sizeof(wrong), "%sx", v->password);
			CHECK(!auth_basic_verify(cache, wrong, n + 1, v->hash));
		}
		CHECK(!auth_basic_verify(cache, "", 0, v->hash));
	}
}

/* $2a$ and $2b$ give the same digest as $2y$ for ASCII passwords. */
static void test_bcrypt_variants(void)
{
	char h[61];
	snprintf(h, sizeof(h), "%s", vectors[0].hash);
	for (const char *v = "ab"; *v; v++) {
		h[2] = *v;
		CHECK_INT(auth_hash_kind(h), AUTH_HASH_BCRYPT);
		CHECK(auth_basic_verify(NULL, "s3cret", 6, h));
		CHECK(!auth_basic_verify(NULL, "s3cre", 5, h));
	}
	h[2] = 'x'; /* the old buggy variant: not accepted */
	CHECK_INT(auth_hash_kind(h), AUTH_HASH_UNKNOWN);
	CHECK(!auth_basic_verify(NULL, "s3cret", 6, h));
}

/* A password holding NUL never matches a crypt hash (crypt stops at NUL). */
static void test_nul_password(void)
{
	CHECK(!auth_basic_verify(NULL, "s3cret\0x", 8, vectors[0].hash));
	CHECK(!auth_basic_verify(NULL, "s3cret\0x", 8, vectors[3].hash));
}

static void test_kinds(void)
{
	static const char *const bad[] = {
	    "",
	    "plain",
	    "{PLAIN}secret",
	    "{SSHA}abcdefghijklmnopqrstuvwxyz012345",
	    "$y$j9T$abc$def",                                               /* yescrypt */
	    "$2y$03$V3xn4kR7s6R0tvL0ko6DOuIlV08jNmoWXavDrHv/LBwiFmDe5RaMm", /* cost 3 */
	    "$2y$05$V3xn4kR7s6R0tvL0ko6DOuIlV08jNmoWXavDrHv/LBwiFmDe5RaM",  /* short */
	    "$2y$05$V3xn4kR7s6R0tvL0ko6DOuIlV08jNmoWXavDrHv/LBwiFmDe5Ra!m", /* bad char */
	    "$apr1$$.OpmsreXWRiQLkvTNuLjA0",                                /* empty salt */
	    "$apr1$7Y9EPK6s$.OpmsreXWRiQLkvTNuLjA",                         /* short */
	    "$apr1$123456789$.OpmsreXWRiQLkvTNuLjA0",                       /* salt > 8 */
	    "{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg",                             /* no padding */
	    "{SHA}/vNB+F2HQ559kaLUZbmHHvZrXp*=",
	    "h.w.pfYUgbGF",   /* 12 characters */
	    "h.w.pfYUgbGFQ ", /* trailing space */
	    "$5$rounds=$IIqS07.7sRMD2zV4$psJtFRgc0GbsOpq71JSk/tRUlLMs3kf89GnNdAbXub/",
	    "$6$abc$short",
	    /* over the work factor limits */
	    "$2y$13$CjsZYHROcTZwRnB3bxhHj.nlowc4K5TNCc.wHOli8M2KWORf7KV9q",
	    "$5$rounds=200000$saltsalt$hcyDOxdIg0p3xyqtpHh/v8Ph.am06tQaovp1KpEklb7",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(auth_hash_kind(bad[i]), AUTH_HASH_UNKNOWN);
		CHECK(!auth_basic_verify(NULL, "s3cret", 6, bad[i]));
	}
	CHECK_INT(auth_hash_kind("$5$rounds=5000$IIqS07.7sRMD2zV4$"
	                         "psJtFRgc0GbsOpq71JSk/tRUlLMs3kf89GnNdAbXub/"),
	          AUTH_HASH_SHA256_CRYPT);
	CHECK(auth_hash_refusal(vectors[0].hash) == NULL);
	CHECK(strstr(auth_hash_refusal(bad[sizeof(bad) / sizeof(bad[0]) - 2]), "cost above 12"));
	CHECK(strstr(auth_hash_refusal(bad[sizeof(bad) / sizeof(bad[0]) - 1]), "rounds above"));
	CHECK(strstr(auth_hash_refusal("{PLAIN}x"), "format weir cannot check"));
	CHECK_STR(auth_hash_kind_name(AUTH_HASH_APR1), "apr1");
	CHECK_STR(auth_hash_kind_name(AUTH_HASH_UNKNOWN), "unknown");
}

/* ---- the request check ---- */

static struct route_auth_user users[] = {
    {"bob", "{SHA}qT1861E8QFXOjyu7ooYZNtKFMYY="}, /* correct horse battery staple! */
    {"alice", "$2y$05$V3xn4kR7s6R0tvL0ko6DOuIlV08jNmoWXavDrHv/LBwiFmDe5RaMm"}, /* s3cret */
    {"alice", "$apr1$B5SeM9gc$yaBbAX9l9DmsrlbkD7dzE."}, /* a second alice: never used */
};

static int check_raw(struct auth_basic_cache *cache, const void *table, const struct route *r,
                     const char *raw, uint64_t now, char *www, size_t cap)
{
	struct http_request req;
	fixture_parse_request(raw, &req);
	return auth_basic_check(cache, table, r, &req, now, www, cap);
}

static size_t used_slots(const struct auth_basic_cache *c, uint64_t now)
{
	size_t n = 0;
	for (size_t i = 0; i < AUTH_BASIC_CACHE_SLOTS; i++)
		if (c->slots[i].expires_ms > now)
			n++;
	return n;
}

static void test_check(struct auth_basic_cache *cache)
{
	struct route r;
	struct route_policy r_policy;
	char www[256];
	int t1 = 1, t2 = 2; /* two table identities (their addresses) */
	memset(&r, 0, sizeof(r));
	memset(&r_policy, 0, sizeof(r_policy));
	r.policy = &r_policy;
	r.policy->auth.type = ROUTE_AUTH_BASIC;
	r.policy->auth.realm = "Authentication Required - foo";
	r.policy->auth.users = users;
	r.policy->auth.nusers = 3;

	/* no credentials */
	CHECK_INT(
	    check_raw(cache, &t1, &r, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1000, www, sizeof(www)),
	    401);
	CHECK_STR(www, "WWW-Authenticate: Basic realm=\"Authentication Required - foo\"\r\n");
	/* alice:s3cret, scheme in any case, extra spaces */
	CHECK_INT(check_raw(cache, &t1, &r,
	                    "GET / HTTP/1.1\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n\r\n", 1000,
	                    www, sizeof(www)),
	          0);
	CHECK_STR(www, "");
	CHECK_INT(check_raw(cache, &t1, &r,
	                    "GET / HTTP/1.1\r\nAuthorization: bAsIc    YWxpY2U6czNjcmV0\r\n\r\n",
	                    1000, www, sizeof(www)),
	          0);
	/* bob (first in the list) with its password; alice with bob's */
	CHECK_INT(check_raw(cache, &t1, &r,
	                    "GET / HTTP/1.1\r\nAuthorization: Basic "
	                    "Ym9iOmNvcnJlY3QgaG9yc2UgYmF0dGVyeSBzdGFwbGUh\r\n\r\n",
	                    1000, www, sizeof(www)),
	          0);
	CHECK_INT(check_raw(cache, &t1, &r,
	                    "GET / HTTP/1.1\r\nAuthorization: Basic "
	                    "YWxpY2U6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZSE=\r\n\r\n",
	                    1000, www, sizeof(www)),
	          401);
	/* wrong password, unknown user, user names are case-sensitive */
	static const char *const refused[] = {
	    "Basic YWxpY2U6czNjcmV1",  /* alice:s3creu */
	    "Basic Y2Fyb2w6czNjcmV0",  /* carol:s3cret */
	    "Basic QWxpY2U6czNjcmV0",  /* Alice:s3cret */
	    "Basic YWxpY2VzM2NyZXQ=",  /* alices3cret (no colon) */
	    "Basic YWxpY2U6czNjcmV0!", /* not base64 */
	    "Basic",                   /* no token */
	    "Bearer YWxpY2U6czNjcmV0", /* other scheme */
	    "BasicYWxpY2U6czNjcmV0",   /* no space */
	    "Basic Og==",              /* ":" */
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char raw[256];
		snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nAuthorization: %s\r\n\r\n",
		         refused[i]);
		CHECK_INT(check_raw(cache, &t1, &r, raw, 1000, www, sizeof(www)), 401);
		CHECK(strstr(www, "WWW-Authenticate: Basic realm=") == www);
	}
	/* two Authorization headers: 400, as nginx */
	CHECK_INT(check_raw(cache, &t1, &r,
	                    "GET / HTTP/1.1\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n"
	                    "Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n",
	                    1000, www, sizeof(www)),
	          400);

	/* the cache: the successes above made two entries (two different
	 * Authorization values for alice count separately, plus bob) */
	CHECK_INT(used_slots(cache, 1000), 3);
	/* a wrong password for a cached user is checked, not taken from the cache */
	CHECK_INT(check_raw(cache, &t1, &r,
	                    "GET / HTTP/1.1\r\nAuthorization: Basic YWxpY2U6czNjcmV1\r\n\r\n", 2000,
	                    www, sizeof(www)),
	          401);
	CHECK_INT(used_slots(cache, 2000), 3);
	/* entries expire after the TTL */
	CHECK_INT(used_slots(cache, 1000 + AUTH_BASIC_CACHE_TTL_MS), 0);
	/* a new table empties the cache */
	CHECK_INT(check_raw(cache, &t2, &r, "GET / HTTP/1.1\r\n\r\n", 3000, www, sizeof(www)), 401);
	CHECK_INT(used_slots(cache, 3000), 0);
	/* a changed hash for the same user and route is a cache miss */
	CHECK_INT(check_raw(cache, &t2, &r,
	                    "GET / HTTP/1.1\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n\r\n", 3000,
	                    www, sizeof(www)),
	          0);
	CHECK_INT(used_slots(cache, 3000), 1);
	users[1].hash = "$apr1$7Y9EPK6s$.OpmsreXWRiQLkvTNuLjA1"; /* last character changed */
	CHECK_INT(check_raw(cache, &t2, &r,
	                    "GET / HTTP/1.1\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n\r\n", 3000,
	                    www, sizeof(www)),
	          401);
	users[1].hash = "$apr1$7Y9EPK6s$.OpmsreXWRiQLkvTNuLjA0";
	CHECK_INT(check_raw(cache, &t2, &r,
	                    "GET / HTTP/1.1\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n\r\n", 3000,
	                    www, sizeof(www)),
	          0);

	/* realm "" (ingress-nginx's default when auth-realm is absent) */
	r.policy->auth.realm = NULL;
	CHECK_INT(check_raw(cache, &t2, &r, "GET / HTTP/1.1\r\n\r\n", 3000, www, sizeof(www)), 401);
	CHECK_STR(www, "WWW-Authenticate: Basic realm=\"\"\r\n");
	/* a realm longer than the buffer is cut inside the quotes */
	r.policy->auth.realm = "0123456789012345678901234567890123456789";
	CHECK_INT(check_raw(cache, &t2, &r, "GET / HTTP/1.1\r\n\r\n", 3000, www, 48), 401);
	CHECK_STR(www, "WWW-Authenticate: Basic realm=\"012345678901\"\r\n");

	/* CORS route: the 401 carries the origin headers (ingress-nginx does) */
	r.policy->auth.realm = "r";
	r.policy->cors.enabled = true;
	r.policy->cors.allow_origin = "https://app.test, https://b.test";
	r.policy->cors.allow_credentials = true;
	CHECK_INT(check_raw(cache, &t2, &r, "GET / HTTP/1.1\r\nOrigin: https://app.test\r\n\r\n",
	                    3000, www, sizeof(www)),
	          401);
	CHECK_STR(www, "WWW-Authenticate: Basic realm=\"r\"\r\n"
	               "Access-Control-Allow-Origin: https://app.test\r\n"
	               "Access-Control-Allow-Credentials: true\r\n");
	CHECK_INT(check_raw(cache, &t2, &r, "GET / HTTP/1.1\r\nOrigin: https://evil.test\r\n\r\n",
	                    3000, www, sizeof(www)),
	          401);
	CHECK_STR(www, "WWW-Authenticate: Basic realm=\"r\"\r\n");
	/* no room for the CORS lines: the WWW-Authenticate line alone */
	CHECK_INT(check_raw(cache, &t2, &r, "GET / HTTP/1.1\r\nOrigin: https://app.test\r\n\r\n",
	                    3000, www, 60),
	          401);
	CHECK_STR(www, "WWW-Authenticate: Basic realm=\"r\"\r\n");
	r.policy->cors.enabled = false;

	/* no users: every request refused */
	r.policy->auth.nusers = 0;
	CHECK_INT(check_raw(cache, &t2, &r,
	                    "GET / HTTP/1.1\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n\r\n", 3000,
	                    www, sizeof(www)),
	          401);
	/* routes without auth and the default backend pass */
	r.policy->auth.type = ROUTE_AUTH_NONE;
	CHECK_INT(check_raw(cache, &t2, &r, "GET / HTTP/1.1\r\n\r\n", 3000, www, sizeof(www)), 0);
	CHECK_INT(check_raw(cache, &t2, NULL, "GET / HTTP/1.1\r\n\r\n", 3000, www, sizeof(www)), 0);
}

int main(void)
{
	struct auth_basic_cache *cache = NULL;
	CHECK_INT(auth_basic_cache_new(&cache), 0);
	test_vectors(cache);
	test_bcrypt_variants();
	test_nul_password();
	test_kinds();
	test_check(cache);
	auth_basic_cache_free(cache);
	return check_finish("auth_basic_test");
}
