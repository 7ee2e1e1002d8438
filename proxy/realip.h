/* proxy/realip.h - the real client address of a request: the one address
 * that source ranges, rate and connection limits, upstream-hash-by
 * $remote_addr, X-Real-IP and X-Forwarded-For all use.
 *
 * A hop (the TCP peer, or the client a PROXY protocol header names when the
 * peer may send one) is trusted when it is in settings.trusted_proxies, or,
 * with use_forwarded_headers, in settings.proxy_real_ip_cidr. From a trusted
 * hop the address is read from settings.forwarded_for_header, right to left,
 * skipping trusted addresses (as nginx's real_ip_recursive). */
#ifndef WEIR_PROXY_REALIP_H
#define WEIR_PROXY_REALIP_H

#include <stdint.h>
#include <sys/socket.h>

#include "http.h"
#include "route_table.h"

/* Set client->addr/ip/port, hop_ip, forwarded_trusted and forwarded_chain
 * for the request req from client->peer and client->proxy_addr under the
 * settings s (NULL: no table; the peer is the client). Borrows s and req for
 * the call; writes only into client. */
void realip_resolve(const struct route_settings *s, const struct http_request *req,
                    struct http_client *client);

/* Format addr as text into ip (64 bytes; an IPv4-mapped IPv6 address as plain
 * IPv4) and its port into *port (may be NULL). */
void realip_format(const union http_addr *addr, char ip[64], uint16_t *port);

#endif
