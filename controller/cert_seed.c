/* controller/cert_seed.c - seed the good-pairs cache from published
 * certificate shards (see cert_seed.h). */
#include "cert_seed.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compile.h"
#include "error.h"
#include "log.h"
#include "route_table.h"

#define COMPONENT "controller.cert_seed"

/* A growable read buffer, reused from file to file. */
struct filebuf {
	char *p;
	size_t len, cap;
};

/* Read the file name under dirfd into b (NUL-terminated). 0, WEIR_ENOENT,
 * WEIR_ETOOBIG (over ROUTE_TABLE_MAX_BYTES, which no reader accepts) or
 * WEIR_EIO. */
static int read_file(int dirfd, const char *name, struct filebuf *b)
{
	int rc = WEIR_EIO;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? WEIR_ENOENT : WEIR_EIO;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out_close;
	if ((uint64_t)st.st_size > ROUTE_TABLE_MAX_BYTES) {
		rc = WEIR_ETOOBIG;
		goto out_close;
	}
	size_t want = (size_t)st.st_size;
	if (want + 1 > b->cap) {
		char *p = realloc(b->p, want + 1);
		if (!p)
			abort(); /* the control plane aborts on out-of-memory */
		b->p = p;
		b->cap = want + 1;
	}
	/* Exactly st_size bytes: a file that changed size since is caught by
	 * the digest (shards) or the parser (index). */
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

/* True when the SHA-256 of b, in lowercase hex, is id. */
static bool digest_is(const struct filebuf *b, const char *id)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)b->p, b->len, md);
	for (size_t i = 0; i < sizeof(md); i++)
		if (id[2 * i] != hex[md[i] >> 4] || id[2 * i + 1] != hex[md[i] & 15])
			return false;
	return true;
}

int cert_seed_from_dir(const char *dir, size_t *seeded)
{
	int rc = WEIR_EIO;
	size_t n = 0;
	struct filebuf b = {0};
	struct route_table *t = NULL;
	struct route_index *ix = NULL;
	char err[256], name[ROUTE_SHARD_ID_LEN + sizeof(".json")];
	int dfd = -1, sfd = -1;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = errno == ENOENT ? WEIR_ENOENT : WEIR_EIO;
		goto out;
	}
	if ((rc = read_file(dfd, ROUTE_TABLE_FILE, &b)) != 0)
		goto out;
	struct route_list_reader lists = {route_list_read_file, (void *)dir};
	rc = route_table_parse_index(b.p, b.len, &lists, &t, &ix, err, sizeof(err));
	if (rc != 0) {
		log_debug(COMPONENT, "%s/%s: %s", dir, ROUTE_TABLE_FILE, err);
		goto out;
	}
	if (!ix) {
		rc = WEIR_EVERSION;
		goto out;
	}
	sfd = openat(dfd, ROUTE_SHARD_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0) {
		log_debug(COMPONENT, "%s/%s: %s", dir, ROUTE_SHARD_DIR, strerror(errno));
		goto out; /* rc is 0: an index whose shards are gone seeds nothing */
	}
	for (size_t i = 0; i < ix->ncerts; i++) {
		const char *id = ix->certs[i];
		if (!id[0])
			continue; /* a hole */
		snprintf(name, sizeof(name), "%s.json", id);
		struct route_cert c = {0};
		int frc = read_file(sfd, name, &b);
		if (frc != 0) {
			log_debug(COMPONENT, "shard %s: %s", id, weir_strerror(frc));
			continue;
		}
		if (!digest_is(&b, id)) {
			log_debug(COMPONENT, "shard %s: bytes do not match the id", id);
			continue;
		}
		if (route_cert_shard_parse(b.p, b.len, &c, err, sizeof(err)) != 0) {
			log_debug(COMPONENT, "shard %s: %s", id, err);
			continue;
		}
		compile_remember_good_pair(c.cert_pem, c.key_pem);
		route_cert_cleanup(&c);
		n++;
	}
out:
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	route_index_free(ix);
	route_table_free(t);
	free(b.p);
	if (seeded)
		*seeded = rc == 0 ? n : 0;
	return rc;
}
