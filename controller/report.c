/* controller/report.c - the migration report and the annotation table. The
 * status of a key comes from annotations_key_support (the handler table and
 * the fail-closed list of annotations.c) and, for the keys of real objects,
 * from the diagnostics compile_snapshot gives for them: one model (a json
 * object) rendered as Markdown or JSON. */
#include "report.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "annotations.h"
#include "error.h"

enum status { ST_ACTS, ST_TRANSLATED, ST_IGNORED, ST_DROPS, ST_COUNT };

/* JSON value, and its Markdown text. */
static const char *const status_name[ST_COUNT] = {"acts", "translated", "ignored", "drops-ingress"};
static const char *const status_text[ST_COUNT] = {"acts", "translated", "ignored",
                                                  "drops the Ingress"};

static const struct {
	const char *name;
	int removed; /* no longer in ingress-nginx's docs */
} nginx_keys[] = {
#include "ingress_nginx_keys.inc"
};

#define ANN_CLASS "kubernetes.io/ingress.class"

int report_format_parse(const char *s, enum report_format *out)
{
	if (strcmp(s, "markdown") == 0)
		*out = REPORT_MARKDOWN;
	else if (strcmp(s, "json") == 0)
		*out = REPORT_JSON;
	else
		return WEIR_EINVAL;
	return 0;
}

/* ------------------------------------------------------------ json helpers */

static json_object *chk(json_object *o)
{
	if (!o)
		abort(); /* control plane: out of memory */
	return o;
}

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, v ? chk(json_object_new_string(v)) : NULL);
}

static void add_int(json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, chk(json_object_new_int64(v)));
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static json_object *jget(json_object *o, const char *k)
{
	json_object *v = NULL;
	if (o)
		json_object_object_get_ex(o, k, &v);
	return v;
}

static int64_t jint(json_object *o, const char *k)
{
	return json_object_get_int64(jget(o, k));
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of a json object, sorted (caller frees the array, not the
 * strings, which o owns). */
static const char **sorted_keys(json_object *o, size_t *n)
{
	*n = 0;
	size_t len = o && json_object_is_type(o, json_type_object)
	                 ? (size_t)json_object_object_length(o)
	                 : 0;
	const char **keys = calloc(len + 1, sizeof(*keys));
	if (!keys)
		abort();
	if (!len)
		return keys;
	json_object_object_foreach(o, k, v)
	{
		(void)v;
		keys[(*n)++] = k;
	}
	if (*n > 1)
		qsort(keys, *n, sizeof(*keys), cmp_strp);
	return keys;
}

/* ------------------------------------------------------------ statuses */

/* The suffix of a key under one of weir's prefixes, or NULL. */
static const char *suffix_of(const char *key, bool *weir)
{
	size_t wl = strlen(ANNOTATIONS_WEIR_PREFIX), nl = strlen(ANNOTATIONS_NGINX_PREFIX);
	*weir = strncmp(key, ANNOTATIONS_WEIR_PREFIX, wl) == 0;
	if (*weir)
		return key + wl;
	return strncmp(key, ANNOTATIONS_NGINX_PREFIX, nl) == 0 ? key + nl : NULL;
}

static bool has_key(json_object *ann, const char *prefix, const char *suffix)
{
	char key[512];
	snprintf(key, sizeof(key), "%s%s", prefix, suffix);
	return json_object_object_get_ex(ann, key, NULL);
}

static bool is_diag_of(const struct diag *d, const char *kind, const char *ns, const char *name)
{
	return strcmp(d->kind, kind) == 0 && strcmp(d->ns, ns) == 0 && strcmp(d->name, name) == 0;
}

static bool is_dropped(const struct diag_list *d, const char *ns, const char *name)
{
	size_t nl = strlen(ns);
	for (size_t i = 0; i < d->ndropped; i++)
		if (strncmp(d->dropped[i], ns, nl) == 0 && d->dropped[i][nl] == '/' &&
		    strcmp(d->dropped[i] + nl + 1, name) == 0)
			return true;
	return false;
}

static char *diag_text(const struct diag *d)
{
	char *s = NULL;
	if (asprintf(&s, "%s (%s)", d->message, d->reason) < 0)
		abort();
	return s;
}

/* Status and detail (caller frees) of annotation key (value-independent
 * part from annotations_key_support, the rest from what compile said about
 * this Ingress: diag, NULL when nothing). */
static enum status annotation_status(json_object *ann, const char *key, const char *suffix,
                                     bool weir, const struct diag *diag, bool dropped,
                                     char **detail)
{
	const char *d = NULL;
	enum annotation_support sup = annotations_key_support(suffix, &d);
	*detail = NULL;
	if (diag && strcmp(diag->reason, "UnknownAnnotation") == 0 &&
	    sup == ANNOTATION_INAPPLICABLE) {
		if (asprintf(detail, "not applicable: %s", d) < 0)
			abort();
		return ST_IGNORED;
	}
	if (diag && strcmp(diag->reason, "UnknownAnnotation") == 0) {
		if (sup == ANNOTATION_FAIL_CLOSED && d &&
		    asprintf(detail, "set to its harmless value \"%s\"; %s", d, diag->message) < 0)
			abort();
		if (!*detail)
			*detail = diag_text(diag);
		return ST_IGNORED;
	}
	if (diag && dropped) {
		*detail = diag_text(diag);
		return ST_DROPS;
	}
	if (diag) {
		*detail = diag_text(diag);
		return sup == ANNOTATION_TRANSLATED ? ST_TRANSLATED : ST_ACTS;
	}
	switch (sup) {
	case ANNOTATION_ACTS:
	case ANNOTATION_TRANSLATED:
		/* Another key weir reads wins over this one: still a key weir acts
		 * on, but this value is not the one used. */
		if (!weir && has_key(ann, ANNOTATIONS_WEIR_PREFIX, suffix)) {
			if (asprintf(detail, "%s%s is set and wins over this value",
			             ANNOTATIONS_WEIR_PREFIX, suffix) < 0)
				abort();
		} else if (sup == ANNOTATION_TRANSLATED &&
		           (has_key(ann, ANNOTATIONS_WEIR_PREFIX, d) ||
		            has_key(ann, ANNOTATIONS_NGINX_PREFIX, d))) {
			if (asprintf(detail, "read as %s, which is set and wins over this value",
			             d) < 0)
				abort();
		} else if (sup == ANNOTATION_TRANSLATED) {
			if (asprintf(detail, "read as %s", d) < 0)
				abort();
		}
		return sup == ANNOTATION_TRANSLATED ? ST_TRANSLATED : ST_ACTS;
	case ANNOTATION_IGNORED:
	case ANNOTATION_INAPPLICABLE:
		return ST_IGNORED;
	case ANNOTATION_FAIL_CLOSED:
	case ANNOTATION_REFUSED:
		break;
	}
	return ST_DROPS;
}

struct tally {
	int64_t uses, other_uses, inapplicable, count[ST_COUNT];
	json_object *missing; /* suffix -> {ignored, drops-ingress} */
};

static void tally_missing(struct tally *t, const char *suffix, enum status st)
{
	json_object *m = jget(t->missing, suffix);
	if (!m) {
		m = chk(json_object_new_object());
		add_int(m, status_name[ST_IGNORED], 0);
		add_int(m, status_name[ST_DROPS], 0);
		json_object_object_add(t->missing, suffix, m);
	}
	add_int(m, status_name[st], jint(m, status_name[st]) + 1);
}

static json_object *ingress_model(json_object *ing, const char *ns, const char *name,
                                  const struct diag_list *dl, struct tally *t)
{
	json_object *out = chk(json_object_new_object());
	json_object *ann = jget(jget(ing, "metadata"), "annotations");
	bool dropped = is_dropped(dl, ns, name);
	add_str(out, "namespace", ns);
	add_str(out, "name", name);
	json_object_object_add(out, "served", chk(json_object_new_boolean(!dropped)));
	json_object *rows = chk(json_object_new_array());
	size_t n;
	const char **keys = sorted_keys(ann, &n);
	for (size_t i = 0; i < n; i++) {
		bool weir;
		const char *suffix = suffix_of(keys[i], &weir);
		if (!suffix) {
			t->other_uses++;
			continue;
		}
		const struct diag *diag = NULL;
		for (size_t j = 0; j < dl->n && !diag; j++) {
			const struct diag *d = &dl->items[j];
			if (is_diag_of(d, "Ingress", ns, name) && d->key &&
			    strcmp(d->key, keys[i]) == 0)
				diag = d;
		}
		char *detail;
		enum status st =
		    annotation_status(ann, keys[i], suffix, weir, diag, dropped, &detail);
		json_object *row = chk(json_object_new_object());
		add_str(row, "key", keys[i]);
		add_str(row, "status", status_name[st]);
		add_str(row, "detail", detail);
		free(detail);
		json_object_array_add(rows, row);
		t->uses++;
		t->count[st]++;
		if (st == ST_IGNORED &&
		    annotations_key_support(suffix, NULL) == ANNOTATION_INAPPLICABLE)
			t->inapplicable++;
		if (st == ST_IGNORED || st == ST_DROPS)
			tally_missing(t, suffix, st);
	}
	json_object_object_add(out, "annotations", rows);
	/* What compile said that is not about one of the rows above. */
	json_object *other = chk(json_object_new_array());
	for (size_t j = 0; j < dl->n; j++) {
		const struct diag *d = &dl->items[j];
		if (!is_diag_of(d, "Ingress", ns, name))
			continue;
		if (d->key && json_object_object_get_ex(ann, d->key, NULL))
			continue;
		json_object *row = chk(json_object_new_object());
		add_str(row, "key", d->key);
		add_str(row, "reason", d->reason);
		add_str(row, "message", d->message);
		json_object_array_add(other, row);
	}
	json_object_object_add(out, "diagnostics", other);
	free(keys);
	return out;
}

/* The ConfigMap's keys: what compile said about each, and how many
 * Ingresses a key kept from being served. */
static json_object *configmap_model(json_object *cm, const struct diag_list *dl, int64_t count[])
{
	if (!cm)
		return NULL;
	const char *ns = jstr(jget(cm, "metadata"), "namespace");
	const char *name = jstr(jget(cm, "metadata"), "name");
	ns = ns ? ns : "";
	json_object *out = chk(json_object_new_object());
	add_str(out, "namespace", ns);
	add_str(out, "name", name);
	json_object *rows = chk(json_object_new_array());
	size_t n;
	const char **keys = sorted_keys(jget(cm, "data"), &n);
	for (size_t i = 0; i < n; i++) {
		const struct diag *own = NULL;
		int64_t covered = 0;
		for (size_t j = 0; j < dl->n; j++) {
			const struct diag *d = &dl->items[j];
			if (!d->key || strcmp(d->key, keys[i]) != 0)
				continue;
			if (!own && is_diag_of(d, "ConfigMap", ns, name ? name : ""))
				own = d;
			else if (strcmp(d->kind, "Ingress") == 0 && is_dropped(dl, d->ns, d->name))
				covered++;
		}
		enum status st = ST_ACTS;
		char *detail = NULL;
		if (covered) {
			st = ST_DROPS;
			if (asprintf(&detail, "%lld Ingress%s not served: %s", (long long)covered,
			             covered == 1 ? "" : "es", own ? own->message : "") < 0)
				abort();
		} else if (own) {
			st =
			    strcmp(own->reason, "SecurityNotEnforced") == 0 ? ST_DROPS : ST_IGNORED;
			detail = diag_text(own);
		}
		json_object *row = chk(json_object_new_object());
		add_str(row, "key", keys[i]);
		add_str(row, "status", status_name[st]);
		add_str(row, "detail", detail);
		free(detail);
		json_object_array_add(rows, row);
		count[st]++;
	}
	free(keys);
	json_object_object_add(out, "keys", rows);
	return out;
}

static int cmp_missing(const void *a, const void *b)
{
	json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
	int64_t ux = jint(x, "uses"), uy = jint(y, "uses");
	if (ux != uy)
		return ux > uy ? -1 : 1;
	return strcmp(jstr(x, "key"), jstr(y, "key"));
}

static json_object *counts_model(const int64_t count[])
{
	json_object *o = chk(json_object_new_object());
	for (int s = 0; s < ST_COUNT; s++)
		add_int(o, status_name[s], count[s]);
	return o;
}

/* 100 * part / whole with one decimal, or null when whole is 0. */
static void add_pct(json_object *o, const char *k, int64_t part, int64_t whole)
{
	if (!whole) {
		json_object_object_add(o, k, NULL);
		return;
	}
	char pct[32];
	snprintf(pct, sizeof(pct), "%.1f", 100.0 * (double)part / (double)whole);
	json_object_object_add(o, k, chk(json_object_new_double_s(strtod(pct, NULL), pct)));
}

static json_object *summary_model(struct tally *t, json_object *ingresses,
                                  const struct diag_list *dl)
{
	json_object *s = chk(json_object_new_object());
	size_t ning = json_object_array_length(ingresses);
	int64_t ndropped = 0;
	json_object *dropped = chk(json_object_new_array());
	for (size_t i = 0; i < ning; i++) {
		json_object *in = json_object_array_get_idx(ingresses, i);
		if (json_object_get_boolean(jget(in, "served")))
			continue;
		ndropped++;
		const char *ns = jstr(in, "namespace"), *name = jstr(in, "name");
		json_object *why = chk(json_object_new_array());
		for (size_t j = 0; j < dl->n; j++) {
			const struct diag *d = &dl->items[j];
			if (!is_diag_of(d, "Ingress", ns, name) ||
			    strcmp(d->reason, "UnknownAnnotation") == 0)
				continue;
			char *line = NULL;
			if (asprintf(&line, "%s%s%s (%s)", d->key ? d->key : "", d->key ? ": " : "",
			             d->message, d->reason) < 0)
				abort();
			json_object_array_add(why, chk(json_object_new_string(line)));
			free(line);
		}
		json_object *row = chk(json_object_new_object());
		add_str(row, "namespace", ns);
		add_str(row, "name", name);
		json_object_object_add(row, "why", why);
		json_object_array_add(dropped, row);
	}
	add_int(s, "ingresses", (int64_t)ning);
	add_int(s, "served", (int64_t)ning - ndropped);
	add_int(s, "dropped", ndropped);
	add_int(s, "annotation_uses", t->uses);
	json_object_object_add(s, "by_status", counts_model(t->count));
	int64_t ok = t->count[ST_ACTS] + t->count[ST_TRANSLATED];
	add_int(s, "acted_on_or_translated", ok);
	add_pct(s, "acted_on_or_translated_percent", ok, t->uses);
	add_int(s, "ignored_not_applicable", t->inapplicable);
	add_pct(s, "acted_on_or_translated_percent_of_applicable", ok, t->uses - t->inapplicable);
	add_int(s, "other_annotation_uses", t->other_uses);
	size_t n;
	const char **keys = sorted_keys(t->missing, &n);
	json_object **rows = calloc(n + 1, sizeof(*rows));
	if (!rows)
		abort();
	for (size_t i = 0; i < n; i++) {
		json_object *m = jget(t->missing, keys[i]);
		rows[i] = chk(json_object_new_object());
		add_str(rows[i], "key", keys[i]);
		add_int(rows[i], "uses",
		        jint(m, status_name[ST_IGNORED]) + jint(m, status_name[ST_DROPS]));
		add_int(rows[i], status_name[ST_IGNORED], jint(m, status_name[ST_IGNORED]));
		add_int(rows[i], status_name[ST_DROPS], jint(m, status_name[ST_DROPS]));
	}
	if (n > 1)
		qsort(rows, n, sizeof(*rows), cmp_missing);
	json_object *missing = chk(json_object_new_array());
	for (size_t i = 0; i < n; i++)
		json_object_array_add(missing, rows[i]);
	free(rows);
	free(keys);
	json_object_object_add(s, "not_acted_on", missing);
	json_object_object_add(s, "dropped_ingresses", dropped);
	return s;
}

static int cmp_ns_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_object *build_model(const struct snapshot *snap, const struct compile_options *o,
                                const struct diag_list *dl, const char *source, char **names,
                                size_t nnames)
{
	json_object *m = chk(json_object_new_object());
	add_str(m, "source", source);
	add_str(m, "ingress_class", o->ingress_class);
	json_object_object_add(m, "all_classes", chk(json_object_new_boolean(o->all_classes)));
	struct tally t = {.missing = chk(json_object_new_object())};
	json_object *ingresses = chk(json_object_new_array());
	for (size_t i = 0; i < nnames; i++) {
		char *slash = strchr(names[i], '/');
		*slash = '\0';
		json_object *ing = snapshot_find(snap, STORE_INGRESS, names[i], slash + 1);
		if (ing)
			json_object_array_add(ingresses,
			                      ingress_model(ing, names[i], slash + 1, dl, &t));
		*slash = '/';
	}
	/* Ingresses of other classes: counted per class. */
	json_object *others = chk(json_object_new_object());
	int64_t nothers = 0;
	for (size_t i = 0; i < snap->count[STORE_INGRESS]; i++) {
		json_object *ing = snap->objs[STORE_INGRESS][i];
		json_object *meta = jget(ing, "metadata");
		const char *ns = jstr(meta, "namespace"), *name = jstr(meta, "name");
		char *id = NULL;
		if (asprintf(&id, "%s/%s", ns ? ns : "", name ? name : "") < 0)
			abort();
		bool in = bsearch(&id, names, nnames, sizeof(*names), cmp_ns_name) != NULL;
		free(id);
		if (in)
			continue;
		const char *cls = jstr(jget(ing, "spec"), "ingressClassName");
		if (!cls)
			cls = jstr(jget(meta, "annotations"), ANN_CLASS);
		if (!cls)
			cls = "(none)";
		add_int(others, cls, jint(others, cls) + 1);
		nothers++;
	}
	json_object *other = chk(json_object_new_object());
	add_int(other, "count", nothers);
	size_t n;
	const char **keys = sorted_keys(others, &n);
	json_object *by_class = chk(json_object_new_object());
	for (size_t i = 0; i < n; i++)
		add_int(by_class, keys[i], jint(others, keys[i]));
	free(keys);
	json_object_put(others);
	json_object_object_add(other, "by_class", by_class);
	json_object_object_add(m, "other_ingresses", other);
	json_object_object_add(m, "ingresses", ingresses);
	int64_t cm_count[ST_COUNT] = {0};
	json_object *cm = configmap_model(compile_settings_configmap(snap, o), dl, cm_count);
	if (cm)
		json_object_object_add(cm, "by_status", counts_model(cm_count));
	json_object_object_add(m, "configmap", cm);
	/* Problems of the input files and of other objects. */
	json_object *files = chk(json_object_new_array());
	for (size_t j = 0; j < dl->n; j++) {
		const struct diag *d = &dl->items[j];
		if (strcmp(d->kind, "Ingress") == 0 || strcmp(d->kind, "ConfigMap") == 0)
			continue;
		json_object *row = chk(json_object_new_object());
		add_str(row, "kind", d->kind);
		add_str(row, "namespace", d->ns);
		add_str(row, "name", d->name);
		add_str(row, "key", d->key);
		add_str(row, "reason", d->reason);
		add_str(row, "message", d->message);
		json_object_array_add(files, row);
	}
	json_object_object_add(m, "other_diagnostics", files);
	json_object_object_add(m, "summary", summary_model(&t, ingresses, dl));
	json_object_put(t.missing);
	return m;
}

/* ------------------------------------------------------------ Markdown */

/* Text for a table cell: "|" escaped (keys and messages are single lines,
 * compile escapes control bytes). */
static void cell(FILE *out, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '|')
			fputc('\\', out);
		fputc(*s, out);
	}
}

static const char *status_text_of(const char *name)
{
	for (int s = 0; s < ST_COUNT; s++)
		if (strcmp(name, status_name[s]) == 0)
			return status_text[s];
	return name;
}

static void put_counts(FILE *out, json_object *counts)
{
	for (int s = 0; s < ST_COUNT; s++)
		fprintf(out, "%s%s: %lld", s ? ", " : "", status_text[s],
		        (long long)jint(counts, status_name[s]));
}

static void put_status_rows(FILE *out, json_object *rows, const char *what)
{
	fprintf(out, "| %s | status | detail |\n|---|---|---|\n", what);
	for (size_t i = 0; i < json_object_array_length(rows); i++) {
		json_object *r = json_object_array_get_idx(rows, i);
		fputs("| `", out);
		cell(out, jstr(r, "key"));
		fprintf(out, "` | %s | ", status_text_of(jstr(r, "status")));
		cell(out, jstr(r, "detail"));
		fputs(" |\n", out);
	}
}

static void markdown(FILE *out, json_object *m)
{
	json_object *other = jget(m, "other_ingresses");
	fprintf(out, "# weir migration report\n\n");
	fprintf(out, "- Source: %s\n", jstr(m, "source"));
	if (json_object_get_boolean(jget(m, "all_classes")))
		fprintf(out, "- Scope: every Ingress, whatever its class (`--all-classes`)\n");
	else
		fprintf(out, "- Scope: the Ingresses weir serves as IngressClass `%s`\n",
		        jstr(m, "ingress_class"));
	int64_t nothers = jint(other, "count");
	if (nothers) {
		fprintf(out, "- Not reported: %lld Ingress%s of other classes (",
		        (long long)nothers, nothers == 1 ? "" : "es");
		const char *sep = "";
		json_object_object_foreach(jget(other, "by_class"), k, v)
		{
			fprintf(out, "%s`%s`: %lld", sep, k, (long long)json_object_get_int64(v));
			sep = ", ";
		}
		fprintf(out, "); `--all-classes` reports them too\n");
	}
	json_object *ings = jget(m, "ingresses");
	fprintf(out, "\n## Ingresses\n");
	if (!json_object_array_length(ings))
		fprintf(out, "\nNone.\n");
	for (size_t i = 0; i < json_object_array_length(ings); i++) {
		json_object *in = json_object_array_get_idx(ings, i);
		json_object *rows = jget(in, "annotations"), *diags = jget(in, "diagnostics");
		fprintf(out, "\n### %s/%s: %s\n\n", jstr(in, "namespace"), jstr(in, "name"),
		        json_object_get_boolean(jget(in, "served")) ? "served" : "dropped");
		if (json_object_array_length(rows))
			put_status_rows(out, rows, "annotation");
		else
			fprintf(out, "No annotation weir reads.\n");
		if (json_object_array_length(diags))
			fprintf(out, "\nOther diagnostics:\n\n");
		for (size_t j = 0; j < json_object_array_length(diags); j++) {
			json_object *d = json_object_array_get_idx(diags, j);
			fputs("- ", out);
			if (jstr(d, "key"))
				fprintf(out, "`%s`: ", jstr(d, "key"));
			fprintf(out, "%s (%s)\n", jstr(d, "message"), jstr(d, "reason"));
		}
	}
	json_object *cm = jget(m, "configmap");
	if (cm) {
		fprintf(out, "\n## ConfigMap %s/%s\n\n", jstr(cm, "namespace"), jstr(cm, "name"));
		if (json_object_array_length(jget(cm, "keys")))
			put_status_rows(out, jget(cm, "keys"), "key");
		else
			fprintf(out, "No keys.\n");
	}
	json_object *files = jget(m, "other_diagnostics");
	if (json_object_array_length(files))
		fprintf(out, "\n## Other diagnostics\n\n");
	for (size_t j = 0; j < json_object_array_length(files); j++) {
		json_object *d = json_object_array_get_idx(files, j);
		fprintf(out, "- %s %s%s%s: ", jstr(d, "kind"), jstr(d, "namespace"),
		        *jstr(d, "namespace") ? "/" : "", jstr(d, "name"));
		if (jstr(d, "key"))
			fprintf(out, "`%s`: ", jstr(d, "key"));
		fprintf(out, "%s (%s)\n", jstr(d, "message"), jstr(d, "reason"));
	}

	json_object *s = jget(m, "summary");
	fprintf(out, "\n## Summary\n\n");
	fprintf(out, "- Ingresses: %lld (served %lld, dropped %lld)\n",
	        (long long)jint(s, "ingresses"), (long long)jint(s, "served"),
	        (long long)jint(s, "dropped"));
	fprintf(out, "- Annotation uses (`%s`, `%s`): %lld; ", ANNOTATIONS_NGINX_PREFIX,
	        ANNOTATIONS_WEIR_PREFIX, (long long)jint(s, "annotation_uses"));
	put_counts(out, jget(s, "by_status"));
	fputc('\n', out);
	json_object *pct = jget(s, "acted_on_or_translated_percent");
	fprintf(out, "- Acted on or translated: %lld of %lld (%s%s)\n",
	        (long long)jint(s, "acted_on_or_translated"), (long long)jint(s, "annotation_uses"),
	        pct ? json_object_to_json_string(pct) : "n/a", pct ? "%" : "");
	int64_t na = jint(s, "ignored_not_applicable");
	if (na) {
		pct = jget(s, "acted_on_or_translated_percent_of_applicable");
		fprintf(out,
		        "- Ignored as not applicable to weir: %lld; acted on or translated of the "
		        "other %lld: %s%s\n",
		        (long long)na, (long long)(jint(s, "annotation_uses") - na),
		        pct ? json_object_to_json_string(pct) : "n/a", pct ? "%" : "");
	}
	fprintf(out, "- Other annotations (other prefixes): %lld\n",
	        (long long)jint(s, "other_annotation_uses"));
	if (cm) {
		fprintf(out, "- ConfigMap keys: ");
		put_counts(out, jget(cm, "by_status"));
		fputc('\n', out);
	}
	json_object *missing = jget(s, "not_acted_on");
	if (json_object_array_length(missing))
		fprintf(out, "\n### Keys not acted on (or whose value drops the Ingress)\n\n| key "
		             "| uses | ignored | drops the Ingress "
		             "|\n|---|---|---|---|\n");
	for (size_t i = 0; i < json_object_array_length(missing); i++) {
		json_object *r = json_object_array_get_idx(missing, i);
		fprintf(out, "| `");
		cell(out, jstr(r, "key"));
		fprintf(out, "` | %lld | %lld | %lld |\n", (long long)jint(r, "uses"),
		        (long long)jint(r, status_name[ST_IGNORED]),
		        (long long)jint(r, status_name[ST_DROPS]));
	}
	json_object *dropped = jget(s, "dropped_ingresses");
	if (json_object_array_length(dropped))
		fprintf(out,
		        "\n### Ingresses that would be dropped\n\n| Ingress | why |\n|---|---|\n");
	for (size_t i = 0; i < json_object_array_length(dropped); i++) {
		json_object *r = json_object_array_get_idx(dropped, i);
		json_object *why = jget(r, "why");
		fprintf(out, "| %s/%s | ", jstr(r, "namespace"), jstr(r, "name"));
		for (size_t j = 0; j < json_object_array_length(why); j++) {
			if (j)
				fputs("; ", out);
			cell(out, json_object_get_string(json_object_array_get_idx(why, j)));
		}
		fputs(" |\n", out);
	}
}

static int emit(FILE *out, json_object *m, enum report_format format)
{
	if (format == REPORT_JSON) {
		fputs(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PRETTY |
		                                            JSON_C_TO_STRING_SPACED |
		                                            JSON_C_TO_STRING_NOSLASHESCAPE),
		      out);
		fputc('\n', out);
	} else {
		markdown(out, m);
	}
	return ferror(out) ? WEIR_EIO : 0;
}

int report_write(FILE *out, const struct snapshot *snap, const struct compile_options *o,
                 const struct diag_list *source_diags, const char *source,
                 enum report_format format)
{
	struct diag_list dl = {0};
	struct route_table *t = NULL;
	char **names = NULL;
	size_t nnames = 0;
	int rc = WEIR_ENOMEM;
	/* compile appends to the list it is given: start from a copy of the
	 * source diagnostics so the caller's list stays as it was. */
	for (size_t i = 0; source_diags && i < source_diags->n; i++) {
		const struct diag *s = &source_diags->items[i];
		struct diag *grown = realloc(dl.items, (dl.n + 1) * sizeof(*grown));
		if (!grown)
			goto out;
		dl.items = grown;
		struct diag *d = &dl.items[dl.n++];
		d->kind = strdup(s->kind);
		d->ns = strdup(s->ns);
		d->name = strdup(s->name);
		d->uid = strdup(s->uid);
		d->key = s->key ? strdup(s->key) : NULL;
		d->reason = strdup(s->reason);
		d->message = strdup(s->message);
		if (!d->kind || !d->ns || !d->name || !d->uid || (s->key && !d->key) ||
		    !d->reason || !d->message)
			goto out;
	}
	rc = compile_snapshot(snap, o, &t, &dl);
	if (rc)
		goto out;
	rc = compile_class_ingresses(snap, o, &names, &nnames);
	if (rc)
		goto out;
	json_object *m = build_model(snap, o, &dl, source, names, nnames);
	rc = emit(out, m, format);
	json_object_put(m);
out:
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	route_table_free(t);
	diag_list_cleanup(&dl);
	return rc;
}

/* ------------------------------------------------------------ key table */

static enum status key_status(const char *suffix, char **detail)
{
	const char *d = NULL;
	enum annotation_support sup = annotations_key_support(suffix, &d);
	int r = 0;
	*detail = NULL;
	switch (sup) {
	case ANNOTATION_ACTS:
		if (d && asprintf(detail, "%s", d) < 0)
			abort();
		return ST_ACTS;
	case ANNOTATION_TRANSLATED:
		r = asprintf(detail, "read as `%s`", d);
		break;
	case ANNOTATION_IGNORED:
		r = asprintf(detail, "unsupported");
		break;
	case ANNOTATION_INAPPLICABLE:
		r = asprintf(detail, "not applicable: %s", d);
		break;
	case ANNOTATION_FAIL_CLOSED:
		r = d ? asprintf(detail, "not enforced; `%s` asks for nothing and is ignored", d)
		      : asprintf(detail, "not enforced");
		break;
	case ANNOTATION_REFUSED:
		r = asprintf(detail, "snippets are refused");
		break;
	}
	if (r < 0)
		abort();
	if (sup == ANNOTATION_TRANSLATED)
		return ST_TRANSLATED;
	return sup == ANNOTATION_IGNORED || sup == ANNOTATION_INAPPLICABLE ? ST_IGNORED : ST_DROPS;
}

static bool is_nginx_key(const char *suffix)
{
	for (size_t i = 0; i < sizeof(nginx_keys) / sizeof(nginx_keys[0]); i++)
		if (strcmp(nginx_keys[i].name, suffix) == 0)
			return true;
	return false;
}

int report_list_annotations(FILE *out, enum report_format format)
{
	json_object *m = chk(json_object_new_object());
	json_object *rows = chk(json_object_new_array());
	int64_t count[ST_COUNT] = {0};
	size_t n = sizeof(nginx_keys) / sizeof(nginx_keys[0]);
	for (size_t i = 0; i < n; i++) {
		char *detail;
		enum status st = key_status(nginx_keys[i].name, &detail);
		json_object *row = chk(json_object_new_object());
		add_str(row, "key", nginx_keys[i].name);
		json_object_object_add(row, "removed_from_docs",
		                       chk(json_object_new_boolean(nginx_keys[i].removed)));
		add_str(row, "status", status_name[st]);
		add_str(row, "detail", detail);
		free(detail);
		json_object_array_add(rows, row);
		count[st]++;
	}
	json_object *own = chk(json_object_new_array());
	for (size_t i = 0; annotations_handled_key(i); i++)
		if (!is_nginx_key(annotations_handled_key(i)))
			json_object_array_add(
			    own, chk(json_object_new_string(annotations_handled_key(i))));
	add_int(m, "ingress_nginx_keys", (int64_t)n);
	json_object_object_add(m, "by_status", counts_model(count));
	json_object_object_add(m, "keys", rows);
	json_object_object_add(m, "weir_keys", own);
	int rc = 0;
	if (format == REPORT_JSON) {
		rc = emit(out, m, format);
		json_object_put(m);
		return rc;
	}
	fprintf(out, "%zu ingress-nginx annotation keys: ", n);
	put_counts(out, jget(m, "by_status"));
	fprintf(out, ".\n\n| ingress-nginx key | weir |\n|---|---|\n");
	for (size_t i = 0; i < n; i++) {
		json_object *r = json_object_array_get_idx(rows, i);
		fprintf(out, "| `%s`%s | %s", jstr(r, "key"),
		        json_object_get_boolean(jget(r, "removed_from_docs")) ? " (removed)" : "",
		        status_text_of(jstr(r, "status")));
		if (jstr(r, "detail"))
			fprintf(out, " (%s)", jstr(r, "detail"));
		fputs(" |\n", out);
	}
	fprintf(out,
	        "\nKeys weir reads that ingress-nginx's page does not name (under both prefixes):");
	for (size_t i = 0; i < json_object_array_length(own); i++)
		fprintf(out, "%s `%s`", i ? "," : "",
		        json_object_get_string(json_object_array_get_idx(own, i)));
	fprintf(out, ".\n");
	rc = ferror(out) ? WEIR_EIO : 0;
	json_object_put(m);
	return rc;
}
