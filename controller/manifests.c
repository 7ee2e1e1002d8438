/* controller/manifests.c - YAML files -> json-c objects -> store. */
#include "manifests.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <yaml.h>

#include "error.h"
#include "log.h"

#define MAX_DEPTH 64
#define MAX_NODES 1000000          /* converted nodes per document (alias bombs) */
#define MAX_FILE_BYTES (64u << 20) /* one manifest file */

/* ------------------------------------------------------------ YAML->JSON */

static bool is_plain_null(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

static int plain_bool(const char *s)
{
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return 1;
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return 0;
	return -1;
}

static bool plain_int(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	const char *p = s;
	int base = 10;
	if (*p == '+' || *p == '-')
		p++;
	if (!*p)
		return false;
	if (p[0] == '0' && p[1] == 'x') {
		base = 16;
		if (p != s)
			return false;
	} else if (p[0] == '0' && p[1] == 'o') {
		if (p != s || !p[2])
			return false;
		long long v = strtoll(p + 2, &end, 8);
		if (*end || errno)
			return false;
		*out = v;
		return true;
	}
	for (const char *q = base == 16 ? p + 2 : p; *q; q++)
		if (!(base == 16 ? isxdigit((unsigned char)*q) : (*q >= '0' && *q <= '9')))
			return false;
	long long v = strtoll(s, &end, base);
	if (*end || errno)
		return false;
	*out = v;
	return true;
}

static bool plain_float(const char *s, double *out)
{
	/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
	const char *p = s;
	bool digits = false;
	if (*p == '+' || *p == '-')
		p++;
	while (*p >= '0' && *p <= '9') {
		p++;
		digits = true;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits = true;
		}
	}
	if (!digits)
		return false;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p)
		return false;
	char *end;
	*out = strtod(s, &end);
	return *end == '\0';
}

static json_object *scalar_to_json(yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;
	/* The document API tags every untagged scalar !!str, so an explicit tag
	 * cannot be told apart: quoting is what keeps a value a string. */
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_object_new_string_len(s, (int)n->data.scalar.length);
	if (is_plain_null(s))
		return NULL;
	int b = plain_bool(s);
	if (b >= 0)
		return json_object_new_boolean(b);
	int64_t iv;
	if (plain_int(s, &iv))
		return json_object_new_int64(iv);
	double dv;
	if (plain_float(s, &dv))
		return json_object_new_double(dv);
	return json_object_new_string_len(s, (int)n->data.scalar.length);
}

struct conv {
	yaml_document_t *doc;
	size_t nodes;
	bool too_big;
};

static json_object *node_to_json(struct conv *c, yaml_node_t *n, int depth)
{
	if (!n || depth > MAX_DEPTH || ++c->nodes > MAX_NODES) {
		c->too_big = true;
		return NULL;
	}
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return scalar_to_json(n);
	case YAML_SEQUENCE_NODE: {
		json_object *arr = json_object_new_array();
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top; it++)
			json_object_array_add(
			    arr, node_to_json(c, yaml_document_get_node(c->doc, *it), depth + 1));
		return arr;
	}
	case YAML_MAPPING_NODE: {
		json_object *obj = json_object_new_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
			if (!k || k->type != YAML_SCALAR_NODE)
				continue; /* complex keys have no JSON form */
			json_object *v =
			    node_to_json(c, yaml_document_get_node(c->doc, p->value), depth + 1);
			json_object_object_add(obj, (const char *)k->data.scalar.value, v);
		}
		return obj;
	}
	default:
		return NULL;
	}
}

int manifests_yaml_to_json(const char *text, size_t len,
                           void (*each)(json_object *doc, unsigned line, void *arg), void *arg,
                           char *err, size_t errlen)
{
	yaml_parser_t parser;
	int rc = 0;
	if (!yaml_parser_initialize(&parser))
		return WEIR_ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	for (;;) {
		yaml_document_t doc;
		if (!yaml_parser_load(&parser, &doc)) {
			char ctx[64] = "";
			if (parser.context && parser.context_mark.line != parser.problem_mark.line)
				snprintf(ctx, sizeof(ctx), " started on line %lu",
				         (unsigned long)parser.context_mark.line + 1);
			snprintf(err, errlen, "line %lu: %s%s%s%s",
			         (unsigned long)parser.problem_mark.line + 1,
			         parser.problem ? parser.problem : "YAML error",
			         parser.context ? " " : "", parser.context ? parser.context : "",
			         ctx);
			rc = WEIR_EPARSE;
			break;
		}
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		if (!root) {
			yaml_document_delete(&doc);
			break; /* end of stream */
		}
		struct conv c = {.doc = &doc};
		json_object *j = node_to_json(&c, root, 0);
		unsigned line = (unsigned)root->start_mark.line + 1;
		yaml_document_delete(&doc);
		if (c.too_big) {
			json_object_put(j);
			snprintf(err, errlen, "line %u: document nested too deep or too large",
			         line);
			rc = WEIR_ETOOBIG;
			break;
		}
		if (j)
			each(j, line, arg);
	}
	yaml_parser_delete(&parser);
	return rc;
}

/* ------------------------------------------------------------- directory */

struct objs {
	json_object **items;
	size_t n, cap;
};

/* One object of a file, as read. */
struct fdoc {
	int kind; /* enum store_kind */
	json_object *doc;
};

/* What a file gave when it was last read, and what identified its
 * contents then: a file whose stat still gives the same device, inode,
 * size, modification and change times (nanoseconds) is not read again. */
struct cached_file {
	char *name;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	struct fdoc *docs; /* one reference each */
	size_t n;
};

struct manifests_cache {
	struct cached_file *files; /* sorted by name */
	size_t n;
};

struct load {
	struct objs kinds[STORE_KIND_COUNT];
	struct diag_list *diags;
	const char *file;
	struct fdoc *docs; /* the objects of the file being read, in order */
	size_t ndocs, capdocs;
};

static void file_diag(struct diag_list *d, const char *file, unsigned line, const char *reason,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void file_diag(struct diag_list *d, const char *file, unsigned line, const char *reason,
                      const char *fmt, ...)
{
	char msg[512], name[4200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(name, sizeof(name), "%s:%u", file, line);
	struct diag *grown = realloc(d->items, (d->n + 1) * sizeof(*grown));
	if (!grown)
		abort();
	d->items = grown;
	struct diag *g = &d->items[d->n++];
	g->kind = strdup("File");
	g->ns = strdup("");
	g->name = strdup(name);
	g->uid = strdup("");
	g->key = NULL;
	g->reason = strdup(reason);
	g->message = strdup(msg);
	if (!g->kind || !g->ns || !g->name || !g->uid || !g->reason || !g->message)
		abort();
}

static int kind_of(const char *kind, bool *namespaced)
{
	static const struct {
		const char *name;
		enum store_kind k;
		bool namespaced;
	} kinds[] = {
	    {"Ingress", STORE_INGRESS, true}, {"IngressClass", STORE_INGRESS_CLASS, false},
	    {"Service", STORE_SERVICE, true}, {"EndpointSlice", STORE_ENDPOINT_SLICE, true},
	    {"Secret", STORE_SECRET, true},   {"ConfigMap", STORE_CONFIGMAP, true},
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kind, kinds[i].name) == 0) {
			*namespaced = kinds[i].namespaced;
			return (int)kinds[i].k;
		}
	return -1;
}

static void add_object(struct load *l, json_object *doc, unsigned line)
{
	json_object *kv = NULL, *meta = NULL, *name = NULL;
	if (!json_object_is_type(doc, json_type_object) ||
	    !json_object_object_get_ex(doc, "kind", &kv) ||
	    !json_object_is_type(kv, json_type_string)) {
		file_diag(l->diags, l->file, line, "InvalidManifest", "document has no kind");
		json_object_put(doc);
		return;
	}
	const char *kind = json_object_get_string(kv);
	if (strcmp(kind, "List") == 0) {
		json_object *items = NULL;
		if (json_object_object_get_ex(doc, "items", &items) &&
		    json_object_is_type(items, json_type_array))
			for (size_t i = 0; i < json_object_array_length(items); i++)
				add_object(l, json_object_get(json_object_array_get_idx(items, i)),
				           line);
		json_object_put(doc);
		return;
	}
	bool namespaced;
	int k = kind_of(kind, &namespaced);
	if (k < 0) {
		json_object_put(doc); /* not ours (Deployment, ...): skipped */
		return;
	}
	if (!json_object_object_get_ex(doc, "metadata", &meta) ||
	    !json_object_is_type(meta, json_type_object) ||
	    !json_object_object_get_ex(meta, "name", &name) ||
	    !json_object_is_type(name, json_type_string) || !json_object_get_string_len(name)) {
		file_diag(l->diags, l->file, line, "InvalidManifest", "%s has no metadata.name",
		          kind);
		json_object_put(doc);
		return;
	}
	json_object *ns = NULL;
	if (namespaced && (!json_object_object_get_ex(meta, "namespace", &ns) ||
	                   !json_object_is_type(ns, json_type_string)))
		json_object_object_add(meta, "namespace", json_object_new_string("default"));
	store_share(doc); /* now: what it frees is reused by the next document */
	if (l->ndocs == l->capdocs) {
		l->capdocs = l->capdocs ? l->capdocs * 2 : 16;
		l->docs = realloc(l->docs, l->capdocs * sizeof(*l->docs));
		if (!l->docs)
			abort();
	}
	l->docs[l->ndocs++] = (struct fdoc){k, doc};
}

/* Append obj (one reference, taken) to the objects of its kind. */
static void objs_add(struct load *l, int kind, json_object *obj)
{
	struct objs *o = &l->kinds[kind];
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 16;
		o->items = realloc(o->items, o->cap * sizeof(*o->items));
		if (!o->items)
			abort();
	}
	o->items[o->n++] = obj;
}

static void each_doc(json_object *doc, unsigned line, void *arg)
{
	add_object(arg, doc, line);
}

static bool is_manifest(const char *name)
{
	size_t n = strlen(name);
	if (name[0] == '.')
		return false;
	return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
	       (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *read_file(const char *path, size_t *len, const char **why)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;
	if (!f) {
		*why = strerror(errno);
		return NULL;
	}
	for (;;) {
		if (n + 4096 > cap) {
			if (cap >= MAX_FILE_BYTES) {
				*why = "file too large";
				free(buf);
				fclose(f);
				return NULL;
			}
			cap = cap ? cap * 2 : 8192;
			char *g = realloc(buf, cap + 1);
			if (!g)
				abort();
			buf = g;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	bool bad = ferror(f);
	fclose(f);
	if (bad) {
		*why = "read error";
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void cached_file_cleanup(struct cached_file *f)
{
	for (size_t i = 0; i < f->n; i++)
		store_put(f->docs[i].doc);
	free(f->docs);
	free(f->name);
}

struct manifests_cache *manifests_cache_new(void)
{
	struct manifests_cache *c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	return c;
}

void manifests_cache_free(struct manifests_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		cached_file_cleanup(&c->files[i]);
	free(c->files);
	free(c);
}

/* The entry of c for name, or NULL. */
static struct cached_file *cache_find(struct manifests_cache *c, const char *name)
{
	size_t lo = 0, hi = c ? c->n : 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(c->files[mid].name, name);
		if (cmp == 0)
			return &c->files[mid];
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* File times come from a coarse clock (a tick of 1 to 10 ms): a file
 * written again within the tick of its last change, with the same size,
 * keeps its stat. A file whose modification or change time is this close
 * to the start of a reading, or later, is read again next time. */
#define RACY_NS 50000000LL

static long long ns_of(struct timespec t)
{
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static bool same_stat(const struct cached_file *f, const struct stat *st)
{
	return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
	       f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	       f->ctime.tv_sec == st->st_ctim.tv_sec && f->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* Read the file name at path into l->docs (problems into l->diags). */
static void read_manifest(struct load *l, const char *path, const char *name)
{
	char err[512];
	size_t len;
	const char *why = NULL;
	char *text = read_file(path, &len, &why);
	l->file = name;
	if (!text) {
		file_diag(l->diags, name, 0, "UnreadableFile", "%s", why);
		return;
	}
	err[0] = '\0';
	if (manifests_yaml_to_json(text, len, each_doc, l, err, sizeof(err)) != 0) {
		unsigned line = 0;
		const char *msg = err;
		if (sscanf(err, "line %u: ", &line) == 1 && strchr(err, ':'))
			msg = strchr(err, ':') + 2;
		file_diag(l->diags, name, line, "InvalidYAML", "%s", msg);
	}
	free(text);
}

int manifests_load(const char *dir, struct store *s, struct diag_list *diags)
{
	return manifests_load_cached(dir, s, diags, NULL);
}

int manifests_load_cached(const char *dir, struct store *s, struct diag_list *diags,
                          struct manifests_cache *cache)
{
	DIR *d = opendir(dir);
	struct load l = {.diags = diags};
	char **names = NULL;
	size_t nnames = 0, cap = 0;
	if (!d)
		return WEIR_EIO;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_manifest(de->d_name))
			continue;
		if (nnames == cap) {
			cap = cap ? cap * 2 : 16;
			names = realloc(names, cap * sizeof(*names));
			if (!names)
				abort();
		}
		names[nnames] = strdup(de->d_name);
		if (!names[nnames++])
			abort();
	}
	closedir(d);
	qsort(names, nnames, sizeof(*names), cmp_names);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now); /* the clock of file times */
	struct cached_file *files = cache ? calloc(nnames ? nnames : 1, sizeof(*files)) : NULL;
	if (cache && !files)
		abort();
	for (size_t i = 0; i < nnames; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		bool known = cache && stat(path, &st) == 0; /* through symbolic links */
		struct cached_file *old = known ? cache_find(cache, names[i]) : NULL;
		if (old && same_stat(old, &st)) {
			/* Unchanged: its objects as read last time (the store
			 * keeps the very pointers it holds), its problems
			 * reported then. */
			files[i] = *old;
			files[i].name = names[i];
			names[i] = NULL;
			old->docs = NULL; /* moved (old keeps its name: still searched) */
			old->n = 0;
			for (size_t j = 0; j < files[i].n; j++)
				objs_add(&l, files[i].docs[j].kind,
				         store_get(files[i].docs[j].doc));
			continue;
		}
		l.ndocs = 0;
		read_manifest(&l, path, names[i]);
		for (size_t j = 0; j < l.ndocs; j++) {
			struct fdoc *fd = &l.docs[j];
			/* An object equal to the one at its place in the file's
			 * last reading is that one: an edit of one object in a
			 * long file changes one pointer. */
			if (old && j < old->n && old->docs[j].kind == fd->kind &&
			    json_object_equal(old->docs[j].doc, fd->doc)) {
				store_put(fd->doc);
				fd->doc = store_get(old->docs[j].doc);
			}
			objs_add(&l, fd->kind, cache ? store_get(fd->doc) : fd->doc);
		}
		if (!cache)
			continue;
		files[i] = (struct cached_file){.name = names[i], .n = l.ndocs};
		names[i] = NULL;
		if (known && ns_of(st.st_mtim) + RACY_NS < ns_of(now) &&
		    ns_of(st.st_ctim) + RACY_NS < ns_of(now)) {
			files[i].dev = st.st_dev;
			files[i].ino = st.st_ino;
			files[i].size = st.st_size;
			files[i].mtime = st.st_mtim;
			files[i].ctime = st.st_ctim;
		} else {
			files[i].ino = (ino_t)-1; /* racy or unknown: read again next time */
		}
		if (l.ndocs) {
			files[i].docs = malloc(l.ndocs * sizeof(*files[i].docs));
			if (!files[i].docs)
				abort();
			memcpy(files[i].docs, l.docs, l.ndocs * sizeof(*l.docs));
		}
	}
	free(l.docs);
	for (int k = 0; k < STORE_KIND_COUNT; k++) {
		store_replace(s, (enum store_kind)k, l.kinds[k].items, l.kinds[k].n);
		free(l.kinds[k].items);
	}
	if (cache) {
		/* Files gone, and the last reading of files read again. */
		for (size_t i = 0; i < cache->n; i++)
			cached_file_cleanup(&cache->files[i]);
		free(cache->files);
		cache->files = files;
		cache->n = nnames;
	}
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	return 0;
}

/* ----------------------------------------------------------------- watch */

struct manifests {
	char *dir;
	struct store *store;
	struct manifests_cache *cache;
	int ifd, stopfd;
	pthread_t thread;
};

static void reload(struct manifests *m)
{
	struct diag_list diags = {0};
	if (manifests_load_cached(m->dir, m->store, &diags, m->cache) != 0)
		log_warn("controller.manifests", "cannot read %s: %s", m->dir, strerror(errno));
	for (size_t i = 0; i < diags.n; i++)
		log_warn("controller.manifests", "%s: %s", diags.items[i].name,
		         diags.items[i].message);
	diag_list_cleanup(&diags);
}

/* How long the directory must be quiet before it is read again. */
#define QUIET_MS 2

/* Whether an event can change what the directory holds, read whole: a
 * finished write, a rename in or out, a deletion, a mode change, or a new
 * symbolic link (a plain file being created is read when its writer closes
 * it, never half written). */
static bool acts_on(const struct manifests *m, const struct inotify_event *ev)
{
	if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB |
	                IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF))
		return true;
	if ((ev->mask & IN_CREATE) && ev->len) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", m->dir, ev->name);
		return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
	}
	return false;
}

static void *watch_main(void *arg)
{
	struct manifests *m = arg;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		struct pollfd p[2] = {{m->ifd, POLLIN, 0}, {m->stopfd, POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		/* Drain the burst (editors write, rename, chmod) before reading.
		 * A file still being written raises no event we act on (no
		 * IN_MODIFY), so a short quiet time is enough. */
		bool due = false;
		do {
			ssize_t n = read(m->ifd, buf, sizeof(buf));
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				goto out;
			for (ssize_t off = 0; n > 0 && off < n;) {
				const struct inotify_event *ev = (const void *)(buf + off);
				if (acts_on(m, ev))
					due = true;
				off += (ssize_t)sizeof(*ev) + ev->len;
			}
			p[0].revents = 0;
		} while (poll(p, 1, QUIET_MS) > 0);
		if (due)
			reload(m);
	}
out:
	return NULL;
}

int manifests_watch(const char *dir, struct store *s, struct manifests_cache *cache,
                    struct manifests **out)
{
	struct manifests *m = calloc(1, sizeof(*m));
	if (!m) {
		manifests_cache_free(cache);
		return WEIR_ENOMEM;
	}
	m->store = s;
	m->cache = cache ? cache : manifests_cache_new();
	m->dir = strdup(dir);
	m->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	m->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!m->dir || m->ifd < 0 || m->stopfd < 0 ||
	    inotify_add_watch(m->ifd, dir,
	                      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |
	                          IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) < 0 ||
	    pthread_create(&m->thread, NULL, watch_main, m) != 0) {
		if (m->ifd >= 0)
			close(m->ifd);
		if (m->stopfd >= 0)
			close(m->stopfd);
		manifests_cache_free(m->cache);
		free(m->dir);
		free(m);
		return WEIR_EIO;
	}
	*out = m;
	return 0;
}

void manifests_stop(struct manifests *m)
{
	if (!m)
		return;
	uint64_t one = 1;
	if (write(m->stopfd, &one, sizeof(one)) < 0)
		log_warn("controller.manifests", "stop: %s", strerror(errno));
	pthread_join(m->thread, NULL);
	close(m->ifd);
	close(m->stopfd);
	manifests_cache_free(m->cache);
	free(m->dir);
	free(m);
}
