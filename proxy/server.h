/* proxy/server.h - the data path: N worker threads, each with its own epoll
 * loop and its own SO_REUSEPORT listening sockets (HTTP and HTTPS), serving
 * HTTP/1.1 keep-alive clients, proxying to upstreams, upgrading WebSocket
 * connections into tunnels, terminating TLS (SNI) and relaying
 * ssl-passthrough connections. */
#ifndef WEIR_PROXY_SERVER_H
#define WEIR_PROXY_SERVER_H

#include <stdint.h>

struct server_config {
	const char *listen_address; /* "0.0.0.0", "127.0.0.1", "::" ... */
	int http_port;              /* 0: no HTTP listener */
	int https_port;             /* 0: no HTTPS listener */
	int workers;                /* >= 1 */
	int64_t drain_window_ms;    /* < 0: settings.drain_window_ms of the current table */
};

/* Bind every worker's listeners (so a port in use fails here, with a log
 * line), then start the worker threads. cfg is copied. tls_init must have
 * run. Returns 0, WEIR_EIO (bind/listen failed) or WEIR_ENOMEM. */
int server_start(const struct server_config *cfg);

/* Graceful shutdown, blocking until done: stop accepting, let in-flight
 * requests finish (their responses carry Connection: close), close idle
 * keep-alive connections, send WebSocket close frames (1001) spread over
 * the drain window, then join the workers. Everything still open after the
 * window plus a few seconds is closed. */
void server_shutdown(void);

#endif
