/* controller/publish.c - atomic, change-only route table writes. */
#include "publish.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "error.h"
#include "log.h"

struct publisher {
	char *dir;
	uint64_t generation;
	char *last; /* text on disk, NULL when unknown */
};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n + 4096 > cap) {
			if (cap > ROUTE_TABLE_MAX_BYTES) {
				free(buf);
				fclose(f);
				return NULL;
			}
			cap = cap ? cap * 2 : 65536;
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

int publisher_new(const char *dir, struct publisher **out)
{
	struct publisher *p = calloc(1, sizeof(*p));
	char path[4096];
	if (!p)
		return WEIR_ENOMEM;
	p->dir = strdup(dir);
	if (!p->dir) {
		free(p);
		return WEIR_ENOMEM;
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		log_error("controller.publish", "cannot create %s: %s", dir, strerror(errno));
		publisher_free(p);
		return WEIR_EIO;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);
	p->last = slurp(path);
	if (p->last) {
		json_object *root = json_tokener_parse(p->last);
		json_object *g = NULL;
		if (root && json_object_object_get_ex(root, "generation", &g) &&
		    json_object_is_type(g, json_type_int) && json_object_get_int64(g) > 0)
			p->generation = (uint64_t)json_object_get_int64(g);
		json_object_put(root);
	}
	*out = p;
	return 0;
}

void publisher_free(struct publisher *p)
{
	if (!p)
		return;
	free(p->dir);
	free(p->last);
	free(p);
}

uint64_t publisher_generation(const struct publisher *p)
{
	return p->generation;
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

int publisher_publish(struct publisher *p, struct route_table *t, bool *written)
{
	char *text = NULL;
	size_t len;
	char tmp[4096], path[4096];
	int rc, fd = -1;
	*written = false;
	t->generation = p->generation + 1;
	rc = route_table_serialize(t, &text, &len);
	if (rc)
		goto out;
	if (len > ROUTE_TABLE_MAX_BYTES) {
		/* The proxy would refuse it whole; the table on disk stays. */
		log_error("controller.publish",
		          "table of %zu bytes is over the %u byte limit; not "
		          "published",
		          len, ROUTE_TABLE_MAX_BYTES);
		rc = WEIR_ETOOBIG;
		goto out;
	}
	/* same content as the last table written: nothing to do */
	if (p->last && same_but_generation(p->last, text)) {
		t->generation = p->generation;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s", p->dir, ROUTE_TABLE_FILE);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.%ld", p->dir, ROUTE_TABLE_FILE, (long)getpid());
	rc = WEIR_EIO;
	/* The table holds TLS private keys and password hashes: owner and group
	 * only (the chart runs both containers as one user and group). */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_error("controller.publish", "open %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write_all(fd, text, len) != 0 || fsync(fd) != 0) {
		log_error("controller.publish", "write %s: %s", tmp, strerror(errno));
		goto out_unlink;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) != 0) {
		log_error("controller.publish", "rename %s: %s", path, strerror(errno));
		goto out_unlink;
	}
	int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	/* Kept to compare the next table against (generation aside). */
	free(p->last);
	p->last = text;
	text = NULL;
	p->generation++;
	*written = true;
	rc = 0;
	goto out;
out_unlink:
	unlink(tmp);
out:
	if (fd >= 0)
		close(fd);
	free(text);
	return rc;
}
