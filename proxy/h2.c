/* proxy/h2.c - HTTP/2 client sessions bridged onto the HTTP/1.1 data path
 * (see h2.h). Memory is bounded per session: at most OUT_HIGH bytes of
 * frames wait for the client, and per stream at most STREAM_WINDOW bytes of
 * request body (flow control gives the window back only as the data path
 * takes the bytes) and STREAM_BUF bytes of response body (the stream's
 * channel is read no further until the client's window lets them go).
 * Streams reach the data path over in-memory channels (chan.h); a tunnel
 * (extended CONNECT), which the data path hands to tunnel.c, over a socket
 * pair. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "buf.h"
#include "chan.h"
#include "error.h"
#include "h2.h"
#include "http.h"
#include "http_parse.h"
#include "log.h"

#define OUT_HIGH (64u * 1024u)      /* frames waiting for the client: no more made */
#define OUT_CAP (1024u * 1024u)     /* hard cap of that buffer (one frame over OUT_HIGH) */
#define STREAM_WINDOW 65535u        /* request body bytes in flight per stream */
#define CONN_WINDOW (1024u * 1024u) /* ... and per session */
#define STREAM_BUF (64u * 1024u)    /* response body held per stream */
#define RESP_HEAD_MAX (64u * 1024u) /* a response head from the data path */
#define READ_CHUNK 16384u
#define PROGRESS_ROUNDS 64
/* A turn of a session (session_progress) begins at most TURN_HEADS
 * requests; then it lets the worker's other connections go first
 * (loop_yield). A read that began more than FEW_HEADS switches the session
 * to reads of SMALL_READ bytes, so a turn stays short however densely the
 * client packs its HEADERS (a flood packs some 350 in a full read). */
#define TURN_HEADS 32u
#define FEW_HEADS 4u
#define SMALL_READ 1024u
/* Streams the client resets (rapid reset, CVE-2023-44487): a bucket of
 * RESET_BURST that refills RESET_RATE a second, what nghttp2 allows by
 * default (a gRPC client cancels a call on its deadline with a reset). Once
 * it is empty the session stops reading until RESET_QUANTUM came back, so a
 * flood is served at the rate and not answered by a close the client would
 * turn into a reconnect (a TLS handshake) and a fresh burst. A client still
 * at it after RESET_PATIENCE_MS of that gets a GOAWAY (ENHANCE_YOUR_CALM).
 * nghttp2's own bucket, twice as deep at the same rate, stays behind it: it
 * runs dry only if a single read overshoots ours by a whole burst. */
#define RESET_BURST 1000u
#define RESET_RATE 33u
#define RESET_QUANTUM 8u
#define RESET_PATIENCE_MS 30000u
/* A client cut off for a flood (ENHANCE_YOUR_CALM) gets its GOAWAY after
 * PENALTY_MS, read nothing meanwhile: one that reconnects on the GOAWAY
 * costs the worker a TLS handshake a PENALTY_MS, not one a round trip. */
#define PENALTY_MS 1000u
#define LIVE_FACTOR 2u          /* data path connections per allowed stream, refused beyond */
#define IDLE_CHANS 16u          /* data path connections kept for the next streams */
#define CHAN_CAP (128u * 1024u) /* bytes waiting in a channel, each way */
#define IDLE_CHAN_MS 5000u      /* ... this long at most (far below any keep-alive timeout) */
#define LINGER_MS 2000u
#define LINGER_MAX (1024u * 1024u)
#define SPARE_STREAMS 1024u     /* freed streams a worker keeps (5 KiB each) ... */
#define SPARE_STREAMS_IDLE 128u /* ... and once idle (spare_trim) */
#define HEAD_NV_STACK 64u       /* an answer's fields (and :status) made into HEADERS ... */
#define HEAD_NAMES_STACK 2048u  /* ... and their names' bytes, without an allocation */

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct h2_stream {
	struct h2_session *s;
	struct h2_worker *w; /* s's (the free may come after s's) */
	struct h2_stream *next, *prev;
	int32_t id;
	struct chan *ch; /* side CHAN_A of the stream's channel, or NULL */
	int fd;          /* a tunnel's: our end of its socket pair, or -1 */
	struct loop_io io;
	struct loop_defer defer;
	bool can_read, can_write;
	bool gone;    /* nghttp2 closed the stream: only the free is due */
	bool opened;  /* counted in nstreams (handed to the data path) */
	bool pending; /* the head is made; the data path is asked after this read */
	/* the request as it arrives: the pseudo-header values, NUL-terminated
	 * in pseudo (pseudo_at[i]: offset + 1, 0 while absent), pointed at by
	 * method... from the head's end (pseudo no longer moves then) until its
	 * HTTP/1.1 form is made (stream_head) */
	struct buf pseudo;
	size_t pseudo_at[5];
	char *method, *scheme, *authority, *path, *protocol;
	struct buf fields; /* regular header lines, HTTP/1.1 form */
	struct buf cookie; /* cookie crumbs joined with "; " */
	size_t hbytes;     /* header list size so far (RFC 9113 6.5.2 rule) */
	int refuse;        /* answer this status instead of serving (400, 431...) */
	bool has_length, chunked, head_req, tunnel, req_ended;
	bool shut_wr;      /* the write side of the pair is shut (end of a tunnel's input) */
	struct buf up;     /* bytes for the data path */
	size_t to_consume; /* DATA payload taken but not yet given back as window */
	/* the answer */
	struct buf down; /* response head bytes so far */
	struct http_parse hp;
	struct http_response resp;
	bool answered; /* HEADERS submitted */
	bool raw;      /* a tunnel after its 101: bytes as they are */
	struct buf body;
	struct buf trailers; /* the answer's trailer lines (a gRPC backend's) */
	bool body_end;       /* body holds the rest of the answer */
	bool deferred;       /* the data source waits for body bytes */
	bool inner_eof;
	bool stalled; /* not read further: body is full */
};

struct h2_session {
	struct h2_worker *w;
	struct h2_session *next, *prev;
	struct tls_sock sock;
	struct loop_io io;
	struct loop_timer timer;
	struct loop_defer defer;
	struct loop_defer soon; /* session_progress after this batch */
	nghttp2_session *ng;
	struct h2_limits lim;
	struct h2_host host;
	struct buf out;
	bool can_read, can_write;
	bool closed, draining, read_eof;
	bool lingering; /* all sent, write side shut: reading the client's rest away */
	size_t linger_bytes;
	bool refill;                /* a stream's body was taken: stalled streams may read again */
	bool small_reads;           /* the last read began more than FEW_HEADS requests */
	size_t heads;               /* requests begun, all told */
	struct loop_timer throttle; /* reading again once resets came back; a penalty's end */
	bool throttled;             /* not reading: the reset bucket is empty */
	bool penalty;               /* cut off for a flood: nothing sent until PENALTY_MS */
	int64_t reset_mtokens;      /* the bucket, in thousandths of a reset */
	uint64_t reset_at;          /* loop_now() of its last refill */
	uint64_t throttled_since;   /* first throttle since the bucket was last full (+1) */
	uint64_t turn_batch;        /* the loop batch in which a turn last ran out (+1) */
	struct h2_stream *streams;
	size_t nstreams; /* streams handed to the data path and not closed */
	/* data path connections whose last answer was whole and kept alive:
	 * the next stream's request goes on one of them */
	struct chan *idle_ch[IDLE_CHANS];
	uint64_t idle_since[IDLE_CHANS];
	size_t nidle;
};

static void session_progress(struct h2_session *s);
static void session_soon_cb(struct loop_defer *d);
static void session_soon(struct h2_session *s);
static void stream_progress(struct h2_stream *st);
static void stream_release_chan(struct h2_stream *st);
static void stream_refuse(struct h2_stream *st, int status);

bool h2_is_preface(const char *buf, size_t n)
{
	size_t k = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;
	return memcmp(buf, preface, k) == 0;
}

/* ---- streams ---- */

static void free_stream(struct loop_defer *d)
{
	struct h2_stream *st = d->data;
	buf_free(&st->pseudo);
	buf_free(&st->fields);
	buf_free(&st->cookie);
	buf_free(&st->up);
	buf_free(&st->down);
	buf_free(&st->body);
	buf_free(&st->trailers);
	spare_give(&st->w->streams, st);
}

static bool stream_piped(const struct h2_stream *st)
{
	return st->ch || st->fd >= 0;
}

static ssize_t pipe_send(struct h2_stream *st, const void *p, size_t n)
{
	if (!st->ch)
		return send(st->fd, p, n, MSG_NOSIGNAL);
	ssize_t r = chan_write(st->ch, CHAN_A, p, n);
	if (r < 0)
		errno = r == WEIR_EAGAIN ? EAGAIN : EPIPE;
	return r < 0 ? -1 : r;
}

static ssize_t pipe_recv(struct h2_stream *st, void *p, size_t n)
{
	if (!st->ch)
		return recv(st->fd, p, n, 0);
	ssize_t r = chan_read(st->ch, CHAN_A, p, n);
	if (r < 0)
		errno = r == WEIR_EAGAIN ? EAGAIN : EIO;
	return r < 0 ? -1 : r;
}

static void stream_close_fd(struct h2_stream *st)
{
	if (st->ch) {
		chan_close(st->ch, CHAN_A);
		st->ch = NULL;
		return;
	}
	if (st->fd < 0)
		return;
	loop_io_del(st->s->w->loop, &st->io);
	close(st->fd);
	st->fd = -1;
	st->io.fd = -1;
}

/* nghttp2 is done with the stream (or the session goes): unlink, close the
 * channel or socket pair (the data path sees its client leave) and free
 * after this batch of events. */
static void stream_drop(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	if (st->gone)
		return;
	st->gone = true;
	stream_close_fd(st);
	if (st->prev)
		st->prev->next = st->next;
	else
		s->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	if (st->id > 0 && !s->closed)
		nghttp2_session_set_stream_user_data(s->ng, st->id, NULL);
	loop_defer(s->w->loop, &st->defer, free_stream, st);
}

static struct h2_stream *stream_of(struct h2_session *s, int32_t id)
{
	return nghttp2_session_get_stream_user_data(s->ng, id);
}

/* status (100 to 999, which is all an HTTP/1.1 parse lets through) as its
 * three digits and a NUL: every answer's :status, without a format parse */
static void status_digits(char code[4], int status)
{
	code[0] = (char)('0' + status / 100 % 10);
	code[1] = (char)('0' + status / 10 % 10);
	code[2] = (char)('0' + status % 10);
	code[3] = '\0';
}

/* A response made here (refused streams, a data path that closed before
 * answering): status and no body. */
static void answer_status(struct h2_stream *st, int status)
{
	char code[4];
	status_digits(code, status);
	nghttp2_nv nv[] = {
	    {(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE},
	    {(uint8_t *)"content-length", (uint8_t *)"0", 14, 1, NGHTTP2_NV_FLAG_NONE},
	};
	st->answered = true;
	if (nghttp2_submit_response(st->s->ng, st->id, nv, 2, NULL) != 0)
		nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id,
		                          NGHTTP2_INTERNAL_ERROR);
}

bool h2_hop_by_hop(const char *name, size_t len)
{
	/* by length first: every field of every answer comes through here */
	switch (len) {
	case 2:
		return strncasecmp(name, "te", 2) == 0;
	case 7:
		return strncasecmp(name, "upgrade", 7) == 0;
	case 10:
		return strncasecmp(name, "connection", 10) == 0 ||
		       strncasecmp(name, "keep-alive", 10) == 0;
	case 16:
		return strncasecmp(name, "proxy-connection", 16) == 0;
	case 17:
		return strncasecmp(name, "transfer-encoding", 17) == 0;
	default:
		return false;
	}
}

/* The answer's trailer lines ("name: value\r\n"...) as a trailing HEADERS
 * frame. Returns 0 or an error. */
static int submit_trailers(struct h2_session *s, struct h2_stream *st)
{
	char *t = st->trailers.data + st->trailers.start;
	size_t len = buf_len(&st->trailers), n = 0;
	for (size_t i = 0; i < len; i++)
		n += t[i] == '\n';
	nghttp2_nv *nv = calloc(n + 1, sizeof(*nv));
	if (!nv)
		return WEIR_ENOMEM;
	size_t k = 0;
	for (char *p = t, *end = t + len; p < end;) {
		char *eol = memchr(p, '\n', (size_t)(end - p));
		char *line_end = eol ? eol : end;
		char *colon = memchr(p, ':', (size_t)(line_end - p));
		if (colon && colon > p) {
			char *v = colon + 1, *ve = line_end;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			for (char *q = p; q < colon; q++)
				if (*q >= 'A' && *q <= 'Z')
					*q = (char)(*q + 32);
			if (!h2_hop_by_hop(p, (size_t)(colon - p)))
				nv[k++] =
				    (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, (size_t)(colon - p),
				                 (size_t)(ve - v), NGHTTP2_NV_FLAG_NONE};
		}
		p = eol ? eol + 1 : end;
	}
	int rc = nghttp2_submit_trailer(s->ng, st->id, nv, k);
	free(nv);
	return rc == 0 ? 0 : WEIR_EIO;
}

static ssize_t body_source(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len,
                           uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	(void)ng;
	(void)id;
	struct h2_session *s = ud;
	struct h2_stream *st = src->ptr;
	size_t have = buf_len(&st->body), n = have < len ? have : len;
	if (n > 0) {
		memcpy(out, st->body.data + st->body.start, n);
		buf_consume(&st->body, n);
		s->refill = true;
	}
	if (buf_len(&st->body) == 0 && st->body_end) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (buf_len(&st->trailers) > 0 && submit_trailers(s, st) == 0)
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		return (ssize_t)n;
	}
	if (n == 0) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

/* The data path's response head (parsed into st->resp, pointing into
 * st->down) as HEADERS; a tunnel's 101 becomes 200 (RFC 8441 5). Returns 0
 * or an error (the stream is reset). */
static int submit_head(struct h2_stream *st)
{
	const struct http_response *r = &st->resp;
	bool upgraded = st->tunnel && r->status == 101;
	bool no_body = !upgraded && http_parse_done(&st->hp);
	/* a gRPC Trailers-Only answer (the proxy's own grpc-status on an error,
	 * or a backend's): its fields are the call's trailing metadata, where
	 * content-length means nothing */
	bool trailers_only = false;
	size_t names = 0;
	for (size_t i = 0; i < r->nheaders; i++) {
		names += r->headers[i].name_len;
		trailers_only |= no_body && http_name_is(&r->headers[i], "grpc-status");
	}
	/* a usual answer's fields fit on the stack; nghttp2 copies them */
	nghttp2_nv nv_stack[HEAD_NV_STACK];
	char lower_stack[HEAD_NAMES_STACK];
	nghttp2_nv *nv =
	    r->nheaders < HEAD_NV_STACK ? nv_stack : malloc((r->nheaders + 1) * sizeof(*nv));
	char *lower = names < sizeof(lower_stack) ? lower_stack : malloc(names + 1);
	int rc = WEIR_ENOMEM;
	if (!nv || !lower)
		goto out;
	char code[4];
	status_digits(code, upgraded ? 200 : r->status);
	size_t k = 0, at = 0;
	nv[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct http_header *h = &r->headers[i];
		if (h2_hop_by_hop(h->name, h->name_len) ||
		    (trailers_only && http_name_is(h, "content-length")))
			continue;
		if (upgraded && h->name_len == 20 &&
		    strncasecmp(h->name, "sec-websocket-accept", 20) == 0)
			continue;
		for (size_t j = 0; j < h->name_len; j++) {
			char ch = h->name[j];
			lower[at + j] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
		}
		nv[k++] = (nghttp2_nv){(uint8_t *)lower + at, (uint8_t *)h->value, h->name_len,
		                       h->value_len, NGHTTP2_NV_FLAG_NONE};
		at += h->name_len;
	}
	nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = body_source};
	rc = nghttp2_submit_response(st->s->ng, st->id, nv, k, no_body ? NULL : &prd) == 0
	         ? 0
	         : WEIR_EIO;
	st->answered = true;
	if (no_body)
		st->body_end = true;
out:
	if (nv != nv_stack)
		free(nv);
	if (lower != lower_stack)
		free(lower);
	return rc;
}

static int body_sink(void *data, const char *p, size_t len)
{
	struct h2_stream *st = data;
	return buf_append(&st->body, p, len) == 0 ? 0 : -1;
}

/* Bytes from the data path. Returns false when the stream was reset. */
static bool stream_take(struct h2_stream *st, const char *p, size_t n)
{
	struct h2_session *s = st->s;
	if (st->raw || (st->answered && !st->body_end && st->hp.head_done)) {
		if (st->raw) {
			if (buf_append(&st->body, p, n) != 0)
				goto reset;
			return true;
		}
		size_t used = 0;
		int r = http_parse_body(&st->hp, p, n, &used, body_sink, st);
		if (r < 0)
			goto reset;
		if (r == 1)
			st->body_end = true;
		return true;
	}
	if (st->answered)
		return true; /* bytes after a complete answer: nothing to do */
	if (buf_append(&st->down, p, n) != 0)
		goto reset; /* a response head over RESP_HEAD_MAX */
	for (;;) {
		long h = http_parse_scan_head(&st->hp, st->down.data + st->down.start,
		                              buf_len(&st->down), RESP_HEAD_MAX);
		if (h == 0)
			return true;
		if (h < 0 || http_parse_response_head(&st->hp, st->down.data + st->down.start,
		                                      (size_t)h, &st->resp) != 0)
			goto reset;
		int status = st->resp.status;
		if (status >= 100 && status < 200 && !(st->tunnel && status == 101)) {
			/* 100 Continue and the like: the data path deals with
			 * them; the client waits for the final answer. */
			st->down.start += (size_t)h;
			http_parse_init(&st->hp, true, st->head_req);
			st->hp.trailers = &st->trailers;
			continue;
		}
		if (submit_head(st) != 0)
			goto reset;
		const char *rest = st->down.data + st->down.start + h;
		size_t nrest = buf_len(&st->down) - (size_t)h;
		if (st->tunnel && status == 101) {
			st->raw = true;
			if (nrest && buf_append(&st->body, rest, nrest) != 0)
				goto reset;
		} else if (!st->body_end && nrest) {
			size_t used = 0;
			int r = http_parse_body(&st->hp, rest, nrest, &used, body_sink, st);
			if (r < 0)
				goto reset;
			if (r == 1)
				st->body_end = true;
		}
		buf_free(&st->down);
		return true;
	}
reset:
	nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	stream_close_fd(st);
	return false;
}

/* The data path closed its end. */
static void stream_eof(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	st->inner_eof = true;
	stream_close_fd(st);
	if (!st->answered) {
		answer_status(st, 502);
		return;
	}
	if (st->body_end)
		return;
	if (st->raw || http_parse_eof(&st->hp) == 1) {
		st->body_end = true;
		return;
	}
	/* a truncated answer: the client must not take it for whole */
	nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

/* The data path may serve another stream on st's channel: its answer ended
 * by its framing (not by a close) and keeps the connection, and the whole
 * request went. */
static bool reusable(const struct h2_stream *st)
{
	return !st->tunnel && !st->inner_eof && st->hp.done && st->req_ended &&
	       buf_len(&st->up) == 0 && http_parse_keep_alive(&st->hp);
}

static void stream_progress(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	char tmp[READ_CHUNK];
	for (int round = 0; round < PROGRESS_ROUNDS && !st->gone && stream_piped(st); round++) {
		bool progress = false;
		if (buf_len(&st->up) > 0 && st->can_write) {
			ssize_t n = pipe_send(st, st->up.data + st->up.start, buf_len(&st->up));
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				st->can_write = false;
			} else if (n < 0) {
				/* the data path left without reading the whole
				 * request: what it answered is still to be read */
				buf_free(&st->up);
				st->to_consume = 0;
			} else {
				buf_consume(&st->up, (size_t)n);
				size_t give =
				    st->to_consume < (size_t)n ? st->to_consume : (size_t)n;
				if (buf_len(&st->up) == 0)
					give = st->to_consume;
				if (give) {
					nghttp2_session_consume(s->ng, st->id, give);
					st->to_consume -= give;
				}
				progress = true;
			}
		}
		if (buf_len(&st->up) == 0 && st->tunnel && st->req_ended && !st->shut_wr) {
			shutdown(st->fd, SHUT_WR);
			st->shut_wr = true;
		}
		st->stalled = st->answered && buf_len(&st->body) >= STREAM_BUF;
		if (st->can_read && !st->stalled && !st->body_end) {
			ssize_t n = pipe_recv(st, tmp, sizeof(tmp));
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				st->can_read = false;
			} else if (n <= 0) {
				stream_eof(st);
				progress = true;
			} else {
				if (!stream_take(st, tmp, (size_t)n))
					break;
				progress = true;
			}
		} else if (st->body_end && !st->raw) {
			/* the answer is whole: the channel serves the next stream,
			 * or closes (the rest of a request body the data path
			 * did not wait for is dropped) */
			if (reusable(st))
				stream_release_chan(st);
			else
				stream_close_fd(st);
			break;
		}
		if ((buf_len(&st->body) > 0 || st->body_end) && st->deferred && st->answered) {
			st->deferred = false;
			nghttp2_session_resume_data(s->ng, st->id);
		}
		if (!progress)
			break;
	}
}

static void on_stream_io(struct loop_io *io, uint32_t events)
{
	struct h2_stream *st = io->data;
	if (st->gone)
		return;
	struct h2_session *s = st->s;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		st->can_read = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		st->can_write = true;
	stream_progress(st);
	session_soon(s);
}

/* ---- the request head ---- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
	struct h2_session *s = ud;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct h2_stream *st = spare_take(&s->w->streams);
	if (!st && !(st = malloc(sizeof(*st))))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	/* Zeroed as calloc would, but for the answer's header array (4 KiB of
	 * the 5): a header is read only below resp.nheaders, which the parse
	 * sets. */
	size_t a = offsetof(struct h2_stream, resp.headers), b = a + sizeof(st->resp.headers);
	memset(st, 0, a);
	memset((char *)st + b, 0, sizeof(*st) - b);
	st->s = s;
	st->w = s->w;
	st->id = frame->hd.stream_id;
	st->fd = -1;
	st->io.fd = -1;
	buf_init(&st->pseudo, s->lim.max_header_bytes + 1024u);
	buf_init(&st->fields, s->lim.max_header_bytes + 1024u);
	buf_init(&st->cookie, s->lim.max_header_bytes + 1024u);
	buf_init(&st->up, s->lim.max_header_bytes * 2u + STREAM_WINDOW + 4096u);
	buf_init(&st->down, RESP_HEAD_MAX + READ_CHUNK);
	buf_init(&st->body, STREAM_BUF * 2u + READ_CHUNK);
	buf_init(&st->trailers, RESP_HEAD_MAX);
	st->next = s->streams;
	if (s->streams)
		s->streams->prev = st;
	s->streams = st;
	s->heads++;
	nghttp2_session_set_stream_user_data(ng, st->id, st);
	return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	(void)flags;
	struct h2_session *s = ud;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailers: not passed on */
	struct h2_stream *st = stream_of(s, frame->hd.stream_id);
	if (!st || st->refuse)
		return 0;
	(void)ng;
	st->hbytes += namelen + valuelen + 32;
	if (st->hbytes > s->lim.max_header_bytes ||
	    (s->lim.max_field_bytes &&
	     (namelen > s->lim.max_field_bytes || valuelen > s->lim.max_field_bytes))) {
		st->refuse = 431;
		return 0;
	}
	if (namelen > 0 && name[0] == ':') {
		int k = -1;
		if (namelen == 7 && memcmp(name, ":method", 7) == 0)
			k = 0;
		else if (namelen == 7 && memcmp(name, ":scheme", 7) == 0)
			k = 1;
		else if (namelen == 10 && memcmp(name, ":authority", 10) == 0)
			k = 2;
		else if (namelen == 5 && memcmp(name, ":path", 5) == 0)
			k = 3;
		else if (namelen == 9 && memcmp(name, ":protocol", 9) == 0)
			k = 4;
		if (k < 0)
			return 0;
		size_t at = buf_len(&st->pseudo);
		if (buf_append(&st->pseudo, value, valuelen) != 0 ||
		    buf_append(&st->pseudo, "", 1) != 0) {
			st->refuse = 500;
			return 0;
		}
		st->pseudo_at[k] = at + 1;
		return 0;
	}
	if (namelen == 6 && memcmp(name, "cookie", 6) == 0) {
		if ((buf_len(&st->cookie) && buf_append(&st->cookie, "; ", 2) != 0) ||
		    buf_append(&st->cookie, value, valuelen) != 0)
			st->refuse = 431;
		return 0;
	}
	/* TE can only be "trailers" here (nghttp2 checks): a hop-by-hop
	 * header the data path would drop anyway. */
	if (namelen == 2 && memcmp(name, "te", 2) == 0)
		return 0;
	if (namelen == 14 && memcmp(name, "content-length", 14) == 0)
		st->has_length = true;
	if (buf_append(&st->fields, name, namelen) != 0 || buf_append(&st->fields, ": ", 2) != 0 ||
	    buf_append(&st->fields, value, valuelen) != 0 ||
	    buf_append(&st->fields, "\r\n", 2) != 0)
		st->refuse = 431;
	return 0;
}

static int append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

/* The HTTP/1.1 head for the data path, into st->up. Returns 0 or a status
 * to answer instead. */
static int build_head(struct h2_stream *st, bool end_stream)
{
	char **views[5] = {&st->method, &st->scheme, &st->authority, &st->path, &st->protocol};
	for (int k = 0; k < 5; k++)
		*views[k] = st->pseudo_at[k] ? st->pseudo.data + st->pseudo_at[k] - 1 : NULL;
	if (st->refuse)
		return st->refuse;
	bool connect = st->method && strcmp(st->method, "CONNECT") == 0;
	if (connect && !st->protocol)
		return 405; /* plain CONNECT (no :path): no forward proxying */
	if (connect && strcasecmp(st->protocol, "websocket") != 0)
		return 501;
	if (!st->method || !st->path)
		return 400;
	st->tunnel = connect;
	st->head_req = strcmp(st->method, "HEAD") == 0;
	struct buf *b = &st->up;
	int rc = append_str(b, connect ? "GET" : st->method);
	rc |= append_str(b, " ");
	rc |= append_str(b, st->path);
	rc |= append_str(b, " HTTP/1.1\r\n");
	if (st->authority) {
		rc |= append_str(b, "host: ");
		rc |= append_str(b, st->authority);
		rc |= append_str(b, "\r\n");
	}
	/* with :authority, a host header of the client's is not sent too */
	const char *f = st->fields.data ? st->fields.data + st->fields.start : "";
	size_t flen = buf_len(&st->fields);
	while (flen > 0) {
		const char *eol = memchr(f, '\n', flen);
		size_t line = eol ? (size_t)(eol - f) + 1 : flen;
		if (!(st->authority && line >= 5 && strncmp(f, "host:", 5) == 0))
			rc |= buf_append(b, f, line);
		f += line;
		flen -= line;
	}
	if (buf_len(&st->cookie)) {
		rc |= append_str(b, "cookie: ");
		rc |= buf_append(b, st->cookie.data + st->cookie.start, buf_len(&st->cookie));
		rc |= append_str(b, "\r\n");
	}
	if (connect) {
		unsigned char raw[16];
		char key[32];
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			return 500;
		EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
		rc |= append_str(
		    b, "upgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: ");
		rc |= append_str(b, key);
		rc |= append_str(b, "\r\n");
	} else {
		if (!end_stream && !st->has_length) {
			st->chunked = true;
			rc |= append_str(b, "transfer-encoding: chunked\r\n");
		}
	}
	rc |= append_str(b, "\r\n");
	buf_free(&st->fields);
	buf_free(&st->cookie);
	return rc ? 431 : 0;
}

/* A kept data path connection that is still there, or NULL. One kept too
 * long, or whose other end closed, is closed. */
static struct chan *idle_take(struct h2_session *s)
{
	uint64_t now = loop_now(s->w->loop);
	while (s->nidle > 0) {
		size_t i = --s->nidle;
		struct chan *ch = s->idle_ch[i];
		if (now - s->idle_since[i] <= IDLE_CHAN_MS && !chan_peer_closed(ch, CHAN_A) &&
		    chan_pending(ch, CHAN_A) == 0)
			return ch;
		chan_close(ch, CHAN_A); /* stale, closed, or holding stray bytes */
	}
	return NULL;
}

static void idle_close_all(struct h2_session *s)
{
	while (s->nidle > 0)
		chan_close(s->idle_ch[--s->nidle], CHAN_A);
}

/* The stream's answer is whole, every request byte went, and the data path
 * keeps the connection: it serves the next stream instead of closing. */
static void stream_release_chan(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	struct chan *ch = st->ch;
	st->ch = NULL;
	chan_watch(ch, CHAN_A, NULL);
	if (s->nidle == IDLE_CHANS || s->lingering || s->draining) {
		chan_close(ch, CHAN_A);
		return;
	}
	s->idle_ch[s->nidle] = ch;
	s->idle_since[s->nidle] = loop_now(s->w->loop);
	s->nidle++;
}

/* The request head is complete: its HTTP/1.1 head is made now (DATA that
 * follows is appended), the data path is asked only after the bytes read
 * with it were all taken (open_pending), so a stream the client resets at
 * once (rapid reset) costs no connection. */
static void stream_head(struct h2_stream *st, bool end_stream)
{
	int status = build_head(st, end_stream);
	if (status != 0)
		stream_refuse(st, status);
	else
		st->pending = true;
	st->req_ended = status == 0 && end_stream;
	/* the pseudo-header values are not read after this: their buffer
	 * serves the next stream's head while this one is in flight */
	st->method = st->scheme = st->authority = st->path = st->protocol = NULL;
	buf_free(&st->pseudo);
}

/* The stream's head is refused with status: logged, then answered here. */
static void stream_refuse(struct h2_stream *st, int status)
{
	const struct h2_host *h = &st->s->host;
	struct h2_refusal r = {
	    .method = st->method,
	    .path = st->path,
	    .authority = st->authority,
	    .status = status,
	    .header_bytes = st->hbytes,
	};
	if (h->refused)
		h->refused(h->data, &r);
	answer_status(st, status);
}

/* A tunnel's socket pair, its other end handed to the data path. */
static bool stream_pair(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0) {
		log_warn("proxy.h2", "socketpair: %s", strerror(errno));
		return false;
	}
	st->fd = st->io.fd = sp[0];
	if (loop_io_add(s->w->loop, &st->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != 0) {
		close(sp[0]);
		close(sp[1]);
		st->fd = st->io.fd = -1;
		return false;
	}
	if (s->host.open_stream(s->host.data, sp[1], NULL) != 0) {
		stream_close_fd(st);
		return false;
	}
	return true;
}

/* A kept channel, or a new one handed to a new data path connection. */
static bool stream_chan(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	struct chan *ch = idle_take(s);
	if (!ch) {
		ch = chan_new(s->w->loop, CHAN_CAP);
		if (!ch)
			return false;
		if (s->host.open_stream(s->host.data, -1, ch) != 0) {
			chan_close(ch, CHAN_A);
			return false;
		}
	}
	st->ch = ch;
	chan_watch(ch, CHAN_A, &st->io);
	return true;
}

static void stream_open(struct h2_stream *st)
{
	struct h2_session *s = st->s;
	if (s->host.live_streams(s->host.data) >=
	    (size_t)s->lim.max_concurrent_streams * LIVE_FACTOR) {
		nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
		return;
	}
	http_parse_init(&st->hp, true, st->head_req);
	st->hp.trailers = &st->trailers;
	st->io.cb = on_stream_io;
	st->io.data = st;
	if (st->tunnel ? !stream_pair(st) : !stream_chan(st)) {
		nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
		return;
	}
	s->nstreams++;
	st->opened = true;
	st->can_write = true;
	stream_progress(st);
}

/* Streams whose head came in the last bytes read, and still open. */
static void open_pending(struct h2_session *s)
{
	for (struct h2_stream *st = s->streams, *nx; st; st = nx) {
		nx = st->next;
		if (st->pending && !st->gone) {
			st->pending = false;
			stream_open(st);
		}
	}
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *ud)
{
	(void)ng;
	struct h2_session *s = ud;
	bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
	if (frame->hd.type == NGHTTP2_RST_STREAM) {
		s->reset_mtokens -= 1000;
		return 0;
	}
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	struct h2_stream *st = stream_of(s, frame->hd.stream_id);
	if (!st)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		stream_head(st, end);
		return 0;
	}
	if (end && !st->req_ended) {
		st->req_ended = true;
		if (st->chunked && buf_append(&st->up, "0\r\n\r\n", 5) != 0)
			nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id,
			                          NGHTTP2_INTERNAL_ERROR);
		stream_progress(st);
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
	(void)flags;
	struct h2_session *s = ud;
	struct h2_stream *st = stream_of(s, id);
	if (!st || (!stream_piped(st) && !st->pending)) {
		/* nobody takes these bytes: the window comes back at once */
		nghttp2_session_consume(ng, id, len);
		return 0;
	}
	int rc = 0;
	if (st->chunked) {
		char hdr[24];
		int h = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
		rc |= buf_append(&st->up, hdr, (size_t)h);
		rc |= buf_append(&st->up, data, len);
		rc |= buf_append(&st->up, "\r\n", 2);
	} else {
		rc = buf_append(&st->up, data, len);
	}
	if (rc != 0) {
		/* more than the window we gave: flow control was broken */
		nghttp2_session_consume(ng, id, len);
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_FLOW_CONTROL_ERROR);
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
	struct h2_session *s = ud;
	struct h2_stream *st = stream_of(s, id);
	if (!st)
		return 0;
	if (st->opened && s->nstreams > 0)
		s->nstreams--;
	stream_drop(st);
	return 0;
}

/* ---- the session ---- */

static void free_session(struct loop_defer *d)
{
	struct h2_session *s = d->data;
	if (s->soon.queued) { /* a turn waits for the next batch: free after it */
		loop_yield(s->w->loop, &s->defer, free_session, s);
		return;
	}
	nghttp2_session_del(s->ng);
	buf_free(&s->out);
	free(s);
}

static void session_close(struct h2_session *s)
{
	if (s->closed)
		return;
	while (s->streams) {
		if (s->streams->opened && s->nstreams > 0)
			s->nstreams--;
		stream_drop(s->streams);
	}
	idle_close_all(s);
	s->closed = true;
	struct h2_worker *w = s->w;
	loop_timer_cancel(w->loop, &s->timer);
	loop_timer_cancel(w->loop, &s->throttle);
	if (s->io.fd >= 0)
		loop_io_del(w->loop, &s->io);
	s->io.fd = -1;
	tls_sock_close(&s->sock);
	if (s->prev)
		s->prev->next = s->next;
	else
		w->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->count--;
	if (s->host.release)
		s->host.release(s->host.data);
	loop_defer(w->loop, &s->defer, free_session, s);
}

static void on_session_timer(struct loop_timer *t)
{
	struct h2_session *s = t->data;
	if (s->closed)
		return;
	if (s->lingering) {
		session_close(s);
		return;
	}
	if (s->nstreams == 0 || s->draining) {
		/* idle (or a drain that took too long): leave */
		if (!s->draining)
			nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
			                      nghttp2_session_get_last_proc_stream_id(s->ng),
			                      NGHTTP2_NO_ERROR, NULL, 0);
		s->draining = true;
		session_progress(s);
		if (!s->closed)
			session_close(s);
		return;
	}
	loop_timer_set(s->w->loop, &s->timer, s->lim.idle_ms);
}

static void session_arm(struct h2_session *s)
{
	if (s->closed)
		return;
	if (s->nstreams == 0 && !loop_timer_armed(&s->timer))
		loop_timer_set(s->w->loop, &s->timer, s->lim.idle_ms);
	else if (s->nstreams > 0 && !s->draining)
		loop_timer_cancel(s->w->loop, &s->timer);
}

/* nghttp2 gave up on the client (a protocol error, a flood): nothing more
 * is read; a GOAWAY goes out (nghttp2's own when it queued one), then the
 * session ends. */
static void session_fatal(struct h2_session *s, int err)
{
	s->read_eof = true;
	uint32_t code = err == NGHTTP2_ERR_FLOODED || err == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
	                    ? NGHTTP2_ENHANCE_YOUR_CALM
	                    : NGHTTP2_PROTOCOL_ERROR;
	if (code == NGHTTP2_ENHANCE_YOUR_CALM && !s->penalty) {
		s->penalty = true;
		loop_timer_set(s->w->loop, &s->throttle, PENALTY_MS);
	}
	/* a no-op when nghttp2 queued its own GOAWAY already */
	if (nghttp2_session_terminate_session(s->ng, code) == 0)
		return;
	uint32_t last = (uint32_t)nghttp2_session_get_last_proc_stream_id(s->ng);
	unsigned char f[17] = {0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0};
	for (int i = 0; i < 4; i++) {
		f[9 + i] = (unsigned char)(last >> (24 - 8 * i));
		f[13 + i] = (unsigned char)(code >> (24 - 8 * i));
	}
	f[9] &= 0x7f;
	buf_append(&s->out, f, sizeof(f));
}

/* Everything (the GOAWAY last) is sent: shut the write side and read what
 * the client still sends away for a moment, so that the close does not
 * become a reset that destroys the GOAWAY before the client reads it. */
static void session_linger(struct h2_session *s)
{
	char sink[READ_CHUNK];
	if (!s->lingering) {
		s->lingering = true;
		while (s->streams) {
			if (s->streams->opened && s->nstreams > 0)
				s->nstreams--;
			stream_drop(s->streams);
		}
		if (s->sock.ssl)
			SSL_shutdown(s->sock.ssl);
		shutdown(s->sock.fd, SHUT_WR);
		loop_timer_set(s->w->loop, &s->timer, LINGER_MS);
		s->can_read = true;
	}
	while (s->can_read) {
		ssize_t n = recv(s->sock.fd, sink, sizeof(sink), 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			s->can_read = false;
			return;
		}
		s->linger_bytes += n > 0 ? (size_t)n : 0;
		if (n <= 0 || s->linger_bytes > LINGER_MAX) {
			session_close(s);
			return;
		}
	}
}

/* The reset bucket after a read: refilled for the time gone by; when it
 * is empty, reading stops until RESET_QUANTUM came back (on_throttle). */
static void reset_check(struct h2_session *s)
{
	uint64_t now = loop_now(s->w->loop);
	int64_t full = (int64_t)RESET_BURST * 1000;
	s->reset_mtokens += (int64_t)(now - s->reset_at) * RESET_RATE;
	s->reset_at = now;
	if (s->reset_mtokens >= full) {
		s->reset_mtokens = full;
		s->throttled_since = 0;
	}
	if (s->reset_mtokens > 0 || s->draining)
		return;
	if (!s->throttled_since)
		s->throttled_since = now + 1;
	if (now + 1 - s->throttled_since >= RESET_PATIENCE_MS) {
		session_fatal(s, NGHTTP2_ERR_FLOODED);
		return;
	}
	int64_t want = (int64_t)RESET_QUANTUM * 1000 - s->reset_mtokens;
	s->throttled = true;
	loop_timer_set(s->w->loop, &s->throttle, (uint64_t)(want / RESET_RATE) + 1);
}

static void on_throttle(struct loop_timer *t)
{
	struct h2_session *s = t->data;
	if (s->closed)
		return;
	s->throttled = false;
	s->penalty = false;
	session_progress(s);
}

static void session_progress(struct h2_session *s)
{
	char tmp[READ_CHUNK];
	if (s->lingering) {
		session_linger(s);
		return;
	}
	size_t turn_start = s->heads;
	uint64_t batch = loop_batch(s->w->loop) + 1;
	/* called again in the batch its turn ran out in (by a stream's event):
	 * no reading until the yielded turn */
	bool turn_over = s->turn_batch == batch;
	for (int round = 0; round < PROGRESS_ROUNDS && !s->closed; round++) {
		bool progress = false;
		if (s->can_read && !s->read_eof && !turn_over && !s->throttled &&
		    buf_len(&s->out) < OUT_HIGH) {
			size_t before = s->heads;
			ssize_t n =
			    tls_sock_read(&s->sock, tmp, s->small_reads ? SMALL_READ : sizeof(tmp));
			if (n == WEIR_EAGAIN) {
				tls_sock_blocked(&s->sock, &s->can_read, &s->can_write);
			} else if (n <= 0) {
				session_close(s);
				return;
			} else {
				ssize_t used = nghttp2_session_mem_recv(s->ng, (const uint8_t *)tmp,
				                                        (size_t)n);
				s->small_reads = s->heads - before > FEW_HEADS;
				if (s->heads - turn_start >= TURN_HEADS) {
					/* the rest is read in the next batch, after the
					 * other connections' events */
					turn_over = true;
					s->turn_batch = batch;
				}
				if (used < 0)
					session_fatal(s, (int)used);
				else if (!s->small_reads || turn_over)
					open_pending(s);
				if (used >= 0)
					reset_check(s);
				progress = true;
			}
		}
		if (s->penalty)
			break; /* nothing leaves before on_throttle */
		if (s->refill) {
			s->refill = false;
			for (struct h2_stream *st = s->streams, *nx; st; st = nx) {
				nx = st->next;
				if (st->stalled && buf_len(&st->body) < STREAM_BUF)
					stream_progress(st);
			}
		}
		int made = h2_frames_out(s->ng, &s->out, OUT_HIGH);
		ssize_t sent =
		    made < 0 ? -1 : tls_sock_flush(&s->sock, &s->out, &s->can_read, &s->can_write);
		if (sent < 0) {
			session_close(s);
			return;
		}
		progress |= made > 0 || sent > 0;
		if (buf_len(&s->out) == 0 &&
		    ((!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng)) ||
		     (s->read_eof && !nghttp2_session_want_write(s->ng)))) {
			session_linger(s);
			return;
		}
		if (!progress)
			break;
	}
	if (turn_over && !s->closed)
		loop_yield(s->w->loop, &s->soon, session_soon_cb, s);
	/* small reads leave the streams they began for the end of the turn (a
	 * reset in the next read still saves a stream its data path) */
	if (!s->closed && s->small_reads)
		open_pending(s);
	if (!s->closed && buf_len(&s->out) == 0)
		buf_free(&s->out);
	if (!s->lingering)
		session_arm(s);
}

static void session_soon_cb(struct loop_defer *d)
{
	struct h2_session *s = d->data;
	if (!s->closed)
		session_progress(s);
}

/* session_progress once this batch's streams said what they had: their
 * frames leave in one write. */
static void session_soon(struct h2_session *s)
{
	if (!s->closed)
		loop_defer(s->w->loop, &s->soon, session_soon_cb, s);
}

static void on_session_io(struct loop_io *io, uint32_t events)
{
	struct h2_session *s = io->data;
	if (s->closed)
		return;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->can_read = true;
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		s->can_write = true;
	if (s->sock.ssl)
		s->can_read = s->can_write = true;
	session_progress(s);
}

int h2_frames_out(nghttp2_session *ng, struct buf *out, size_t high)
{
	int made = 0;
	while (buf_len(out) < high && nghttp2_session_want_write(ng)) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(ng, &data);
		if (n < 0 || (n > 0 && buf_append(out, data, (size_t)n) != 0))
			return -1;
		if (n == 0)
			break;
		made = 1;
	}
	return made;
}

int h2_start(struct h2_worker *w, struct tls_sock *client, const char *preread, size_t n,
             const struct h2_limits *lim, const struct h2_host *host)
{
	struct h2_session *s = calloc(1, sizeof(*s));
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	if (!s || nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
		goto fail;
	w->streams.max = SPARE_STREAMS;
	w->streams.idle_max = SPARE_STREAMS_IDLE;
	s->w = w;
	s->sock = *client;
	s->io.fd = client->fd;
	s->io.cb = on_session_io;
	s->io.data = s;
	s->lim = *lim;
	if (s->lim.max_concurrent_streams == 0)
		s->lim.max_concurrent_streams = 128;
	if (s->lim.idle_ms == 0)
		s->lim.idle_ms = 75000;
	s->host = *host;
	s->can_read = s->can_write = true;
	buf_init(&s->out, OUT_CAP);
	loop_timer_init(&s->timer, on_session_timer, s);
	loop_timer_init(&s->throttle, on_throttle, s);
	s->reset_mtokens = (int64_t)RESET_BURST * 1000;
	s->reset_at = loop_now(w->loop);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	/* window updates follow what the data path took, not what arrived */
	nghttp2_option_set_no_auto_window_update(opt, 1);
	/* what the library bounds by default is kept: CONTINUATION count,
	 * SETTINGS entries, queued PING/SETTINGS acknowledgements; its RST_STREAM
	 * rate is a backstop behind reset_check */
	nghttp2_option_set_max_continuations(opt, 8);
	nghttp2_option_set_stream_reset_rate_limit(opt, 2 * RESET_BURST, RESET_RATE);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_max_settings(opt, 32);
	nghttp2_mem mem; /* copied into the session */
	h2_mem_init(&w->mem, &mem);
	if (nghttp2_session_server_new3(&s->ng, cb, s, opt, &mem) != 0)
		goto fail;
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	cb = NULL;
	opt = NULL;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->lim.max_concurrent_streams},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, s->lim.max_header_bytes},
	    {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
	};
	if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) !=
	        0 ||
	    nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
		goto fail;
	ssize_t used = n > 0 ? nghttp2_session_mem_recv(s->ng, (const uint8_t *)preread, n) : 0;
	if (used < 0)
		session_fatal(s, (int)used);
	else
		open_pending(s);
	if (loop_io_add(w->loop, &s->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != 0)
		goto fail;
	s->next = w->head;
	if (w->head)
		w->head->prev = s;
	w->head = s;
	w->count++;
	session_progress(s);
	return 0;
fail:
	if (cb)
		nghttp2_session_callbacks_del(cb);
	if (opt)
		nghttp2_option_del(opt);
	if (s) {
		if (s->ng)
			nghttp2_session_del(s->ng);
		buf_free(&s->out);
		free(s);
	}
	tls_sock_close(client);
	if (host->release)
		host->release(host->data);
	return WEIR_ENOMEM;
}

void h2_drain_all(struct h2_worker *w)
{
	for (struct h2_session *s = w->head, *nx; s; s = nx) {
		nx = s->next;
		if (s->draining)
			continue;
		s->draining = true;
		nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
		                      nghttp2_session_get_last_proc_stream_id(s->ng),
		                      NGHTTP2_NO_ERROR, NULL, 0);
		session_progress(s);
	}
}

void h2_close_all(struct h2_worker *w)
{
	while (w->head)
		session_close(w->head);
}

void h2_worker_trim(struct h2_worker *w, uint64_t now_ms)
{
	spare_trim(&w->streams, now_ms);
}

void h2_worker_cleanup(struct h2_worker *w)
{
	spare_cleanup(&w->streams);
	h2_mem_cleanup(&w->mem);
}
