/* proxy/proxy_protocol.h - the PROXY protocol header (versions 1 and 2) that
 * a load balancer sends before the client's bytes to tell who the client is.
 * A pure parser: it reads the caller's bytes and fills the caller's struct. */
#ifndef WEIR_PROXY_PROXY_PROTOCOL_H
#define WEIR_PROXY_PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The longest header accepted: a version 1 line is at most 107 bytes; a
 * version 2 header is 16 bytes plus addresses and TLVs, which real balancers
 * keep well under this. Longer ones are refused. */
#define PROXY_PROTOCOL_MAX_BYTES 4096u

struct proxy_protocol_info {
	int version; /* 1 or 2 */
	/* false: the header carries no client address (v1 UNKNOWN, v2 LOCAL, or a
	 * v2 family other than TCP over IPv4/IPv6): use the connection's own. */
	bool has_addr;
	struct sockaddr_storage src; /* the client, when has_addr */
	struct sockaddr_storage dst; /* the address the client connected to */
};

/* Parse the PROXY header at the start of buf (len bytes, borrowed). Returns
 * the header's length in bytes (> 0; the caller consumes exactly that many,
 * the rest is the client's stream) with *out filled; WEIR_EAGAIN when buf is
 * a valid but incomplete start of a header (read more and call again);
 * WEIR_EINVAL when it is not a PROXY header, is malformed, or is longer than
 * PROXY_PROTOCOL_MAX_BYTES. *out is only written on success. */
int proxy_protocol_parse(const void *buf, size_t len, struct proxy_protocol_info *out);

#endif
