/* tests/bench/ws_soak.c - the WebSocket client of the soak benchmark (tests/bench/soak.py).
 *
 *   ws_soak PORT[,PORT...] HOST PATH CONNS INTERVAL_S ROTATE
 *
 * Loopback only: every connection goes to 127.0.0.1:PORT with "Host: HOST" and "GET PATH";
 * with several ports (up to 16: proxy replicas), connection i goes to the (i mod n)-th.
 *
 * Opens CONNS "steady" tunnels (at most 256 handshakes at a time); each is counted open once its
 * 101 came and one echo of a frame it sent came back byte for byte. Then it prints
 * "ramped OPEN FAILED SECONDS". From then on each steady tunnel sends one small masked binary
 * frame every INTERVAL_S seconds (spread evenly over the interval) and checks that the echo is
 * exactly the frame it sent, unmasked; an echo missing after 15 s is an error. ROTATE more
 * tunnels ("rotating") are opened and closed over and over: each lives 5 to 20 s with one frame
 * a second, then the client sends a close frame (1000) and expects one back.
 *
 * Every way a tunnel can end is counted: a close frame from the peer (the code is kept), or the
 * socket's EOF / reset without one (a drop), or no answer to the client's own close frame.
 *
 * stdin: "stats" prints one line of counters; "stop" (or EOF) prints the report, one
 * "key value" line each, then "end", and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_CAP 1024
#define RAMP_INFLIGHT 256
#define ECHO_TIMEOUT_S 15.0
#define ROT_INTERVAL_S 1.0
#define ROT_MIN_LIFE_S 5.0
#define ROT_MAX_LIFE_S 20.0
#define ROT_REOPEN_S 0.1
#define CLOSE_WAIT_S 10.0

enum state { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING };
enum kind { K_STEADY, K_ROT, K_KINDS };

struct conn {
	int fd;
	uint8_t state;
	uint8_t kind;
	bool verified; /* the first echo came back */
	uint32_t id;
	uint32_t seq;
	double next_send; /* when the next frame goes */
	double sent_at;   /* 0: no echo outstanding */
	double end_at;    /* rotating: when the client closes; closing: when it gives up */
	double started;   /* when the connect began */
	uint8_t expect_len;
	unsigned char expect[32]; /* the echo we wait for */
	uint16_t in_len;
	unsigned char in[IN_CAP];
};

struct counts {
	unsigned long long opened, upgrade_failed, closed_by_peer, close_1001, close_other, dropped,
	    clean, close_unanswered, echoes, echo_bad, echo_timeout, pings, write_failed;
};

static struct counts cnt[K_KINDS];
static char first_failure[160];
#define MAX_PORTS 16
static int ports[MAX_PORTS], nports;
static const char *host, *path;
static int ep;
static unsigned mask_seed = 0x9e3779b9u;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note_failure(const char *fmt, const char *what, unsigned id)
{
	if (first_failure[0])
		return;
	snprintf(first_failure, sizeof(first_failure), fmt, what, id);
	for (char *p = first_failure; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
}

static unsigned next_mask(void)
{
	mask_seed = mask_seed * 1103515245u + 12345u;
	return mask_seed;
}

/* A masked client frame (opcode op, payload len < 126) into out; returns its length. */
static size_t client_frame(unsigned char *out, int op, const unsigned char *payload, size_t len)
{
	unsigned m = next_mask();
	unsigned char key[4] = {(unsigned char)m, (unsigned char)(m >> 8), (unsigned char)(m >> 16),
	                        (unsigned char)(m >> 24)};
	out[0] = (unsigned char)(0x80 | op);
	out[1] = (unsigned char)(0x80 | len);
	memcpy(out + 2, key, 4);
	for (size_t i = 0; i < len; i++)
		out[6 + i] = payload[i] ^ key[i & 3];
	return 6 + len;
}

/* Small writes only (a request head, a frame): all or nothing. */
static int send_all(struct conn *c, const void *p, size_t n)
{
	ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
	if (w == (ssize_t)n)
		return 0;
	cnt[c->kind].write_failed++;
	return -1;
}

static void conn_release(struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->state = ST_IDLE;
	c->in_len = 0;
	c->sent_at = 0;
	c->verified = false;
	c->end_at = 0;
	/* a rotating slot opens again a moment later */
	c->next_send = now() + ROT_REOPEN_S;
}

static int conn_start(struct conn *c)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		note_failure("socket: %s (conn %u)", strerror(errno), c->id);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)ports[c->id % (unsigned)nports])};
	sa.sin_addr.s_addr = htonl(0x7f000001);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		note_failure("connect: %s (conn %u)", strerror(errno), c->id);
		close(fd);
		return -1;
	}
	c->fd = fd;
	c->state = ST_CONNECTING;
	c->started = now();
	c->in_len = 0;
	struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static void send_message(struct conn *c, double t)
{
	unsigned char payload[24], frame[40];
	int n = snprintf((char *)payload, sizeof(payload), "%c%07u-%010u", c->kind ? 'r' : 's',
	                 c->id, c->seq++);
	size_t fl = client_frame(frame, 0x2, payload, (size_t)n);
	c->expect[0] = 0x82;
	c->expect[1] = (unsigned char)n;
	memcpy(c->expect + 2, payload, (size_t)n);
	c->expect_len = (uint8_t)(n + 2);
	if (send_all(c, frame, fl) < 0) {
		note_failure("frame write failed: %s (conn %u)", strerror(errno), c->id);
		return;
	}
	c->sent_at = t;
}

static void send_close(struct conn *c, double t)
{
	unsigned char payload[2] = {1000 >> 8, 1000 & 0xff}, frame[16];
	size_t fl = client_frame(frame, 0x8, payload, 2);
	if (send_all(c, frame, fl) < 0) {
		conn_release(c);
		return;
	}
	c->state = ST_CLOSING;
	c->end_at = t + CLOSE_WAIT_S;
}

/* The 101 head is in c->in; returns the bytes it used, 0 when incomplete, -1 when refused. */
static int handshake_step(struct conn *c)
{
	unsigned char *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
	if (!e)
		return c->in_len == IN_CAP ? -1 : 0;
	if (c->in_len < 12 || memcmp(c->in, "HTTP/1.1 101", 12) != 0) {
		char line[80];
		size_t n =
		    (size_t)(e - c->in) < sizeof(line) - 1 ? (size_t)(e - c->in) : sizeof(line) - 1;
		memcpy(line, c->in, n);
		line[n] = 0;
		char *cr = strchr(line, '\r');
		if (cr)
			*cr = 0;
		note_failure("upgrade answered \"%s\" (conn %u)", line, c->id);
		return -1;
	}
	return (int)(e - c->in) + 4;
}

/* One frame from the peer. Returns false when the connection is done with. */
static bool on_frame(struct conn *c, const unsigned char *f, size_t hl, size_t plen)
{
	int op = f[0] & 0x0f;
	struct counts *k = &cnt[c->kind];
	if (op == 0x8) {
		int code = plen >= 2 ? f[hl] << 8 | f[hl + 1] : 0;
		if (c->state == ST_CLOSING) {
			k->clean++;
		} else {
			k->closed_by_peer++;
			if (code == 1001)
				k->close_1001++;
			else
				k->close_other++;
			if (c->kind == K_STEADY)
				note_failure(
				    "steady tunnel closed by the peer with a close frame%s "
				    "(conn %u)",
				    "", c->id);
			unsigned char payload[2] = {(unsigned char)(code >> 8),
			                            (unsigned char)code},
			              frame[16];
			size_t fl = client_frame(frame, 0x8, payload, plen >= 2 ? 2 : 0);
			send(c->fd, frame, fl, MSG_NOSIGNAL);
		}
		conn_release(c);
		return false;
	}
	if (op == 0x9) {
		unsigned char frame[140];
		size_t fl = client_frame(frame, 0xA, f + hl, plen);
		k->pings++;
		send_all(c, frame, fl);
		return true;
	}
	if (op == 0xA)
		return true;
	if (c->sent_at == 0 || hl + plen != c->expect_len || memcmp(f, c->expect, c->expect_len)) {
		k->echo_bad++;
		note_failure("unexpected frame %s (conn %u)", c->sent_at ? "bytes" : "(none sent)",
		             c->id);
		return true;
	}
	k->echoes++;
	c->sent_at = 0;
	if (!c->verified) {
		c->verified = true;
		k->opened++;
	}
	return true;
}

static void on_readable(struct conn *c, double t)
{
	ssize_t r = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		struct counts *k = &cnt[c->kind];
		if (c->state == ST_HANDSHAKE) {
			k->upgrade_failed++;
			note_failure("connection ended during the upgrade: %s (conn %u)",
			             r < 0 ? strerror(errno) : "EOF", c->id);
		} else if (c->state == ST_CLOSING) {
			k->close_unanswered++;
		} else {
			k->dropped++;
			note_failure("tunnel ended without a close frame: %s (conn %u)",
			             r < 0 ? strerror(errno) : "EOF", c->id);
		}
		conn_release(c);
		return;
	}
	c->in_len += (uint16_t)r;
	size_t used = 0;
	if (c->state == ST_HANDSHAKE) {
		int h = handshake_step(c);
		if (h < 0) {
			cnt[c->kind].upgrade_failed++;
			conn_release(c);
			return;
		}
		if (h == 0)
			return;
		used = (size_t)h;
		c->state = ST_OPEN;
		send_message(c, t);
	}
	while (c->in_len - used >= 2) {
		const unsigned char *f = c->in + used;
		size_t avail = c->in_len - used, hl = 2, plen = f[1] & 0x7f;
		if (f[1] & 0x80 || plen == 127) {
			cnt[c->kind].echo_bad++;
			note_failure("bad frame header from the proxy%s (conn %u)", "", c->id);
			conn_release(c);
			return;
		}
		if (plen == 126) {
			if (avail < 4)
				break;
			plen = (size_t)f[2] << 8 | f[3];
			hl = 4;
		}
		if (hl + plen > IN_CAP) {
			cnt[c->kind].echo_bad++;
			note_failure("frame too big%s (conn %u)", "", c->id);
			conn_release(c);
			return;
		}
		if (avail < hl + plen)
			break;
		if (!on_frame(c, f, hl, plen))
			return;
		used += hl + plen;
	}
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= (uint16_t)used;
}

static void on_event(struct conn *c, uint32_t events, double t)
{
	if (c->state == ST_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			cnt[c->kind].upgrade_failed++;
			note_failure("connect: %s (conn %u)", strerror(err), c->id);
			conn_release(c);
			return;
		}
		char req[512];
		int n = snprintf(req, sizeof(req),
		                 "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\n"
		                 "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
		                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		                 path, host);
		if (send_all(c, req, (size_t)n) < 0) {
			cnt[c->kind].upgrade_failed++;
			note_failure("request write: %s (conn %u)", strerror(errno), c->id);
			conn_release(c);
			return;
		}
		c->state = ST_HANDSHAKE;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		on_readable(c, t);
}

static void print_counts(FILE *o, const char *prefix, const struct counts *k)
{
	fprintf(o,
	        "%sopened %llu\n%supgrade_failed %llu\n%sclosed_by_peer %llu\n%sclose_1001 %llu\n"
	        "%sclose_other %llu\n%sdropped %llu\n%sclean_close %llu\n"
	        "%sclose_unanswered %llu\n%sechoes %llu\n%secho_bad %llu\n%secho_timeout %llu\n"
	        "%spings %llu\n%swrite_failed %llu\n",
	        prefix, k->opened, prefix, k->upgrade_failed, prefix, k->closed_by_peer, prefix,
	        k->close_1001, prefix, k->close_other, prefix, k->dropped, prefix, k->clean, prefix,
	        k->close_unanswered, prefix, k->echoes, prefix, k->echo_bad, prefix,
	        k->echo_timeout, prefix, k->pings, prefix, k->write_failed);
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr,
		        "usage: ws_soak PORT[,PORT...] HOST PATH CONNS INTERVAL_S ROTATE\n");
		return 2;
	}
	for (char *p = argv[1]; *p && nports < MAX_PORTS;) {
		char *e;
		long v = strtol(p, &e, 10);
		if (e == p || v < 1 || v > 65535 || (*e && *e != ','))
			return 2;
		ports[nports++] = (int)v;
		p = *e ? e + 1 : e;
	}
	host = argv[2];
	path = argv[3];
	int steady = atoi(argv[4]);
	double interval = atof(argv[5]);
	int rotate = atoi(argv[6]);
	if (nports < 1 || steady < 1 || steady > 200000 || interval <= 0 || rotate < 0 ||
	    rotate > 100000 || strlen(host) > 200 || strlen(path) > 200)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	int total = steady + rotate;
	struct conn *cs = calloc((size_t)total, sizeof(*cs));
	if (!cs)
		return 1;
	for (int i = 0; i < total; i++) {
		cs[i].fd = -1;
		cs[i].id = (uint32_t)i;
		cs[i].kind = i < steady ? K_STEADY : K_ROT;
	}
	ep = epoll_create1(0);
	struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
	srand((unsigned)getpid());

	double t0 = now();
	int next_open = 0;
	bool ramped = false, stop = false;
	double last_scan = 0;
	struct epoll_event evs[512];
	while (!stop) {
		double t = now();
		if (!ramped) {
			/* keep RAMP_INFLIGHT handshakes going until every steady tunnel was tried
			 */
			int inflight = 0;
			for (int i = 0; i < next_open; i++)
				inflight += cs[i].state != ST_IDLE && !cs[i].verified;
			while (inflight < RAMP_INFLIGHT && next_open < steady) {
				if (conn_start(&cs[next_open]) < 0)
					cnt[K_STEADY].upgrade_failed++;
				else
					inflight++;
				next_open++;
			}
			if (next_open == steady && inflight == 0) {
				ramped = true;
				double r = now();
				/* the steady frames are spread evenly over one interval */
				for (int i = 0; i < steady; i++)
					cs[i].next_send = r + interval * (i + 1) / steady;
				for (int i = steady; i < total; i++)
					cs[i].next_send =
					    r + ROT_INTERVAL_S * (i - steady) / (rotate + 1);
				printf("ramped %llu %llu %.1f\n", cnt[K_STEADY].opened,
				       (unsigned long long)steady - cnt[K_STEADY].opened, r - t0);
				fflush(stdout);
			}
		}
		if (t - last_scan >= 0.01) {
			last_scan = t;
			for (int i = 0; i < total; i++) {
				struct conn *c = &cs[i];
				if ((c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) &&
				    t - c->started > ECHO_TIMEOUT_S) {
					cnt[c->kind].upgrade_failed++;
					note_failure("no 101 within 15 s%s (conn %u)", "", c->id);
					conn_release(c);
					continue;
				}
				if (c->state == ST_IDLE) {
					if (ramped && c->kind == K_ROT && t >= c->next_send &&
					    conn_start(c) < 0) {
						cnt[K_ROT].upgrade_failed++;
						c->next_send = t + 1;
					}
					continue;
				}
				if (c->state == ST_CLOSING) {
					if (t >= c->end_at) {
						cnt[c->kind].close_unanswered++;
						conn_release(c);
					}
					continue;
				}
				if (c->state != ST_OPEN)
					continue;
				if (c->sent_at && t - c->sent_at > ECHO_TIMEOUT_S) {
					cnt[c->kind].echo_timeout++;
					note_failure("no echo within 15 s%s (conn %u)", "", c->id);
					c->sent_at = 0;
					if (!c->verified) { /* never counted open */
						cnt[c->kind].upgrade_failed++;
						conn_release(c);
						continue;
					}
				}
				if (!ramped)
					continue;
				if (c->kind == K_ROT && c->verified && !c->end_at) {
					double life =
					    ROT_MIN_LIFE_S + (ROT_MAX_LIFE_S - ROT_MIN_LIFE_S) *
					                         (rand() / (double)RAND_MAX);
					c->end_at = t + life;
				}
				if (c->kind == K_ROT && c->end_at && t >= c->end_at &&
				    c->sent_at == 0) {
					send_close(c, t);
					continue;
				}
				if (t >= c->next_send) {
					c->next_send +=
					    c->kind == K_ROT ? ROT_INTERVAL_S : interval;
					if (c->next_send < t)
						c->next_send = t;
					if (c->sent_at == 0 && c->verified)
						send_message(c, t);
				}
			}
		}
		int n = epoll_wait(ep, evs, 512, 10);
		t = now();
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c) {
				if (c->state != ST_IDLE)
					on_event(c, evs[i].events, t);
				continue;
			}
			char line[64];
			ssize_t r = read(0, line, sizeof(line) - 1);
			if (r <= 0) {
				stop = true;
				break;
			}
			line[r] = 0;
			if (strstr(line, "stop"))
				stop = true;
			if (strstr(line, "stats")) {
				int open[K_KINDS] = {0};
				for (int j = 0; j < total; j++)
					if (cs[j].state == ST_OPEN && cs[j].verified)
						open[cs[j].kind]++;
				printf("stats t %.0f steady_open %d rotating_open %d echoes %llu "
				       "dropped %llu closed_by_peer %llu echo_errors %llu\n",
				       t - t0, open[K_STEADY], open[K_ROT],
				       cnt[K_STEADY].echoes + cnt[K_ROT].echoes,
				       cnt[K_STEADY].dropped + cnt[K_ROT].dropped,
				       cnt[K_STEADY].closed_by_peer + cnt[K_ROT].closed_by_peer,
				       cnt[K_STEADY].echo_bad + cnt[K_STEADY].echo_timeout +
				           cnt[K_ROT].echo_bad + cnt[K_ROT].echo_timeout);
				fflush(stdout);
			}
		}
	}
	int open_end = 0;
	for (int i = 0; i < steady; i++)
		open_end += cs[i].state == ST_OPEN && cs[i].verified;
	printf("steady_want %d\nsteady_open_at_end %d\n", steady, open_end);
	print_counts(stdout, "steady_", &cnt[K_STEADY]);
	print_counts(stdout, "rotating_", &cnt[K_ROT]);
	printf("first_failure %s\nend\n", first_failure[0] ? first_failure : "-");
	fflush(stdout);
	return 0;
}
