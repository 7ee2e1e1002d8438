/* tests/fuzz/fuzz_annotations.c - the annotation value parsers of
 * controller/annotations.c, each on the whole input as one string, then
 * annotations_parse on an annotations object built from the input: one
 * "key=value" per line, a key without '/' gets the nginx.ingress.kubernetes.io/
 * prefix (weir.dev/ when it starts with '~'), "\n" in a value is a newline.
 * Everything parsed is copied and freed (leaks are reported by LSan). */
#include <string.h>

#include "annotations.h"
#include "fuzz_common.h"
#include "route_validate.h"
#include "snippet.h"

static void value_parsers(const char *s)
{
	char err[128];
	uint32_t ms;
	int64_t size;
	bool b;
	uint64_t u;
	struct route_header *h = NULL;
	struct route_cidr *c = NULL;
	size_t n = 0;

	if (annotations_parse_duration_ms(s, &ms, err, sizeof(err)) != 0)
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (annotations_parse_size(s, &size, err, sizeof(err)) == 0)
		FUZZ_CHECK(size >= 0);
	if (annotations_parse_bool(s, &b, err, sizeof(err)) == 0)
		FUZZ_CHECK(strcmp(s, b ? "true" : "false") == 0);
	if (annotations_parse_uint(s, 1000, &u, err, sizeof(err)) == 0)
		FUZZ_CHECK(u <= 1000);
	if (annotations_parse_headers(s, &h, &n, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < n; i++) {
			FUZZ_CHECK(h[i].name && h[i].value);
			FUZZ_CHECK(!strpbrk(h[i].value, "\r\n"));
			free(h[i].name);
			free(h[i].value);
		}
		free(h);
	}
	n = 0;
	if (annotations_parse_cidrs(s, &c, &n, err, sizeof(err)) == 0)
		free(c);
	/* the whole input as a snippet of each kind: whatever it translates to
	 * passes the table's own checks */
	for (int k = 0; k < 3; k++) {
		struct snippet_policy sp;
		char serr[512];
		memset(&sp, 0, sizeof(sp));
		if (snippet_translate(s, strlen(s), (enum snippet_kind)k, &sp, serr,
		                      sizeof(serr)) == 0) {
			for (size_t i = 0; i < sp.nrequest_headers; i++)
				FUZZ_CHECK((sp.request_headers[i].expand
				                ? route_validate_header_template
				                : route_validate_header_value)(
				               sp.request_headers[i].value, NULL, 0) == 0);
			for (size_t i = 0; i < sp.nresponse_headers; i++)
				FUZZ_CHECK(!strpbrk(sp.response_headers[i].value, "\r\n"));
			for (size_t i = 0; i < sp.nadd_headers; i++)
				FUZZ_CHECK(route_validate_token(sp.add_headers[i].name, NULL, 0) ==
				           0);
			for (size_t i = 0; i < sp.nauth_headers; i++)
				FUZZ_CHECK(route_validate_auth_set_header(sp.auth_headers[i].name,
				                                          sp.auth_headers[i].value,
				                                          NULL, 0) == 0);
			if (sp.return_body)
				FUZZ_CHECK(route_validate_return_body(sp.return_body, NULL, 0) ==
				           0);
		} else {
			FUZZ_CHECK(memchr(serr, '\0', sizeof(serr)) != NULL);
			FUZZ_CHECK(!strpbrk(serr, "\r\n"));
		}
		snippet_policy_cleanup(&sp);
	}
	(void)annotations_is_unenforced_security("auth-url", s);
}

static json_object *build(const char *s)
{
	json_object *obj = json_object_new_object();

	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);
		const char *eq = memchr(s, '=', len);
		if (eq) {
			const char *prefix = "";
			const char *k = s;
			size_t klen = (size_t)(eq - s);
			if (!memchr(k, '/', klen)) {
				prefix = ANNOTATIONS_NGINX_PREFIX;
				if (klen && k[0] == '~') {
					prefix = ANNOTATIONS_WEIR_PREFIX;
					k++;
					klen--;
				}
			}
			char *key = malloc(strlen(prefix) + klen + 1);
			char *val = malloc(len - klen);
			size_t vl = 0;
			FUZZ_CHECK(key && val);
			memcpy(key, prefix, strlen(prefix));
			memcpy(key + strlen(prefix), k, klen);
			key[strlen(prefix) + klen] = '\0';
			for (const char *v = eq + 1; v < s + len; v++) {
				if (v[0] == '\\' && v + 1 < s + len && v[1] == 'n') {
					val[vl++] = '\n';
					v++;
				} else {
					val[vl++] = *v;
				}
			}
			val[vl] = '\0';
			json_object_object_add(obj, key, json_object_new_string(val));
			free(key);
			free(val);
		}
		s += len;
		if (*s)
			s++;
	}
	return obj;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct annotations a;
	struct annotation_issues issues;
	struct route_policy copy;

	FUZZ_CHECK(s);
	memcpy(s, data, size);
	s[size] = '\0';
	value_parsers(s);

	json_object *obj = build(s);
	memset(&a, 0, sizeof(a));
	memset(&issues, 0, sizeof(issues));
	if (annotations_parse(obj, 30000, &a, &issues) == 0) {
		for (size_t i = 0; i < issues.n; i++)
			FUZZ_CHECK(issues.items[i].key && issues.items[i].reason &&
			           issues.items[i].message);
		if (annotations_policy_copy(&copy, &a.policy) == 0)
			route_policy_cleanup(&copy);
	}
	annotations_cleanup(&a);
	annotation_issues_cleanup(&issues);
	json_object_put(obj);
	free(s);
	return 0;
}
