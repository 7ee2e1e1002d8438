/* proxy/main.c - weir-proxy: flags, start-up order, signals, shutdown. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "error.h"
#include "log.h"
#include "reload.h"
#include "server.h"
#include "tls.h"

static const char usage[] =
    "usage: weir-proxy [options]\n"
    "  --routes DIR            directory holding routes.json (default /run/weir)\n"
    "  --http-port N           plain HTTP port (default 8080; 0 disables)\n"
    "  --https-port N          HTTPS port (default 8443; 0 disables)\n"
    "  --admin-port N          /healthz, /readyz, /metrics (default 9090; 0 disables)\n"
    "  --workers N             worker threads (default: CPUs available)\n"
    "  --listen-address ADDR   address to listen on (default 0.0.0.0)\n"
    "  --drain-window-ms N     WebSocket drain window on shutdown (default: the\n"
    "                          table's drain_window_ms; env WEIR_DRAIN_WINDOW_MS)\n"
    "  --log-format json|text  log record format (default text)\n"
    "  --version               print the version and exit\n"
    "  --help                  print this help and exit\n";

static int parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return WEIR_EINVAL;
	*out = v;
	return 0;
}

static int cpus_available(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		int n = CPU_COUNT(&set);
		if (n > 0)
			return n;
	}
	return 1;
}

static int bad_flag(const char *fmt, const char *arg)
{
	fprintf(stderr, "weir-proxy: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see --help)\n");
	return 2;
}

int main(int argc, char **argv)
{
	enum {
		O_ROUTES = 256,
		O_HTTP,
		O_HTTPS,
		O_ADMIN,
		O_WORKERS,
		O_ADDR,
		O_LOGFMT,
		O_DRAIN,
		O_VERSION,
		O_HELP
	};
	static const struct option opts[] = {{"routes", required_argument, NULL, O_ROUTES},
	                                     {"http-port", required_argument, NULL, O_HTTP},
	                                     {"https-port", required_argument, NULL, O_HTTPS},
	                                     {"admin-port", required_argument, NULL, O_ADMIN},
	                                     {"workers", required_argument, NULL, O_WORKERS},
	                                     {"listen-address", required_argument, NULL, O_ADDR},
	                                     {"log-format", required_argument, NULL, O_LOGFMT},
	                                     {"drain-window-ms", required_argument, NULL, O_DRAIN},
	                                     {"version", no_argument, NULL, O_VERSION},
	                                     {"help", no_argument, NULL, O_HELP},
	                                     {NULL, 0, NULL, 0}};
	const char *routes = "/run/weir";
	const char *addr = "0.0.0.0";
	long http_port = 8080, https_port = 8443, admin_port = 9090, nworkers = 0, drain = -1;
	enum log_format fmt = LOG_FORMAT_TEXT;
	const char *env_drain = getenv("WEIR_DRAIN_WINDOW_MS");
	if (env_drain && *env_drain && parse_int(env_drain, 0, INT_MAX, &drain) != 0)
		return bad_flag("bad WEIR_DRAIN_WINDOW_MS value '%s'", env_drain);

	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		switch (c) {
		case O_ROUTES:
			routes = optarg;
			break;
		case O_HTTP:
			if (parse_int(optarg, 0, 65535, &http_port) != 0)
				return bad_flag("bad --http-port value '%s'", optarg);
			break;
		case O_HTTPS:
			if (parse_int(optarg, 0, 65535, &https_port) != 0)
				return bad_flag("bad --https-port value '%s'", optarg);
			break;
		case O_ADMIN:
			if (parse_int(optarg, 0, 65535, &admin_port) != 0)
				return bad_flag("bad --admin-port value '%s'", optarg);
			break;
		case O_WORKERS:
			if (parse_int(optarg, 1, 1024, &nworkers) != 0)
				return bad_flag("bad --workers value '%s' (1..1024)", optarg);
			break;
		case O_ADDR:
			addr = optarg;
			break;
		case O_LOGFMT:
			if (log_format_parse(optarg, &fmt) != 0)
				return bad_flag("bad --log-format value '%s' (json or text)",
				                optarg);
			break;
		case O_DRAIN:
			if (parse_int(optarg, 0, INT_MAX, &drain) != 0)
				return bad_flag("bad --drain-window-ms value '%s'", optarg);
			break;
		case O_VERSION:
			printf("weir-proxy %s\n", WEIR_VERSION);
			return 0;
		case O_HELP:
			fputs(usage, stdout);
			return 0;
		case ':':
			return bad_flag("option '%s' needs a value", argv[optind - 1]);
		default:
			return bad_flag("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_flag("unexpected argument '%s'", argv[optind]);
	if (nworkers == 0)
		nworkers = cpus_available();

	signal(SIGPIPE, SIG_IGN);
	log_init(fmt, LOG_LEVEL_INFO);

	/* Every thread inherits the blocked set; only sigwait below takes them. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	int rc = tls_init();
	if (rc != 0) {
		log_error("proxy.main", "TLS setup failed: %s", weir_strerror(rc));
		return 1;
	}
	rc = reload_start(routes);
	if (rc != 0) {
		log_error("proxy.main", "cannot follow %s: %s", routes, weir_strerror(rc));
		return 1;
	}
	struct server_config cfg = {
	    .listen_address = addr,
	    .http_port = (int)http_port,
	    .https_port = (int)https_port,
	    .workers = (int)nworkers,
	    .drain_window_ms = drain,
	};
	rc = server_start(&cfg);
	if (rc != 0) {
		log_error("proxy.main", "cannot start the data path: %s", weir_strerror(rc));
		reload_stop();
		return 1;
	}
	/* The admin port (/readyz) opens after the HTTP and HTTPS ports listen:
	 * a readiness probe or a test that sees it up can connect at once. */
	if (admin_port > 0) {
		rc = admin_start(addr, (int)admin_port);
		if (rc != 0) {
			log_error("proxy.main", "admin port %ld: %s", admin_port,
			          weir_strerror(rc));
			server_shutdown();
			reload_stop();
			return 1;
		}
	}
	log_info("proxy.main",
	         "weir-proxy %s listening on %s (http %ld, https %ld, admin %ld), %ld workers, "
	         "routes from %s",
	         WEIR_VERSION, addr, http_port, https_port, admin_port, nworkers, routes);

	int sig = 0;
	sigwait(&sigs, &sig);
	log_info("proxy.main", "signal %d: draining", sig);
	server_shutdown();
	admin_stop();
	reload_stop();
	tls_cleanup();
	log_info("proxy.main", "stopped");
	return 0;
}
