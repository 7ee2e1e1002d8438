/* tests/fuzz/fuzz_h2_session.c - the client side of HTTP/2 (proxy/h2.c) on
 * a real loop: a session speaks h2c over one end of a socket pair, the
 * harness writes the client's frames into the other end, and a stub data
 * path answers each stream's HTTP/1.1 request with bytes from the input.
 * Input: byte 0 picks the limits and how the stub behaves, bytes 1-2 (big
 * endian) the length of the stub's answer, then that answer, then the
 * client's frames (the 24-byte preface is given to the session first, so
 * the input starts at the client's SETTINGS). The loop runs a bounded
 * number of rounds, the client half-closes, a few more rounds run, then
 * every session is closed: ASan and the leak check judge what happened. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "fuzz_common.h"
#include "proxy/chan.h"
#include "proxy/h2.h"
#include "proxy/loop.h"

#define ROUNDS 48
#define CLOSE_AT 32
#define MAX_STUBS 64

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* One stream's data path: reads the request, answers once. */
struct stub {
	struct chan *ch;
	struct loop_io io;
	size_t got;
	bool head_seen, answered, closed;
	char tail[4]; /* the last bytes read, to find CRLFCRLF across reads */
};

struct harness {
	struct loop *loop;
	struct h2_worker hw;
	struct loop_timer tick;
	int rounds;
	int client_fd;
	const char *answer;
	size_t answer_len;
	bool close_after_answer; /* else the channel stays for another stream */
	bool released;
	size_t nstubs;
	struct stub stubs[MAX_STUBS];
};

static struct harness H;

static void stub_close(struct stub *st)
{
	if (st->closed)
		return;
	st->closed = true;
	chan_close(st->ch, CHAN_B);
}

static void stub_io(struct loop_io *io, uint32_t events)
{
	struct stub *st = io->data;
	(void)events;
	if (st->closed)
		return;
	char buf[4096];
	for (;;) {
		ssize_t n = chan_read(st->ch, CHAN_B, buf, sizeof(buf));
		if (n == 0) {
			stub_close(st);
			return;
		}
		if (n < 0)
			break;
		for (ssize_t i = 0; i < n && !st->head_seen; i++) {
			memmove(st->tail, st->tail + 1, 3);
			st->tail[3] = buf[i];
			st->head_seen = memcmp(st->tail, "\r\n\r\n", 4) == 0;
		}
		st->got += (size_t)n;
	}
	if (st->head_seen && !st->answered) {
		st->answered = true;
		if (H.answer_len)
			(void)chan_write(st->ch, CHAN_B, H.answer, H.answer_len);
		if (H.close_after_answer)
			stub_close(st);
	}
}

static int open_stream(void *data, int fd, struct chan *ch)
{
	(void)data;
	if (!ch) { /* a tunnel: this data path refuses it */
		close(fd);
		return WEIR_EIO;
	}
	if (H.nstubs == MAX_STUBS) {
		chan_close(ch, CHAN_B);
		return WEIR_ENOMEM;
	}
	struct stub *st = &H.stubs[H.nstubs++];
	memset(st, 0, sizeof(*st));
	st->ch = ch;
	st->io.fd = -1;
	st->io.cb = stub_io;
	st->io.data = st;
	chan_watch(ch, CHAN_B, &st->io);
	return 0;
}

static size_t live_streams(void *data)
{
	(void)data;
	size_t n = 0;
	for (size_t i = 0; i < H.nstubs; i++)
		n += !H.stubs[i].closed;
	return n;
}

static void refused(void *data, const struct h2_refusal *r)
{
	(void)data;
	FUZZ_CHECK(r->status >= 400 && r->status <= 599);
}

static void release(void *data)
{
	(void)data;
	FUZZ_CHECK(!H.released);
	H.released = true;
}

/* What the session wrote to the client: read and dropped, so it never
 * blocks on a full socket. */
static void drain_client(void)
{
	char buf[16384];
	while (read(H.client_fd, buf, sizeof(buf)) > 0)
		;
}

static void on_tick(struct loop_timer *t)
{
	(void)t;
	drain_client();
	H.rounds++;
	if (H.rounds == CLOSE_AT)
		shutdown(H.client_fd, SHUT_WR);
	if (H.rounds >= ROUNDS) {
		loop_stop(H.loop);
		return;
	}
	FUZZ_CHECK(loop_timer_set(H.loop, &H.tick, 0) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool logs_quiet;
	if (!logs_quiet) {
		log_init(LOG_FORMAT_TEXT,
		         getenv("FUZZ_H2_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
		logs_quiet = true;
	}
	if (size < 3)
		return 0;
	uint8_t mode = data[0];
	size_t alen = ((size_t)data[1] << 8) | data[2];
	if (alen > size - 3)
		alen = size - 3;
	const char *frames = (const char *)data + 3 + alen;
	size_t nframes = size - 3 - alen;

	memset(&H, 0, sizeof(H));
	H.answer = (const char *)data + 3;
	H.answer_len = alen;
	H.close_after_answer = mode & 1;
	FUZZ_CHECK(loop_new(NULL, NULL, &H.loop) == 0);
	H.hw.loop = H.loop;
	int sp[2];
	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) == 0);
	H.client_fd = sp[1];
	/* the preface read whole before the session starts, or its first 10
	 * bytes (the rest arrives with the frames), as a client's first read
	 * may be cut; everything goes in before the session starts: at most
	 * what the socket buffer takes (libFuzzer's inputs are far smaller) */
	size_t pre = (mode & 16) ? 10 : sizeof(preface) - 1;
	if (pre < sizeof(preface) - 1)
		FUZZ_CHECK(write(sp[1], preface + pre, sizeof(preface) - 1 - pre) ==
		           (ssize_t)(sizeof(preface) - 1 - pre));
	if (nframes > 0)
		FUZZ_CHECK(write(sp[1], frames, nframes) == (ssize_t)nframes);

	struct h2_limits lim = {
	    .max_concurrent_streams = (mode & 2) ? 2 : 100,
	    .max_header_bytes = (mode & 4) ? 256 : 16384,
	    .max_field_bytes = (mode & 8) ? 64 : 0,
	    .idle_ms = 60000,
	    .header_timeout_ms = 60000,
	};
	struct h2_host host = {
	    .open_stream = open_stream,
	    .live_streams = live_streams,
	    .refused = refused,
	    .release = release,
	    .data = &H,
	};
	struct tls_sock cs = {.fd = sp[0]};
	int rc = h2_start(&H.hw, &cs, preface, pre, &lim, &host);
	FUZZ_CHECK(rc == 0 || H.released);
	if (rc == 0) {
		loop_timer_init(&H.tick, on_tick, NULL);
		FUZZ_CHECK(loop_timer_set(H.loop, &H.tick, 0) == 0);
		FUZZ_CHECK(loop_run(H.loop) == 0);
		loop_timer_cancel(H.loop, &H.tick);
		h2_close_all(&H.hw);
		FUZZ_CHECK(H.released);
	}
	for (size_t i = 0; i < H.nstubs; i++)
		stub_close(&H.stubs[i]);
	loop_run_deferred(H.loop);
	FUZZ_CHECK(H.hw.count == 0 && H.hw.head == NULL);
	close(sp[1]);
	loop_free(H.loop);
	return 0;
}
