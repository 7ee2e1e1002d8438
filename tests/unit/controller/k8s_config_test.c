/* Unit test: kubeconfig and in-cluster loading, token file rotation. Includes the .c to reach
 * the token re-check interval and the in-cluster loader with a test directory. */
#include "controller/k8s_config.c"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char dir[256];

static void write_file(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

static char *path_of(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

/* "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n" */
#define CA_PEM "-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClFVSkQKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
#define KEY_PEM "-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n"
#define KEY_B64 "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tClFVSkQKLS0tLS1FTkQgUFJJVkFURSBLRVktLS0tLQo="

static struct k8s_config *load_text(const char *text, char *err, size_t errlen, int *rc)
{
	struct k8s_config *cfg = NULL;

	write_file("config", text);
	*rc = k8s_config_load(path_of("config"), &cfg, err, errlen);
	return cfg;
}

static void test_base64(void)
{
	size_t n;
	char *s = base64_decode(CA_B64, &n);

	CHECK_STR(s, CA_PEM);
	CHECK_INT(n, strlen(CA_PEM));
	free(s);
	s = base64_decode("aGk=", &n);
	CHECK_STR(s, "hi");
	free(s);
	s = base64_decode("aGk", &n); /* padding optional */
	CHECK_STR(s, "hi");
	free(s);
	CHECK(base64_decode("a$Gk=", &n) == NULL);
	CHECK(base64_decode("aGk=aGk=", &n) == NULL);
}

static void test_token_and_ca_data(void)
{
	char err[512], tok[256];
	size_t len;
	int rc;
	struct k8s_config *cfg = load_text("apiVersion: v1\n"
	                                   "kind: Config\n"
	                                   "current-context: dev\n"
	                                   "clusters:\n"
	                                   "- name: other\n"
	                                   "  cluster: {server: https://wrong:1}\n"
	                                   "- name: c1\n"
	                                   "  cluster:\n"
	                                   "    server: https://127.0.0.1:6443/\n"
	                                   "    certificate-authority-data: " CA_B64 "\n"
	                                   "contexts:\n"
	                                   "- name: dev\n"
	                                   "  context: {cluster: c1, user: u1, namespace: team-a}\n"
	                                   "users:\n"
	                                   "- name: u1\n"
	                                   "  user:\n"
	                                   "    token: \"abc.def\"\n",
	                                   err, sizeof(err), &rc);

	CHECK_INT(rc, 0);
	if (!cfg) {
		fprintf(stderr, "error: %s\n", err);
		return;
	}
	CHECK_STR(k8s_config_server(cfg), "https://127.0.0.1:6443");
	CHECK_STR(k8s_config_namespace(cfg), "team-a");
	CHECK_STR(k8s_config_ca_pem(cfg, &len), CA_PEM);
	CHECK_INT(len, strlen(CA_PEM));
	CHECK(k8s_config_cert_pem(cfg, &len) == NULL);
	CHECK_INT(k8s_config_token(cfg, tok, sizeof(tok)), 0);
	CHECK_STR(tok, "abc.def");
	CHECK_INT(k8s_config_token(cfg, tok, 4), WEIR_ETOOBIG);
	CHECK_INT(k8s_config_insecure(cfg), 0);
	k8s_config_free(cfg);
}

static void test_token_file_rotation(void)
{
	char err[512], tok[256];
	int rc;
	struct k8s_config *cfg;

	mkdir(path_of("sub"), 0700);
	write_file("sub/token", "first-token\n");
	cfg = load_text("current-context: x\n"
	                "clusters: [{name: c, cluster: {server: 'https://h:1'}}]\n"
	                "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
	                "users: [{name: u, user: {tokenFile: sub/token}}]\n",
	                err, sizeof(err), &rc);
	CHECK_INT(rc, 0);
	if (!cfg) {
		fprintf(stderr, "error: %s\n", err);
		return;
	}
	CHECK_STR(k8s_config_namespace(cfg), "default");
	CHECK_INT(k8s_config_token(cfg, tok, sizeof(tok)), 0);
	CHECK_STR(tok, "first-token");

	/* Within the re-check interval the cached token is used without looking. */
	cfg->tok.recheck_ms = 3600 * 1000;
	write_file("sub/token", "second-token-longer\n");
	CHECK_INT(k8s_config_token(cfg, tok, sizeof(tok)), 0);
	CHECK_STR(tok, "first-token");

	/* Once the interval has passed, the changed file is read again. */
	cfg->tok.recheck_ms = 0;
	clock_gettime(CLOCK_MONOTONIC, &cfg->tok.next_check);
	CHECK_INT(k8s_config_token(cfg, tok, sizeof(tok)), 0);
	CHECK_STR(tok, "second-token-longer");

	/* Same size, new content (mtime changes): rotated too. Atomic rename, as the kubelet. */
	write_file("sub/token.new", "third-token-xxxxxxx\n");
	{
		char from[512];

		snprintf(from, sizeof(from), "%s", path_of("sub/token.new"));
		CHECK_INT(rename(from, path_of("sub/token")), 0);
	}
	CHECK_INT(k8s_config_token(cfg, tok, sizeof(tok)), 0);
	CHECK_STR(tok, "third-token-xxxxxxx");

	/* After a 401 the client asks for an immediate re-check. */
	cfg->tok.recheck_ms = 3600 * 1000;
	CHECK_INT(k8s_config_token(cfg, tok, sizeof(tok)), 0);
	write_file("sub/token", "fourth\n");
	CHECK_INT(k8s_config_token(cfg, tok, sizeof(tok)), 0);
	CHECK_STR(tok, "third-token-xxxxxxx");
	k8s_config_token_recheck(cfg);
	CHECK_INT(k8s_config_token(cfg, tok, sizeof(tok)), 0);
	CHECK_STR(tok, "fourth");
	k8s_config_token_recheck(cfg);

	/* The file vanishing keeps the last good token. */
	unlink(path_of("sub/token"));
	CHECK_INT(k8s_config_token(cfg, tok, sizeof(tok)), 0);
	CHECK_STR(tok, "fourth");
	k8s_config_free(cfg);

	/* A tokenFile that cannot be read at load time is an error naming it. */
	cfg = load_text("current-context: x\n"
	                "clusters: [{name: c, cluster: {server: 'https://h:1'}}]\n"
	                "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
	                "users: [{name: u, user: {tokenFile: sub/missing}}]\n",
	                err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK_INT(rc, WEIR_EIO);
	CHECK(strstr(err, "tokenFile") && strstr(err, "sub/missing") &&
	      strstr(err, path_of("config")));
}

static void test_client_cert_data(void)
{
	char err[512], tok[16];
	size_t len;
	int rc;
	struct k8s_config *cfg = load_text("current-context: x\n"
	                                   "clusters: [{name: c, cluster: {server: 'https://h:1', "
	                                   "certificate-authority-data: " CA_B64 "}}]\n"
	                                   "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
	                                   "users:\n"
	                                   "- name: u\n"
	                                   "  user:\n"
	                                   "    client-certificate-data: " CA_B64 "\n"
	                                   "    client-key-data: " KEY_B64 "\n",
	                                   err, sizeof(err), &rc);

	CHECK_INT(rc, 0);
	if (!cfg) {
		fprintf(stderr, "error: %s\n", err);
		return;
	}
	CHECK_STR(k8s_config_cert_pem(cfg, &len), CA_PEM);
	CHECK_STR(k8s_config_key_pem(cfg, &len), KEY_PEM);
	CHECK_INT(len, strlen(KEY_PEM));
	CHECK_INT(k8s_config_token(cfg, tok, sizeof(tok)), 0);
	CHECK_STR(tok, "");
	k8s_config_free(cfg);

	/* Certificate without key. */
	cfg = load_text("current-context: x\n"
	                "clusters: [{name: c, cluster: {server: 'https://h:1'}}]\n"
	                "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
	                "users: [{name: u, user: {client-certificate-data: " CA_B64 "}}]\n",
	                err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "client-key"));
}

static void test_files_relative(void)
{
	char err[512];
	size_t len;
	int rc;
	struct k8s_config *cfg;

	mkdir(path_of("pki"), 0700);
	write_file("pki/ca.crt", CA_PEM);
	write_file("pki/client.crt", CA_PEM);
	write_file("pki/client.key", KEY_PEM);
	cfg = load_text("current-context: x\n"
	                "clusters: [{name: c, cluster: {server: 'https://h:1', "
	                "certificate-authority: pki/ca.crt}}]\n"
	                "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
	                "users: [{name: u, user: {client-certificate: pki/client.crt, "
	                "client-key: pki/client.key}}]\n",
	                err, sizeof(err), &rc);
	CHECK_INT(rc, 0);
	if (!cfg) {
		fprintf(stderr, "error: %s\n", err);
		return;
	}
	CHECK_STR(k8s_config_ca_pem(cfg, &len), CA_PEM);
	CHECK_STR(k8s_config_cert_pem(cfg, &len), CA_PEM);
	CHECK_STR(k8s_config_key_pem(cfg, &len), KEY_PEM);
	k8s_config_free(cfg);

	/* Absolute path works too; a missing CA file names the field and the resolved path. */
	cfg = load_text("current-context: x\n"
	                "clusters: [{name: c, cluster: {server: 'https://h:1', "
	                "certificate-authority: nope/ca.crt}}]\n"
	                "contexts: [{name: x, context: {cluster: c}}]\n",
	                err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK_INT(rc, WEIR_ENOENT);
	CHECK(strstr(err, "certificate-authority") && strstr(err, "/nope/ca.crt") &&
	      strstr(err, dir));

	/* A CA file that is not PEM. */
	write_file("pki/bad.crt", "hello\n");
	cfg = load_text("current-context: x\n"
	                "clusters: [{name: c, cluster: {server: 'https://h:1', "
	                "certificate-authority: pki/bad.crt}}]\n"
	                "contexts: [{name: x, context: {cluster: c}}]\n",
	                err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "PEM"));
}

static void test_errors(void)
{
	char err[512];
	int rc;
	struct k8s_config *cfg;

	cfg = load_text("current-context: missing\n"
	                "clusters: [{name: c, cluster: {server: 'https://h:1'}}]\n"
	                "contexts: [{name: x, context: {cluster: c}}]\n",
	                err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK_INT(rc, WEIR_EINVAL);
	CHECK(strstr(err, path_of("config")) && strstr(err, "\"missing\"") &&
	      strstr(err, "current-context"));
	CHECK(!strchr(err, '\n'));

	cfg = load_text("clusters: []\n", err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "current-context is not set"));

	cfg = load_text("current-context: x\n"
	                "contexts: [{name: x, context: {cluster: nope}}]\n",
	                err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "cluster \"nope\""));

	cfg = load_text("current-context: x\n"
	                "clusters: [{name: c, cluster: {server: 'ftp://h'}}]\n"
	                "contexts: [{name: x, context: {cluster: c}}]\n",
	                err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "server"));

	cfg = load_text("current-context: x\n"
	                "clusters: [{name: c, cluster: {server: 'https://h:1', "
	                "certificate-authority-data: '***'}}]\n"
	                "contexts: [{name: x, context: {cluster: c}}]\n",
	                err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "certificate-authority-data is not valid base64"));

	cfg = load_text("current-context: x\n"
	                "clusters: [{name: c, cluster: {server: 'https://h:1'}}]\n"
	                "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
	                "users: [{name: u, user: {exec: {command: aws}}}]\n",
	                err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK(strstr(err, "exec"));

	cfg = load_text("current-context: x\nclusters: [\n  - {name: c\n", err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK_INT(rc, WEIR_EPARSE);
	CHECK(strstr(err, "YAML"));

	rc = k8s_config_load(path_of("does-not-exist"), &cfg, err, sizeof(err));
	CHECK_INT(rc, WEIR_ENOENT);
	CHECK(strstr(err, "does-not-exist"));
}

static void test_insecure(void)
{
	static const char text[] = "current-context: x\n"
	                           "clusters: [{name: c, cluster: {server: 'https://h:1', "
	                           "insecure-skip-tls-verify: true}}]\n"
	                           "contexts: [{name: x, context: {cluster: c}}]\n";
	char err[512];
	int rc;
	struct k8s_config *cfg;

	unsetenv("WEIR_INSECURE_SKIP_TLS_VERIFY");
	cfg = load_text(text, err, sizeof(err), &rc);
	CHECK(cfg == NULL);
	CHECK_INT(rc, WEIR_ETLS);
	CHECK(strstr(err, "insecure-skip-tls-verify") &&
	      strstr(err, "WEIR_INSECURE_SKIP_TLS_VERIFY=1"));

	setenv("WEIR_INSECURE_SKIP_TLS_VERIFY", "1", 1);
	cfg = load_text(text, err, sizeof(err), &rc);
	CHECK_INT(rc, 0);
	CHECK(cfg && k8s_config_insecure(cfg));
	k8s_config_free(cfg);
	unsetenv("WEIR_INSECURE_SKIP_TLS_VERIFY");
}

static void test_in_cluster_and_env(void)
{
	char err[512], tok[64];
	size_t len;
	int rc;
	struct k8s_config *cfg = NULL;

	mkdir(path_of("sa"), 0700);
	write_file("sa/ca.crt", CA_PEM);
	write_file("sa/token", "sa-token\n");
	write_file("sa/namespace", "weir-system");
	rc = load_in_cluster(path_of("sa"), "10.96.0.1", "443", &cfg, err, sizeof(err));
	CHECK_INT(rc, 0);
	if (cfg) {
		CHECK_STR(k8s_config_server(cfg), "https://10.96.0.1:443");
		CHECK_STR(k8s_config_namespace(cfg), "weir-system");
		CHECK_STR(k8s_config_ca_pem(cfg, &len), CA_PEM);
		CHECK_INT(k8s_config_token(cfg, tok, sizeof(tok)), 0);
		CHECK_STR(tok, "sa-token");
		k8s_config_free(cfg);
	}
	cfg = NULL;
	rc = load_in_cluster(path_of("sa"), "fd00::1", "6443", &cfg, err, sizeof(err));
	CHECK_INT(rc, 0);
	CHECK(cfg && strcmp(k8s_config_server(cfg), "https://[fd00::1]:6443") == 0);
	k8s_config_free(cfg);
	cfg = NULL;
	rc = load_in_cluster(path_of("nosa"), "h", "1", &cfg, err, sizeof(err));
	CHECK(rc != 0 && cfg == NULL && strstr(err, "in-cluster") && strstr(err, "nosa/ca.crt"));

	/* path NULL outside a cluster: the first entry of $KUBECONFIG. */
	write_file("env-config", "current-context: x\n"
	                         "clusters: [{name: c, cluster: {server: 'https://env:2'}}]\n"
	                         "contexts: [{name: x, context: {cluster: c}}]\n");
	unsetenv("KUBERNETES_SERVICE_HOST");
	{
		char env[600];

		snprintf(env, sizeof(env), "%s:/nonexistent", path_of("env-config"));
		setenv("KUBECONFIG", env, 1);
	}
	rc = k8s_config_load(NULL, &cfg, err, sizeof(err));
	CHECK_INT(rc, 0);
	CHECK(cfg && strcmp(k8s_config_server(cfg), "https://env:2") == 0);
	k8s_config_free(cfg);
}

int main(void)
{
	char cmd[300];

	snprintf(dir, sizeof(dir), "/tmp/weir-k8s-config-test-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	log_init(LOG_FORMAT_TEXT, LOG_LEVEL_ERROR);
	test_base64();
	test_token_and_ca_data();
	test_token_file_rotation();
	test_client_cert_data();
	test_files_relative();
	test_errors();
	test_insecure();
	test_in_cluster_and_env();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_finish("k8s_config_test");
}
