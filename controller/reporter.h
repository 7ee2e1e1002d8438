/* controller/reporter.h - Warning Events and Ingress status written by a
 * thread of their own, so API round trips never delay a publish. */
#ifndef WEIR_CONTROLLER_REPORTER_H
#define WEIR_CONTROLLER_REPORTER_H

#include <stdatomic.h>
#include <stddef.h>

struct k8s_client;
struct reporter;

/* Called on the reporter's thread when a status pass is due; arg is the one
 * given to reporter_new. It may take its own snapshot of the store, and
 * should return early once *cancel is true (the reporter is stopping). */
typedef void (*reporter_status_cb)(void *arg, const atomic_bool *cancel);

/* Start the reporter thread. client is borrowed for the reporter's life
 * (k8s_request is thread-safe). status_cb may be NULL (no status writes).
 * Returns 0 and *out (release with reporter_free), or WEIR_ENOMEM / WEIR_EIO
 * (thread creation failed); on failure nothing was started. */
int reporter_new(struct k8s_client *client, reporter_status_cb status_cb, void *arg,
                 struct reporter **out);

/* Queue a Warning Event on an Ingress (strings copied; message may be NULL).
 * The queue holds at most REPORTER_QUEUE_MAX Events: past that the Event is
 * dropped and counted (the log line for it was already written). Never
 * blocks on the network. */
void reporter_event(struct reporter *r, const char *ns, const char *name, const char *uid,
                    const char *reason, const char *message);

/* Ask for a status pass. Requests made while one is pending or running
 * coalesce into one more pass. Never blocks on the network. */
void reporter_status(struct reporter *r);

/* Events dropped because the queue was full, since start. */
size_t reporter_dropped(const struct reporter *r);

/* Stop the thread and free r. Queued work is carried out for up to
 * flush_ms milliseconds first (0: dropped). NULL is fine. */
void reporter_free(struct reporter *r, unsigned flush_ms);

#define REPORTER_QUEUE_MAX 4096

#endif
