/* proxy/http.h - the parsed shape of an HTTP/1.1 message head as the data
 * path hands it to the header, policy and balancer modules. The strings are
 * borrowed slices of the connection's input buffer, valid until the request
 * ends; nothing here is NUL-terminated unless said so. */
#ifndef WEIR_PROXY_HTTP_H
#define WEIR_PROXY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define HTTP_MAX_HEADERS 128

struct http_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* A request head received from a client. */
struct http_request {
	const char *method;
	size_t method_len;
	const char *target; /* request-target as sent: path and query */
	size_t target_len;
	const char *path; /* target up to '?' (a prefix of target) */
	size_t path_len;
	int version_minor; /* HTTP/1.x */
	size_t nheaders;
	struct http_header headers[HTTP_MAX_HEADERS]; /* in arrival order */
	const char *host; /* Host header value (may hold ":port"); NULL if absent */
	size_t host_len;
	bool upgrade_websocket; /* Connection: upgrade + Upgrade: websocket */
	bool chunked;           /* Transfer-Encoding: chunked */
	int64_t content_length; /* -1: none */
};

/* Who sent it and how it arrived; NUL-terminated strings. */
/* An IPv4 or IPv6 socket address in 28 bytes (sockaddr_storage takes 128,
 * and a client holds three of them for every idle connection and tunnel).
 * ss_family overlays the family of both. */
union http_addr {
	sa_family_t ss_family;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
};

/* Copy an accepted or parsed address (AF_INET or AF_INET6; anything else
 * leaves an AF_UNSPEC address). */
static inline void http_addr_set(union http_addr *dst, const struct sockaddr_storage *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->ss_family == AF_INET)
		memcpy(&dst->in4, src, sizeof(dst->in4));
	else if (src->ss_family == AF_INET6)
		memcpy(&dst->in6, src, sizeof(dst->in6));
}

struct http_client {
	union http_addr addr; /* the real client (realip.h), at accept the peer */
	char ip[64];          /* addr as text (IPv4-mapped IPv6 shown as IPv4) */
	uint16_t port;        /* its port (0 when read from a header) */
	uint16_t local_port;  /* port the request arrived on */
	uint16_t https_port;  /* the proxy's HTTPS listen port (0: none), for redirects */
	bool tls;             /* arrived over TLS (https) */
	bool http2;           /* a stream of an HTTP/2 connection (h2.h) */
	char request_id[33];  /* 32 lowercase hex characters, new per request */
	/* How the connection arrived: set at accept. */
	union http_addr peer;       /* the TCP peer */
	bool has_proxy_addr;        /* a PROXY protocol header named a client */
	union http_addr proxy_addr; /* that client */
	/* Set per request by realip_resolve. */
	char hop_ip[64];        /* the nearest hop: the PROXY client if believed, else the peer */
	bool forwarded_trusted; /* the hop's X-Forwarded-* headers are passed on */
	bool forwarded_chain;   /* X-Forwarded-For: its chain plus hop_ip, else ip alone */
};

/* A response head received from an upstream. */
struct http_response {
	int status;
	int version_minor;
	const char *reason;
	size_t reason_len;
	size_t nheaders;
	struct http_header headers[HTTP_MAX_HEADERS];
	bool chunked;
	int64_t content_length; /* -1: none */
};

/* Case-insensitive compare of a header name slice with a C string. */
bool http_name_is(const struct http_header *h, const char *name);

#endif
