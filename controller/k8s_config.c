/* controller/k8s_config.c - kubeconfig (libyaml) and in-cluster service-account config. */
#include "k8s_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <yaml.h>

#include "error.h"
#include "log.h"

#define CFG_FILE_MAX (4u << 20) /* kubeconfig, CA, cert, key files */
#define TOKEN_MAX (64u << 10)
#define TOKEN_RECHECK_MS 3000 /* how often the token file's mtime is looked at */
#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

static const char *const LOG_C = "controller.k8s_config";

/* The only mutable part of a config: the bearer token, refreshed from a file when it changes
 * (bound service-account tokens are rotated by the kubelet about every hour). */
struct token_cache {
	pthread_mutex_t mu;
	char *fixed;  /* token given inline; never changes */
	char *file;   /* token file, re-read on change */
	char *cached; /* last token read from file */
	struct timespec next_check;
	long recheck_ms;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	bool read_error_logged;
};

struct k8s_config {
	char *source; /* kubeconfig path or "in-cluster": for messages */
	char *server;
	char *ca;
	size_t ca_len;
	char *cert;
	size_t cert_len;
	char *key;
	size_t key_len;
	int insecure;
	char *ns;
	struct token_cache tok;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");

	if (!d)
		abort(); /* control plane: OOM is fatal */
	return d;
}

/* Read a whole file into a NUL-terminated buffer (caller frees). */
static int read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	FILE *f;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = WEIR_EIO;

	*out = NULL;
	f = fopen(path, "rb");
	if (!f)
		return errno == ENOENT ? WEIR_ENOENT : WEIR_EIO;
	for (;;) {
		size_t n;

		if (cap - len < 4096 + 1) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *nb;

			if (ncap > max + 4097)
				ncap = max + 4097;
			if (ncap <= cap) {
				rc = WEIR_ETOOBIG;
				goto out_free;
			}
			nb = realloc(buf, ncap);
			if (!nb) {
				rc = WEIR_ENOMEM;
				goto out_free;
			}
			buf = nb;
			cap = ncap;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (len > max) {
			rc = WEIR_ETOOBIG;
			goto out_free;
		}
		if (n == 0) {
			if (ferror(f))
				goto out_free;
			break;
		}
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf) {
			rc = WEIR_ENOMEM;
			goto out_close;
		}
	}
	buf[len] = '\0';
	*out = buf;
	if (outlen)
		*outlen = len;
	buf = NULL;
	rc = 0;
out_free:
	free(buf);
out_close:
	fclose(f);
	return rc;
}

/* Strict RFC 4648 base64 (whitespace ignored, padding optional). Returns a malloc'd
 * NUL-terminated buffer and its length, or NULL on bad input. */
static char *base64_decode(const char *in, size_t *outlen)
{
	size_t inlen = strlen(in), o = 0;
	unsigned acc = 0;
	int bits = 0, pad = 0;
	char *out = malloc(inlen / 4 * 3 + 4);

	if (!out)
		abort();
	for (size_t i = 0; i < inlen; i++) {
		unsigned char ch = (unsigned char)in[i];
		int v;

		if (isspace(ch))
			continue;
		if (ch == '=') {
			pad++;
			continue;
		}
		if (pad)
			goto bad; /* data after padding */
		if (ch >= 'A' && ch <= 'Z')
			v = ch - 'A';
		else if (ch >= 'a' && ch <= 'z')
			v = ch - 'a' + 26;
		else if (ch >= '0' && ch <= '9')
			v = ch - '0' + 52;
		else if (ch == '+')
			v = 62;
		else if (ch == '/')
			v = 63;
		else
			goto bad;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	if (pad > 2 || bits >= 6)
		goto bad;
	out[o] = '\0';
	*outlen = o;
	return out;
bad:
	free(out);
	return NULL;
}

/* ---- token ---- */

static long ms_until(const struct timespec *now, const struct timespec *then)
{
	return (then->tv_sec - now->tv_sec) * 1000 + (then->tv_nsec - now->tv_nsec) / 1000000;
}

static void trim_right(char *s)
{
	size_t n = strlen(s);

	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* With tok->mu held: re-read the token file if it changed (stat at most every recheck_ms). */
static int token_refresh_locked(struct token_cache *tok, const char *source)
{
	struct timespec now;
	struct stat st;
	char *buf = NULL;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (tok->cached && ms_until(&now, &tok->next_check) > 0)
		return 0;
	tok->next_check = now;
	tok->next_check.tv_sec += tok->recheck_ms / 1000;
	tok->next_check.tv_nsec += (tok->recheck_ms % 1000) * 1000000;
	if (tok->next_check.tv_nsec >= 1000000000) {
		tok->next_check.tv_sec++;
		tok->next_check.tv_nsec -= 1000000000;
	}
	if (stat(tok->file, &st) != 0) {
		rc = WEIR_EIO;
		goto fail;
	}
	if (tok->cached && st.st_dev == tok->dev && st.st_ino == tok->ino &&
	    st.st_size == tok->size && st.st_mtim.tv_sec == tok->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == tok->mtime.tv_nsec)
		return 0;
	rc = read_file(tok->file, TOKEN_MAX, &buf, NULL);
	if (rc)
		goto fail;
	trim_right(buf);
	if (!buf[0]) {
		free(buf);
		rc = WEIR_EINVAL;
		goto fail;
	}
	if (tok->cached)
		log_info(LOG_C, "token file %s changed; using the new token", tok->file);
	free(tok->cached);
	tok->cached = buf;
	tok->dev = st.st_dev;
	tok->ino = st.st_ino;
	tok->size = st.st_size;
	tok->mtime = st.st_mtim;
	tok->read_error_logged = false;
	return 0;
fail:
	if (!tok->read_error_logged) {
		log_warn(LOG_C, "%s: token file %s: %s%s", source, tok->file,
		         rc == WEIR_EINVAL ? "empty" : weir_strerror(rc),
		         tok->cached ? "; keeping the previous token" : "");
		tok->read_error_logged = true;
	}
	return tok->cached ? 0 : WEIR_EIO;
}

int k8s_config_token(const struct k8s_config *cfg, char *buf, size_t buflen)
{
	struct token_cache *tok = (struct token_cache *)&cfg->tok; /* internally locked */
	const char *t = "";
	int rc = 0;

	if (!buflen)
		return WEIR_ETOOBIG;
	pthread_mutex_lock(&tok->mu);
	if (tok->fixed) {
		t = tok->fixed;
	} else if (tok->file) {
		rc = token_refresh_locked(tok, cfg->source);
		if (rc == 0)
			t = tok->cached;
	}
	if (rc == 0) {
		if (strlen(t) >= buflen)
			rc = WEIR_ETOOBIG;
		else
			strcpy(buf, t);
	}
	pthread_mutex_unlock(&tok->mu);
	if (rc)
		buf[0] = '\0';
	return rc;
}

void k8s_config_token_recheck(const struct k8s_config *cfg)
{
	struct token_cache *tok = (struct token_cache *)&cfg->tok; /* internally locked */

	pthread_mutex_lock(&tok->mu);
	clock_gettime(CLOCK_MONOTONIC, &tok->next_check);
	pthread_mutex_unlock(&tok->mu);
}

/* ---- accessors ---- */

const char *k8s_config_namespace(const struct k8s_config *cfg)
{
	return cfg->ns && cfg->ns[0] ? cfg->ns : "default";
}

const char *k8s_config_server(const struct k8s_config *cfg)
{
	return cfg->server;
}

const char *k8s_config_ca_pem(const struct k8s_config *cfg, size_t *len)
{
	*len = cfg->ca_len;
	return cfg->ca;
}

const char *k8s_config_cert_pem(const struct k8s_config *cfg, size_t *len)
{
	*len = cfg->cert_len;
	return cfg->cert;
}

const char *k8s_config_key_pem(const struct k8s_config *cfg, size_t *len)
{
	*len = cfg->key_len;
	return cfg->key;
}

int k8s_config_insecure(const struct k8s_config *cfg)
{
	return cfg->insecure;
}

static struct k8s_config *config_alloc(const char *source)
{
	struct k8s_config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		abort();
	pthread_mutex_init(&cfg->tok.mu, NULL);
	cfg->tok.recheck_ms = TOKEN_RECHECK_MS;
	cfg->source = xstrdup(source);
	return cfg;
}

void k8s_config_free(struct k8s_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->source);
	free(cfg->server);
	free(cfg->ca);
	free(cfg->cert);
	free(cfg->key);
	free(cfg->ns);
	free(cfg->tok.fixed);
	if (cfg->tok.cached)
		memset(cfg->tok.cached, 0, strlen(cfg->tok.cached));
	free(cfg->tok.cached);
	free(cfg->tok.file);
	pthread_mutex_destroy(&cfg->tok.mu);
	free(cfg);
}

/* ---- kubeconfig ---- */

struct kc {
	const char *path; /* for messages */
	char *dir;        /* relative file paths are resolved against it */
	yaml_document_t doc;
	char *err;
	size_t errlen;
};

static yaml_node_t *map_get(struct kc *k, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(&k->doc, p->key);

		if (kn && kn->type == YAML_SCALAR_NODE &&
		    strcmp((char *)kn->data.scalar.value, key) == 0)
			return yaml_document_get_node(&k->doc, p->value);
	}
	return NULL;
}

/* A scalar value, NULL if absent or empty. *bad is set when the node is not a scalar. */
static const char *map_str(struct kc *k, yaml_node_t *map, const char *key, bool *bad)
{
	yaml_node_t *n = map_get(k, map, key);

	if (!n)
		return NULL;
	if (n->type != YAML_SCALAR_NODE) {
		*bad = true;
		return NULL;
	}
	if (!n->data.scalar.length)
		return NULL;
	/* A plain "null" / "~" means absent, as in Go's YAML decoder. */
	if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (strcmp((char *)n->data.scalar.value, "null") == 0 ||
	     strcmp((char *)n->data.scalar.value, "~") == 0))
		return NULL;
	return (const char *)n->data.scalar.value;
}

/* Find the entry named `name` in the list `list` (clusters/users/contexts) and return its
 * `sub` mapping (cluster/user/context). Fills err when missing. */
static yaml_node_t *find_named(struct kc *k, const char *list, const char *sub, const char *name,
                               const char *why)
{
	yaml_node_t *root = yaml_document_get_root_node(&k->doc);
	yaml_node_t *seq = map_get(k, root, list);

	if (seq && seq->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *it = seq->data.sequence.items.start;
		     it < seq->data.sequence.items.top; it++) {
			yaml_node_t *e = yaml_document_get_node(&k->doc, *it);
			bool bad = false;
			const char *n = map_str(k, e, "name", &bad);

			if (n && strcmp(n, name) == 0) {
				yaml_node_t *s = map_get(k, e, sub);

				if (!s || s->type != YAML_MAPPING_NODE) {
					set_err(k->err, k->errlen,
					        "kubeconfig %s: %s \"%s\" has no %s mapping",
					        k->path, list, name, sub);
					return NULL;
				}
				return s;
			}
		}
	}
	set_err(k->err, k->errlen, "kubeconfig %s: %s \"%s\" (%s) not found in %s", k->path, sub,
	        name, why, list);
	return NULL;
}

static char *resolve_path(struct kc *k, const char *p)
{
	char *out;

	if (p[0] == '/' || !k->dir)
		return xstrdup(p);
	if (asprintf(&out, "%s/%s", k->dir, p) < 0)
		abort();
	return out;
}

/* Load PEM material from a "-data" (base64) field or a file field. */
static int load_pem(struct kc *k, yaml_node_t *map, const char *what, const char *data_key,
                    const char *file_key, const char *marker, char **out, size_t *outlen)
{
	bool bad = false;
	const char *data = map_str(k, map, data_key, &bad);
	const char *file = map_str(k, map, file_key, &bad);
	int rc;

	if (bad) {
		set_err(k->err, k->errlen, "kubeconfig %s: %s: %s/%s must be a string", k->path,
		        what, data_key, file_key);
		return WEIR_EINVAL;
	}
	if (data) {
		*out = base64_decode(data, outlen);
		if (!*out) {
			set_err(k->err, k->errlen, "kubeconfig %s: %s: %s is not valid base64",
			        k->path, what, data_key);
			return WEIR_EINVAL;
		}
		if (!strstr(*out, marker)) {
			set_err(k->err, k->errlen, "kubeconfig %s: %s: %s does not hold a PEM %s",
			        k->path, what, data_key, marker);
			return WEIR_ETLS;
		}
		return 0;
	}
	if (file) {
		char *full = resolve_path(k, file);

		rc = read_file(full, CFG_FILE_MAX, out, outlen);
		if (rc) {
			set_err(k->err, k->errlen, "kubeconfig %s: %s: %s %s: %s", k->path, what,
			        file_key, full, weir_strerror(rc));
			free(full);
			return rc;
		}
		if (!strstr(*out, marker)) {
			set_err(k->err, k->errlen,
			        "kubeconfig %s: %s: %s %s does not hold a PEM %s", k->path, what,
			        file_key, full, marker);
			free(full);
			return WEIR_ETLS;
		}
		free(full);
	}
	return 0;
}

static bool yaml_true(const char *v)
{
	return v && (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 || strcmp(v, "TRUE") == 0);
}

static int kubeconfig_parse(struct kc *k, struct k8s_config *cfg)
{
	yaml_node_t *root = yaml_document_get_root_node(&k->doc);
	yaml_node_t *ctx, *cluster, *user;
	const char *cur, *cname, *uname, *server, *v;
	bool bad = false;
	int rc;

	if (!root || root->type != YAML_MAPPING_NODE) {
		set_err(k->err, k->errlen, "kubeconfig %s: not a YAML mapping", k->path);
		return WEIR_EPARSE;
	}
	cur = map_str(k, root, "current-context", &bad);
	if (!cur) {
		set_err(k->err, k->errlen, "kubeconfig %s: current-context is not set", k->path);
		return WEIR_EINVAL;
	}
	ctx = find_named(k, "contexts", "context", cur, "current-context");
	if (!ctx)
		return WEIR_EINVAL;
	cname = map_str(k, ctx, "cluster", &bad);
	uname = map_str(k, ctx, "user", &bad);
	v = map_str(k, ctx, "namespace", &bad);
	if (v)
		cfg->ns = xstrdup(v);
	if (!cname) {
		set_err(k->err, k->errlen, "kubeconfig %s: context \"%s\" has no cluster", k->path,
		        cur);
		return WEIR_EINVAL;
	}
	cluster = find_named(k, "clusters", "cluster", cname, "of the current context");
	if (!cluster)
		return WEIR_EINVAL;
	server = map_str(k, cluster, "server", &bad);
	if (!server ||
	    (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)) {
		set_err(k->err, k->errlen,
		        "kubeconfig %s: cluster \"%s\": server must be an http(s):// URL", k->path,
		        cname);
		return WEIR_EINVAL;
	}
	cfg->server = xstrdup(server);
	while (strlen(cfg->server) > 8 && cfg->server[strlen(cfg->server) - 1] == '/')
		cfg->server[strlen(cfg->server) - 1] = '\0';
	if (yaml_true(map_str(k, cluster, "insecure-skip-tls-verify", &bad))) {
		const char *env = getenv("WEIR_INSECURE_SKIP_TLS_VERIFY");

		if (!env || strcmp(env, "1") != 0) {
			set_err(
			    k->err, k->errlen,
			    "kubeconfig %s: cluster \"%s\": insecure-skip-tls-verify is refused "
			    "(set WEIR_INSECURE_SKIP_TLS_VERIFY=1 to allow it)",
			    k->path, cname);
			return WEIR_ETLS;
		}
		cfg->insecure = 1;
		log_warn(LOG_C, "kubeconfig %s: TLS verification of %s is DISABLED", k->path,
		         cfg->server);
	} else {
		rc = load_pem(k, cluster, "cluster", "certificate-authority-data",
		              "certificate-authority", "-----BEGIN CERTIFICATE", &cfg->ca,
		              &cfg->ca_len);
		if (rc)
			return rc;
	}

	if (!uname)
		return 0; /* anonymous */
	user = find_named(k, "users", "user", uname, "of the current context");
	if (!user)
		return WEIR_EINVAL;
	v = map_str(k, user, "token", &bad);
	if (v) {
		cfg->tok.fixed = xstrdup(v);
		trim_right(cfg->tok.fixed);
	}
	v = map_str(k, user, "tokenFile", &bad);
	if (v && !cfg->tok.fixed) {
		cfg->tok.file = resolve_path(k, v);
		pthread_mutex_lock(&cfg->tok.mu);
		rc = token_refresh_locked(&cfg->tok, k->path);
		pthread_mutex_unlock(&cfg->tok.mu);
		if (rc) {
			set_err(k->err, k->errlen,
			        "kubeconfig %s: user \"%s\": tokenFile %s cannot be read", k->path,
			        uname, cfg->tok.file);
			return WEIR_EIO;
		}
	}
	rc = load_pem(k, user, "user", "client-certificate-data", "client-certificate",
	              "-----BEGIN CERTIFICATE", &cfg->cert, &cfg->cert_len);
	if (rc)
		return rc;
	rc = load_pem(k, user, "user", "client-key-data", "client-key", "PRIVATE KEY", &cfg->key,
	              &cfg->key_len);
	if (rc)
		return rc;
	if (!cfg->cert != !cfg->key) {
		set_err(k->err, k->errlen,
		        "kubeconfig %s: user \"%s\": client-certificate and client-key must be "
		        "given together",
		        k->path, uname);
		return WEIR_EINVAL;
	}
	if (!cfg->tok.fixed && !cfg->tok.file && !cfg->cert &&
	    (map_get(k, user, "exec") || map_get(k, user, "auth-provider"))) {
		set_err(k->err, k->errlen,
		        "kubeconfig %s: user \"%s\": exec/auth-provider credentials are not "
		        "supported (use token, tokenFile or a client certificate)",
		        k->path, uname);
		return WEIR_EINVAL;
	}
	if (!cfg->tok.fixed && !cfg->tok.file && !cfg->cert && map_get(k, user, "username")) {
		set_err(
		    k->err, k->errlen,
		    "kubeconfig %s: user \"%s\": basic auth (username/password) is not supported",
		    k->path, uname);
		return WEIR_EINVAL;
	}
	return 0;
}

static int load_kubeconfig(const char *path, struct k8s_config **out, char *err, size_t errlen)
{
	struct kc k = {.path = path, .err = err, .errlen = errlen};
	struct k8s_config *cfg = NULL;
	yaml_parser_t parser;
	char *text = NULL;
	size_t len = 0;
	const char *slash;
	int rc;

	rc = read_file(path, CFG_FILE_MAX, &text, &len);
	if (rc) {
		set_err(err, errlen, "kubeconfig %s: cannot read: %s", path, weir_strerror(rc));
		return rc;
	}
	slash = strrchr(path, '/');
	if (slash)
		k.dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
	else
		k.dir = xstrdup(".");
	if (!k.dir)
		abort();
	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &k.doc)) {
		set_err(err, errlen, "kubeconfig %s:%zu: YAML error: %s", path,
		        parser.problem_mark.line + 1, parser.problem ? parser.problem : "unknown");
		yaml_parser_delete(&parser);
		rc = WEIR_EPARSE;
		goto out_text;
	}
	yaml_parser_delete(&parser);
	cfg = config_alloc(path);
	rc = kubeconfig_parse(&k, cfg);
	yaml_document_delete(&k.doc);
	if (rc)
		goto out_cfg;
	*out = cfg;
	cfg = NULL;
out_cfg:
	k8s_config_free(cfg);
out_text:
	free(text);
	free(k.dir);
	return rc;
}

/* In-cluster: the API server's Service address from the environment and the pod's
 * service-account files in sa_dir. */
static int load_in_cluster(const char *sa_dir, const char *host, const char *port,
                           struct k8s_config **out, char *err, size_t errlen)
{
	struct k8s_config *cfg = config_alloc("in-cluster");
	char *path = NULL, *ns = NULL;
	int rc;

	if (asprintf(&cfg->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
	             port) < 0)
		abort();
	if (asprintf(&path, "%s/ca.crt", sa_dir) < 0)
		abort();
	rc = read_file(path, CFG_FILE_MAX, &cfg->ca, &cfg->ca_len);
	if (rc) {
		set_err(err, errlen, "in-cluster config: %s: %s", path, weir_strerror(rc));
		goto out;
	}
	free(path);
	if (asprintf(&path, "%s/namespace", sa_dir) < 0)
		abort();
	if (read_file(path, 4096, &ns, NULL) == 0) {
		trim_right(ns);
		cfg->ns = ns;
	}
	cfg->tok.file = NULL;
	if (asprintf(&cfg->tok.file, "%s/token", sa_dir) < 0)
		abort();
	pthread_mutex_lock(&cfg->tok.mu);
	rc = token_refresh_locked(&cfg->tok, "in-cluster");
	pthread_mutex_unlock(&cfg->tok.mu);
	if (rc) {
		set_err(err, errlen, "in-cluster config: token %s cannot be read", cfg->tok.file);
		goto out;
	}
	*out = cfg;
	cfg = NULL;
out:
	free(path);
	k8s_config_free(cfg);
	return rc;
}

int k8s_config_load(const char *path, struct k8s_config **out, char *err, size_t errlen)
{
	const char *host, *port, *env;
	char *buf = NULL;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (path)
		return load_kubeconfig(path, out, err, errlen);
	host = getenv("KUBERNETES_SERVICE_HOST");
	port = getenv("KUBERNETES_SERVICE_PORT");
	if (host && host[0] && port && port[0] && access(SA_DIR "/token", R_OK) == 0)
		return load_in_cluster(SA_DIR, host, port, out, err, errlen);
	env = getenv("KUBECONFIG");
	if (env && env[0]) {
		/* A list: the first entry is used (merging kubeconfigs is not supported). */
		buf = xstrdup(env);
		buf[strcspn(buf, ":")] = '\0';
	} else {
		const char *home = getenv("HOME");

		if (!home || !home[0]) {
			set_err(err, errlen,
			        "no kubeconfig: not in a cluster, $KUBECONFIG and $HOME unset");
			return WEIR_ENOENT;
		}
		if (asprintf(&buf, "%s/.kube/config", home) < 0)
			abort();
	}
	rc = load_kubeconfig(buf, out, err, errlen);
	free(buf);
	return rc;
}
