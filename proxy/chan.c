/* proxy/chan.c - in-memory byte streams between an HTTP/2 stream and the
 * data path (see chan.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "buf.h"
#include "chan.h"
#include "error.h"

#define KEEP_EMPTY (16u * 1024u) /* an emptied buffer up to this size keeps its memory */

struct chan_side {
	struct chan *ch;
	struct buf in; /* bytes for this side to read */
	struct loop_io *io;
	struct loop_defer notify;
	uint32_t events; /* to tell io at the next deferred run */
	bool closed;
	bool want_room; /* a write of this side found the other's buffer full */
};

struct chan {
	struct loop *loop;
	struct chan_side side[2];
	struct loop_defer free_d;
	size_t cap;
};

static void deliver(struct loop_defer *d)
{
	struct chan_side *s = d->data;
	uint32_t ev = s->events;
	s->events = 0;
	if (!s->closed && s->io && ev)
		s->io->cb(s->io, ev);
}

static void tell(struct chan_side *s, uint32_t events)
{
	if (s->closed || !s->io)
		return;
	s->events |= events;
	loop_defer(s->ch->loop, &s->notify, deliver, s);
}

struct chan *chan_new(struct loop *l, size_t cap)
{
	struct chan *ch = calloc(1, sizeof(*ch));
	if (!ch)
		return NULL;
	ch->loop = l;
	ch->cap = cap;
	for (int i = 0; i < 2; i++) {
		ch->side[i].ch = ch;
		buf_init(&ch->side[i].in, cap);
	}
	return ch;
}

void chan_watch(struct chan *ch, int side, struct loop_io *io)
{
	struct chan_side *s = &ch->side[side];
	s->io = io;
	s->events = 0;
	if (io)
		tell(s, EPOLLIN | EPOLLOUT | (ch->side[!side].closed ? EPOLLRDHUP | EPOLLHUP : 0u));
}

ssize_t chan_read(struct chan *ch, int side, void *buf, size_t len)
{
	struct chan_side *s = &ch->side[side], *o = &ch->side[!side];
	size_t have = buf_len(&s->in);
	if (have == 0)
		return o->closed ? 0 : WEIR_EAGAIN;
	size_t n = have < len ? have : len;
	memcpy(buf, s->in.data + s->in.start, n);
	buf_consume(&s->in, n);
	if (buf_len(&s->in) == 0 && s->in.size > KEEP_EMPTY)
		buf_free(&s->in);
	if (o->want_room) {
		o->want_room = false;
		tell(o, EPOLLOUT);
	}
	return (ssize_t)n;
}

ssize_t chan_write(struct chan *ch, int side, const void *buf, size_t len)
{
	struct chan_side *s = &ch->side[side], *o = &ch->side[!side];
	if (o->closed)
		return WEIR_EIO;
	size_t room = ch->cap - buf_len(&o->in);
	if (room == 0) {
		s->want_room = true;
		return WEIR_EAGAIN;
	}
	size_t n = len < room ? len : room;
	if (buf_append(&o->in, buf, n) != 0) {
		/* out of memory: wait as for a full buffer, unless nothing is
		 * waiting that would free room */
		if (buf_len(&o->in) == 0)
			return WEIR_EIO;
		s->want_room = true;
		return WEIR_EAGAIN;
	}
	tell(o, EPOLLIN);
	return (ssize_t)n;
}

size_t chan_pending(const struct chan *ch, int side)
{
	return buf_len(&ch->side[side].in);
}

bool chan_peer_closed(const struct chan *ch, int side)
{
	return ch->side[!side].closed;
}

static void chan_free(struct loop_defer *d)
{
	struct chan *ch = d->data;
	buf_free(&ch->side[0].in);
	buf_free(&ch->side[1].in);
	free(ch);
}

void chan_close(struct chan *ch, int side)
{
	struct chan_side *s = &ch->side[side], *o = &ch->side[!side];
	if (s->closed)
		return;
	s->closed = true;
	s->io = NULL;
	buf_free(&s->in);
	if (o->closed) {
		/* queued after any notify of either side still pending, so
		 * those run (and find their side closed) first */
		loop_defer(ch->loop, &ch->free_d, chan_free, ch);
		return;
	}
	tell(o, EPOLLIN | EPOLLRDHUP | EPOLLHUP);
}
