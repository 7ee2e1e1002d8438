/* proxy/error_page.h - custom-http-errors: the request that asks the error
 * backend for the page of a status code, with the headers ingress-nginx's
 * custom error pages read (X-Code, X-Format, X-Original-URI, X-Namespace,
 * X-Ingress-Name, X-Service-Name, X-Service-Port, X-Request-ID). Pure. */
#ifndef WEIR_PROXY_ERROR_PAGE_H
#define WEIR_PROXY_ERROR_PAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

struct error_page_req {
	const struct http_request *req;   /* the client's request (borrowed) */
	const struct http_client *client; /* its client (borrowed) */
	const char *source;       /* "namespace/name" of the route's Ingress, or NULL */
	const char *backend_name; /* "namespace/service:port" of the backend that
	                             failed (a " (cluster IP)" tail is dropped), or NULL */
	const char *fallback_host; /* Host when the request has none */
	int code;                  /* the status being replaced */
};

/* Write the request head for the error backend into buf (cap bytes): the
 * client's method, target "/", HTTP/1.1, Host as the client sent it, the
 * client's end-to-end headers (not Host, hop-by-hop ones and those its
 * Connection header names, body framing, Expect, nor any the proxy sets
 * here), then X-Code, X-Format (the Accept header),
 * X-Original-URI (the request target), X-Namespace, X-Ingress-Name,
 * X-Service-Name, X-Service-Port, X-Request-ID (the incoming one from a
 * trusted hop, else the proxy's) and X-Forwarded-For (the client address);
 * an empty value is left out, as nginx's proxy_set_header does. No body is
 * sent: "Content-Length: 0" when the client's request had one. Returns the
 * length or WEIR_ETOOBIG. */
int error_page_build_head(const struct error_page_req *r, char *buf, size_t cap);

#endif
