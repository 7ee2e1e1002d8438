/* proxy/h2up.c - HTTP/2 client connections to GRPC / GRPCS upstreams (see
 * h2up.h). Memory per stream is bounded by flow control: the request body
 * read from the data path waits in at most BODY_HIGH bytes (the pair is read
 * no further), and the answer's DATA window is given back to the upstream
 * only as the bytes leave for the data path. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "buf.h"
#include "chan.h"
#include "error.h"
#include "h2.h"
#include "h2up.h"
#include "http.h"
#include "http_parse.h"
#include "log.h"
#include "tls.h"

#define KEY_MAX 768                /* address, port, TLS profile id, SNI, verified name */
#define HEAD_MAX (64u * 1024u)     /* a request head from the data path */
#define BODY_HIGH (64u * 1024u)    /* request body waiting for the upstream's window */
#define OUT_HIGH (64u * 1024u)     /* frames waiting for the upstream socket */
#define ANSWER_CAP (1024u * 1024u) /* answer bytes waiting for the data path (window bound) */
#define STREAM_WINDOW 65535u
#define CONN_WINDOW (1024u * 1024u)
#define STREAMS_MAX 100u  /* streams per connection, whatever the upstream allows */
#define IDLE_MS 60000u    /* a connection without streams this long is closed */
#define CONNECT_MS 60000u /* TCP + TLS + SETTINGS */
#define READ_CHUNK 16384u
#define PROGRESS_ROUNDS 64

struct h2up_conn;

struct h2up_stream {
	struct h2up_conn *c;
	struct h2up_stream *next, *prev;
	struct chan *ch; /* side CHAN_A; NULL once let go */
	struct loop_io io;
	struct loop_defer defer;
	bool can_read, can_write;
	bool gone;  /* unlinked; freed after this batch */
	int32_t id; /* 0: not submitted yet */
	/* the request from the data path */
	struct buf in;
	struct http_parse hp;
	struct http_request req;
	bool head_done;
	size_t head_len;
	struct buf body;
	bool body_end;
	bool deferred;
	/* the answer for the data path */
	struct buf out;
	int status;
	struct buf lines;  /* response header (then trailer) lines, HTTP/1.1 form */
	bool answered;     /* the HTTP/1.1 head is in out */
	bool chunked;      /* the answer's body is chunked */
	bool ended;        /* the whole answer is in out */
	size_t to_consume; /* DATA bytes in out not yet given back as window */
};

struct h2up_conn {
	struct h2up_pool *p;
	struct h2up_conn *next, *prev;
	char key[KEY_MAX];
	struct tls_sock sock;
	struct loop_io io;
	struct loop_timer timer;
	struct loop_defer defer;
	nghttp2_session *ng;
	bool connected; /* TCP (and TLS) ready: frames may go */
	bool closed, goaway;
	bool can_read, can_write;
	struct buf out;
	struct h2up_stream *streams;
	size_t nstreams;
};

struct h2up_pool {
	struct loop *loop;
	struct h2up_conn *conns;
};

static void conn_progress(struct h2up_conn *c);
static void stream_progress(struct h2up_stream *st);

/* ---- streams ---- */

static void free_stream(struct loop_defer *d)
{
	struct h2up_stream *st = d->data;
	buf_free(&st->in);
	buf_free(&st->body);
	buf_free(&st->out);
	buf_free(&st->lines);
	free(st);
}

/* Let go of the channel: the data path sees the end (an abort when the
 * answer is not whole). Unlink and free later. */
static void stream_drop(struct h2up_stream *st)
{
	struct h2up_conn *c = st->c;
	if (st->gone)
		return;
	st->gone = true;
	if (st->ch) {
		chan_close(st->ch, CHAN_A);
		st->ch = NULL;
	}
	if (st->prev)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	c->nstreams--;
	if (st->id > 0 && !c->closed)
		nghttp2_session_set_stream_user_data(c->ng, st->id, NULL);
	loop_defer(c->p->loop, &st->defer, free_stream, st);
}

static ssize_t body_source(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len,
                           uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	(void)ng;
	(void)id;
	(void)ud;
	struct h2up_stream *st = src->ptr;
	size_t have = buf_len(&st->body), n = have < len ? have : len;
	if (n > 0) {
		memcpy(out, st->body.data + st->body.start, n);
		buf_consume(&st->body, n);
	}
	if (buf_len(&st->body) == 0 && st->body_end) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	if (n == 0) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

/* Not sent as HTTP/2 headers: the connection-specific ones, and Host
 * (it becomes :authority). */
static bool hop_by_hop(const char *name, size_t len)
{
	return h2_hop_by_hop(name, len) || (len == 4 && strncasecmp(name, "host", 4) == 0);
}

/* The request head as a HEADERS frame. Returns 0 or an error. */
static int submit_request(struct h2up_stream *st)
{
	const struct http_request *r = &st->req;
	size_t names = 0;
	for (size_t i = 0; i < r->nheaders; i++)
		names += r->headers[i].name_len;
	nghttp2_nv *nv = calloc(r->nheaders + 5, sizeof(*nv));
	char *lower = malloc(names + 1);
	if (!nv || !lower) {
		free(nv);
		free(lower);
		return WEIR_ENOMEM;
	}
	size_t k = 0, at = 0;
	const char *scheme = st->c->sock.ssl ? "https" : "http";
	nv[k++] = (nghttp2_nv){(uint8_t *)":method", (uint8_t *)r->method, 7, r->method_len, 0};
	nv[k++] = (nghttp2_nv){(uint8_t *)":scheme", (uint8_t *)scheme, 7, strlen(scheme), 0};
	if (r->host)
		nv[k++] =
		    (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)r->host, 10, r->host_len, 0};
	nv[k++] = (nghttp2_nv){(uint8_t *)":path", (uint8_t *)r->target, 5, r->target_len, 0};
	/* gRPC servers want it; the data path drops TE as hop-by-hop */
	nv[k++] = (nghttp2_nv){(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0};
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];
		if (hop_by_hop(h->name, h->name_len))
			continue;
		for (size_t j = 0; j < h->name_len; j++) {
			char ch = h->name[j];
			lower[at + j] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
		}
		nv[k++] = (nghttp2_nv){(uint8_t *)lower + at, (uint8_t *)h->value, h->name_len,
		                       h->value_len, 0};
		at += h->name_len;
	}
	bool no_body = st->body_end && buf_len(&st->body) == 0;
	nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = body_source};
	int32_t id = nghttp2_submit_request(st->c->ng, NULL, nv, k, no_body ? NULL : &prd, st);
	free(nv);
	free(lower);
	if (id < 0)
		return WEIR_EIO;
	st->id = id;
	return 0;
}

static int body_sink(void *data, const char *p, size_t len)
{
	struct h2up_stream *st = data;
	return buf_append(&st->body, p, len) == 0 ? 0 : -1;
}

/* Bytes of the request from the data path. Returns false when the stream
 * was dropped. */
static bool stream_take(struct h2up_stream *st, const char *p, size_t n)
{
	if (st->head_done) {
		size_t used = 0;
		int r = http_parse_body(&st->hp, p, n, &used, body_sink, st);
		if (r < 0) {
			stream_drop(st);
			return false;
		}
		if (r == 1)
			st->body_end = true;
		return true;
	}
	if (buf_append(&st->in, p, n) != 0) {
		stream_drop(st);
		return false;
	}
	long h =
	    http_parse_scan_head(&st->hp, st->in.data + st->in.start, buf_len(&st->in), HEAD_MAX);
	if (h == 0)
		return true;
	if (h < 0 || http_parse_request_head(&st->hp, st->in.data + st->in.start, (size_t)h,
	                                     &st->req) != 0) {
		stream_drop(st);
		return false;
	}
	st->head_done = true;
	st->head_len = (size_t)h;
	if (http_parse_done(&st->hp))
		st->body_end = true; /* no body at all */
	/* the body bytes that came with the head */
	size_t rest = buf_len(&st->in) - (size_t)h;
	if (rest > 0 && !http_parse_done(&st->hp)) {
		size_t used = 0;
		int r = http_parse_body(&st->hp, st->in.data + st->in.start + h, rest, &used,
		                        body_sink, st);
		if (r < 0) {
			stream_drop(st);
			return false;
		}
		if (r == 1)
			st->body_end = true;
	}
	return true;
}

static void stream_submit(struct h2up_stream *st)
{
	if (st->id || !st->head_done || !st->c->connected || st->gone)
		return;
	if (submit_request(st) != 0)
		stream_drop(st);
}

static void stream_progress(struct h2up_stream *st)
{
	struct h2up_conn *c = st->c;
	char tmp[READ_CHUNK];
	for (int round = 0; round < PROGRESS_ROUNDS && !st->gone; round++) {
		bool progress = false;
		if (buf_len(&st->out) > 0 && st->can_write) {
			ssize_t n = chan_write(st->ch, CHAN_A, st->out.data + st->out.start,
			                       buf_len(&st->out));
			if (n == WEIR_EAGAIN) {
				st->can_write = false;
			} else if (n < 0) {
				if (st->id > 0)
					nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id,
					                          NGHTTP2_CANCEL);
				stream_drop(st);
				return;
			} else {
				buf_consume(&st->out, (size_t)n);
				size_t give =
				    st->to_consume < (size_t)n ? st->to_consume : (size_t)n;
				if (buf_len(&st->out) == 0)
					give = st->to_consume;
				if (give && st->id > 0) {
					nghttp2_session_consume(c->ng, st->id, give);
					st->to_consume -= give;
				}
				progress = true;
			}
		}
		if (st->ended && buf_len(&st->out) == 0) {
			stream_drop(st); /* the answer is whole: the data path reads the end */
			return;
		}
		bool room = !st->head_done || buf_len(&st->body) < BODY_HIGH;
		if (st->can_read && room && !st->body_end) {
			ssize_t n = chan_read(st->ch, CHAN_A, tmp, sizeof(tmp));
			if (n == WEIR_EAGAIN) {
				st->can_read = false;
			} else if (n <= 0) {
				/* the data path left before its request was whole */
				if (st->id > 0)
					nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id,
					                          NGHTTP2_CANCEL);
				stream_drop(st);
				return;
			} else {
				if (!stream_take(st, tmp, (size_t)n))
					return;
				progress = true;
			}
		}
		stream_submit(st);
		if (st->gone)
			return;
		if (st->id > 0 && st->deferred && (buf_len(&st->body) > 0 || st->body_end)) {
			st->deferred = false;
			nghttp2_session_resume_data(c->ng, st->id);
		}
		if (!progress)
			break;
	}
}

static void on_stream_io(struct loop_io *io, uint32_t events)
{
	struct h2up_stream *st = io->data;
	if (st->gone)
		return;
	struct h2up_conn *c = st->c;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		st->can_read = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		st->can_write = true;
	stream_progress(st);
	conn_progress(c);
}

/* ---- nghttp2 callbacks ---- */

static struct h2up_stream *stream_of(struct h2up_conn *c, int32_t id)
{
	return nghttp2_session_get_stream_user_data(c->ng, id);
}

static int append_line(struct buf *b, const uint8_t *name, size_t nlen, const uint8_t *value,
                       size_t vlen)
{
	if (buf_append(b, name, nlen) != 0 || buf_append(b, ": ", 2) != 0 ||
	    buf_append(b, value, vlen) != 0 || buf_append(b, "\r\n", 2) != 0)
		return WEIR_ETOOBIG;
	return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	(void)ng;
	(void)flags;
	struct h2up_conn *c = ud;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct h2up_stream *st = stream_of(c, frame->hd.stream_id);
	if (!st)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
		int s = 0;
		for (size_t i = 0; i < valuelen && i < 3; i++)
			s = s * 10 + (value[i] - '0');
		st->status = s;
		return 0;
	}
	if (namelen > 0 && name[0] == ':')
		return 0;
	/* the data path frames the body itself */
	if (!st->answered && namelen == 14 && memcmp(name, "content-length", 14) == 0)
		return 0;
	if (append_line(&st->lines, name, namelen, value, valuelen) != 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

static void write_answer_head(struct h2up_stream *st, bool end_stream)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", st->status,
	                 st->status == 200 ? "OK" : "-");
	int rc = buf_append(&st->out, line, (size_t)n);
	if (buf_len(&st->lines))
		rc |= buf_append(&st->out, st->lines.data + st->lines.start, buf_len(&st->lines));
	buf_free(&st->lines);
	if (end_stream) {
		rc |= buf_append(&st->out, "content-length: 0\r\n", 19);
	} else {
		rc |= buf_append(&st->out, "transfer-encoding: chunked\r\n", 28);
		st->chunked = true;
	}
	rc |= buf_append(&st->out, "connection: close\r\n\r\n", 21);
	st->answered = true;
	if (end_stream)
		st->ended = true;
	if (rc != 0)
		stream_drop(st);
}

static void end_answer(struct h2up_stream *st)
{
	if (st->ended)
		return;
	int rc = 0;
	if (st->chunked) {
		rc |= buf_append(&st->out, "0\r\n", 3);
		if (buf_len(&st->lines))
			rc |= buf_append(&st->out, st->lines.data + st->lines.start,
			                 buf_len(&st->lines));
		rc |= buf_append(&st->out, "\r\n", 2);
	}
	buf_free(&st->lines);
	st->ended = true;
	if (rc != 0)
		stream_drop(st);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
	(void)ng;
	struct h2up_conn *c = ud;
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		c->goaway = true;
		return 0;
	}
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	struct h2up_stream *st = stream_of(c, frame->hd.stream_id);
	if (!st)
		return 0;
	bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
	if (frame->hd.type == NGHTTP2_HEADERS && !st->answered) {
		if (st->status >= 100 && st->status < 200) {
			buf_free(&st->lines); /* an interim answer: the final one follows */
			return 0;
		}
		write_answer_head(st, end);
	} else if (end) {
		end_answer(st);
	}
	if (!st->gone)
		stream_progress(st);
	return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
	(void)flags;
	struct h2up_conn *c = ud;
	struct h2up_stream *st = stream_of(c, id);
	if (!st || !st->chunked) {
		nghttp2_session_consume(ng, id, len);
		return 0;
	}
	char hdr[24];
	int h = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
	if (buf_append(&st->out, hdr, (size_t)h) != 0 || buf_append(&st->out, data, len) != 0 ||
	    buf_append(&st->out, "\r\n", 2) != 0) {
		nghttp2_session_consume(ng, id, len);
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_FLOW_CONTROL_ERROR);
		stream_drop(st);
		return 0;
	}
	st->to_consume += len;
	stream_progress(st);
	return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	(void)ng;
	(void)code;
	struct h2up_conn *c = ud;
	struct h2up_stream *st = stream_of(c, id);
	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(c->ng, id, NULL);
	st->id = -1; /* nothing more to send or give back */
	st->to_consume = 0;
	if (!st->ended) {
		stream_drop(st); /* reset before the answer was whole */
		return 0;
	}
	stream_progress(st);
	return 0;
}

/* ---- connections ---- */

static void free_conn(struct loop_defer *d)
{
	struct h2up_conn *c = d->data;
	if (c->ng)
		nghttp2_session_del(c->ng);
	buf_free(&c->out);
	free(c);
}

static void conn_close(struct h2up_conn *c)
{
	if (c->closed)
		return;
	while (c->streams)
		stream_drop(c->streams);
	c->closed = true;
	struct h2up_pool *p = c->p;
	loop_timer_cancel(p->loop, &c->timer);
	if (c->io.fd >= 0)
		loop_io_del(p->loop, &c->io);
	c->io.fd = -1;
	tls_sock_close(&c->sock);
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	loop_defer(p->loop, &c->defer, free_conn, c);
}

static void on_conn_timer(struct loop_timer *t)
{
	struct h2up_conn *c = t->data;
	if (c->closed)
		return;
	if (!c->connected) {
		log_warn("proxy.h2up", "%s: connection not ready after %u ms", c->key, CONNECT_MS);
		conn_close(c);
		return;
	}
	if (c->nstreams == 0)
		conn_close(c);
}

static void conn_ready(struct h2up_conn *c)
{
	c->connected = true;
	for (struct h2up_stream *st = c->streams, *nx; st; st = nx) {
		nx = st->next;
		stream_submit(st);
	}
}

static void conn_progress(struct h2up_conn *c)
{
	char tmp[READ_CHUNK];
	for (int round = 0; round < PROGRESS_ROUNDS && !c->closed; round++) {
		bool progress = false;
		if (!c->connected) {
			if (!c->can_write && !c->can_read)
				break;
			int err = 0;
			socklen_t l = sizeof(err);
			if (getsockopt(c->sock.fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || err) {
				log_warn("proxy.h2up", "%s: connect: %s", c->key,
				         strerror(err ? err : errno));
				conn_close(c);
				return;
			}
			if (c->sock.ssl && !c->sock.handshake_done) {
				int r = tls_sock_handshake(&c->sock);
				if (r == WEIR_EAGAIN) {
					tls_sock_blocked(&c->sock, &c->can_read, &c->can_write);
					break;
				}
				if (r != 0 || !tls_alpn_h2(c->sock.ssl)) {
					char why[256] = "the upstream did not choose h2 (ALPN)";
					if (r != 0)
						backend_tls_failure(c->sock.ssl, why, sizeof(why));
					log_warn("proxy.h2up", "%s: TLS: %s", c->key, why);
					conn_close(c);
					return;
				}
			}
			conn_ready(c);
			progress = true;
		}
		if (c->can_read && buf_len(&c->out) < OUT_HIGH) {
			ssize_t n = tls_sock_read(&c->sock, tmp, sizeof(tmp));
			if (n == WEIR_EAGAIN) {
				tls_sock_blocked(&c->sock, &c->can_read, &c->can_write);
			} else if (n <= 0) {
				conn_close(c);
				return;
			} else {
				if (nghttp2_session_mem_recv(c->ng, (const uint8_t *)tmp,
				                             (size_t)n) < 0) {
					conn_close(c);
					return;
				}
				progress = true;
			}
		}
		int made = h2_frames_out(c->ng, &c->out, OUT_HIGH);
		ssize_t sent =
		    made < 0 ? -1 : tls_sock_flush(&c->sock, &c->out, &c->can_read, &c->can_write);
		if (sent < 0) {
			conn_close(c);
			return;
		}
		progress |= made > 0 || sent > 0;
		/* streams whose request body waited for room */
		for (struct h2up_stream *st = c->streams, *nx; st; st = nx) {
			nx = st->next;
			if (st->can_read && !st->body_end && buf_len(&st->body) < BODY_HIGH &&
			    st->head_done)
				stream_progress(st);
		}
		if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng) &&
		    buf_len(&c->out) == 0) {
			conn_close(c);
			return;
		}
		if (!progress)
			break;
	}
	if (!c->closed && c->connected) {
		if (c->nstreams == 0)
			loop_timer_set(c->p->loop, &c->timer, IDLE_MS);
		else
			loop_timer_cancel(c->p->loop, &c->timer);
	}
}

static void on_conn_io(struct loop_io *io, uint32_t events)
{
	struct h2up_conn *c = io->data;
	if (c->closed)
		return;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->can_read = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->can_write = true;
	if (c->sock.ssl)
		c->can_read = c->can_write = true;
	conn_progress(c);
}

static int conn_open(struct h2up_pool *p, const struct route_endpoint *ep,
                     const struct backend_tls_target *tls, const char *key, struct h2up_conn **out)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ep->address, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(ep->port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, ep->address, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(ep->port);
		sl = sizeof(*s6);
	} else {
		return WEIR_EINVAL;
	}
	struct h2up_conn *c = calloc(1, sizeof(*c));
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	if (!c || nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
		goto fail;
	c->p = p;
	snprintf(c->key, sizeof(c->key), "%s", key);
	c->sock.fd = -1;
	c->io.fd = -1;
	buf_init(&c->out, OUT_HIGH * 4u);
	loop_timer_init(&c->timer, on_conn_timer, c);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_peer_max_concurrent_streams(opt, STREAMS_MAX);
	if (nghttp2_session_client_new2(&c->ng, cb, c, opt) != 0)
		goto fail;
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	cb = NULL;
	opt = NULL;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
	};
	if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
	    nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
		goto fail;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	c->sock.fd = fd;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
		log_warn("proxy.h2up", "%s: connect: %s", key, strerror(errno));
		goto fail;
	}
	if (tls) {
		c->sock.ssl = backend_tls_client_new(tls, fd);
		if (!c->sock.ssl)
			goto fail;
		static const unsigned char h2[] = "\x02h2";
		SSL_set_alpn_protos(c->sock.ssl, h2, sizeof(h2) - 1);
	}
	c->io.fd = fd;
	c->io.cb = on_conn_io;
	c->io.data = c;
	if (loop_io_add(p->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != 0)
		goto fail;
	loop_timer_set(p->loop, &c->timer, CONNECT_MS);
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	*out = c;
	return 0;
fail:
	if (cb)
		nghttp2_session_callbacks_del(cb);
	if (opt)
		nghttp2_option_del(opt);
	if (c) {
		if (c->ng)
			nghttp2_session_del(c->ng);
		tls_sock_close(&c->sock);
		buf_free(&c->out);
		free(c);
	}
	return WEIR_ENOMEM;
}

static size_t conn_capacity(const struct h2up_conn *c)
{
	uint32_t max =
	    nghttp2_session_get_remote_settings(c->ng, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
	if (max > STREAMS_MAX)
		max = STREAMS_MAX;
	return c->nstreams < max ? max - c->nstreams : 0;
}

int h2up_attach(struct h2up_pool *p, const struct route_endpoint *ep,
                const struct backend_tls_target *tls, struct chan *ch)
{
	char key[KEY_MAX];
	int kn = tls ? snprintf(key, sizeof(key), "%s|%u|h2|%s|%s|%s", ep->address,
	                        (unsigned)ep->port, tls->id ? tls->id : "",
	                        tls->sni ? tls->sni : "", tls->name ? tls->name : "")
	             : snprintf(key, sizeof(key), "%s|%u|h2c", ep->address, (unsigned)ep->port);
	if (kn < 0 || (size_t)kn >= sizeof(key)) {
		chan_close(ch, CHAN_A); /* a cut key could match another target's connection */
		return WEIR_EINVAL;
	}
	struct h2up_conn *c = NULL;
	for (struct h2up_conn *k = p->conns; k; k = k->next)
		if (!k->closed && !k->goaway && strcmp(k->key, key) == 0 && conn_capacity(k) > 0) {
			c = k;
			break;
		}
	if (!c) {
		int rc = conn_open(p, ep, tls, key, &c);
		if (rc != 0) {
			chan_close(ch, CHAN_A);
			return rc;
		}
	}
	struct h2up_stream *st = calloc(1, sizeof(*st));
	if (!st) {
		chan_close(ch, CHAN_A);
		return WEIR_ENOMEM;
	}
	st->c = c;
	st->ch = ch;
	st->io.fd = -1;
	st->io.cb = on_stream_io;
	st->io.data = st;
	buf_init(&st->in, HEAD_MAX + READ_CHUNK);
	buf_init(&st->body, BODY_HIGH + READ_CHUNK * 2u);
	buf_init(&st->out, ANSWER_CAP + HEAD_MAX * 2u);
	buf_init(&st->lines, HEAD_MAX);
	http_parse_init(&st->hp, false, false);
	chan_watch(ch, CHAN_A, &st->io);
	st->next = c->streams;
	if (c->streams)
		c->streams->prev = st;
	c->streams = st;
	c->nstreams++;
	loop_timer_cancel(p->loop, &c->timer);
	if (!c->connected)
		loop_timer_set(p->loop, &c->timer, CONNECT_MS);
	return 0;
}

int h2up_pool_new(struct loop *l, struct h2up_pool **out)
{
	struct h2up_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return WEIR_ENOMEM;
	p->loop = l;
	*out = p;
	return 0;
}

void h2up_pool_free(struct h2up_pool *p)
{
	if (!p)
		return;
	while (p->conns)
		conn_close(p->conns);
	free(p);
}
