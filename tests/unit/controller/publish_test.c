/* tests/unit/controller/publish_test.c - change-only writes, generation
 * continues from the file on disk, no temporary file left behind. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "controller/publish.h"
#include "error.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 16);
	size_t n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static size_t count_files(const char *dir)
{
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' || strncmp(de->d_name, ".routes", 7) == 0)
			n++;
	if (d)
		closedir(d);
	return n;
}

int main(void)
{
	char dir[] = "/tmp/weir-publish-test-XXXXXX";
	char path[512];
	bool written = false;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/%s", dir, ROUTE_TABLE_FILE);

	struct publisher *p = NULL;
	CHECK_INT(publisher_new(dir, &p), 0);
	CHECK_INT(publisher_generation(p), 0);
	struct route_table *t = route_table_new();
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_generation(p), 1);
	struct stat st;
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 0777 & ~0640, 0); /* keys and hashes: not world-readable */
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(!written); /* unchanged: nothing written */
	CHECK_INT(publisher_generation(p), 1);
	t->settings.upstream_keepalive = 7;
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_generation(p), 2);
	CHECK_INT(count_files(dir), 1); /* routes.json only, no temporary left */
	publisher_free(p);

	/* the file parses and carries the generation */
	char *text = slurp(path);
	struct route_table *back = NULL;
	char err[256];
	CHECK(text != NULL);
	CHECK_INT(route_table_parse(text, strlen(text), &back, err, sizeof(err)), 0);
	if (back) {
		CHECK_INT(back->generation, 2);
		CHECK_INT(back->settings.upstream_keepalive, 7);
		route_table_free(back);
	}
	free(text);

	/* a restart continues from the file: same table -> no write */
	CHECK_INT(publisher_new(dir, &p), 0);
	CHECK_INT(publisher_generation(p), 2);
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(!written);
	t->settings.upstream_keepalive = 9;
	CHECK_INT(publisher_publish(p, t, &written), 0);
	CHECK(written);
	CHECK_INT(publisher_generation(p), 3);
	publisher_free(p);
	route_table_free(t);

	/* an unwritable location fails cleanly */
	CHECK_INT(publisher_new("/proc/weir-no-such-dir", &p), WEIR_EIO);

	unlink(path);
	rmdir(dir);
	return check_finish("publish_test");
}
