/* tests/unit/controller/compile_auth_test.c - auth-type basic through
 * compile (under ASan): the Secret's users land in the route policy, in file
 * order or sorted map keys; every bad case drops only its Ingress with a
 * diagnostic on the auth key; the table is one the proxy's parser takes. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "controller/compile.h"
#include "error.h"

static const char *const objects[][2] = {
    {"IngressClass", "{\"metadata\":{\"name\":\"weir\"},\"spec\":{\"controller\":\"weir.dev/"
                     "ingress-controller\"}}"},
    {"Service", "{\"metadata\":{\"namespace\":\"a\",\"name\":\"web\"},\"spec\":{\"ports\":[{"
                "\"name\":\"http\",\"port\":80}]}}"},
    {"EndpointSlice",
     "{\"metadata\":{\"namespace\":\"a\",\"name\":\"web-1\",\"labels\":{\"kubernetes.io/"
     "service-name\":\"web\"}},\"addressType\":\"IPv4\",\"ports\":[{\"name\":\"http\",\"port\":"
     "8080}],\"endpoints\":[{\"addresses\":[\"10.0.0.5\"]}]}"},
    {"Secret",
     "{\"metadata\":{\"namespace\":\"a\",\"name\":\"file\"},\"type\":\"Opaque\",\"data\":{\"auth\":"
     "\"IyB1c2VycwphbGljZTokYXByMSQ3WTlFUEs2cyQuT3Btc3JlWFdSaVFMa3ZUTnVMakEwDQpib2I6e1NIQX0vdk5CK0Y"
     "ySFE1NTlrYUxVWmJtSEh2WnJYcGc9OmNvbW1lbnQK\"}}"},
    {"Secret", "{\"metadata\":{\"namespace\":\"a\",\"name\":\"map\"},\"type\":\"Opaque\",\"data\":{"
               "\"carol\":\"aC53LnBmWVVnYkdGUQo=\"},\"stringData\":{\"dave\":\"$1$bDtnUs.v$Zk3r8."
               "2vWEvZQRyIINd/g.\",\"carol\":\"ignored\"}}"},
    {"Secret",
     "{\"metadata\":{\"namespace\":\"a\",\"name\":\"bad\"},\"type\":\"Opaque\",\"data\":{\"auth\":"
     "\"YWxpY2U6JGFwcjEkN1k5RVBLNnMkLk9wbXNyZVhXUmlRTGt2VE51TGpBMApib2I6e1BMQUlOfXgK\"}}"},
    {"Secret", "{\"metadata\":{\"namespace\":\"a\",\"name\":\"notb64\"},\"type\":\"Opaque\","
               "\"data\":{\"auth\":\"***\"}}"},
    {"Ingress", "{\"metadata\":{\"namespace\":\"a\",\"name\":\"file\",\"creationTimestamp\":\"2026-"
                "01-01T00:00:00Z\",\"annotations\":{\"nginx.ingress.kubernetes.io/"
                "auth-type\":\"basic\",\"nginx.ingress.kubernetes.io/"
                "auth-secret\":\"file\",\"nginx.ingress.kubernetes.io/"
                "auth-realm\":\"Realm\"}},\"spec\":{\"ingressClassName\":\"weir\",\"rules\":[{"
                "\"host\":\"a.example.com\",\"http\":{\"paths\":[{\"path\":\"/"
                "file\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\","
                "\"port\":{\"number\":80}}}}]}}]}}"},
    {"Ingress", "{\"metadata\":{\"namespace\":\"a\",\"name\":\"map\",\"creationTimestamp\":\"2026-"
                "01-01T00:00:00Z\",\"annotations\":{\"nginx.ingress.kubernetes.io/"
                "auth-type\":\"basic\",\"nginx.ingress.kubernetes.io/auth-secret\":\"a/"
                "map\",\"nginx.ingress.kubernetes.io/"
                "auth-secret-type\":\"auth-map\"}},\"spec\":{\"ingressClassName\":\"weir\","
                "\"rules\":[{\"host\":\"a.example.com\",\"http\":{\"paths\":[{\"path\":\"/"
                "map\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\",\"port\":"
                "{\"number\":80}}}}]}}]}}"},
    {"Ingress", "{\"metadata\":{\"namespace\":\"a\",\"name\":\"bad\",\"creationTimestamp\":\"2026-"
                "01-01T00:00:00Z\",\"annotations\":{\"nginx.ingress.kubernetes.io/"
                "auth-type\":\"basic\",\"nginx.ingress.kubernetes.io/"
                "auth-secret\":\"bad\"}},\"spec\":{\"ingressClassName\":\"weir\",\"rules\":[{"
                "\"host\":\"a.example.com\",\"http\":{\"paths\":[{\"path\":\"/"
                "bad\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\",\"port\":"
                "{\"number\":80}}}}]}}]}}"},
    {"Ingress", "{\"metadata\":{\"namespace\":\"a\",\"name\":\"notb64\",\"creationTimestamp\":"
                "\"2026-01-01T00:00:00Z\",\"annotations\":{\"nginx.ingress.kubernetes.io/"
                "auth-type\":\"basic\",\"nginx.ingress.kubernetes.io/"
                "auth-secret\":\"notb64\"}},\"spec\":{\"ingressClassName\":\"weir\",\"rules\":[{"
                "\"host\":\"a.example.com\",\"http\":{\"paths\":[{\"path\":\"/"
                "notb64\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\","
                "\"port\":{\"number\":80}}}}]}}]}}"},
    {"Ingress", "{\"metadata\":{\"namespace\":\"a\",\"name\":\"missing\",\"creationTimestamp\":"
                "\"2026-01-01T00:00:00Z\",\"annotations\":{\"nginx.ingress.kubernetes.io/"
                "auth-type\":\"basic\",\"nginx.ingress.kubernetes.io/"
                "auth-secret\":\"nope\"}},\"spec\":{\"ingressClassName\":\"weir\",\"rules\":[{"
                "\"host\":\"a.example.com\",\"http\":{\"paths\":[{\"path\":\"/"
                "missing\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\","
                "\"port\":{\"number\":80}}}}]}}]}}"},
    {"Ingress", "{\"metadata\":{\"namespace\":\"a\",\"name\":\"digest\",\"creationTimestamp\":"
                "\"2026-01-01T00:00:00Z\",\"annotations\":{\"nginx.ingress.kubernetes.io/"
                "auth-type\":\"digest\",\"nginx.ingress.kubernetes.io/"
                "auth-secret\":\"file\"}},\"spec\":{\"ingressClassName\":\"weir\",\"rules\":[{"
                "\"host\":\"a.example.com\",\"http\":{\"paths\":[{\"path\":\"/"
                "digest\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\","
                "\"port\":{\"number\":80}}}}]}}]}}"},
    {"Ingress", "{\"metadata\":{\"namespace\":\"a\",\"name\":\"open\",\"creationTimestamp\":\"2026-"
                "01-01T00:00:00Z\",\"annotations\":{}},\"spec\":{\"ingressClassName\":\"weir\","
                "\"rules\":[{\"host\":\"a.example.com\",\"http\":{\"paths\":[{\"path\":\"/"
                "open\",\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\","
                "\"port\":{\"number\":80}}}}]}}]}}"},
};
#define NOBJ (sizeof(objects) / sizeof(objects[0]))

static enum store_kind kind_of(const char *k)
{
	for (int i = 0; i < STORE_KIND_COUNT; i++)
		if (strcmp(k, store_kind_name((enum store_kind)i)) == 0)
			return (enum store_kind)i;
	return STORE_KIND_COUNT;
}

static const struct route *route_at(const struct route_table *t, const char *path)
{
	for (size_t h = 0; h < t->nhosts; h++)
		for (size_t r = 0; r < t->hosts[h].nroutes; r++)
			if (strcmp(t->hosts[h].routes[r].path, path) == 0)
				return &t->hosts[h].routes[r];
	return NULL;
}

static const struct diag *diag_of(const struct diag_list *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->items[i].name, name) == 0)
			return &d->items[i];
	return NULL;
}

int main(void)
{
	struct store *s = store_new();
	for (size_t i = 0; i < NOBJ; i++) {
		json_object *o = json_tokener_parse(objects[i][1]);
		CHECK(o != NULL);
		CHECK_INT(store_upsert(s, kind_of(objects[i][0]), o), 0);
	}
	struct compile_options opt = {.ingress_class = "weir",
	                              .controller_name = "weir.dev/ingress-controller",
	                              .allow_loopback = false};
	struct snapshot *snap = store_snapshot(s);
	struct route_table *t = NULL;
	struct diag_list d = {0};
	CHECK_INT(compile_snapshot(snap, &opt, &t, &d), 0);

	const struct route *file = route_at(t, "/file"), *map = route_at(t, "/map");
	CHECK(file && file->policy->auth.type == ROUTE_AUTH_BASIC);
	if (file && file->policy->auth.nusers == 2) {
		CHECK_STR(file->policy->auth.realm, "Realm");
		CHECK_STR(file->policy->auth.users[0].name, "alice");
		CHECK_STR(file->policy->auth.users[0].hash,
		          "$apr1$7Y9EPK6s$.OpmsreXWRiQLkvTNuLjA0");
		CHECK_STR(file->policy->auth.users[1].name, "bob");
		CHECK_STR(file->policy->auth.users[1].hash, "{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=");
	} else {
		CHECK(!"/file has two users");
	}
	CHECK(map && map->policy->auth.type == ROUTE_AUTH_BASIC);
	if (map && map->policy->auth.nusers == 2) {
		CHECK(map->policy->auth.realm == NULL);
		CHECK_STR(map->policy->auth.users[0].name, "carol"); /* data wins over stringData */
		CHECK_STR(map->policy->auth.users[0].hash, "h.w.pfYUgbGFQ");
		CHECK_STR(map->policy->auth.users[1].name, "dave");
	} else {
		CHECK(!"/map has two users");
	}
	const struct route *open = route_at(t, "/open");
	CHECK(open && open->policy->auth.type == ROUTE_AUTH_NONE);
	static const char *const dropped[][3] = {
	    {"bad", "nginx.ingress.kubernetes.io/auth-secret", "BadAuthSecret"},
	    {"notb64", "nginx.ingress.kubernetes.io/auth-secret", "BadAuthSecret"},
	    {"missing", "nginx.ingress.kubernetes.io/auth-secret", "SecretNotFound"},
	    {"digest", "nginx.ingress.kubernetes.io/auth-type", "BadAnnotation"},
	};
	for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++) {
		char path[32];
		snprintf(path, sizeof(path), "/%s", dropped[i][0]);
		CHECK(route_at(t, path) == NULL);
		const struct diag *g = diag_of(&d, dropped[i][0]);
		CHECK(g && g->key && strcmp(g->key, dropped[i][1]) == 0);
		CHECK(g && strcmp(g->reason, dropped[i][2]) == 0);
	}
	const struct diag *bad = diag_of(&d, "bad");
	CHECK(bad && strstr(bad->message, "line 2") && !strstr(bad->message, "{PLAIN}x"));
	CHECK_INT(d.n, 4);

	/* what the controller publishes, the proxy's reader takes, byte for byte */
	char *text = NULL, *again = NULL;
	size_t len = 0, len2 = 0;
	struct route_table *back = NULL;
	char err[256] = "";
	CHECK_INT(route_table_serialize(t, &text, &len), 0);
	CHECK_INT(route_table_parse(text, len, &back, err, sizeof(err)), 0);
	if (back) {
		CHECK_INT(route_table_serialize(back, &again, &len2), 0);
		CHECK_STR(again, text);
	} else {
		fprintf(stderr, "parse: %s\n", err);
	}
	free(text);
	free(again);
	route_table_free(back);
	route_table_free(t);
	diag_list_cleanup(&d);
	snapshot_free(snap);
	store_free(s);
	return check_finish("compile_auth_test");
}
