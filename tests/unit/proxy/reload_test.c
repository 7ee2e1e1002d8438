/* The reloader: a table renamed or written into the publish directory is
 * serving within 200 ms; a bad one leaves the old table serving; a missing
 * or re-created directory is waited for; reload_stop really stops. */
#include "check.h"
#include "common/error.h"
#include "proxy/reload.h"
#include "proxy/table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char base[64];
static char pub[128];

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

/* The controller's way: write a temporary file, then rename it over. */
static void publish_text(const char *text)
{
	char tmp[192], dst[192];
	snprintf(tmp, sizeof(tmp), "%s/.routes.json.tmp", pub);
	snprintf(dst, sizeof(dst), "%s/routes.json", pub);
	write_file(tmp, text);
	CHECK_INT(rename(tmp, dst), 0);
}

static void publish_gen(unsigned gen)
{
	char json[256];
	snprintf(json, sizeof(json),
	         "{\"version\":1,\"generation\":%u,\"hosts\":[{\"name\":\"\",\"routes\":"
	         "[{\"path\":\"/\",\"match\":\"prefix\"}]}]}\n",
	         gen);
	publish_text(json);
}

/* Milliseconds until the current generation is gen, or -1 after limit_ms. */
static long wait_gen(uint64_t gen, long limit_ms)
{
	long start = now_ms();
	for (int i = 0; i < 10000; i++) {
		if (table_current_generation() == gen)
			return now_ms() - start;
		if (now_ms() - start > limit_ms)
			break;
		usleep(2000);
	}
	return -1;
}

static void remove_pub(void)
{
	char p[192];
	snprintf(p, sizeof(p), "%s/routes.json", pub);
	unlink(p);
	snprintf(p, sizeof(p), "%s/.routes.json.tmp", pub);
	unlink(p);
	rmdir(pub);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/weir-reload-test-XXXXXX");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(pub, sizeof(pub), "%s/publish", base);

	/* The directory does not exist yet: start anyway and wait for it. */
	CHECK_INT(reload_start(pub), 0);
	CHECK_INT(reload_start(pub), WEIR_EINVAL); /* already running */
	CHECK(!table_ready());
	usleep(150000);
	CHECK_INT(mkdir(pub, 0755), 0);
	publish_gen(1);
	long ms = wait_gen(1, 2000);
	CHECK(ms >= 0);
	CHECK(table_ready());

	/* A rename is picked up within 200 ms. */
	publish_gen(2);
	ms = wait_gen(2, 200);
	CHECK(ms >= 0);
	printf("rename picked up in %ld ms\n", ms);

	/* A bad table leaves the old one serving. */
	publish_text("{\"version\":1,\"generation\":3,\"hosts\":[{\"routes\":[{\"path\":\"(\","
	             "\"match\":\"regex\"}]}]}");
	CHECK_INT(wait_gen(3, 300), -1);
	CHECK_INT(table_current_generation(), 2);
	publish_text("{\"version\":9,\"generation\":3}");
	publish_text("not json at all");
	CHECK_INT(wait_gen(3, 300), -1);
	CHECK_INT(table_current_generation(), 2);
	struct table *t = table_current();
	CHECK(t != NULL);
	if (t) {
		CHECK_INT(table_routes(t)->generation, 2);
		table_unref(t);
	}

	/* Written in place (close-write) works too. */
	char dst[192];
	snprintf(dst, sizeof(dst), "%s/routes.json", pub);
	write_file(dst, "{\"version\":1,\"generation\":4}");
	ms = wait_gen(4, 200);
	CHECK(ms >= 0);

	/* Several quick publishes: the last one wins. */
	for (unsigned g = 5; g <= 9; g++)
		publish_gen(g);
	CHECK(wait_gen(9, 500) >= 0);

	/* The directory is removed and created again. */
	remove_pub();
	usleep(50000);
	CHECK_INT(table_current_generation(), 9); /* still serving */
	CHECK_INT(mkdir(pub, 0755), 0);
	publish_gen(10);
	CHECK(wait_gen(10, 2000) >= 0);

	/* After reload_stop nothing changes any more. */
	reload_stop();
	reload_stop(); /* harmless */
	publish_gen(11);
	CHECK_INT(wait_gen(11, 300), -1);
	CHECK_INT(table_current_generation(), 10);

	/* Starting with a table present serves it before reload_start returns. */
	CHECK_INT(reload_start(pub), 0);
	CHECK_INT(table_current_generation(), 11);
	publish_gen(12);
	CHECK(wait_gen(12, 200) >= 0);
	reload_stop();

	remove_pub();
	rmdir(base);
	return check_finish("reload_test");
}
