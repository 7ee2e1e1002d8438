/* controller/k8s_config.h - where the Kubernetes API is and how to authenticate to it:
 * a kubeconfig file (libyaml) or the in-cluster service account. */
#ifndef WEIR_CONTROLLER_K8S_CONFIG_H
#define WEIR_CONTROLLER_K8S_CONFIG_H

#include <stddef.h>

/* Server URL, CA bundle, client certificate/key (all kept in memory as PEM), and a bearer
 * token (fixed, or a token file re-read when it changes: bound service-account tokens
 * rotate). Immutable after load except the cached token, which is guarded internally. */
struct k8s_config;

/* path NULL: in-cluster (KUBERNETES_SERVICE_HOST/PORT + /var/run/secrets/kubernetes.io/
 * serviceaccount/{token,ca.crt,namespace}) if present, else $KUBECONFIG, else ~/.kube/config.
 * insecure-skip-tls-verify is refused unless WEIR_INSECURE_SKIP_TLS_VERIFY=1.
 * Returns 0 and *out (caller frees with k8s_config_free), or WEIR_E* and one line in err
 * naming the file and field. */
int k8s_config_load(const char *path, struct k8s_config **out, char *err, size_t errlen);

/* Frees cfg and everything it holds; NULL is fine. */
void k8s_config_free(struct k8s_config *cfg);

/* The pod namespace (in-cluster), the context's namespace (kubeconfig), or "default".
 * Borrowed for cfg's life. */
const char *k8s_config_namespace(const struct k8s_config *cfg);

/* Accessors used by k8s_client. All returned pointers are borrowed for cfg's life; the
 * PEM blobs are NULL when absent (len 0). */
const char *k8s_config_server(const struct k8s_config *cfg); /* "https://host:port", no slash */
const char *k8s_config_ca_pem(const struct k8s_config *cfg, size_t *len);
const char *k8s_config_cert_pem(const struct k8s_config *cfg, size_t *len);
const char *k8s_config_key_pem(const struct k8s_config *cfg, size_t *len);
/* Non-zero when TLS verification was disabled (only with WEIR_INSECURE_SKIP_TLS_VERIFY=1). */
int k8s_config_insecure(const struct k8s_config *cfg);

/* Copy the current bearer token into buf (NUL-terminated). A token file is re-read when its
 * mtime/size changed, checked at most every few seconds. Returns 0 (buf "" when the config has
 * no token), WEIR_ETOOBIG when buf is too small, or WEIR_EIO when the file cannot be read and
 * no previous token is cached. Thread-safe (the token cache is internally locked, so cfg
 * may be const). */
int k8s_config_token(const struct k8s_config *cfg, char *buf, size_t buflen);

/* Make the next k8s_config_token look at the token file at once (the client calls this after
 * an HTTP 401, so a rotated token is picked up without waiting for the re-check interval). */
void k8s_config_token_recheck(const struct k8s_config *cfg);

#endif
