/* controller/k8s_client.h - blocking HTTPS requests to the Kubernetes API (libcurl). */
#ifndef WEIR_CONTROLLER_K8S_CLIENT_H
#define WEIR_CONTROLLER_K8S_CLIENT_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>

struct k8s_config;
struct k8s_client;

/* Create a client for cfg (borrowed for the client's life; the client may refresh its token).
 * Returns 0 and *out (caller frees with k8s_client_free) or WEIR_E*. */
int k8s_client_new(const struct k8s_config *cfg, struct k8s_client **out);

/* Frees the client and its pooled handles; no request may be in flight. NULL is fine. */
void k8s_client_free(struct k8s_client *c);

/* One blocking request over a pooled keep-alive connection (thread-safe; each thread may call).
 * path like "/apis/networking.k8s.io/v1/ingresses". body may be NULL. On return 0: *status is the
 * HTTP status and *resp (caller frees, NUL-terminated) the body. WEIR_E* on transport errors.
 * Timeouts: connect 5 s, whole request 30 s; bodies over 256 MiB fail with WEIR_ETOOBIG. */
int k8s_request(struct k8s_client *c, const char *method, const char *path, const char *body,
                const char *content_type, long *status, char **resp);

/* "HTTP <code>: <message>" of a Kubernetes Status body (or "HTTP <code>"), into buf. */
void k8s_status_text(const char *body, long code, char *buf, size_t len);

/* Streaming GET for watches: data_cb gets each chunk of the body as it arrives (return 0 to
 * continue, non-zero to abort with that code). stop, when non-NULL, is polled about every
 * 100 ms and aborts the transfer with WEIR_ECANCELED when it becomes true. The whole transfer
 * is bounded by max_seconds (0: no bound; a watch passes its timeoutSeconds plus a margin, so a
 * silent dead connection ends with WEIR_ETIMEDOUT). On return 0 *status is the
 * HTTP status; for a non-2xx status the body is not streamed but returned in *errbody (caller
 * frees, may be NULL). Borrows a pooled connection for the transfer (one connection per
 * stream at a time): consecutive list pages reuse one; one that did not run to its end
 * (stopped, aborted by data_cb, timed out, failed) is closed, not pooled. */
typedef int (*k8s_stream_cb)(void *arg, const char *data, size_t len);
int k8s_stream(struct k8s_client *c, const char *path, long max_seconds, k8s_stream_cb data_cb,
               void *arg, const atomic_bool *stop, long *status, char **errbody);

#endif
