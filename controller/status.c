/* controller/status.c - the publish Service's addresses, written into
 * status.loadBalancer.ingress of our Ingresses (by the leader only; the caller decides). */
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "k8s_client.h"
#include "log.h"

static const char *const LOG_C = "controller.status";

/* GET path and parse the JSON body. 404 -> WEIR_ENOENT, other non-2xx -> WEIR_EHTTP. */
static int get_json(struct k8s_client *c, const char *path, json_object **out)
{
	char *resp = NULL;
	long status;
	int rc;

	*out = NULL;
	rc = k8s_request(c, "GET", path, NULL, NULL, &status, &resp);
	if (rc)
		goto out;
	if (status == 404) {
		rc = WEIR_ENOENT;
		goto out;
	}
	if (status < 200 || status > 299) {
		log_debug(LOG_C, "GET %s: HTTP %ld: %.200s", path, status, resp);
		rc = WEIR_EHTTP;
		goto out;
	}
	*out = json_tokener_parse(resp);
	rc = *out && json_object_is_type(*out, json_type_object) ? 0 : WEIR_EPARSE;
	if (rc) {
		json_object_put(*out);
		*out = NULL;
	}
out:
	free(resp);
	return rc;
}

static json_object *get_path(json_object *o, const char *a, const char *b, const char *c)
{
	const char *keys[] = {a, b, c};

	for (int i = 0; i < 3 && o && keys[i]; i++)
		if (!json_object_object_get_ex(o, keys[i], &o))
			return NULL;
	return o;
}

static json_object *addr_entry(const char *field, const char *value)
{
	json_object *e = json_object_new_object();

	json_object_object_add(e, field, json_object_new_string(value));
	return e;
}

int status_publish_addresses(struct k8s_client *c, const char *ns_name, json_object **out)
{
	const char *slash = ns_name ? strchr(ns_name, '/') : NULL;
	json_object *svc = NULL, *list, *arr = NULL;
	char *path = NULL;
	int rc;

	*out = NULL;
	if (!slash || slash == ns_name || !slash[1] || strchr(slash + 1, '/'))
		return WEIR_EINVAL;
	if (asprintf(&path, "/api/v1/namespaces/%.*s/services/%s", (int)(slash - ns_name), ns_name,
	             slash + 1) < 0)
		abort();
	rc = get_json(c, path, &svc);
	if (rc)
		goto out;
	arr = json_object_new_array();
	/* 1. The load balancer's own addresses (ip and/or hostname, nothing else). */
	list = get_path(svc, "status", "loadBalancer", "ingress");
	for (size_t i = 0; list && json_object_is_type(list, json_type_array) &&
	                   i < json_object_array_length(list);
	     i++) {
		json_object *e = json_object_array_get_idx(list, i), *ip = NULL, *host = NULL, *n;

		json_object_object_get_ex(e, "ip", &ip);
		json_object_object_get_ex(e, "hostname", &host);
		if (!ip && !host)
			continue;
		n = json_object_new_object();
		if (ip)
			json_object_object_add(n, "ip", json_object_get(ip));
		if (host)
			json_object_object_add(n, "hostname", json_object_get(host));
		json_object_array_add(arr, n);
	}
	/* 2. Else the external IPs, 3. else the cluster IP. */
	if (json_object_array_length(arr) == 0) {
		list = get_path(svc, "spec", "externalIPs", NULL);
		for (size_t i = 0; list && json_object_is_type(list, json_type_array) &&
		                   i < json_object_array_length(list);
		     i++) {
			json_object *ip = json_object_array_get_idx(list, i);

			if (json_object_is_type(ip, json_type_string))
				json_object_array_add(arr,
				                      addr_entry("ip", json_object_get_string(ip)));
		}
	}
	if (json_object_array_length(arr) == 0) {
		json_object *ip = get_path(svc, "spec", "clusterIP", NULL);

		if (ip && json_object_is_type(ip, json_type_string) &&
		    json_object_get_string_len(ip) > 0 &&
		    strcmp(json_object_get_string(ip), "None") != 0)
			json_object_array_add(arr, addr_entry("ip", json_object_get_string(ip)));
	}
	*out = arr;
	arr = NULL;
out:
	json_object_put(arr);
	json_object_put(svc);
	free(path);
	return rc;
}

bool status_ingress_has(json_object *ing, json_object *want)
{
	json_object *cur = get_path(ing, "status", "loadBalancer", "ingress");
	size_t nc =
	    cur && json_object_is_type(cur, json_type_array) ? json_object_array_length(cur) : 0;
	size_t nw =
	    want && json_object_is_type(want, json_type_array) ? json_object_array_length(want) : 0;

	if (nc == 0 || nw == 0)
		return nc == nw;
	return json_object_equal(cur, want) != 0;
}

int status_update_ingress(struct k8s_client *c, const char *ns, const char *name,
                          json_object *lb_ingress)
{
	json_object *ing = NULL, *st, *lb, *copy = NULL;
	char *path = NULL, *spath = NULL, *resp = NULL;
	long status = 0;
	int rc = WEIR_EINVAL;

	if (!ns || !ns[0] || !name || !name[0] ||
	    (lb_ingress && !json_object_is_type(lb_ingress, json_type_array)))
		return WEIR_EINVAL;
	if (asprintf(&path, "/apis/networking.k8s.io/v1/namespaces/%s/ingresses/%s", ns, name) <
	        0 ||
	    asprintf(&spath, "%s/status", path) < 0)
		abort();
	for (int attempt = 0; attempt < 2; attempt++) {
		json_object_put(ing);
		ing = NULL;
		rc = get_json(c, path, &ing);
		if (rc)
			goto out;
		if (status_ingress_has(ing, lb_ingress)) {
			rc = 0;
			goto out;
		}
		if (!json_object_object_get_ex(ing, "status", &st) ||
		    !json_object_is_type(st, json_type_object)) {
			st = json_object_new_object();
			json_object_object_add(ing, "status", st);
		}
		if (!json_object_object_get_ex(st, "loadBalancer", &lb) ||
		    !json_object_is_type(lb, json_type_object)) {
			lb = json_object_new_object();
			json_object_object_add(st, "loadBalancer", lb);
		}
		copy = NULL;
		if (lb_ingress && json_object_array_length(lb_ingress) > 0) {
			if (json_object_deep_copy(lb_ingress, &copy, NULL) != 0) {
				rc = WEIR_ENOMEM;
				goto out;
			}
			json_object_object_add(lb, "ingress", copy);
		} else {
			json_object_object_del(lb, "ingress");
		}
		free(resp);
		resp = NULL;
		/* metadata.resourceVersion from the GET makes this an optimistic update. */
		rc = k8s_request(c, "PUT", spath,
		                 json_object_to_json_string_ext(ing, JSON_C_TO_STRING_PLAIN),
		                 "application/json", &status, &resp);
		if (rc)
			goto out;
		if (status >= 200 && status <= 299) {
			log_info(LOG_C, "Ingress %s/%s: status.loadBalancer updated", ns, name);
			rc = 0;
			goto out;
		}
		if (status != 409) {
			log_warn(LOG_C, "Ingress %s/%s: status update: HTTP %ld: %.200s", ns, name,
			         status, resp);
			rc = status == 404 ? WEIR_ENOENT : WEIR_EHTTP;
			goto out;
		}
		rc = WEIR_EAGAIN; /* conflict: someone changed it; re-read and retry once */
	}
	log_warn(LOG_C, "Ingress %s/%s: status update conflicted twice", ns, name);
out:
	json_object_put(ing);
	free(resp);
	free(spath);
	free(path);
	return rc;
}
