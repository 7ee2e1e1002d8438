/* controller/telemetry.h - counters of the controller and its /healthz + /metrics server. */
#ifndef WEIR_CONTROLLER_TELEMETRY_H
#define WEIR_CONTROLLER_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>

/* Recording calls: thread-safe, never fail, cheap. kind is a short static-ish name such as
 * "Ingress" (copied on first use; at most 16 distinct kinds are tracked, others ignored). */
void telemetry_watch_restart(const char *kind);
void telemetry_relist(const char *kind);
void telemetry_compile_seconds(double s);
void telemetry_objects(const char *kind, size_t n);
void telemetry_published(uint64_t generation);

/* Start the HTTP server thread on addr:port (addr NULL: 0.0.0.0; port 0: ephemeral).
 * GET /healthz -> 200 "ok", GET /metrics -> Prometheus text, other paths 404; requests over
 * 8 KiB are refused (431), idle clients time out. Returns 0 or WEIR_E* (WEIR_EIO if the port
 * cannot be bound). Only one server per process; runs until telemetry_stop. */
int telemetry_start(const char *addr, int port);

/* The port actually bound (useful with port 0), or -1 when not started. */
int telemetry_port(void);

/* Stop the server thread and close its sockets (tests, clean shutdown). Safe to call when
 * not started. */
void telemetry_stop(void);

/* Render the metrics text into a malloc'd NUL-terminated string (caller frees). Returns 0 or
 * WEIR_ENOMEM. */
int telemetry_render(char **out);

#endif
