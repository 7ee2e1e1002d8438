/* controller/publish.c - atomic, change-only route table writes: one
 * routes.json (version 1), or an index naming content-addressed host and
 * certificate shards kept stable across publishes by slot numbers that
 * survive unrelated changes (version 2). */
#include "publish.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/sha.h>

#include "error.h"
#include "log.h"
#include "route_validate.h"

#define COMPONENT "controller.publish"
/* Up to this many new shards in one publish are fsync'd one by one; past it
 * the rest are synced with one syncfs (which flushes the whole file system:
 * slow on a busy disk, so not for one shard). */
#define PUBLISH_FSYNC_EACH_MAX 64
/* At most this many garbage shards are removed per publish, so that a
 * publish after a restart or a compaction is not held up by thousands of
 * unlinks; the rest go with the next publishes. */
#define PUBLISH_GC_MAX 256
#define NONE ((size_t)-1)
/* An array of the index with at least this many ids is written as id lists
 * (docs/route-table.md "Id lists"), each of at most PUBLISH_LIST_MAX ids. */
#define PUBLISH_LIST_MIN 256
#define PUBLISH_LIST_MAX 512

/* ------------------------------------------------------ byte-string map */

/* Open addressing, linear probing, keys borrowed (they must outlive their
 * entry), deletion by backward shift. */
struct bmap_ent {
	const char *key; /* NULL: empty */
	size_t len;
	uint64_t hash;
	size_t val;
};

struct bmap {
	struct bmap_ent *e;
	size_t cap, n; /* cap: a power of two, or 0 */
};

/* Eight bytes a step: keys are whole certificates and host shards, hashed
 * on every publish. */
static uint64_t hash_bytes(const char *k, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n, v;
	for (; n >= 8; k += 8, n -= 8) {
		memcpy(&v, k, 8);
		h = (h ^ v) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	v = 0;
	memcpy(&v, k, n);
	h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 29);
}

static struct bmap_ent *bmap_slot(const struct bmap *m, const char *k, size_t n, uint64_t h)
{
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct bmap_ent *e = &m->e[i];
		if (!e->key || (e->hash == h && e->len == n && memcmp(e->key, k, n) == 0))
			return e;
	}
}

/* Room for n entries without growing. */
static int bmap_reserve(struct bmap *m, size_t n)
{
	size_t cap = 64;
	while (cap < n * 2 + 2)
		cap *= 2;
	if (m->cap >= cap)
		return 0;
	free(m->e);
	m->e = calloc(cap, sizeof(*m->e));
	m->cap = m->e ? cap : 0;
	m->n = 0;
	return m->e ? 0 : WEIR_ENOMEM;
}

static bool bmap_get(const struct bmap *m, const char *k, size_t n, size_t *val)
{
	if (!m->cap)
		return false;
	const struct bmap_ent *e = bmap_slot(m, k, n, hash_bytes(k, n));
	if (!e->key)
		return false;
	*val = e->val;
	return true;
}

static int bmap_put(struct bmap *m, const char *k, size_t n, size_t val)
{
	if ((m->n + 1) * 2 > m->cap) {
		struct bmap g = {calloc(m->cap ? m->cap * 2 : 64, sizeof(struct bmap_ent)),
		                 m->cap ? m->cap * 2 : 64, 0};
		if (!g.e)
			return WEIR_ENOMEM;
		for (size_t i = 0; i < m->cap; i++) {
			if (m->e[i].key) {
				*bmap_slot(&g, m->e[i].key, m->e[i].len, m->e[i].hash) = m->e[i];
				g.n++;
			}
		}
		free(m->e);
		*m = g;
	}
	uint64_t h = hash_bytes(k, n);
	struct bmap_ent *e = bmap_slot(m, k, n, h);
	if (!e->key)
		m->n++;
	*e = (struct bmap_ent){k, n, h, val};
	return 0;
}

static void bmap_del(struct bmap *m, const char *k, size_t n)
{
	if (!m->cap)
		return;
	size_t mask = m->cap - 1;
	struct bmap_ent *e = bmap_slot(m, k, n, hash_bytes(k, n));
	if (!e->key)
		return;
	size_t i = (size_t)(e - m->e);
	m->n--;
	for (;;) {
		m->e[i].key = NULL;
		size_t j = i;
		for (;;) {
			j = (j + 1) & mask;
			if (!m->e[j].key)
				return;
			size_t home = m->e[j].hash & mask;
			/* stays when its home lies cyclically in (i, j] */
			if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
				continue;
			m->e[i] = m->e[j];
			i = j;
			break;
		}
	}
}

static void bmap_clear(struct bmap *m)
{
	free(m->e);
	memset(m, 0, sizeof(*m));
}

/* ---------------------------------------------------------------- slots */

/* Stable positions of one index array (backends, certs, cas, backend_tls):
 * an entry keeps its slot while it exists, so the indexes inside unchanged
 * hosts keep their values. The key says what an entry is (a backend's name,
 * else its whole content). */
struct slots {
	size_t n, cap; /* slots, holes included */
	char **key;    /* owned; NULL: a hole */
	size_t *klen;
	char (*id)[ROUTE_SHARD_ID_LEN + 1]; /* certificate slots: the shard id */
	struct bmap map;                    /* key -> slot */
};

static void slots_free(struct slots *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->key[i]);
	free(s->key);
	free(s->klen);
	free(s->id);
	bmap_clear(&s->map);
	memset(s, 0, sizeof(*s));
}

static int slots_grow(struct slots *s, size_t want)
{
	if (want <= s->cap)
		return 0;
	size_t cap = s->cap ? s->cap : 16;
	while (cap < want)
		cap *= 2;
	char **k = realloc(s->key, cap * sizeof(*k));
	if (k)
		s->key = k;
	size_t *l = realloc(s->klen, cap * sizeof(*l));
	if (l)
		s->klen = l;
	void *id = realloc(s->id, cap * sizeof(*s->id));
	if (id)
		s->id = id;
	if (!k || !l || !id)
		return WEIR_ENOMEM;
	s->cap = cap;
	return 0;
}

/* Store key (taken) in slot v, which is a hole or s->n. */
static int slots_set(struct slots *s, size_t v, char *key, size_t len)
{
	if (v == s->n) {
		if (slots_grow(s, s->n + 1) != 0) {
			free(key);
			return WEIR_ENOMEM;
		}
		s->n++;
	}
	s->key[v] = key;
	s->klen[v] = len;
	s->id[v][0] = '\0';
	size_t old;
	if (!bmap_get(&s->map, key, len, &old))
		return bmap_put(&s->map, key, len, v);
	return 0;
}

static void slots_release(struct slots *s, size_t v)
{
	size_t cur;
	if (bmap_get(&s->map, s->key[v], s->klen[v], &cur) && cur == v)
		bmap_del(&s->map, s->key[v], s->klen[v]);
	free(s->key[v]);
	s->key[v] = NULL;
	s->id[v][0] = '\0';
}

/* Give each of the n keys (taken: freed or kept) a slot, into slot[i].
 * Entries whose key was there keep their slot; the others take the lowest
 * hole, else a new slot at the end. share: equal keys are equal entries and
 * share a slot (content keys); else a repeated key gets a slot of its own.
 * When more than half the slots would be holes, every slot is renumbered in
 * the order given (*compacted set). fresh[v] is set for the slots (re)filled. */
static int slots_assign(struct slots *s, size_t n, char **keys, const size_t *lens, bool share,
                        size_t *slot, bool **fresh, bool *compacted)
{
	int rc = WEIR_ENOMEM;
	bool *used = calloc(s->n + 1, sizeof(*used));
	size_t nnew = 0, holes = 0;
	*fresh = NULL;
	if (!used)
		goto out;
	for (size_t i = 0; i < n; i++) {
		size_t v;
		slot[i] = NONE;
		if (bmap_get(&s->map, keys[i], lens[i], &v) && (share || !used[v])) {
			slot[i] = v;
			used[v] = true;
		} else {
			nnew++;
		}
	}
	for (size_t v = 0; v < s->n; v++) {
		if (s->key[v] && !used[v])
			slots_release(s, v);
		if (!s->key[v])
			holes++;
	}
	size_t left = holes > nnew ? holes - nnew : 0;
	size_t total = s->n + (nnew > holes ? nnew - holes : 0);
	if (left * 2 > total) {
		/* Renumber: every entry in the given order. */
		slots_free(s);
		*compacted = true;
		for (size_t i = 0; i < n; i++)
			slot[i] = NONE;
		nnew = n;
	}
	size_t next_hole = 0;
	for (size_t i = 0; i < n; i++) {
		size_t v;
		if (slot[i] != NONE) {
			free(keys[i]);
			keys[i] = NULL;
			continue;
		}
		if (share && bmap_get(&s->map, keys[i], lens[i], &v)) {
			/* an equal key placed earlier in this loop */
			slot[i] = v;
			free(keys[i]);
			keys[i] = NULL;
			continue;
		}
		while (next_hole < s->n && s->key[next_hole])
			next_hole++;
		v = next_hole;
		rc = slots_set(s, v, keys[i], lens[i]);
		keys[i] = NULL;
		if (rc != 0)
			goto out;
		slot[i] = v;
	}
	while (s->n > 0 && !s->key[s->n - 1])
		s->n--;
	*fresh = calloc(s->n + 1, sizeof(**fresh));
	if (!*fresh)
		goto out;
	for (size_t v = 0; v < s->n; v++)
		(*fresh)[v] = s->key[v] && !s->id[v][0];
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(used);
	return rc;
}

/* ---------------------------------------------------------- shard files */

struct shard_file {
	char id[ROUTE_SHARD_ID_LEN + 1];
	uint32_t refs; /* positions of the last index written that name it */
	uint64_t gen;  /* with refs 0: generation of the last index naming it; 0: none */
	int64_t mtime; /* when it was written (seconds), or MTIME_UNKNOWN */
};
/* A file found on disk at start: its age is read when it could go. */
#define MTIME_UNKNOWN INT64_MIN

struct shard_files {
	size_t n, cap;
	struct shard_file **v;
	struct bmap map; /* id -> position in v */
};

static struct shard_file *files_find(const struct shard_files *f, const char *id)
{
	size_t i;
	if (!bmap_get(&f->map, id, ROUTE_SHARD_ID_LEN, &i))
		return NULL;
	return f->v[i];
}

static struct shard_file *files_add(struct shard_files *f, const char *id, uint64_t gen,
                                    int64_t mtime)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 256;
		struct shard_file **v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return NULL;
		f->v = v;
		f->cap = cap;
	}
	struct shard_file *sf = calloc(1, sizeof(*sf));
	if (!sf)
		return NULL;
	memcpy(sf->id, id, ROUTE_SHARD_ID_LEN);
	sf->gen = gen;
	sf->mtime = mtime;
	if (bmap_put(&f->map, sf->id, ROUTE_SHARD_ID_LEN, f->n) != 0) {
		free(sf);
		return NULL;
	}
	f->v[f->n++] = sf;
	return sf;
}

static void files_remove_at(struct shard_files *f, size_t i)
{
	struct shard_file *sf = f->v[i];
	bmap_del(&f->map, sf->id, ROUTE_SHARD_ID_LEN);
	f->n--;
	if (i != f->n) {
		f->v[i] = f->v[f->n];
		bmap_put(&f->map, f->v[i]->id, ROUTE_SHARD_ID_LEN, i); /* replaces: no growth */
	}
	free(sf);
}

static void files_free(struct shard_files *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i]);
	free(f->v);
	bmap_clear(&f->map);
	memset(f, 0, sizeof(*f));
}

/* Host or backend shards of the last index: text -> id. */
struct shard_set {
	size_t n;
	char **text;
	size_t *len;
	char (*id)[ROUTE_SHARD_ID_LEN + 1];
	struct bmap map;
};

static void shard_set_free(struct shard_set *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->text[i]);
	free(h->text);
	free(h->len);
	free(h->id);
	bmap_clear(&h->map);
	memset(h, 0, sizeof(*h));
}

/* Move entry i of from (its text, length and id) to the end of to, as *k;
 * from keeps the id and its map, its text pointer is cleared. */
static int shard_set_take(struct shard_set *to, struct shard_set *from, size_t i, size_t *k)
{
	*k = to->n++;
	to->text[*k] = from->text[i];
	to->len[*k] = from->len[i];
	memcpy(to->id[*k], from->id[i], ROUTE_SHARD_ID_LEN + 1);
	from->text[i] = NULL;
	return bmap_put(&to->map, to->text[*k], to->len[*k], *k);
}

/* Entry k of s now holds text (len bytes, taken) with shard id id. */
static int shard_set_replace(struct shard_set *s, size_t k, char *text, size_t len,
                             const char id[ROUTE_SHARD_ID_LEN + 1])
{
	size_t old;
	if (s->text[k]) {
		if (bmap_get(&s->map, s->text[k], s->len[k], &old) && old == k)
			bmap_del(&s->map, s->text[k], s->len[k]);
		free(s->text[k]);
	}
	s->text[k] = text;
	s->len[k] = len;
	memcpy(s->id[k], id, ROUTE_SHARD_ID_LEN + 1);
	return bmap_put(&s->map, text, len, k);
}

/* The ids one array of the last index written names, by position: the
 * next index is compared with it position by position, so a publish finds
 * the shard files whose reference count changes without looking up the
 * ids that stayed where they were. */
struct named {
	size_t n;
	char (*id)[ROUTE_SHARD_ID_LEN + 1];
};

/* Id lists of one kind of an index, as route_index names them. */
struct id_lists {
	size_t n;
	struct route_index_list *v;
};

/* ------------------------------------------------------------ publisher */

struct publisher {
	char *dir;
	uint64_t generation;
	char *last; /* text on disk (table or index), NULL when unknown */
	enum publish_format format;
	struct slots backends, certs, cas, profiles;
	struct shard_set hosts, backend_texts;
	struct shard_files files;
	/* hosts, backends, certs of the last index, then the id lists it
	 * named each kind through (ROUTE_INDEX_KINDS + k) */
	struct named named[2 * ROUTE_INDEX_KINDS];
	/* Per kind, the lists of the last index (n 0: its ids were inline). */
	struct id_lists lists[ROUTE_INDEX_KINDS];
	size_t list_min, list_max; /* publisher_set_lists */
	/* The slot of each backend, certificate, CA and backend TLS profile of
	 * the last table published (by its index in that table), for
	 * publisher_publish_endpoints: valid while maps_ok. */
	size_t *maps[4], nmaps[4];
	bool maps_ok;
	bool gc_off; /* reference counts unknown (out of memory): keep all */
	struct publish_stats stats;
	publisher_clock_cb clock;
	/* The host list of the last index: host i is named host_name[i] and
	 * its shard is hosts.id[host_k[i]] (valid while hosts_known), for
	 * publisher_publish_changed. */
	char **host_name; /* sorted, as the table's hosts */
	/* Per backend slot of the last index: a copy of the backend and its
	 * text's place in backend_texts (NONE: empty), so that an unchanged
	 * backend is not serialized again by publisher_publish_changed. */
	struct route_backend *bprev;
	size_t *bk;
	size_t nbprev;
	size_t *host_k;
	size_t nhost_k;
	bool hosts_known;
	/* The backend slots of the index taken over at start are yet to be
	 * known (adopt_backends; its ids are in named[1]). */
	bool backends_pending;
};
/* text (len bytes and a NUL) in a block of its own size: a serialized
 * table's buffer grows by doubling, and the one kept as p->last (2 MB at
 * 10,000 hosts) would hold up to as much again unused. */
static char *fitted(char *text, size_t len)
{
	char *g = realloc(text, len + 1);
	return g ? g : text;
}

/* The file's text (caller frees), or NULL. The buffer is sized from the
 * file (one byte more, to see the end at once) and grown only when the file
 * grew meanwhile: a restart keeps thousands of shard texts, a few hundred
 * bytes each, that a fixed 64 KiB first buffer would each spread over a
 * page or more of the heap. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct stat st;
	size_t n = 0, cap = 4096;
	if (fstat(fileno(f), &st) == 0 && st.st_size > 0 &&
	    (unsigned long long)st.st_size < ROUTE_TABLE_MAX_BYTES)
		cap = (size_t)st.st_size + 1;
	char *buf = malloc(cap + 1);
	if (!buf) {
		fclose(f);
		return NULL;
	}
	for (;;) {
		if (n == cap) {
			if (cap > ROUTE_TABLE_MAX_BYTES) {
				free(buf);
				fclose(f);
				return NULL;
			}
			cap *= 2;
			char *g = realloc(buf, cap + 1);
			if (!g) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = g;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (!r)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return WEIR_EIO;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The text after the top-level "generation" number (the serializer writes
 * it second, after "version"), or NULL. */
static const char *after_generation(const char *text, size_t *prefix)
{
	const char *g = strstr(text, "\"generation\"");
	if (!g || g - text > 64)
		return NULL;
	*prefix = (size_t)(g - text);
	g += strlen("\"generation\"");
	while (*g == ':' || *g == ' ')
		g++;
	while (*g >= '0' && *g <= '9')
		g++;
	return g;
}

/* a and b are the same table but for its generation number. */
static bool same_but_generation(const char *a, const char *b)
{
	size_t pa, pb;
	const char *ra = after_generation(a, &pa), *rb = after_generation(b, &pb);
	if (!ra || !rb)
		return strcmp(a, b) == 0;
	return pa == pb && memcmp(a, b, pa) == 0 && strcmp(ra, rb) == 0;
}

static char *cert_key(const struct route_cert *c, size_t *len);
static char *ca_key(const struct route_ca *c, size_t *len);
static char *profile_key(const struct route_backend_tls_profile *b, size_t *len);

static int64_t now_s(const struct publisher *p)
{
	return p->clock ? p->clock() : (int64_t)time(NULL);
}

/* Write text to path through a temporary file in the same directory and a
 * rename; durable: fsync the file first. The file holds TLS private keys and
 * password hashes: owner and group only (the chart runs both containers as
 * one user and group). */
static int write_atomic(const char *dir, const char *name, const char *text, size_t len,
                        bool durable)
{
	char tmp[4096], path[4096];
	int fd;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.%ld", dir, name, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_error(COMPONENT, "open %s: %s", tmp, strerror(errno));
		return WEIR_EIO;
	}
	if (write_all(fd, text, len) != 0 || (durable && fsync(fd) != 0)) {
		log_error(COMPONENT, "write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return WEIR_EIO;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		log_error(COMPONENT, "rename %s: %s", path, strerror(errno));
		unlink(tmp);
		return WEIR_EIO;
	}
	return 0;
}

static void fsync_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
}

static char *shard_dir(const struct publisher *p)
{
	size_t n = strlen(p->dir) + sizeof(ROUTE_SHARD_DIR) + 2;
	char *d = malloc(n);
	if (d)
		snprintf(d, n, "%s/%s", p->dir, ROUTE_SHARD_DIR);
	return d;
}

/* The last index written (p->last), its id lists read from the shard
 * files. */
static int parse_last(struct publisher *p, struct route_table **t, struct route_index **ix,
                      char *err, size_t errlen)
{
	struct route_list_reader files = {route_list_read_file, p->dir};
	return route_table_parse_index(p->last, strlen(p->last), &files, t, ix, err, errlen);
}

static void named_update(struct publisher *p, struct named *nm, char *const *ids, size_t n);

/* Kind k of the index just written named l (taken: l is emptied): the
 * reference counts of the list shard files follow. */
static int lists_commit(struct publisher *p, int k, struct id_lists *l)
{
	char **ids = calloc(l->n + 1, sizeof(*ids));
	if (!ids)
		return WEIR_ENOMEM;
	for (size_t j = 0; j < l->n; j++)
		ids[j] = l->v[j].id;
	named_update(p, &p->named[ROUTE_INDEX_KINDS + k], ids, l->n);
	free(ids);
	free(p->lists[k].v);
	p->lists[k] = *l;
	memset(l, 0, sizeof(*l));
	return 0;
}

/* A growable read buffer, reused from shard to shard. */
struct filebuf {
	char *p;
	size_t len, cap;
};

/* Read the file name under dirfd into b (NUL-terminated): 0, or WEIR_EIO
 * (missing, not a regular file, unreadable or over ROUTE_TABLE_MAX_BYTES).
 * Relative to the directory's descriptor, so that reading thousands of
 * shards does not walk the publish directory's path for each. */
static int read_at(int dirfd, const char *name, struct filebuf *b)
{
	int rc = WEIR_EIO;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return WEIR_EIO;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > ROUTE_TABLE_MAX_BYTES)
		goto out_close;
	size_t want = (size_t)st.st_size;
	if (want + 1 > b->cap) {
		char *g = realloc(b->p, want + 1);
		if (!g)
			goto out_close;
		b->p = g;
		b->cap = want + 1;
	}
	/* Exactly st_size bytes: a file that changed size since then is
	 * caught by its digest or by the parser. */
	b->len = 0;
	while (b->len < want) {
		ssize_t n = read(fd, b->p + b->len, want - b->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out_close;
		b->len += (size_t)n;
	}
	b->p[b->len] = '\0';
	rc = 0;
out_close:
	close(fd);
	return rc;
}

/* Read shard id (under sfd) into b and check that its bytes hash to its
 * name. A shard that does not is forgotten: the publisher no longer takes
 * it for on disk, so a publish that names its id writes it again. */
static bool read_shard(struct publisher *p, int sfd, const char *id, struct filebuf *b)
{
	char name[ROUTE_SHARD_ID_LEN + sizeof(".json")], hex[ROUTE_SHARD_ID_LEN + 1];
	snprintf(name, sizeof(name), "%s.json", id);
	if (read_at(sfd, name, b) != 0) {
		log_debug(COMPONENT, "shard %s: cannot read it", id);
		return false;
	}
	route_shard_id(b->p, b->len, hex);
	if (strcmp(hex, id) == 0)
		return true;
	log_warn(COMPONENT, "shard %s: bytes do not match the name; written again", id);
	size_t at;
	if (bmap_get(&p->files.map, id, ROUTE_SHARD_ID_LEN, &at))
		files_remove_at(&p->files, at);
	return false;
}

/* Take over the slots of the index on disk (t and ix, parsed from p->last;
 * its shard files are already counted as named): certificates by name and
 * pair digest, CAs and backend TLS profiles by their content, backends by
 * name (at the first publish: adopt_backends), so a restarted controller
 * publishing the same world writes nothing. Host shards are not read: the
 * first publish serializes every host anyway and finds its shard on disk by
 * its id. Certificate shards are hashed (their names are their bytes'
 * SHA-256) before they are trusted; each one that passes goes to cert (when
 * not NULL). Best effort: what cannot be read leaves a hole that the next
 * publish fills. */
static void adopt_index(struct publisher *p, int sfd, const struct route_table *t,
                        const struct route_index *ix, publisher_cert_cb cert, void *arg)
{
	struct filebuf b = {0};
	char err[256];
	/* Backends keep their slots by name; which one is where is found by
	 * the first publish (adopt_backends). */
	p->backends_pending = ix->nbackends > 0;
	for (size_t i = 0; i < ix->ncerts; i++) {
		struct route_cert c = {0};
		char *key = NULL;
		size_t klen = 0;
		if (ix->certs[i][0] && read_shard(p, sfd, ix->certs[i], &b) &&
		    route_cert_shard_parse(b.p, b.len, &c, err, sizeof(err)) == 0) {
			route_cert_digest(c.cert_pem, c.key_pem, c.digest);
			key = cert_key(&c, &klen);
			if (key && cert)
				cert(arg, &c);
		} else if (ix->certs[i][0]) {
			log_debug(COMPONENT, "certificate shard %s not taken over", ix->certs[i]);
		}
		route_cert_cleanup(&c);
		if (slots_grow(&p->certs, i + 1) != 0) {
			free(key);
			goto out;
		}
		if (!key) {
			p->certs.key[p->certs.n++] = NULL;
			continue;
		}
		if (slots_set(&p->certs, i, key, klen) != 0)
			goto out;
		memcpy(p->certs.id[i], ix->certs[i], ROUTE_SHARD_ID_LEN + 1);
	}
	/* cas and backend_tls are in the index itself: they keep their slots
	 * through their content keys, built as publish builds them. */
	for (size_t i = 0; i < t->ncas; i++) {
		size_t len;
		char *k = t->cas[i].ca_pem[0] ? ca_key(&t->cas[i], &len) : NULL;
		if (slots_grow(&p->cas, i + 1) != 0) {
			free(k);
			goto out;
		}
		if (!k)
			p->cas.key[p->cas.n++] = NULL;
		else if (slots_set(&p->cas, i, k, len) != 0)
			goto out;
	}
	for (size_t i = 0; i < t->nbackend_tls; i++) {
		size_t len;
		char *k = t->backend_tls[i].name[0] ? profile_key(&t->backend_tls[i], &len) : NULL;
		if (slots_grow(&p->profiles, i + 1) != 0) {
			free(k);
			goto out;
		}
		if (!k)
			p->profiles.key[p->profiles.n++] = NULL;
		else if (slots_set(&p->profiles, i, k, len) != 0)
			goto out;
	}
out:
	free(b.p);
}

/* The last index written (generation p->generation) names ids (n of them,
 * "" for a hole) in the array nm stands for: the shard files that left a
 * position lose a reference (and at none, remember the index before as the
 * last that named them), those that joined one gain one; nm becomes ids.
 * Only the positions whose id changed cost a look-up. */
/* Position i of nm names now (keep: remember it there) instead of what it
 * named: the reference counts of both files follow. */
static void named_set(struct publisher *p, struct named *nm, size_t i, const char *now, bool keep)
{
	if (strcmp(nm->id[i], now) == 0)
		return;
	struct shard_file *sf = now[0] ? files_find(&p->files, now) : NULL;
	if (sf)
		sf->refs++;
	sf = nm->id[i][0] ? files_find(&p->files, nm->id[i]) : NULL;
	if (sf && sf->refs && --sf->refs == 0)
		sf->gen = p->generation - 1;
	if (keep)
		memcpy(nm->id[i], now, strlen(now) + 1);
}

static void named_update(struct publisher *p, struct named *nm, char *const *ids, size_t n)
{
	if (p->gc_off)
		return;
	if (n > nm->n) {
		void *g = realloc(nm->id, n * sizeof(*nm->id));
		if (!g) {
			p->gc_off = true; /* counts unknown from here: nothing is removed */
			return;
		}
		nm->id = g;
		for (size_t i = nm->n; i < n; i++)
			nm->id[i][0] = '\0';
	}
	size_t m = n > nm->n ? n : nm->n;
	for (size_t i = 0; i < m; i++)
		named_set(p, nm, i, i < n ? ids[i] : "", i < n);
	nm->n = n;
}

/* The shard files on disk: those the index on disk (ix, may be NULL) names
 * belong to its generation, the others are garbage from the start;
 * temporary files left by a crash go now. Their ages are not read here (a
 * stat per file, 30,000 at 10,000 hosts): collect_garbage reads the age of
 * a file when nothing else keeps it. */
static int scan_shards(struct publisher *p, int sfd, struct route_index *ix)
{
	int rc = 0;
	int dfd = dup(sfd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		log_error(COMPONENT, "cannot read %s/%s: %s", p->dir, ROUTE_SHARD_DIR,
		          strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return WEIR_EIO;
	}
	for (struct dirent *e; (e = readdir(d));) {
		const char *n = e->d_name;
		if (n[0] == '.' && strstr(n, ".tmp.")) {
			unlinkat(sfd, n, 0);
			continue;
		}
		if (strlen(n) != ROUTE_SHARD_ID_LEN + 5 ||
		    strcmp(n + ROUTE_SHARD_ID_LEN, ".json") != 0)
			continue;
		char id[ROUTE_SHARD_ID_LEN + 1];
		memcpy(id, n, ROUTE_SHARD_ID_LEN);
		id[ROUTE_SHARD_ID_LEN] = '\0';
		if (!route_shard_id_valid(id))
			continue;
		if (!files_add(&p->files, id, 0, MTIME_UNKNOWN)) {
			rc = WEIR_ENOMEM;
			break;
		}
	}
	closedir(d);
	if (rc == 0 && ix) {
		named_update(p, &p->named[0], ix->hosts, ix->nhosts);
		named_update(p, &p->named[1], ix->backends, ix->nbackends);
		named_update(p, &p->named[2], ix->certs, ix->ncerts);
		for (int k = 0; k < ROUTE_INDEX_KINDS; k++) {
			struct id_lists l = {ix->nlists[k], ix->lists[k]};
			if (lists_commit(p, k, &l) == 0)
				ix->lists[k] = NULL;
		}
	}
	return rc;
}

/* The version 2 state of the publish directory: the shard directory
 * (created when missing), its files, and the slots of the index on disk
 * (when p->last is one). One parse of the index and its id lists. */
static int open_shards(struct publisher *p, publisher_cert_cb cert, void *arg)
{
	struct route_table *t = NULL;
	struct route_index *ix = NULL;
	char err[256];
	char *sdir = shard_dir(p);
	int rc = WEIR_ENOMEM, sfd = -1;
	if (!sdir)
		goto out;
	if (mkdir(sdir, 0755) != 0 && errno != EEXIST) {
		log_error(COMPONENT, "cannot create %s: %s", sdir, strerror(errno));
		rc = WEIR_EIO;
		goto out;
	}
	sfd = open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0) {
		log_error(COMPONENT, "cannot read %s: %s", sdir, strerror(errno));
		rc = WEIR_EIO;
		goto out;
	}
	if (p->last && parse_last(p, &t, &ix, err, sizeof(err)) != 0) {
		log_debug(COMPONENT, "%s/%s: %s", p->dir, ROUTE_TABLE_FILE, err);
		route_index_free(ix); /* nothing to take over: the next publish writes it all */
		ix = NULL;
	}
	if ((rc = scan_shards(p, sfd, ix)) != 0)
		goto out;
	if (ix)
		adopt_index(p, sfd, t, ix, cert, arg);
out:
	if (sfd >= 0)
		close(sfd);
	route_index_free(ix);
	route_table_free(t);
	free(sdir);
	return rc;
}

int publisher_open(const char *dir, enum publish_format format, publisher_cert_cb cert, void *arg,
                   struct publisher **out)
{
	struct publisher *p = calloc(1, sizeof(*p));
	char path[4096];
	if (!p)
		return WEIR_ENOMEM;
	p->format = format;
	p->list_min = PUBLISH_LIST_MIN;
	p->list_max = PUBLISH_LIST_MAX;
	p->dir = strdup(dir);
	if (!p->dir) {
		free(p);
		return WEIR_ENOMEM;
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		log_error(COMPONENT, "cannot create %s: %s", dir, strerror(errno));
		publisher_free(p);
		return WEIR_EIO;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);
	p->last = slurp(path);
	if (p->last) {
		json_object *root = json_tokener_parse(p->last);
		json_object *g = NULL, *v = NULL;
		if (root && json_object_object_get_ex(root, "generation", &g) &&
		    json_object_is_type(g, json_type_int) && json_object_get_int64(g) > 0)
			p->generation = (uint64_t)json_object_get_int64(g);
		bool v2 = root && json_object_object_get_ex(root, "version", &v) &&
		          json_object_is_type(v, json_type_int) &&
		          json_object_get_int(v) == ROUTE_INDEX_VERSION;
		json_object_put(root);
		/* A format change rewrites the table once. */
		if (v2 != (format == PUBLISH_V2)) {
			free(p->last);
			p->last = NULL;
		}
	}
	if (format == PUBLISH_V2) {
		int rc = open_shards(p, cert, arg);
		if (rc != 0) {
			publisher_free(p);
			return rc == WEIR_ENOMEM ? rc : WEIR_EIO;
		}
	}
	*out = p;
	return 0;
}

int publisher_new_format(const char *dir, enum publish_format format, struct publisher **out)
{
	return publisher_open(dir, format, NULL, NULL, out);
}

int publisher_new(const char *dir, struct publisher **out)
{
	return publisher_new_format(dir, PUBLISH_V2, out);
}

static void bprev_free(struct publisher *p)
{
	for (size_t v = 0; v < p->nbprev; v++)
		route_backend_cleanup(&p->bprev[v]);
	free(p->bprev);
	free(p->bk);
	p->bprev = NULL;
	p->bk = NULL;
	p->nbprev = 0;
}

/* A deep copy of b into *out; false on OOM (then *out is cleaned up). */
static bool copy_backend(struct route_backend *out, const struct route_backend *b)
{
	memset(out, 0, sizeof(*out));
	out->name = b->name ? strdup(b->name) : NULL;
	out->external_name = b->external_name ? strdup(b->external_name) : NULL;
	out->external_port = b->external_port;
	out->endpoints = calloc(b->nendpoints + 1, sizeof(*out->endpoints));
	bool ok =
	    (!b->name || out->name) && (!b->external_name || out->external_name) && out->endpoints;
	for (size_t i = 0; ok && i < b->nendpoints; i++) {
		out->endpoints[i] = b->endpoints[i];
		out->endpoints[i].address = strdup(b->endpoints[i].address);
		ok = out->endpoints[i].address != NULL;
		out->nendpoints = i + 1;
		if (!ok)
			out->endpoints[i].address = NULL;
	}
	if (!ok)
		route_backend_cleanup(out);
	return ok;
}

void publisher_free(struct publisher *p)
{
	if (!p)
		return;
	slots_free(&p->backends);
	slots_free(&p->certs);
	slots_free(&p->cas);
	slots_free(&p->profiles);
	shard_set_free(&p->hosts);
	shard_set_free(&p->backend_texts);
	files_free(&p->files);
	for (size_t i = 0; i < 2 * ROUTE_INDEX_KINDS; i++)
		free(p->named[i].id);
	for (size_t k = 0; k < ROUTE_INDEX_KINDS; k++)
		free(p->lists[k].v);
	for (size_t i = 0; i < 4; i++)
		free(p->maps[i]);
	free(p->host_k);
	for (size_t i = 0; i < p->nhost_k; i++)
		free(p->host_name[i]);
	free(p->host_name);
	bprev_free(p);
	free(p->dir);
	free(p->last);
	free(p);
}

uint64_t publisher_generation(const struct publisher *p)
{
	return p->generation;
}

const struct publish_stats *publisher_stats(const struct publisher *p)
{
	return &p->stats;
}

void publisher_set_clock(struct publisher *p, publisher_clock_cb clock)
{
	p->clock = clock;
}

void publisher_set_lists(struct publisher *p, size_t min, size_t max)
{
	p->list_min = min;
	p->list_max = max ? max : PUBLISH_LIST_MAX;
}

/* Keys of the small arrays: their whole content, each field with its
 * length (NULL differs from ""). */
struct keybuf {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void kb_add(struct keybuf *k, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char head[32];
	int h = snprintf(head, sizeof(head), s ? "%zu:" : "-:", n);
	if (k->oom)
		return;
	if (k->len + (size_t)h + n + 1 > k->cap) {
		size_t cap = (k->len + (size_t)h + n + 1) * 2;
		char *b = realloc(k->buf, cap);
		if (!b) {
			k->oom = true;
			return;
		}
		k->buf = b;
		k->cap = cap;
	}
	memcpy(k->buf + k->len, head, (size_t)h);
	k->len += (size_t)h;
	if (n)
		memcpy(k->buf + k->len, s, n);
	k->len += n;
	k->buf[k->len] = '\0';
}

static char *kb_done(struct keybuf *k, size_t *len)
{
	if (k->oom || !k->buf) {
		free(k->buf);
		return NULL;
	}
	*len = k->len;
	return k->buf;
}

/* A certificate is known by its name and the digest of its pair (the one
 * the compile set, or computed here for one read back from a shard), not
 * by its PEM text: at 10,000 distinct certificates that text is ~30 MB to
 * copy and hash on every publish. */
static char *cert_key(const struct route_cert *c, size_t *len)
{
	static const unsigned char zero[ROUTE_CERT_DIGEST_LEN];
	static const char hex[] = "0123456789abcdef";
	unsigned char d[ROUTE_CERT_DIGEST_LEN];
	char text[2 * ROUTE_CERT_DIGEST_LEN + 1];
	if (memcmp(c->digest, zero, sizeof(zero)) != 0)
		memcpy(d, c->digest, sizeof(d));
	else
		route_cert_digest(c->cert_pem ? c->cert_pem : "", c->key_pem ? c->key_pem : "", d);
	for (size_t i = 0; i < sizeof(d); i++) {
		text[2 * i] = hex[d[i] >> 4];
		text[2 * i + 1] = hex[d[i] & 15];
	}
	text[sizeof(text) - 1] = '\0';
	struct keybuf k = {0};
	kb_add(&k, c->name);
	kb_add(&k, text);
	return kb_done(&k, len);
}

static char *ca_key(const struct route_ca *c, size_t *len)
{
	struct keybuf k = {0};
	kb_add(&k, c->name);
	kb_add(&k, c->ca_pem);
	kb_add(&k, c->crl_pem);
	return kb_done(&k, len);
}

static char *profile_key(const struct route_backend_tls_profile *b, size_t *len)
{
	struct keybuf k = {0};
	char num[32];
	snprintf(num, sizeof(num), "%d/%u", (int)b->verify, b->verify_depth);
	kb_add(&k, b->name);
	kb_add(&k, num);
	kb_add(&k, b->protocols);
	kb_add(&k, b->ciphers);
	kb_add(&k, b->ca_pem);
	kb_add(&k, b->cert_pem);
	kb_add(&k, b->key_pem);
	return kb_done(&k, len);
}

/* The slot of each entry of one array of t, into map (n entries). */
enum array_kind { ARR_BACKENDS, ARR_CERTS, ARR_CAS, ARR_PROFILES };

static int assign(struct publisher *p, const struct route_table *t, enum array_kind kind,
                  size_t *map, bool **fresh, bool *compacted)
{
	size_t n = kind == ARR_BACKENDS ? t->nbackends
	           : kind == ARR_CERTS  ? t->ncerts
	           : kind == ARR_CAS    ? t->ncas
	                                : t->nbackend_tls;
	struct slots *s = kind == ARR_BACKENDS ? &p->backends
	                  : kind == ARR_CERTS  ? &p->certs
	                  : kind == ARR_CAS    ? &p->cas
	                                       : &p->profiles;
	char **keys = calloc(n + 1, sizeof(*keys));
	size_t *lens = calloc(n + 1, sizeof(*lens));
	int rc = WEIR_ENOMEM;
	*fresh = NULL;
	if (!keys || !lens)
		goto out;
	for (size_t i = 0; i < n; i++) {
		switch (kind) {
		case ARR_BACKENDS:
			keys[i] = strdup(t->backends[i].name ? t->backends[i].name : "");
			lens[i] = keys[i] ? strlen(keys[i]) : 0;
			break;
		case ARR_CERTS:
			keys[i] = cert_key(&t->certs[i], &lens[i]);
			break;
		case ARR_CAS:
			keys[i] = ca_key(&t->cas[i], &lens[i]);
			break;
		case ARR_PROFILES:
			keys[i] = profile_key(&t->backend_tls[i], &lens[i]);
			break;
		}
		if (!keys[i]) {
			for (size_t j = 0; j < i; j++)
				free(keys[j]);
			goto out;
		}
	}
	/* Backends are known by name (their endpoints change in place);
	 * the others by content. */
	rc = slots_assign(s, n, keys, lens, kind != ARR_BACKENDS, map, fresh, compacted);
out:
	free(keys);
	free(lens);
	return rc;
}

static int remap(int i, const size_t *map)
{
	return i < 0 ? i : (int)map[i];
}

/* Write one shard file unless the publisher knows it is on disk; count it
 * in *written. */
static int put_file(struct publisher *p, const char *sdir, const char *id, const char *text,
                    size_t len, size_t *written)
{
	char name[ROUTE_SHARD_ID_LEN + 8];
	if (files_find(&p->files, id))
		return 0;
	snprintf(name, sizeof(name), "%s.json", id);
	/* A change writes a shard or two: each is fsync'd. A bulk write (the
	 * first publish, a compaction) syncs the file system once instead. */
	bool durable = p->stats.shards_written + p->stats.lists_written < PUBLISH_FSYNC_EACH_MAX;
	int rc = write_atomic(sdir, name, text, len, durable);
	if (rc != 0)
		return rc;
	if (!files_add(&p->files, id, 0, now_s(p)))
		return WEIR_ENOMEM;
	(*written)++;
	return 0;
}

static int put_shard(struct publisher *p, const char *sdir, const char *id, const char *text,
                     size_t len)
{
	return put_file(p, sdir, id, text, len, &p->stats.shards_written);
}

/* A list ends after an id whose first byte is 0 or 1 (one id in 128, the
 * ids being SHA-256 digests), or at p->list_max ids: where lists end
 * depends on the ids around, not on positions, so a host added or removed
 * changes the list it falls in and leaves the others as they were. */
static bool list_ends(const char *id)
{
	return id[0] == '0' && (id[1] == '0' || id[1] == '1');
}

/* The old list of kind k starting at start with n ids, if the last index
 * named the same ids there as ids (from ids[at]); else NULL. */
static const struct route_index_list *same_list(const struct publisher *p, int k, char *const *ids,
                                                size_t at, size_t start, size_t n)
{
	const struct id_lists *old = &p->lists[k];
	const struct named *nm = &p->named[k];
	size_t lo = 0, hi = old->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (old->v[mid].start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == old->n || old->v[lo].start != start || old->v[lo].n != n || start + n > nm->n)
		return NULL;
	for (size_t q = 0; q < n; q++)
		if (strcmp(nm->id[start + q], ids[at + q]) != 0)
			return NULL;
	return &old->v[lo];
}

/* Kind k's ids[0..n) as id lists into out (none when the array is short):
 * a list the last index named with the same ids (at the same place, or
 * moved by as many places as the array grew) keeps its id; the others are
 * written. */
static int make_lists(struct publisher *p, int k, char *const *ids, size_t n, const char *sdir,
                      struct id_lists *out)
{
	memset(out, 0, sizeof(*out));
	if (!p->list_min || n < p->list_min)
		return 0;
	const struct id_lists *old = &p->lists[k];
	size_t old_n = old->n ? old->v[old->n - 1].start + old->v[old->n - 1].n : 0;
	bool comparable = !p->gc_off && p->named[k].n == old_n;
	size_t cap = 16, s = 0;
	int rc = WEIR_ENOMEM;
	out->v = malloc(cap * sizeof(*out->v));
	if (!out->v)
		return WEIR_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && i + 1 - s < p->list_max && !list_ends(ids[i]))
			continue;
		size_t len = i + 1 - s;
		if (out->n == cap) {
			struct route_index_list *g = realloc(out->v, 2 * cap * sizeof(*g));
			if (!g) {
				rc = WEIR_ENOMEM;
				goto fail;
			}
			out->v = g;
			cap *= 2;
		}
		struct route_index_list *l = &out->v[out->n++];
		const struct route_index_list *was = NULL;
		if (comparable) {
			was = same_list(p, k, ids, s, s, len);
			if (!was && n != old_n && s + old_n >= n)
				was = same_list(p, k, ids, s, s + old_n - n, len);
		}
		l->start = s;
		l->n = len;
		if (was) {
			memcpy(l->id, was->id, sizeof(l->id));
		} else {
			char *text = NULL;
			size_t tlen = 0;
			rc = route_id_list_serialize(ids + s, len, &text, &tlen);
			if (rc != 0)
				goto fail;
			route_shard_id(text, tlen, l->id);
			rc = put_file(p, sdir, l->id, text, tlen, &p->stats.lists_written);
			free(text);
			if (rc != 0)
				goto fail;
		}
		s = i + 1;
	}
	return 0;
fail:
	free(out->v);
	memset(out, 0, sizeof(*out));
	return rc;
}

/* Remove the shard files no recent index names once they are old enough. */
static void collect_garbage(struct publisher *p, const char *sdir)
{
	char path[4096];
	int64_t now = now_s(p);
	size_t removed = 0;
	for (size_t i = 0; i < p->files.n && removed < PUBLISH_GC_MAX && !p->gc_off;) {
		struct shard_file *sf = p->files.v[i];
		if (sf->refs || sf->gen + PUBLISH_KEEP_INDEXES > p->generation) {
			i++;
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s.json", sdir, sf->id);
		if (sf->mtime == MTIME_UNKNOWN) {
			struct stat st;
			if (stat(path, &st) == 0) {
				sf->mtime = (int64_t)st.st_mtime;
			} else if (errno == ENOENT) {
				sf->mtime = 0; /* gone already: forgotten below */
			} else {
				i++; /* asked again by the next publish */
				continue;
			}
		}
		if (now - sf->mtime < PUBLISH_SHARD_GRACE_S) {
			i++;
			continue;
		}
		if (unlink(path) != 0 && errno != ENOENT) {
			log_warn(COMPONENT, "cannot remove %s: %s", path, strerror(errno));
			i++;
			continue;
		}
		p->stats.shards_removed++;
		removed++;
		files_remove_at(&p->files, i);
	}
}

/* Version 2: slots, shards, then the index (the commit point). */
static bool find_sorted(char *const *v, size_t n, const char *s, size_t *at)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid], s);
		if (c == 0) {
			*at = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static bool in_sorted(char *const *v, size_t n, const char *s)
{
	size_t at;
	return find_sorted(v, n, s, &at);
}

/* The slot maps of one publish: table index -> index slot. */
struct slot_maps {
	const size_t *b, *c, *a, *p; /* backends, certs, cas, backend_tls */
};

/* The shard text of host h with its indexes turned into slots; *rbuf (of
 * *rcap routes) is scratch space kept across calls. */
static int host_text(const struct route_host *host, const struct slot_maps *m, struct route **rbuf,
                     size_t *rcap, char **text, size_t *len)
{
	struct route_host h = *host;
	if (h.nroutes > *rcap) {
		struct route *g = realloc(*rbuf, h.nroutes * 2 * sizeof(*g));
		if (!g)
			return WEIR_ENOMEM;
		*rbuf = g;
		*rcap = h.nroutes * 2;
	}
	if (h.nroutes)
		memcpy(*rbuf, h.routes, h.nroutes * sizeof(**rbuf));
	for (size_t j = 0; j < h.nroutes; j++) {
		struct route *r = &(*rbuf)[j];
		r->backend = remap(r->backend, m->b);
		r->canary.backend = remap(r->canary.backend, m->b);
		r->error_backend = remap(r->error_backend, m->b);
		r->backend_tls = remap(r->backend_tls, m->p);
	}
	h.routes = *rbuf;
	h.cert = remap(h.cert, m->c);
	h.client_auth.ca = remap(h.client_auth.ca, m->a);
	return route_host_serialize(&h, text, len);
}

/* Position of the host named name in t (hosts sorted by name). */
static bool find_host(const struct route_table *t, const char *name, size_t *at)
{
	size_t lo = 0, hi = t->nhosts;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->hosts[mid].name, name);
		if (c == 0) {
			*at = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Make p's host name list and positions those of t, where t's names are
 * the last index's without the del_at ones (positions in the old list) and
 * with the add_at ones (positions in t), both ascending. The new hosts get
 * empty entries at the end of p->hosts; the removed ones' entries are
 * emptied. On error p->hosts may have grown, the lists are as they were. */
static int hosts_splice_names(struct publisher *p, const struct route_table *t,
                              const size_t *add_at, size_t nadd, const size_t *del_at, size_t ndel)
{
	struct shard_set *hs = &p->hosts;
	size_t n = hs->n + nadd;
	char **text = realloc(hs->text, (n + 1) * sizeof(*text));
	if (text)
		hs->text = text;
	size_t *len = realloc(hs->len, (n + 1) * sizeof(*len));
	if (len)
		hs->len = len;
	char(*id)[ROUTE_SHARD_ID_LEN + 1] = realloc(hs->id, (n + 1) * sizeof(*id));
	if (id)
		hs->id = id;
	char **names = calloc(t->nhosts + 1, sizeof(*names));
	size_t *hk = calloc(t->nhosts + 1, sizeof(*hk));
	if (!text || !len || !id || !names || !hk)
		goto oom;
	for (size_t a = 0; a < nadd; a++)
		if (!(names[add_at[a]] = strdup(t->hosts[add_at[a]].name)))
			goto oom;
	for (size_t k = hs->n; k < n; k++) {
		hs->text[k] = NULL;
		hs->len[k] = 0;
		hs->id[k][0] = '\0';
	}
	size_t j = 0, a = 0, d = 0;
	for (size_t i = 0; i < t->nhosts; i++) {
		if (a < nadd && add_at[a] == i) {
			hk[i] = hs->n + a++;
			continue;
		}
		for (; d < ndel && del_at[d] == j; d++)
			j++;
		names[i] = p->host_name[j];
		hk[i] = p->host_k[j++];
	}
	for (size_t x = 0; x < ndel; x++) {
		size_t k = p->host_k[del_at[x]], old;
		if (hs->text[k] && bmap_get(&hs->map, hs->text[k], hs->len[k], &old) && old == k)
			bmap_del(&hs->map, hs->text[k], hs->len[k]);
		free(hs->text[k]);
		hs->text[k] = NULL;
		free(p->host_name[del_at[x]]);
	}
	hs->n = n;
	free(p->host_name);
	free(p->host_k);
	p->host_name = names;
	p->host_k = hk;
	p->nhost_k = t->nhosts;
	return 0;
oom:
	for (size_t a = 0; names && a < nadd; a++)
		free(names[add_at[a]]);
	free(names);
	free(hk);
	return WEIR_ENOMEM;
}

/* The incremental host step without a walk over every host: when t has the
 * host names of the last index but for changed names added or removed (the
 * caller's contract says the others did not change, so they keep their
 * order), only the changed hosts are serialized and their entries of
 * p->hosts replaced (or added, or emptied) in place; ix->hosts then names
 * every host's shard. Returns 1 when done, 0 when the lists do not fit
 * (nothing touched), or an error; each entry is replaced only once its
 * shard is on disk, so p->hosts stays true to the disk whatever happens.
 * Emptied entries stay until a publish walks every host (one that cannot
 * go this way, or once they would be as many as the hosts). */
static int hosts_in_place(struct publisher *p, const struct route_table *t, char *const *changed,
                          size_t nchanged, const struct slot_maps *maps, const char *sdir,
                          struct route_index *ix)
{
	struct route *rbuf = NULL;
	size_t rcap = 0, at, nadd = 0, ndel = 0, nin = 0;
	size_t *add_at = calloc(nchanged + 1, sizeof(*add_at));
	size_t *del_at = calloc(nchanged + 1, sizeof(*del_at));
	int rc = 0;
	if (!add_at || !del_at) {
		rc = WEIR_ENOMEM;
		goto out;
	}
	for (size_t c = 0; c < nchanged; c++) {
		size_t old;
		bool now = find_host(t, changed[c], &at);
		bool before = find_sorted(p->host_name, p->nhost_k, changed[c], &old);
		nin += now;
		if (now && !before)
			add_at[nadd++] = at;
		else if (before && !now)
			del_at[ndel++] = old;
	}
	if (t->nhosts + ndel != p->nhost_k + nadd || p->hosts.n + nadd > 2 * t->nhosts + 64)
		goto out; /* rc 0: the full walk */
	if ((nadd || ndel) && (rc = hosts_splice_names(p, t, add_at, nadd, del_at, ndel)) != 0)
		goto out;
	for (size_t c = 0; c < nchanged && rc == 0; c++) {
		char *text = NULL;
		size_t len, old;
		if (!find_host(t, changed[c], &at))
			continue; /* removed */
		size_t k = p->host_k[at];
		struct shard_set *hs = &p->hosts;
		if ((rc = host_text(&t->hosts[at], maps, &rbuf, &rcap, &text, &len)) != 0)
			break;
		if (hs->text[k] && hs->len[k] == len && memcmp(hs->text[k], text, len) == 0) {
			free(text);
			continue;
		}
		char id[ROUTE_SHARD_ID_LEN + 1];
		if (bmap_get(&hs->map, text, len, &old)) {
			memcpy(id, hs->id[old], sizeof(id));
		} else {
			route_shard_id(text, len, id);
			if ((rc = put_shard(p, sdir, id, text, len)) != 0) {
				free(text);
				break;
			}
		}
		if ((rc = shard_set_replace(hs, k, text, len, id)) != 0)
			break;
	}
	free(rbuf);
	if (rc != 0)
		goto out;
	for (size_t i = 0; i < t->nhosts; i++)
		ix->hosts[i] = p->hosts.id[p->host_k[i]];
	ix->nhosts = t->nhosts;
	p->stats.hosts_reused = t->nhosts - nin;
	p->stats.host_shards = t->nhosts;
	rc = 1;
out:
	free(add_at);
	free(del_at);
	return rc;
}

/* changed: NULL, or (incremental) the sorted names of the hosts that may
 * differ from the last index's. */
/* The slot maps of this publish, kept for the next one. */
static void keep_maps(struct publisher *p, const struct route_table *t, size_t *const m[4])
{
	size_t n[4] = {t->nbackends, t->ncerts, t->ncas, t->nbackend_tls};
	p->maps_ok = false;
	for (size_t i = 0; i < 4; i++) {
		size_t *g = realloc(p->maps[i], (n[i] + 1) * sizeof(*g));
		if (!g)
			return;
		memcpy(g, m[i], n[i] * sizeof(*g));
		p->maps[i] = g;
		p->nmaps[i] = n[i];
	}
	p->maps_ok = true;
}

/* The top-level "backends" array of an index as the serializer writes it:
 * one element a line, each "    \"<id>\"," (the last without the comma). */
static const char INDEX_BACKENDS[] = "\n  \"backends\": [\n";

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return (x > y) - (x < y);
}

/* One backend slot an endpoint change rewrites. */
struct slot_text {
	size_t v; /* first: sorted by it */
	size_t i; /* its backend in the table */
	char *text;
	size_t len;
	char id[ROUTE_SHARD_ID_LEN + 1];
	size_t at; /* its id's offset in the last index text */
};

/* Where the id of each of the backend slots sl[0..n) (ascending) is in
 * the last index text (sl[].at), and where its generation number is
 * (*gen_at, *gen_len). False when the text is not as expected. */
static bool index_places(const char *text, size_t len, struct slot_text *sl, size_t n,
                         size_t *gen_at, size_t *gen_len)
{
	size_t prefix;
	const char *end = after_generation(text, &prefix), *g = text + prefix;
	if (!end)
		return false;
	g += strlen("\"generation\"");
	while (*g == ':' || *g == ' ')
		g++;
	*gen_at = (size_t)(g - text);
	*gen_len = (size_t)(end - g);
	if (!n)
		return *gen_len > 0;
	const char *l =
	    memmem(end, len - (size_t)(end - text), INDEX_BACKENDS, sizeof(INDEX_BACKENDS) - 1);
	if (!l || !*gen_len)
		return false;
	l += sizeof(INDEX_BACKENDS) - 1;
	const char *stop = text + len;
	for (size_t e = 0, line = 0; e < n; e++) {
		for (; line < sl[e].v; line++) {
			const char *nl = memchr(l, '\n', (size_t)(stop - l));
			if (!nl)
				return false;
			l = nl + 1;
		}
		if (stop - l < 4 + ROUTE_SHARD_ID_LEN + 3 || memcmp(l, "    \"", 5) != 0 ||
		    l[5 + ROUTE_SHARD_ID_LEN] != '"')
			return false;
		sl[e].at = (size_t)(l + 5 - text);
	}
	return true;
}

/* The top-level "backend_lists" array of an index as the serializer writes
 * it: "[", then "\n    \"<id>\"" per list with commas between, then
 * "\n  ]". */
static const char INDEX_BACKEND_LISTS[] = "\n  \"backend_lists\": [";

/* The index text for an endpoint change of a table whose backends the last
 * index named through lists: the backend slots sl[0..nsl) take their new
 * ids, the backend lists that changed are written (*nl: the new lists),
 * and the last text gets the generation num (at gen_at, replacing gen_len
 * bytes) and the new backend_lists array. */
static int lists_in_place(struct publisher *p, const struct slot_text *sl, size_t nsl,
                          const char *sdir, const char *num, size_t gen_at, size_t gen_len,
                          struct id_lists *nl, char **out, size_t *out_len)
{
	size_t nb = p->named[1].n, last_len = strlen(p->last);
	const char *a =
	    memmem(p->last, last_len, INDEX_BACKEND_LISTS, sizeof(INDEX_BACKEND_LISTS) - 1);
	if (!a || (size_t)(a - p->last) < gen_at + gen_len)
		return 1;
	a += sizeof(INDEX_BACKEND_LISTS) - 1;
	const char *b = memmem(a, last_len - (size_t)(a - p->last), "\n  ]", 4);
	if (!b)
		return 1;
	char **ids = malloc((nb + 1) * sizeof(*ids));
	if (!ids)
		return WEIR_ENOMEM;
	for (size_t v = 0; v < nb; v++)
		ids[v] = p->named[1].id[v];
	for (size_t e = 0; e < nsl; e++)
		ids[sl[e].v] = (char *)sl[e].id;
	int rc = make_lists(p, 1, ids, nb, sdir, nl);
	free(ids);
	if (rc != 0)
		return rc;
	if (!nl->n)
		return 1;
	size_t nlen = strlen(num), body = nl->n * (ROUTE_SHARD_ID_LEN + 8);
	size_t cap = last_len - gen_len + nlen + body + 1;
	char *t = malloc(cap), *w = t;
	if (!t)
		return WEIR_ENOMEM;
	memcpy(w, p->last, gen_at);
	w += gen_at;
	memcpy(w, num, nlen);
	w += nlen;
	size_t mid = (size_t)(a - p->last) - gen_at - gen_len;
	memcpy(w, p->last + gen_at + gen_len, mid);
	w += mid;
	for (size_t j = 0; j < nl->n; j++) {
		if (j)
			*w++ = ',';
		memcpy(w, "\n    \"", 6);
		w += 6;
		memcpy(w, nl->v[j].id, ROUTE_SHARD_ID_LEN);
		w += ROUTE_SHARD_ID_LEN;
		*w++ = '"';
	}
	size_t tail = last_len - (size_t)(b - p->last);
	memcpy(w, b, tail + 1);
	w += tail;
	*out = t;
	*out_len = (size_t)(w - t);
	return 0;
}

/* publisher_publish_endpoints when its premise holds (the last publish kept
 * every slot and this table has the same arrays): the shards of the named
 * backends that changed are written, and the index is the last one's text
 * with their ids and the generation replaced, so an endpoint change costs
 * its backends, not every host, backend and certificate the index names.
 * Returns 1 (nothing done) when the premise or the last text is not there;
 * else 0 or the error. */
static int publish_endpoints_in_place(struct publisher *p, struct route_table *t,
                                      const size_t *dirty, size_t ndirty, bool *written)
{
	size_t nmaps[4] = {t->nbackends, t->ncerts, t->ncas, t->nbackend_tls};
	if (!p->last || !p->maps_ok || !p->bk || p->nbprev != p->backends.n ||
	    (!p->gc_off && p->named[1].n != p->backends.n))
		return 1;
	for (size_t i = 0; i < 4; i++)
		if (p->nmaps[i] != nmaps[i])
			return 1;
	size_t *slot = calloc(ndirty + 1, sizeof(*slot)), n = 0, ndistinct = 0, nsl = 0;
	struct slot_text *sl = calloc(ndirty + 1, sizeof(*sl));
	struct id_lists nl = {0};
	char *sdir = shard_dir(p), *text = NULL;
	int rc = WEIR_ENOMEM;
	if (!slot || !sl || !sdir)
		goto out;
	rc = 1;
	for (size_t e = 0; e < ndirty; e++) {
		if (dirty[e] >= t->nbackends)
			continue;
		size_t v = p->maps[0][dirty[e]];
		if (v >= p->nbprev || p->bk[v] == NONE || !p->backend_texts.text[p->bk[v]] ||
		    !p->bprev[v].name)
			goto out;
		slot[n++] = dirty[e];
	}
	qsort(slot, n, sizeof(*slot), cmp_size);
	for (size_t e = 0; e < n; e++) {
		if (e && slot[e] == slot[e - 1])
			continue;
		ndistinct++;
		size_t v = p->maps[0][slot[e]];
		if (!route_backend_equal(&p->bprev[v], &t->backends[slot[e]])) {
			sl[nsl].v = v;
			sl[nsl++].i = slot[e];
		}
	}
	qsort(sl, nsl, sizeof(*sl), cmp_size); /* by slot: v is the first member */
	size_t last_len = strlen(p->last), gen_at, gen_len;
	/* Backends named through lists: the changed lists are written and the
	 * index's backend_lists array replaced; else the ids in the index. */
	bool listed = p->lists[1].n > 0;
	if (listed != (p->list_min && p->backends.n >= p->list_min) ||
	    (listed && (p->gc_off || p->named[1].n != p->backends.n)))
		goto out;
	if (listed ? !index_places(p->last, last_len, NULL, 0, &gen_at, &gen_len)
	           : !index_places(p->last, last_len, sl, nsl, &gen_at, &gen_len))
		goto out;

	memset(&p->stats, 0, sizeof(p->stats));
	p->maps_ok = false; /* until this publish is through */
	p->stats.host_shards = p->stats.hosts_reused = t->nhosts;
	p->stats.backend_shards = t->nbackends;
	p->stats.backends_reused = t->nbackends - ndistinct;
	for (size_t v = 0; v < p->certs.n; v++)
		p->stats.cert_shards += p->certs.key[v] != NULL;
	if (!nsl) { /* the same index but for the generation: not written */
		t->generation = p->generation;
		p->maps_ok = true;
		rc = 0;
		goto out;
	}
	for (size_t e = 0; e < nsl; e++) {
		const struct route_backend *cur = &t->backends[sl[e].i];
		if ((rc = route_backend_serialize(cur, &sl[e].text, &sl[e].len)) != 0)
			goto out;
		route_shard_id(sl[e].text, sl[e].len, sl[e].id);
		if ((rc = put_shard(p, sdir, sl[e].id, sl[e].text, sl[e].len)) != 0)
			goto out;
	}
	/* The last text with the new generation and ids. */
	char num[24];
	int nlen = snprintf(num, sizeof(num), "%llu", (unsigned long long)(p->generation + 1));
	size_t len = last_len - gen_len + (size_t)nlen;
	if (listed) {
		rc = lists_in_place(p, sl, nsl, sdir, num, gen_at, gen_len, &nl, &text, &len);
		if (rc != 0)
			goto out;
	} else {
		rc = WEIR_ENOMEM;
		if (!(text = malloc(len + 1)))
			goto out;
		memcpy(text, p->last, gen_at);
		memcpy(text + gen_at, num, (size_t)nlen);
		memcpy(text + gen_at + nlen, p->last + gen_at + gen_len,
		       last_len - gen_at - gen_len + 1);
		for (size_t e = 0; e < nsl; e++)
			memcpy(text + sl[e].at - gen_len + nlen, sl[e].id, ROUTE_SHARD_ID_LEN);
	}
	if ((rc = write_atomic(p->dir, ROUTE_TABLE_FILE, text, len, true)) != 0)
		goto out;
	fsync_dir(p->dir);
	free(p->last);
	p->last = text;
	text = NULL;
	p->generation++;
	t->generation = p->generation;
	*written = true;
	for (size_t e = 0; e < nsl; e++) {
		size_t v = sl[e].v;
		if (!p->gc_off)
			named_set(p, &p->named[1], v, sl[e].id, true);
		route_backend_cleanup(&p->bprev[v]);
		/* failed: compared by its text next time */
		copy_backend(&p->bprev[v], &t->backends[sl[e].i]);
		rc =
		    shard_set_replace(&p->backend_texts, p->bk[v], sl[e].text, sl[e].len, sl[e].id);
		sl[e].text = NULL;
		if (rc != 0)
			goto out;
	}
	if (listed && lists_commit(p, 1, &nl) != 0)
		p->gc_off = true;
	collect_garbage(p, sdir);
	p->maps_ok = true;
	rc = 0;
out:
	free(nl.v);
	for (size_t e = 0; sl && e < nsl; e++)
		free(sl[e].text);
	free(text);
	free(sdir);
	free(slot);
	free(sl);
	return rc;
}

/* changed: as for publisher_publish_changed. dirty: NULL, or the indexes
 * into t->backends of the only backends that may differ from the last table
 * published, which had the same backends, certificates, CAs and profiles in
 * the same order (publisher_publish_endpoints; none for
 * publisher_publish_hosts). */
/* The backend slots of the index taken over at start, for the first
 * publish (t): a backend of t whose shard text has an id the index named
 * takes that position without its shard being read (a shard's bytes hold
 * its backend's name, so this is where that name was), and its text and id
 * are kept so that publish does not hash it again; the positions left
 * (backends changed or gone while the controller was down) are named by
 * reading their shards. The same slots as reading every backend shard at
 * start, without 10,000 file reads there when nothing changed. */
static int adopt_backends(struct publisher *p, const struct route_table *t, const char *sdir)
{
	const struct named *nm = &p->named[1];
	struct shard_set *bs = &p->backend_texts;
	struct bmap ids = {0};
	struct filebuf b = {0};
	char err[256], id[ROUTE_SHARD_ID_LEN + 1];
	int rc = WEIR_ENOMEM, sfd = -1;
	p->backends_pending = false;
	shard_set_free(bs);
	bs->text = calloc(nm->n + 1, sizeof(*bs->text));
	bs->len = calloc(nm->n + 1, sizeof(*bs->len));
	bs->id = calloc(nm->n + 1, sizeof(*bs->id));
	if (!bs->text || !bs->len || !bs->id || slots_grow(&p->backends, nm->n + 1) != 0 ||
	    bmap_reserve(&ids, nm->n) != 0)
		goto out;
	for (size_t v = 0; v < nm->n; v++) {
		p->backends.key[v] = NULL;
		if (nm->id[v][0] && bmap_put(&ids, nm->id[v], ROUTE_SHARD_ID_LEN, v) != 0)
			goto out;
	}
	p->backends.n = nm->n;
	for (size_t i = 0; i < t->nbackends; i++) {
		const char *name = t->backends[i].name ? t->backends[i].name : "";
		char *text = NULL, *key;
		size_t len, v;
		if (route_backend_serialize(&t->backends[i], &text, &len) != 0)
			goto out;
		route_shard_id(text, len, id);
		if (!bmap_get(&ids, id, ROUTE_SHARD_ID_LEN, &v) || p->backends.key[v] ||
		    !(key = strdup(name))) {
			free(text);
			continue;
		}
		if (slots_set(&p->backends, v, key, strlen(key)) != 0) {
			free(text);
			goto out;
		}
		if (!files_find(&p->files, id)) {
			free(text); /* not on disk: publish writes it */
			continue;
		}
		size_t k = bs->n++;
		bs->text[k] = text;
		bs->len[k] = len;
		memcpy(bs->id[k], id, sizeof(id));
		if (bmap_put(&bs->map, text, len, k) != 0)
			goto out;
	}
	for (size_t v = 0; v < nm->n; v++) {
		struct route_backend be = {0};
		size_t at;
		if (p->backends.key[v] || !nm->id[v][0])
			continue;
		if (sfd < 0 && (sfd = open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			break; /* holes: publish places the backends left */
		if (read_shard(p, sfd, nm->id[v], &b) &&
		    route_backend_shard_parse(b.p, b.len, &be, err, sizeof(err)) == 0 && be.name &&
		    be.name[0] && !bmap_get(&p->backends.map, be.name, strlen(be.name), &at)) {
			int src = slots_set(&p->backends, v, be.name, strlen(be.name));
			be.name = NULL; /* taken */
			if (src != 0) {
				route_backend_cleanup(&be);
				goto out;
			}
		}
		route_backend_cleanup(&be);
	}
	rc = 0;
out:
	if (sfd >= 0)
		close(sfd);
	free(b.p);
	bmap_clear(&ids);
	return rc;
}

static int publish_v2(struct publisher *p, struct route_table *t, char *const *changed,
                      size_t nchanged, const size_t *dirty, size_t ndirty, bool *written)
{
	size_t *bmap = calloc(t->nbackends + 1, sizeof(*bmap));
	size_t *cmap = calloc(t->ncerts + 1, sizeof(*cmap));
	size_t *amap = calloc(t->ncas + 1, sizeof(*amap));
	size_t *pmap = calloc(t->nbackend_tls + 1, sizeof(*pmap));
	bool *bfresh = NULL, *cfresh = NULL, *afresh = NULL, *pfresh = NULL;
	struct route_index ix = {0};
	struct id_lists nl[ROUTE_INDEX_KINDS] = {{0}};
	struct route_table it;
	struct shard_set hs = {0}, bs = {0};
	struct route *rbuf = NULL;
	size_t rcap = 0, *host_k = NULL, *binv = NULL, *newbk = NULL;
	bool moved = false;  /* texts taken from p->hosts into hs */
	bool bmoved = false; /* ... from p->backend_texts into bs */
	bool *bsame = NULL;  /* slot's backend equals the last index's */
	bool *bdirty = NULL; /* slot's backend may differ (endpoint change) */
	char *sdir = shard_dir(p), *text = NULL;
	size_t len;
	bool compacted = false;
	int rc = WEIR_ENOMEM, in_place = 0;

	memset(&it, 0, sizeof(it));
	memset(&p->stats, 0, sizeof(p->stats));
	if (!bmap || !cmap || !amap || !pmap || !sdir)
		goto out;
	/* An endpoint or hosts-only change keeps every slot: the last maps hold. */
	bool same_slots = dirty && p->maps_ok && p->nmaps[0] == t->nbackends &&
	                  p->nmaps[1] == t->ncerts && p->nmaps[2] == t->ncas &&
	                  p->nmaps[3] == t->nbackend_tls;
	size_t *const mv[4] = {bmap, cmap, amap, pmap};
	if (same_slots) {
		for (size_t i = 0; i < 4; i++)
			memcpy(mv[i], p->maps[i], p->nmaps[i] * sizeof(size_t));
		bfresh = calloc(p->backends.n + 1, sizeof(*bfresh));
		cfresh = calloc(p->certs.n + 1, sizeof(*cfresh));
		if (!bfresh || !cfresh)
			goto out;
	} else if ((p->backends_pending && (rc = adopt_backends(p, t, sdir)) != 0) ||
	           (rc = assign(p, t, ARR_BACKENDS, bmap, &bfresh, &compacted)) != 0 ||
	           (rc = assign(p, t, ARR_CERTS, cmap, &cfresh, &compacted)) != 0 ||
	           (rc = assign(p, t, ARR_CAS, amap, &afresh, &compacted)) != 0 ||
	           (rc = assign(p, t, ARR_PROFILES, pmap, &pfresh, &compacted)) != 0) {
		goto out;
	}
	p->maps_ok = false; /* until this publish is through */
	p->stats.compacted = compacted;
	struct slot_maps maps = {bmap, cmap, amap, pmap};
	rc = WEIR_ENOMEM;

	/* Certificate shards: written when their slot was (re)filled. */
	ix.ncerts = p->certs.n;
	ix.certs = calloc(ix.ncerts + 1, sizeof(*ix.certs));
	size_t *cinv = calloc(ix.ncerts + 1, sizeof(*cinv));
	if (!ix.certs || !cinv) {
		free(cinv);
		goto out;
	}
	for (size_t i = t->ncerts; i-- > 0;)
		cinv[cmap[i]] = i;
	rc = 0;
	for (size_t v = 0; v < p->certs.n && rc == 0; v++) {
		static char hole[] = "";
		if (!p->certs.key[v]) {
			ix.certs[v] = hole;
			continue;
		}
		if (cfresh[v] || !p->certs.id[v][0]) {
			if (!t->certs[cinv[v]].cert_pem || !t->certs[cinv[v]].key_pem) {
				/* released (publisher_release_pems) */
				p->certs.id[v][0] = '\0';
				rc = WEIR_EAGAIN;
				break;
			}
			if ((rc = route_cert_serialize(&t->certs[cinv[v]], &text, &len)) != 0)
				break;
			route_shard_id(text, len, p->certs.id[v]);
			rc = put_shard(p, sdir, p->certs.id[v], text, len);
			free(text);
			text = NULL;
			if (rc != 0)
				p->certs.id[v][0] = '\0'; /* not on disk: written next time */
		}
		ix.certs[v] = p->certs.id[v];
		p->stats.cert_shards++;
	}
	free(cinv);
	if (rc != 0)
		goto out;

	/* Backend shards, one per slot in use. */
	rc = WEIR_ENOMEM;
	ix.nbackends = p->backends.n;
	ix.backends = calloc(ix.nbackends + 1, sizeof(*ix.backends));
	bs.text = calloc(ix.nbackends + 1, sizeof(*bs.text));
	bs.len = calloc(ix.nbackends + 1, sizeof(*bs.len));
	bs.id = calloc(ix.nbackends + 1, sizeof(*bs.id));
	binv = calloc(ix.nbackends + 1, sizeof(*binv));
	if (!ix.backends || !bs.text || !bs.len || !bs.id || !binv ||
	    bmap_reserve(&bs.map, ix.nbackends) != 0)
		goto out;
	rc = 0;
	for (size_t v = 0; v < ix.nbackends; v++)
		binv[v] = NONE;
	for (size_t i = t->nbackends; i-- > 0;)
		binv[bmap[i]] = i;
	newbk = calloc(ix.nbackends + 1, sizeof(*newbk));
	bsame = calloc(ix.nbackends + 1, sizeof(*bsame));
	if (!newbk || !bsame) {
		rc = WEIR_ENOMEM;
		goto out;
	}
	if (same_slots) { /* only these may differ: the others are not compared */
		if (!(bdirty = calloc(ix.nbackends + 1, sizeof(*bdirty)))) {
			rc = WEIR_ENOMEM;
			goto out;
		}
		for (size_t e = 0; e < ndirty; e++)
			if (dirty[e] < t->nbackends)
				bdirty[bmap[dirty[e]]] = true;
	}
	for (size_t v = 0; v < ix.nbackends; v++) {
		static char hole[] = "";
		size_t old;
		newbk[v] = NONE;
		if (binv[v] == NONE) {
			ix.backends[v] = hole;
			continue;
		}
		const struct route_backend *cur = &t->backends[binv[v]];
		bsame[v] = v < p->nbprev && p->bprev[v].name &&
		           (bdirty ? !bdirty[v] : route_backend_equal(&p->bprev[v], cur));
		if (bsame[v] && changed && !compacted && p->bk[v] != NONE &&
		    p->backend_texts.text[p->bk[v]]) {
			/* as in the last index: its text and id move over */
			size_t k;
			bmoved = true;
			if ((rc = shard_set_take(&bs, &p->backend_texts, p->bk[v], &k)) != 0)
				break;
			ix.backends[v] = bs.id[k];
			newbk[v] = k;
			p->stats.backend_shards++;
			p->stats.backends_reused++;
			continue;
		}
		if ((rc = route_backend_serialize(cur, &text, &len)) != 0)
			break;
		size_t k = bs.n++;
		bs.text[k] = text;
		bs.len[k] = len;
		text = NULL;
		/* A shard the last index named is on disk (the garbage
		 * collection keeps it): no need to look. */
		if (bmap_get(&p->backend_texts.map, bs.text[k], len, &old)) {
			memcpy(bs.id[k], p->backend_texts.id[old], ROUTE_SHARD_ID_LEN + 1);
		} else {
			route_shard_id(bs.text[k], len, bs.id[k]);
			if ((rc = put_shard(p, sdir, bs.id[k], bs.text[k], len)) != 0)
				break;
		}
		if ((rc = bmap_put(&bs.map, bs.text[k], len, k)) != 0)
			break;
		ix.backends[v] = bs.id[k];
		newbk[v] = k;
		p->stats.backend_shards++;
	}
	if (rc != 0)
		goto out;

	/* Host shards, each with its indexes turned into slots. The caller
	 * named the hosts that may have changed since the last index; another
	 * host with a name the last index had is the same host, and its shard
	 * the same text while no slot was renumbered. */
	rc = WEIR_ENOMEM;
	ix.hosts = calloc(t->nhosts + 1, sizeof(*ix.hosts));
	if (!ix.hosts)
		goto out;
	bool reuse = changed && p->hosts_known && !compacted;
	p->hosts_known = false;
	in_place = reuse ? hosts_in_place(p, t, changed, nchanged, &maps, sdir, &ix) : 0;
	if (in_place < 0) {
		rc = in_place;
		goto out;
	}
	size_t pj = 0; /* walks p->host_name */
	if (!in_place) {
		hs.text = calloc(t->nhosts + 1, sizeof(*hs.text));
		hs.len = calloc(t->nhosts + 1, sizeof(*hs.len));
		hs.id = calloc(t->nhosts + 1, sizeof(*hs.id));
		host_k = calloc(t->nhosts + 1, sizeof(*host_k));
		if (!hs.text || !hs.len || !hs.id || !host_k ||
		    bmap_reserve(&hs.map, t->nhosts) != 0)
			goto out;
	}
	for (size_t i = 0; i < t->nhosts && !in_place; i++) {
		struct route_host h = t->hosts[i];
		/* both lists are sorted by name: walk the last one alongside */
		int cmp = 1;
		while (reuse && pj < p->nhost_k && (cmp = strcmp(p->host_name[pj], h.name)) < 0)
			pj++;
		size_t prev = pj;
		if (reuse && cmp == 0 && !in_sorted(changed, nchanged, h.name)) {
			/* the last index's shard, text and id move over */
			size_t k;
			moved = true;
			if ((rc = shard_set_take(&hs, &p->hosts, p->host_k[prev], &k)) != 0)
				goto out;
			ix.hosts[i] = hs.id[k];
			host_k[i] = k;
			p->stats.hosts_reused++;
			continue;
		}
		if ((rc = host_text(&h, &maps, &rbuf, &rcap, &text, &len)) != 0)
			goto out;
		size_t k = hs.n++, old;
		hs.text[k] = text;
		hs.len[k] = len;
		text = NULL;
		if (bmap_get(&p->hosts.map, hs.text[k], len, &old)) {
			/* named by the last index: on disk */
			memcpy(hs.id[k], p->hosts.id[old], ROUTE_SHARD_ID_LEN + 1);
		} else {
			route_shard_id(hs.text[k], len, hs.id[k]);
			if ((rc = put_shard(p, sdir, hs.id[k], hs.text[k], len)) != 0)
				goto out;
		}
		if ((rc = bmap_put(&hs.map, hs.text[k], len, k)) != 0)
			goto out;
		ix.hosts[i] = hs.id[k];
		host_k[i] = k;
	}
	if (!in_place) {
		ix.nhosts = hs.n;
		p->stats.host_shards = hs.n;
	}

	/* The index: the arrays in slot order, holes as placeholders. */
	rc = WEIR_ENOMEM;
	it.version = ROUTE_INDEX_VERSION;
	it.generation = p->generation + 1;
	it.settings = t->settings;
	it.ncas = p->cas.n;
	it.nbackend_tls = p->profiles.n;
	it.npassthrough = t->npassthrough;
	it.cas = calloc(it.ncas + 1, sizeof(*it.cas));
	it.backend_tls = calloc(it.nbackend_tls + 1, sizeof(*it.backend_tls));
	it.passthrough = calloc(it.npassthrough + 1, sizeof(*it.passthrough));
	if (!it.cas || !it.backend_tls || !it.passthrough)
		goto out;
	for (size_t v = 0; v < it.nbackend_tls; v++)
		it.backend_tls[v].verify_depth = 1;
	for (size_t i = t->ncas; i-- > 0;)
		it.cas[amap[i]] = t->cas[i];
	for (size_t i = t->nbackend_tls; i-- > 0;)
		it.backend_tls[pmap[i]] = t->backend_tls[i];
	for (size_t i = 0; i < t->npassthrough; i++) {
		it.passthrough[i] = t->passthrough[i];
		it.passthrough[i].backend = remap(t->passthrough[i].backend, bmap);
	}
	it.default_cert = remap(t->default_cert, cmap);
	it.default_backend = remap(t->default_backend, bmap);
	{
		char *const *arr[ROUTE_INDEX_KINDS] = {ix.hosts, ix.backends, ix.certs};
		size_t narr[ROUTE_INDEX_KINDS] = {ix.nhosts, ix.nbackends, ix.ncerts};
		for (int k = 0; k < ROUTE_INDEX_KINDS; k++) {
			if ((rc = make_lists(p, k, arr[k], narr[k], sdir, &nl[k])) != 0)
				goto out;
			ix.lists[k] = nl[k].v;
			ix.nlists[k] = nl[k].n;
		}
	}
	if ((rc = route_index_serialize(&it, &ix, &text, &len)) != 0)
		goto out;
	if (len > ROUTE_TABLE_MAX_BYTES) {
		log_error(COMPONENT, "index of %zu bytes is over the %u byte limit; not published",
		          len, ROUTE_TABLE_MAX_BYTES);
		rc = WEIR_ETOOBIG;
		goto out;
	}
	/* The next compare needs these shards' text whatever happens below. */
	if (in_place) {
		p->hosts_known = true; /* p->hosts and the name list are current */
		goto hosts_done;
	}
	shard_set_free(&p->hosts);
	p->hosts = hs;
	memset(&hs, 0, sizeof(hs));
	for (size_t i = 0; i < p->nhost_k; i++)
		free(p->host_name[i]);
	free(p->host_name);
	p->host_name = calloc(t->nhosts + 1, sizeof(*p->host_name));
	for (size_t i = 0; p->host_name && i < t->nhosts; i++)
		if (!(p->host_name[i] = strdup(t->hosts[i].name))) {
			for (size_t j = 0; j < i; j++)
				free(p->host_name[j]);
			free(p->host_name);
			p->host_name = NULL;
		}
	free(p->host_k);
	p->host_k = host_k;
	p->nhost_k = p->host_name ? t->nhosts : 0;
	host_k = NULL;
	p->hosts_known = p->host_name != NULL;
hosts_done:
	shard_set_free(&p->backend_texts);
	p->backend_texts = bs;
	memset(&bs, 0, sizeof(bs));
	bmoved = false;
	/* the copies follow the slots (a failed copy: that slot is compared
	 * by its text next time) */
	{
		struct route_backend *nprev = calloc(ix.nbackends + 1, sizeof(*nprev));
		if (!nprev) {
			bprev_free(p);
		} else {
			for (size_t v = 0; v < ix.nbackends; v++) {
				if (newbk[v] != NONE && bsame[v]) {
					nprev[v] = p->bprev[v];
					memset(&p->bprev[v], 0, sizeof(p->bprev[v]));
				} else if (newbk[v] != NONE) {
					copy_backend(&nprev[v], &t->backends[binv[v]]);
				}
			}
			bprev_free(p);
			p->bprev = nprev;
			p->bk = newbk;
			p->nbprev = ix.nbackends;
			newbk = NULL;
		}
	}
	if (p->last && same_but_generation(p->last, text)) {
		t->generation = p->generation;
		keep_maps(p, t, mv);
		rc = 0;
		goto out;
	}
	/* Shards first, durably, then the index that names them. */
	if (p->stats.shards_written + p->stats.lists_written > PUBLISH_FSYNC_EACH_MAX) {
		int dfd = open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			syncfs(dfd);
			close(dfd);
		}
	}
	if ((rc = write_atomic(p->dir, ROUTE_TABLE_FILE, text, len, true)) != 0)
		goto out;
	fsync_dir(p->dir);
	free(p->last);
	p->last = fitted(text, len);
	text = NULL;
	p->generation++;
	t->generation = p->generation;
	*written = true;
	named_update(p, &p->named[0], ix.hosts, ix.nhosts);
	named_update(p, &p->named[1], ix.backends, ix.nbackends);
	named_update(p, &p->named[2], ix.certs, ix.ncerts);
	for (int k = 0; k < ROUTE_INDEX_KINDS; k++)
		if (lists_commit(p, k, &nl[k]) != 0)
			p->gc_off = true; /* counts unknown from here: nothing is removed */
	collect_garbage(p, sdir);
	keep_maps(p, t, mv);
	rc = 0;
out:
	free(host_k);
	if (moved && hs.text) /* failed after moving texts: p->hosts' map names them */
		shard_set_free(&p->hosts);
	if (bmoved) { /* the same for backends */
		shard_set_free(&p->backend_texts);
		bprev_free(p);
	}
	free(binv);
	free(newbk);
	free(bsame);
	free(bdirty);
	shard_set_free(&hs);
	shard_set_free(&bs);
	free(ix.hosts);
	free(ix.backends);
	free(ix.certs);
	for (int k = 0; k < ROUTE_INDEX_KINDS; k++)
		free(nl[k].v);
	free(it.cas);
	free(it.backend_tls);
	free(it.passthrough);
	free(rbuf);
	free(text);
	free(sdir);
	free(bmap);
	free(cmap);
	free(amap);
	free(pmap);
	free(bfresh);
	free(cfresh);
	free(afresh);
	free(pfresh);
	return rc;
}

static int publish_v1(struct publisher *p, struct route_table *t, bool *written)
{
	char *text = NULL;
	size_t len;
	int rc;
	t->generation = p->generation + 1;
	rc = route_table_serialize(t, &text, &len);
	if (rc)
		goto out;
	if (len > ROUTE_TABLE_MAX_BYTES) {
		/* The proxy would refuse it whole; the table on disk stays. */
		log_error(COMPONENT, "table of %zu bytes is over the %u byte limit; not published",
		          len, ROUTE_TABLE_MAX_BYTES);
		rc = WEIR_ETOOBIG;
		goto out;
	}
	/* same content as the last table written: nothing to do */
	if (p->last && same_but_generation(p->last, text)) {
		t->generation = p->generation;
		goto out;
	}
	if ((rc = write_atomic(p->dir, ROUTE_TABLE_FILE, text, len, true)) != 0)
		goto out;
	fsync_dir(p->dir);
	/* Kept to compare the next table against (generation aside). */
	free(p->last);
	p->last = fitted(text, len);
	text = NULL;
	p->generation++;
	*written = true;
out:
	free(text);
	return rc;
}

static int publish(struct publisher *p, struct route_table *t, char *const *changed,
                   size_t nchanged, const size_t *dirty, size_t ndirty, bool *written)
{
	*written = false;
	if (p->format == PUBLISH_V1)
		return publish_v1(p, t, written);
	uint64_t gen = t->generation;
	int rc = 1;
	if (dirty && ndirty)
		rc = publish_endpoints_in_place(p, t, dirty, ndirty, written);
	if (rc == 1)
		rc = publish_v2(p, t, changed, nchanged, dirty, ndirty, written);
	if (rc != 0)
		t->generation = gen;
	return rc;
}

int publisher_publish(struct publisher *p, struct route_table *t, bool *written)
{
	return publish(p, t, NULL, 0, NULL, 0, written);
}

void publisher_release_pems(const struct publisher *p, struct route_table *t)
{
	if (p->format == PUBLISH_V1)
		return;
	for (size_t i = 0; i < t->ncerts; i++) {
		free(t->certs[i].cert_pem);
		free(t->certs[i].key_pem);
		t->certs[i].cert_pem = t->certs[i].key_pem = NULL;
	}
}

int publisher_publish_changed(struct publisher *p, struct route_table *t, char *const *changed,
                              size_t nchanged, bool *written)
{
	static char *none[1];
	return publish(p, t, changed ? changed : none, nchanged, NULL, 0, written);
}

int publisher_publish_endpoints(struct publisher *p, struct route_table *t, const size_t *backends,
                                size_t n, bool *written)
{
	static char *none[1];
	static const size_t nothing[1];
	return publish(p, t, none, 0, backends ? backends : nothing, n, written);
}

int publisher_publish_hosts(struct publisher *p, struct route_table *t, char *const *changed,
                            size_t nchanged, bool *written)
{
	static char *none[1];
	static const size_t nothing[1];
	return publish(p, t, changed ? changed : none, nchanged, nothing, 0, written);
}
