/* proxy/reload.c - follow the publish directory with inotify and swap in
 * each new route table as soon as it is renamed (or written) into place. A
 * table that does not load leaves the old one serving. */
#include "reload.h"
#include "error.h"
#include "log.h"
#include "metrics.h"
#include "table.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define COMPONENT "proxy.reload"
#define MISSING_DIR_RETRY_MS 100
/* malloc_trim once no load came for this long: a trim walks the whole heap
 * (tens of MiB with 10,000 certificates), so it waits for a quiet spell
 * instead of taking a CPU while the next change is on its way. */
#define TRIM_IDLE_MS 200
/* Kubernetes volume updates (ConfigMap, projected) swap this symlink. */
#define K8S_DATA_LINK "..data"

static struct {
	bool running;
	char *dir;
	int inotify_fd;
	int stop_fd;
	int reap_fd; /* a worker let go of a table's last reference */
	int wd;      /* the directory's watch, -1 while it is missing */
	pthread_t thread;
} reloader = {false, NULL, -1, -1, -1, -1, 0};

#define WATCH_MASK                                                                                 \
	(IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

/* table_reaper_cb: wake the reload thread, which frees the table. */
static void wake_reaper(void *arg)
{
	(void)arg;
	uint64_t one = 1;
	ssize_t w;
	do {
		w = write(reloader.reap_fd, &one, sizeof(one));
	} while (w < 0 && errno == EINTR);
}

/* Load the table now and publish it, or log why not. missing_ok: a missing
 * file is expected (startup before the controller's first publish).
 * Returns true when the load left garbage for malloc_trim. */
static bool reload_once(const char *dir, bool missing_ok)
{
	char err[512];
	struct table *t = NULL;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = table_load(dir, &t, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc == 0) {
		const struct route_table *rt = table_routes(t);
		uint64_t gen = rt->generation;
		size_t nhosts = rt->nhosts, ncerts = rt->ncerts;
		size_t decoded = table_certs_decoded(t), parsed = table_hosts_parsed(t);
		bool sharded = table_sharded(t);
		uint64_t usec = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
		                           (t1.tv_nsec - t0.tv_nsec) / 1000);
		table_publish(t);
		log_info(COMPONENT,
		         "route table loaded: generation %llu (%s), %zu hosts (%zu parsed, %zu "
		         "reused), %zu certificates (%zu decoded, the others already loaded), in "
		         "%.1f ms, from %s/%s",
		         (unsigned long long)gen, sharded ? "v2 index + shards" : "v1", nhosts,
		         parsed, nhosts - parsed, ncerts, decoded, usec / 1000.0, dir,
		         ROUTE_TABLE_FILE);
		metrics_reload(true, gen);
		metrics_table_load(usec, parsed, nhosts - parsed);
		/* Parsing a big table leaves this thread's malloc arena with free
		 * pages (the JSON tree is gone): handed back to the system once
		 * reloads pause (TRIM_IDLE_MS). */
		return true;
	}
	if (rc == WEIR_ENOENT && missing_ok) {
		log_info(COMPONENT, "no %s in %s yet; waiting for the controller", ROUTE_TABLE_FILE,
		         dir);
		return false;
	}
	uint64_t cur = table_current_generation();
	log_error(COMPONENT, "route table reload failed, still serving generation %llu: %s",
	          (unsigned long long)cur, err);
	metrics_reload(false, cur);
	return true; /* as above: the refused table's parse left free pages */
}

/* True when the created entry is something complete at creation (a symlink
 * or a hard link), not a file about to be written. */
static bool created_complete(const char *dir, const char *name)
{
	char path[4096];
	struct stat st;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return false;
	if (lstat(path, &st) != 0)
		return false;
	return S_ISLNK(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink > 1);
}

/* Drain the inotify queue. Sets *reload when routes.json changed and
 * *lost when the directory itself went away. */
static void read_events(const char *dir, int fd, int *wd, bool *reload, bool *lost)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				*reload = true;
				continue;
			}
			if (ev->wd != *wd)
				continue;
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT)) {
				*lost = true;
				continue;
			}
			if (!ev->len)
				continue;
			bool ours = strcmp(ev->name, ROUTE_TABLE_FILE) == 0 ||
			            strcmp(ev->name, K8S_DATA_LINK) == 0;
			if (!ours)
				continue;
			if (ev->mask & (IN_MOVED_TO | IN_CLOSE_WRITE))
				*reload = true;
			else if ((ev->mask & IN_CREATE) && created_complete(dir, ev->name))
				*reload = true;
		}
	}
}

static void *reload_main(void *arg)
{
	const char *dir = reloader.dir;
	int fd = reloader.inotify_fd;
	int wd = reloader.wd;
	bool waiting_logged = false;
	bool trim_due = false;
	for (;;) {
		if (wd < 0) {
			wd = inotify_add_watch(fd, dir, WATCH_MASK);
			if (wd >= 0) {
				/* It may have appeared with a table already inside. */
				if (waiting_logged)
					log_info(COMPONENT, "directory %s is there now", dir);
				waiting_logged = false;
				trim_due |= reload_once(dir, true);
			} else if (!waiting_logged) {
				log_warn(COMPONENT, "cannot watch %s (%s); retrying every %d ms",
				         dir, strerror(errno), MISSING_DIR_RETRY_MS);
				waiting_logged = true;
			}
		}
		struct pollfd pfd[3] = {
		    {reloader.stop_fd, POLLIN, 0}, {reloader.reap_fd, POLLIN, 0}, {fd, POLLIN, 0}};
		int timeout = wd < 0 ? MISSING_DIR_RETRY_MS : trim_due ? TRIM_IDLE_MS : -1;
		int r = poll(pfd, 3, timeout);
		if (r < 0 && errno != EINTR) {
			log_error(COMPONENT, "poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents)
			break;
		if (r == 0 && trim_due) {
			malloc_trim(0);
			trim_due = false;
		}
		if (pfd[1].revents) {
			uint64_t n;
			while (read(reloader.reap_fd, &n, sizeof(n)) < 0 && errno == EINTR)
				;
			table_reap();
		}
		if (r <= 0 || !pfd[2].revents)
			continue;
		bool reload = false, lost = false;
		read_events(dir, fd, &wd, &reload, &lost);
		if (lost) {
			/* The watch follows a moved inode: drop it and watch the
			 * path again (IN_IGNORED means it is already gone). */
			inotify_rm_watch(fd, wd);
			wd = -1;
			log_warn(COMPONENT, "directory %s went away; serving generation %llu", dir,
			         (unsigned long long)table_current_generation());
			continue;
		}
		if (reload)
			trim_due |= reload_once(dir, false);
	}
	if (wd >= 0)
		inotify_rm_watch(fd, wd);
	return NULL;
}

int reload_start(const char *dir)
{
	int rc = WEIR_EINVAL;
	if (reloader.running || !dir)
		return WEIR_EINVAL;
	reloader.dir = strdup(dir);
	if (!reloader.dir)
		return WEIR_ENOMEM;
	reloader.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	reloader.stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	reloader.reap_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (reloader.inotify_fd < 0 || reloader.stop_fd < 0 || reloader.reap_fd < 0) {
		log_error(COMPONENT, "cannot start: %s", strerror(errno));
		rc = WEIR_EIO;
		goto fail;
	}
	/* Watch first, then load: a table renamed in between is not missed.
	 * A missing directory is watched by the thread once it appears. */
	reloader.wd = inotify_add_watch(reloader.inotify_fd, dir, WATCH_MASK);
	if (reloader.wd >= 0 && reload_once(dir, true))
		malloc_trim(0); /* before serving: no change waits on it */
	int err = pthread_create(&reloader.thread, NULL, reload_main, NULL);
	if (err != 0) {
		log_error(COMPONENT, "cannot start thread: %s", strerror(err));
		rc = WEIR_EAGAIN;
		goto fail;
	}
	reloader.running = true;
	table_set_reaper(wake_reaper, NULL);
	return 0;
fail:
	if (reloader.inotify_fd >= 0)
		close(reloader.inotify_fd);
	if (reloader.stop_fd >= 0)
		close(reloader.stop_fd);
	if (reloader.reap_fd >= 0)
		close(reloader.reap_fd);
	reloader.inotify_fd = reloader.stop_fd = reloader.reap_fd = -1;
	free(reloader.dir);
	reloader.dir = NULL;
	return rc;
}

void reload_stop(void)
{
	if (!reloader.running)
		return;
	uint64_t one = 1;
	ssize_t w;
	do {
		w = write(reloader.stop_fd, &one, sizeof(one));
	} while (w < 0 && errno == EINTR);
	pthread_join(reloader.thread, NULL);
	table_set_reaper(NULL, NULL); /* and what is retired now is freed here */
	close(reloader.inotify_fd);
	close(reloader.stop_fd);
	close(reloader.reap_fd);
	reloader.inotify_fd = reloader.stop_fd = reloader.reap_fd = -1;
	free(reloader.dir);
	reloader.dir = NULL;
	reloader.running = false;
}
