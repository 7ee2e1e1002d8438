/* tests/unit/proxy/h2_test.c - what the HTTP/2 side takes out of an answer's
 * and a gRPC call's fields: the connection-specific ones (RFC 9113 8.2.2) in
 * any case, and nothing that merely starts or ends like one. */
#include <string.h>

#include "check.h"
#include "proxy/h2.h"

static int hop(const char *name)
{
	return h2_hop_by_hop(name, strlen(name));
}

int main(void)
{
	static const char *const yes[] = {
	    "connection", "Keep-Alive", "proxy-connection", "Transfer-Encoding", "UPGRADE",
	    "te",         "TE",         "KEEP-alive",       "Proxy-Connection"};
	static const char *const no[] = {"",
	                                 "t",
	                                 "tex",
	                                 "trailer",
	                                 "upgrades",
	                                 "connectio",
	                                 "date",
	                                 "content-length",
	                                 "keep-alivee",
	                                 "upgrade-insecure-requests",
	                                 "transfer-encodin",
	                                 "x-connection"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		CHECK(hop(yes[i]));
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CHECK(!hop(no[i]));
	/* the length decides, not a NUL: a name inside a longer buffer */
	CHECK(h2_hop_by_hop("te: trailers", 2));
	CHECK(!h2_hop_by_hop("te: trailers", 3));
	return check_finish("h2");
}
