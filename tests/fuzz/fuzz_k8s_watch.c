/* tests/fuzz/fuzz_k8s_watch.c - the watch-event decoder of
 * controller/k8s_watch.c (newline-delimited JSON events) with the event
 * handling behind it: objects go into a real store as the watcher's kind
 * (picked by the input length). The stream is fed once whole and once in
 * small reads: both must deliver the same events. The input is also read as a
 * list page, item by item, as it arrives in small reads (list_stream) and
 * whole (parse_page): both must give the same; when json-c parses it whole
 * too, the same items, resourceVersion and continue token. Includes the
 * .c to reach its static functions. */
#include "controller/k8s_watch.c"

#include "fuzz_common.h"

#define LINE_MAX_BYTES 4096

struct count {
	size_t events;
	uint32_t sum;
};

static int count_cb(void *arg, const char *type, json_object *obj)
{
	struct count *c = arg;
	const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);

	c->events++;
	for (const char *p = type; *p; p++)
		c->sum = c->sum * 31 + (unsigned char)*p;
	for (const char *p = s; *p; p++)
		c->sum = c->sum * 31 + (unsigned char)*p;
	json_object_put(obj);
	return 0;
}

/* Feed data in reads of step bytes; returns the first non-zero result. */
static int feed(struct watch_decoder *d, const char *data, size_t size, size_t step)
{
	for (size_t off = 0; off < size; off += step) {
		int rc = watch_decoder_feed(d, data + off, size - off < step ? size - off : step);
		if (rc)
			return rc;
	}
	return 0;
}

/* The page as the list read it before parse_page: one json-c tree, every
 * object item prepared. Returns false when json-c or the shape refuses it. */
static bool page_whole(const struct kind_def *def, const char *text, json_object **root,
                       json_object **arr)
{
	*root = json_tokener_parse(text);
	if (!*root || !json_object_object_get_ex(*root, "items", arr) ||
	    !(json_object_is_type(*arr, json_type_array) ||
	      json_object_is_type(*arr, json_type_null)))
		return false;
	for (size_t i = 0; *arr && i < json_object_array_length(*arr); i++) {
		json_object *it = json_object_array_get_idx(*arr, i);

		if (json_object_is_type(it, json_type_object))
			prepare_object(def, it);
	}
	return true;
}

static void check_page(const struct kind_def *def, const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), rv[128] = "", *cont = NULL;
	struct item_list l = {0};
	json_object *root = NULL, *arr = NULL;

	FUZZ_CHECK(text);
	memcpy(text, data, size);
	text[size] = '\0';
	bool whole = page_whole(def, text, &root, &arr);
	/* As the list reads it: through a list_stream, in reads of a few bytes. */
	struct list_stream ls;
	size_t n = strlen(text), step = 1 + size % 13;
	int rc = 0;

	list_stream_init(&ls, def, &l);
	for (size_t off = 0; off < n && rc == 0; off += step)
		rc = list_stream_sink(&ls, text + off, n - off < step ? n - off : step);
	if (rc == 0)
		rc = list_stream_finish(&ls, rv, sizeof(rv), &cont);
	list_stream_cleanup(&ls);
	/* And whole, in place: the same. */
	{
		struct item_list w = {0};
		char wrv[sizeof(rv)] = "", *wcont = NULL;
		int wrc = parse_page(def, text, n, &w, 0, false, wrv, sizeof(wrv), &wcont);

		FUZZ_CHECK((rc == 0) == (wrc == 0));
		if (rc == 0) {
			FUZZ_CHECK(w.n == l.n);
			for (size_t i = 0; i < w.n; i++)
				FUZZ_CHECK(strcmp(json_object_to_json_string(w.v[i]),
				                  json_object_to_json_string(l.v[i])) == 0);
			FUZZ_CHECK(strcmp(rv, wrv) == 0);
			FUZZ_CHECK(cont ? wcont && strcmp(cont, wcont) == 0 : !wcont);
		}
		item_list_truncate(&w, 0);
		free(w.v);
		free(wcont);
	}
	if (rc == 0 && whole) {
		size_t k = 0;
		const char *want;

		for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
			json_object *it = json_object_array_get_idx(arr, i);

			if (!json_object_is_type(it, json_type_object))
				continue;
			FUZZ_CHECK(k < l.n);
			FUZZ_CHECK(strcmp(json_object_to_json_string(it),
			                  json_object_to_json_string(l.v[k])) == 0);
			k++;
		}
		FUZZ_CHECK(k == l.n);
		char want_rv[sizeof(rv)]; /* cut to the list's buffer, as before */

		want = obj_str(root, "metadata", "resourceVersion");
		snprintf(want_rv, sizeof(want_rv), "%s", want ? want : "");
		FUZZ_CHECK(strcmp(rv, want_rv) == 0);
		want = obj_str(root, "metadata", "continue");
		FUZZ_CHECK((want && want[0]) ? cont && strcmp(cont, want) == 0 : !cont);
	}
	item_list_truncate(&l, 0);
	free(l.v);
	free(cont);
	json_object_put(root);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct count a = {0, 0}, b = {0, 0};
	struct watch_decoder d;

	/* Decoding alone: whole vs small reads. */
	watch_decoder_init(&d, LINE_MAX_BYTES, count_cb, &a);
	int ra = feed(&d, in, size, size ? size : 1);
	watch_decoder_cleanup(&d);
	watch_decoder_init(&d, LINE_MAX_BYTES, count_cb, &b);
	int rb = feed(&d, in, size, 1 + size % 7);
	watch_decoder_cleanup(&d);
	FUZZ_CHECK(ra == rb);
	FUZZ_CHECK(a.events == b.events && a.sum == b.sum);

	/* The events into the store, as the watcher handles them. */
	struct k8s_source src;
	struct watcher *w = &src.w[0];
	memset(&src, 0, sizeof(src));
	src.s = store_new();
	FUZZ_CHECK(src.s);
	w->src = &src;
	w->def = &kind_defs[size % NKINDS];
	watch_decoder_init(&w->dec, LINE_MAX_BYTES, on_event, w);
	(void)feed(&w->dec, in, size, size ? size : 1);
	struct snapshot *snap = store_snapshot(src.s);
	FUZZ_CHECK(snap);
	snapshot_free(snap);
	watcher_cleanup(w);
	store_free(src.s);

	check_page(&kind_defs[size % NKINDS], data, size);
	return 0;
}
