/* tests/unit/proxy/realip_test.c - the real client address: the TCP peer,
 * a PROXY protocol client, or the forwarded-for header of a trusted hop. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "check.h"
#include "common/route_table.h"
#include "proxy/realip.h"
#include "request_fixture.h"

static void set_addr(union http_addr *ss, const char *ip, int port)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, ip, &a->sin6_addr);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, ip, &a->sin_addr);
	}
}

static void client_from(struct http_client *c, const char *peer)
{
	memset(c, 0, sizeof(*c));
	set_addr(&c->peer, peer, 40000);
}

static struct route_cidr *cidrs(const char *a, const char *b, size_t *n)
{
	static struct route_cidr list[2];
	*n = 0;
	if (a && route_cidr_parse(a, &list[(*n)++]) != 0)
		return NULL;
	if (b && route_cidr_parse(b, &list[(*n)++]) != 0)
		return NULL;
	return list;
}

static void resolve(const struct route_settings *s, const char *raw, struct http_client *c)
{
	struct http_request req;
	fixture_parse_request(raw, &req);
	realip_resolve(s, &req, c);
}

static const char *XFF = "GET / HTTP/1.1\r\nHost: h\r\n"
                         "X-Forwarded-For: 203.0.113.9, 10.0.0.5\r\n\r\n";

static void test_defaults(void)
{
	struct route_table *t = route_table_new();
	struct http_client c;
	client_from(&c, "192.0.2.1");
	resolve(&t->settings, XFF, &c);
	CHECK_STR(c.ip, "192.0.2.1");
	CHECK_INT(c.port, 40000);
	CHECK_STR(c.hop_ip, "192.0.2.1");
	CHECK(!c.forwarded_trusted);
	CHECK(!c.forwarded_chain);
	/* no table at all: the peer */
	resolve(NULL, XFF, &c);
	CHECK_STR(c.ip, "192.0.2.1");
	/* an IPv4-mapped peer reads as IPv4 */
	client_from(&c, "::ffff:192.0.2.4");
	resolve(&t->settings, XFF, &c);
	CHECK_STR(c.ip, "192.0.2.4");
	route_table_free(t);
}

static void test_forwarded_headers(void)
{
	struct route_table *t = route_table_new();
	struct route_settings *s = &t->settings;
	struct http_client c;
	size_t n;
	struct route_cidr *list = cidrs("192.0.2.0/24", "10.0.0.0/8", &n);
	s->use_forwarded_headers = true;
	s->proxy_real_ip_cidr = list;
	s->nproxy_real_ip_cidr = n;

	/* trusted hop: right to left, skipping trusted 10.0.0.5 */
	client_from(&c, "192.0.2.1");
	resolve(s, XFF, &c);
	CHECK_STR(c.ip, "203.0.113.9");
	CHECK_INT(c.port, 0);
	CHECK_INT(c.addr.ss_family, AF_INET);
	CHECK_STR(c.hop_ip, "192.0.2.1");
	CHECK(c.forwarded_trusted);
	CHECK(!c.forwarded_chain);
	/* untrusted hop: its header is ignored */
	client_from(&c, "198.51.100.7");
	resolve(s, XFF, &c);
	CHECK_STR(c.ip, "198.51.100.7");
	CHECK(!c.forwarded_trusted);
	/* every address trusted: the leftmost one */
	client_from(&c, "192.0.2.1");
	resolve(s, "GET / HTTP/1.1\r\nX-Forwarded-For: 10.1.1.1, 10.0.0.5\r\n\r\n", &c);
	CHECK_STR(c.ip, "10.1.1.1");
	/* several header lines form one list; IPv6 elements */
	resolve(s,
	        "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.1\r\n"
	        "X-Forwarded-For: 2001:db8::9 , 10.0.0.5\r\n\r\n",
	        &c);
	CHECK_STR(c.ip, "2001:db8::9");
	CHECK_INT(c.addr.ss_family, AF_INET6);
	/* garbage stops the walk at the last good address */
	resolve(s, "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.1, unknown, 10.0.0.5\r\n\r\n", &c);
	CHECK_STR(c.ip, "10.0.0.5");
	/* no header: the hop */
	resolve(s, "GET / HTTP/1.1\r\n\r\n", &c);
	CHECK_STR(c.ip, "192.0.2.1");
	/* another header name */
	free(s->forwarded_for_header);
	s->forwarded_for_header = strdup("CF-Connecting-IP");
	resolve(s,
	        "GET / HTTP/1.1\r\nX-Forwarded-For: 203.0.113.1\r\ncf-connecting-ip: "
	        "198.51.100.50\r\n\r\n",
	        &c);
	CHECK_STR(c.ip, "198.51.100.50");
	/* compute-full-forwarded-for: the chain is kept */
	s->compute_full_forwarded_for = true;
	resolve(s, XFF, &c);
	CHECK(c.forwarded_chain);
	/* without use-forwarded-headers the list means nothing */
	s->use_forwarded_headers = false;
	resolve(s, XFF, &c);
	CHECK_STR(c.ip, "192.0.2.1");
	CHECK(!c.forwarded_trusted);
	CHECK(!c.forwarded_chain);
	s->proxy_real_ip_cidr = NULL; /* static storage */
	s->nproxy_real_ip_cidr = 0;
	route_table_free(t);
}

static void test_trusted_proxies(void)
{
	struct route_table *t = route_table_new();
	struct route_settings *s = &t->settings;
	struct http_client c;
	size_t n;
	s->trusted_proxies = cidrs("192.0.2.1", NULL, &n);
	s->ntrusted_proxies = n;
	/* a trusted-proxies hop is trusted without use-forwarded-headers, and its
	 * chain is kept */
	client_from(&c, "192.0.2.1");
	resolve(s, XFF, &c);
	CHECK_STR(c.ip, "10.0.0.5");
	CHECK(c.forwarded_trusted);
	CHECK(c.forwarded_chain);
	CHECK_STR(c.hop_ip, "192.0.2.1");
	client_from(&c, "192.0.2.2");
	resolve(s, XFF, &c);
	CHECK_STR(c.ip, "192.0.2.2");
	CHECK(!c.forwarded_chain);
	s->trusted_proxies = NULL;
	s->ntrusted_proxies = 0;
	route_table_free(t);
}

static void test_proxy_protocol(void)
{
	struct route_table *t = route_table_new();
	struct route_settings *s = &t->settings;
	struct http_client c;
	size_t n;
	s->use_proxy_protocol = true;
	s->proxy_real_ip_cidr = cidrs("127.0.0.0/8", NULL, &n);
	s->nproxy_real_ip_cidr = n;
	client_from(&c, "127.0.0.1");
	c.has_proxy_addr = true;
	set_addr(&c.proxy_addr, "203.0.113.77", 5555);
	resolve(s, XFF, &c);
	CHECK_STR(c.ip, "203.0.113.77");
	CHECK_INT(c.port, 5555);
	CHECK_STR(c.hop_ip, "203.0.113.77");
	CHECK(!c.forwarded_trusted); /* X-Forwarded-For ignored without use-forwarded-headers */
	/* a peer outside proxy-real-ip-cidr is not believed */
	set_addr(&c.peer, "198.51.100.3", 1);
	resolve(s, XFF, &c);
	CHECK_STR(c.ip, "198.51.100.3");
	/* LOCAL: no PROXY address, the peer */
	set_addr(&c.peer, "127.0.0.1", 1);
	c.has_proxy_addr = false;
	resolve(s, XFF, &c);
	CHECK_STR(c.ip, "127.0.0.1");
	s->proxy_real_ip_cidr = NULL;
	s->nproxy_real_ip_cidr = 0;
	route_table_free(t);
}

/* realip_format writes what inet_ntop writes, for every byte value in every
 * position (0, 1- 2- and 3-digit bytes), plain and IPv4-mapped, and IPv6. */
static void test_format(void)
{
	static const unsigned char vals[] = {0, 1, 9, 10, 42, 99, 100, 127, 199, 200, 250, 255};
	size_t nv = sizeof(vals);
	char got[64], want[64];
	uint16_t port = 0;
	for (size_t i = 0; i < nv * nv * nv * nv; i++) {
		unsigned char b[4] = {vals[i % nv], vals[i / nv % nv], vals[i / nv / nv % nv],
		                      vals[i / nv / nv / nv]};
		inet_ntop(AF_INET, b, want, sizeof(want));
		union http_addr a;
		memset(&a, 0, sizeof(a));
		a.in4.sin_family = AF_INET;
		a.in4.sin_port = htons(8080);
		memcpy(&a.in4.sin_addr, b, 4);
		realip_format(&a, got, &port);
		CHECK_STR(got, want);
		CHECK_INT(port, 8080);
		memset(&a, 0, sizeof(a));
		a.in6.sin6_family = AF_INET6;
		a.in6.sin6_port = htons(443);
		a.in6.sin6_addr.s6_addr[10] = a.in6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(a.in6.sin6_addr.s6_addr + 12, b, 4);
		realip_format(&a, got, NULL);
		CHECK_STR(got, want);
	}
	union http_addr a;
	set_addr(&a, "2001:db8::ffff:1.2.3.4", 1);
	realip_format(&a, got, &port);
	CHECK_STR(got, "2001:db8::ffff:102:304");
	CHECK_INT(port, 1);
	set_addr(&a, "::1", 2);
	realip_format(&a, got, NULL);
	CHECK_STR(got, "::1");
}

int main(void)
{
	test_format();
	test_defaults();
	test_forwarded_headers();
	test_trusted_proxies();
	test_proxy_protocol();
	return check_finish("realip_test");
}
