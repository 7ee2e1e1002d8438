/* tests/unit/proxy/request_fixture.h - turn a literal request head
 * ("GET /p HTTP/1.1\r\nName: value\r\n\r\n") into the struct http_request the
 * data path would hand over, for the header, policy and balancer tests. The
 * slices point into raw, which must outlive req. Only well-formed literals. */
#ifndef WEIR_TESTS_REQUEST_FIXTURE_H
#define WEIR_TESTS_REQUEST_FIXTURE_H

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/http.h"

static void fixture_parse_request(const char *raw, struct http_request *req)
{
	memset(req, 0, sizeof(*req));
	req->content_length = -1;
	const char *sp1 = strchr(raw, ' ');
	const char *sp2 = strchr(sp1 + 1, ' ');
	const char *eol = strstr(raw, "\r\n");
	req->method = raw;
	req->method_len = (size_t)(sp1 - raw);
	req->target = sp1 + 1;
	req->target_len = (size_t)(sp2 - sp1 - 1);
	req->path = req->target;
	const char *q = memchr(req->target, '?', req->target_len);
	req->path_len = q ? (size_t)(q - req->target) : req->target_len;
	req->version_minor = sp2[8] - '0';
	const char *p = eol + 2;
	while (strncmp(p, "\r\n", 2) != 0 && req->nheaders < HTTP_MAX_HEADERS) {
		const char *colon = strchr(p, ':');
		const char *end = strstr(p, "\r\n");
		struct http_header *h = &req->headers[req->nheaders++];
		h->name = p;
		h->name_len = (size_t)(colon - p);
		const char *v = colon + 1;
		while (*v == ' ')
			v++;
		h->value = v;
		h->value_len = (size_t)(end - v);
		if (h->name_len == 4 && strncasecmp(h->name, "Host", 4) == 0) {
			req->host = h->value;
			req->host_len = h->value_len;
		}
		if (h->name_len == 14 && strncasecmp(h->name, "Content-Length", 14) == 0)
			req->content_length = strtoll(h->value, NULL, 10);
		p = end + 2;
	}
}

#endif
