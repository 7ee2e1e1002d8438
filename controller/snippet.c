/* controller/snippet.c - nginx snippets: tokenizer and translation into
 * route policy values (contracts in snippet.h).
 *
 * The tokenizer follows nginx's own reading of a configuration file
 * (ngx_conf_read_token's rules as documented behaviour, not its code): a
 * word starts at a non-blank byte; '"' and '\'' open a string only there;
 * '#' opens a comment only there; a backslash protects the next byte;
 * inside a word "${name}" does not open a block. The translation accepts
 * only what weir's route policy expresses exactly; everything else is a
 * refusal that names the directive. */
#include "snippet.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "route_validate.h"

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* A printable form of s for a message (quoted, control bytes escaped, cut). */
static const char *q(const char *s, char *buf, size_t buflen)
{
	route_validate_quote(s, buf, buflen);
	return buf;
}

void snippet_directives_cleanup(struct snippet_directives *d)
{
	for (size_t i = 0; i < d->n; i++) {
		for (size_t k = 0; k < d->items[i].nargs; k++)
			free(d->items[i].args[k]);
		free(d->items[i].args);
	}
	free(d->items);
	d->items = NULL;
	d->n = 0;
}

/* The directive being read: words so far. */
struct pending {
	char **args;
	size_t nargs;
	unsigned line;
};

static void pending_free(struct pending *p)
{
	for (size_t i = 0; i < p->nargs; i++)
		free(p->args[i]);
	free(p->args);
	p->args = NULL;
	p->nargs = 0;
}

/* Resolve the escape at s[0] == '\\' (s[1] exists): writes one or two
 * bytes to *o, returns how many input bytes it used (2). */
static size_t unescape(const char *s, char **o)
{
	switch (s[1]) {
	case '"':
	case '\'':
	case '\\':
		*(*o)++ = s[1];
		break;
	case 't':
		*(*o)++ = '\t';
		break;
	case 'r':
		*(*o)++ = '\r';
		break;
	case 'n':
		*(*o)++ = '\n';
		break;
	default:
		*(*o)++ = '\\';
		*(*o)++ = s[1];
		break;
	}
	return 2;
}

int snippet_tokenize(const char *text, size_t len, struct snippet_directives *out, char *err,
                     size_t errlen)
{
	int rc = WEIR_ENOMEM;
	struct pending cur = {NULL, 0, 0};
	char *word = NULL;
	char qb[96];
	unsigned line = 1;
	size_t i = 0;

	if (len > SNIPPET_MAX_BYTES)
		return fail(err, errlen, WEIR_ETOOBIG,
		            "snippet is %zu bytes, more than the %u allowed", len,
		            SNIPPET_MAX_BYTES);
	if (memchr(text, '\0', len))
		return fail(err, errlen, WEIR_EINVAL, "snippet contains a NUL byte");
	word = malloc(len + 1);
	if (!word)
		goto out;
	rc = WEIR_EINVAL;
	for (;;) {
		while (i < len && is_blank(text[i])) {
			if (text[i] == '\n')
				line++;
			i++;
		}
		if (i == len) {
			if (cur.nargs) {
				fail(err, errlen, WEIR_EINVAL,
				     "line %u: directive %s has no ending ';'", cur.line,
				     q(cur.args[0], qb, sizeof(qb)));
				goto out;
			}
			break;
		}
		char c = text[i];
		if (c == '#') {
			while (i < len && text[i] != '\n')
				i++;
			continue;
		}
		if (c == ';') {
			if (!cur.nargs) {
				fail(err, errlen, WEIR_EINVAL, "line %u: unexpected ';'", line);
				goto out;
			}
			struct snippet_directive *grown =
			    realloc(out->items, (out->n + 1) * sizeof(*grown));
			if (!grown) {
				rc = WEIR_ENOMEM;
				goto out;
			}
			out->items = grown;
			out->items[out->n].args = cur.args;
			out->items[out->n].nargs = cur.nargs;
			out->items[out->n].line = cur.line;
			out->n++;
			cur.args = NULL;
			cur.nargs = 0;
			i++;
			continue;
		}
		if (c == '{') {
			if (cur.nargs)
				fail(err, errlen, WEIR_EINVAL,
				     "line %u: block %s is not translated (weir translates no "
				     "block)",
				     cur.line, q(cur.args[0], qb, sizeof(qb)));
			else
				fail(err, errlen, WEIR_EINVAL, "line %u: unexpected '{'", line);
			goto out;
		}
		if (c == '}') {
			fail(err, errlen, WEIR_EINVAL, "line %u: unexpected '}'", line);
			goto out;
		}
		if (cur.nargs == SNIPPET_MAX_ARGS) {
			fail(err, errlen, WEIR_EINVAL,
			     "line %u: directive %s has more than %d words", cur.line,
			     q(cur.args[0], qb, sizeof(qb)), SNIPPET_MAX_ARGS);
			goto out;
		}
		unsigned start_line = line;
		char *o = word;
		if (c == '"' || c == '\'') {
			i++;
			for (;;) {
				if (i == len) {
					fail(err, errlen, WEIR_EINVAL,
					     "line %u: unterminated %c...%c string", start_line, c,
					     c);
					goto out;
				}
				if (text[i] == c) {
					i++;
					break;
				}
				if (text[i] == '\\' && i + 1 < len) {
					if (text[i + 1] == '\n')
						line++;
					i += unescape(text + i, &o);
					continue;
				}
				if (text[i] == '\n')
					line++;
				*o++ = text[i++];
			}
			if (i < len && !is_blank(text[i]) && text[i] != ';' && text[i] != '{') {
				char after[2] = {text[i], '\0'};
				fail(err, errlen, WEIR_EINVAL,
				     "line %u: unexpected %s after a quoted string", line,
				     q(after, qb, sizeof(qb)));
				goto out;
			}
		} else {
			while (i < len && !is_blank(text[i]) && text[i] != ';' && text[i] != '{') {
				if (text[i] == '\\' && i + 1 < len) {
					if (text[i + 1] == '\n')
						line++;
					i += unescape(text + i, &o);
					continue;
				}
				if (text[i] == '$' && i + 1 < len && text[i + 1] == '{') {
					const char *close = memchr(text + i, '}', len - i);
					const char *nl = memchr(text + i, '\n', len - i);
					if (!close || (nl && nl < close)) {
						fail(err, errlen, WEIR_EINVAL,
						     "line %u: unterminated \"${\"", line);
						goto out;
					}
					size_t n = (size_t)(close - (text + i)) + 1;
					memcpy(o, text + i, n);
					o += n;
					i += n;
					continue;
				}
				*o++ = text[i++];
			}
		}
		*o = '\0';
		char **grown = realloc(cur.args, (cur.nargs + 1) * sizeof(*grown));
		if (!grown) {
			rc = WEIR_ENOMEM;
			goto out;
		}
		cur.args = grown;
		if (!(cur.args[cur.nargs] = strdup(word))) {
			rc = WEIR_ENOMEM;
			goto out;
		}
		if (!cur.nargs)
			cur.line = start_line;
		cur.nargs++;
	}
	rc = 0;
out:
	pending_free(&cur);
	free(word);
	return rc;
}

bool snippet_find_variable(const char *s, const char **name, size_t *name_len)
{
	const char *d = strchr(s, '$');
	if (!d)
		return false;
	const char *n = d + 1;
	size_t l = 0;
	if (*n == '{') {
		n++;
		while (is_name_char(n[l]))
			l++;
		if (n[l] != '}')
			l = 0;
	} else {
		while (is_name_char(n[l]))
			l++;
	}
	*name = n;
	*name_len = l;
	return true;
}

void snippet_policy_cleanup(struct snippet_policy *p)
{
	for (size_t i = 0; i < p->nrequest_headers; i++) {
		free(p->request_headers[i].name);
		free(p->request_headers[i].value);
	}
	free(p->request_headers);
	for (size_t i = 0; i < p->nresponse_headers; i++) {
		free(p->response_headers[i].name);
		free(p->response_headers[i].value);
	}
	free(p->response_headers);
	for (size_t i = 0; i < p->nadd_headers; i++) {
		free(p->add_headers[i].name);
		free(p->add_headers[i].value);
	}
	free(p->add_headers);
	for (size_t i = 0; i < p->nhide_headers; i++)
		free(p->hide_headers[i]);
	free(p->hide_headers);
	for (size_t i = 0; i < p->nauth_headers; i++) {
		free(p->auth_headers[i].name);
		free(p->auth_headers[i].value);
	}
	free(p->auth_headers);
	free(p->redirect_url);
	for (size_t i = 0; i < p->nrewrites; i++) {
		free(p->rewrites[i].regex);
		free(p->rewrites[i].replacement);
	}
	free(p->rewrites);
	free(p->return_body);
	memset(p, 0, sizeof(*p));
}

/* Headers that say how the message travels: the proxy writes them itself
 * and ignores a route's copy, so a snippet may not set or clear them. */
static bool transport_header(const char *name)
{
	static const char *const names[] = {
	    "connection", "keep-alive",        "proxy-connection", "te",
	    "trailer",    "transfer-encoding", "upgrade",          "content-length",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

/* Headers ingress-nginx's location sets with proxy_set_header from
 * variables that do not read the request header of the same name (the
 * client address, the scheme and port, the original URI) or that only
 * append to it (X-Forwarded-For): more_set_input_headers on them does not
 * reach the upstream as written. */
static bool derived_header(const char *name)
{
	static const char *const names[] = {
	    "x-real-ip",         "x-forwarded-for",    "x-forwarded-host", "x-forwarded-port",
	    "x-forwarded-proto", "x-forwarded-scheme", "x-scheme",         "x-original-uri",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

/* A header name and value a snippet may set: err names the directive. */
static int check_header(const char *dir, const char *name, const char *value, char *err,
                        size_t errlen)
{
	char why[200], qb[96];
	if (route_validate_token(name, why, sizeof(why)))
		return fail(err, errlen, WEIR_EINVAL, "directive \"%s\": bad header name: %s", dir,
		            why);
	if (strchr(name, '$'))
		return fail(err, errlen, WEIR_EINVAL,
		            "directive \"%s\": a variable in header name %s is not translated", dir,
		            q(name, qb, sizeof(qb)));
	if (transport_header(name))
		return fail(
		    err, errlen, WEIR_EINVAL,
		    "directive \"%s\": header %s is the proxy's own (hop-by-hop or framing)", dir,
		    q(name, qb, sizeof(qb)));
	if (value && !value[0])
		return fail(err, errlen, WEIR_EINVAL,
		            "directive \"%s\": an empty value removes header %s in nginx; not "
		            "translated",
		            dir, q(name, qb, sizeof(qb)));
	if (value && (strchr(value, '$') ? route_validate_header_template
	                                 : route_validate_header_value)(value, why, sizeof(why)))
		return fail(err, errlen, WEIR_EINVAL, "directive \"%s\": bad header value: %s", dir,
		            why);
	return 0;
}

int snippet_headers_set(struct route_header **list, size_t *n, const char *name, const char *value,
                        bool expand)
{
	char *nv = strdup(value), *nn;
	if (!nv)
		return WEIR_ENOMEM;
	for (size_t i = 0; i < *n; i++) {
		if (strcasecmp((*list)[i].name, name) == 0) {
			free((*list)[i].value);
			(*list)[i].value = nv;
			(*list)[i].expand = expand;
			return 0;
		}
	}
	struct route_header *grown = realloc(*list, (*n + 1) * sizeof(*grown));
	if (!grown || !(nn = strdup(name))) {
		if (grown)
			*list = grown;
		free(nv);
		return WEIR_ENOMEM;
	}
	*list = grown;
	grown[*n].name = nn;
	grown[*n].value = nv;
	grown[*n].expand = expand;
	(*n)++;
	return 0;
}

int snippet_names_add(char ***list, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcasecmp((*list)[i], name) == 0)
			return 0;
	char **grown = realloc(*list, (*n + 1) * sizeof(*grown));
	if (!grown)
		return WEIR_ENOMEM;
	*list = grown;
	if (!(grown[*n] = strdup(name)))
		return WEIR_ENOMEM;
	(*n)++;
	return 0;
}

/* headers-more's 'Name: value' argument: split into name (in nbuf) and
 * value (borrowed from arg, leading blanks skipped). */
static int split_colon(const char *dir, const char *arg, char *nbuf, size_t nbuflen,
                       const char **value, char *err, size_t errlen)
{
	char qb[96];
	const char *colon = strchr(arg, ':');
	if (!colon || colon == arg || (size_t)(colon - arg) >= nbuflen)
		return fail(err, errlen, WEIR_EINVAL, "directive \"%s\": %s is not 'Name: value'",
		            dir, q(arg, qb, sizeof(qb)));
	memcpy(nbuf, arg, (size_t)(colon - arg));
	nbuf[colon - arg] = '\0';
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	*value = v;
	return 0;
}

/* headers-more options (-s statuses, -t types, -r replace-only) are not
 * expressed by the route policy. */
static int refuse_option(const char *dir, const char *arg, char *err, size_t errlen)
{
	char qb[96];
	if (arg[0] == '-')
		return fail(err, errlen, WEIR_EINVAL,
		            "directive \"%s\": option %s is not translated", dir,
		            q(arg, qb, sizeof(qb)));
	return 0;
}

static bool redirect_code(long code)
{
	return code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
}

static const char *kind_name(enum snippet_kind kind)
{
	return kind == SNIPPET_SERVER ? "server-snippet"
	       : kind == SNIPPET_AUTH ? "auth-snippet"
	                              : "configuration-snippet";
}

static int t_return(const struct snippet_directive *d, struct snippet_policy *out, char *err,
                    size_t errlen)
{
	char why[200], qb[96];
	if (out->return_code || out->redirect_code)
		return fail(err, errlen, WEIR_EINVAL,
		            "directive \"return\" appears twice (nginx never reaches the second)");
	if (d->nargs < 2 || d->nargs > 3)
		return fail(
		    err, errlen, WEIR_EINVAL,
		    "directive \"return\" takes a code and an optional URL or text, or a URL");
	const char *a1 = d->args[1];
	if (d->nargs == 2 && (strncmp(a1, "http://", 7) == 0 || strncmp(a1, "https://", 8) == 0)) {
		if (route_validate_url(a1, why, sizeof(why)))
			return fail(err, errlen, WEIR_EINVAL, "directive \"return\": bad URL: %s",
			            why);
		out->redirect_code = 302;
		return (out->redirect_url = strdup(a1)) ? 0 : WEIR_ENOMEM;
	}
	char *end;
	long code = strtol(a1, &end, 10);
	if (!*a1 || *end || a1[0] == '-' || a1[0] == '+' || strlen(a1) != 3)
		return fail(err, errlen, WEIR_EINVAL,
		            "directive \"return\": %s is not a status code", q(a1, qb, sizeof(qb)));
	if (code == 444)
		return fail(err, errlen, WEIR_EINVAL,
		            "directive \"return\": 444 (close the connection) is not translated");
	if (code < 200 || code > 599)
		return fail(err, errlen, WEIR_EINVAL,
		            "directive \"return\": status %ld is not translated (200..599)", code);
	if (redirect_code(code)) {
		if (d->nargs != 3)
			return fail(err, errlen, WEIR_EINVAL,
			            "directive \"return\": %ld needs a URL", code);
		if (route_validate_url(d->args[2], why, sizeof(why)))
			return fail(err, errlen, WEIR_EINVAL, "directive \"return\": bad URL: %s",
			            why);
		out->redirect_code = (uint16_t)code;
		return (out->redirect_url = strdup(d->args[2])) ? 0 : WEIR_ENOMEM;
	}
	if (d->nargs == 3) {
		if ((code == 204 || code == 304) && d->args[2][0])
			return fail(err, errlen, WEIR_EINVAL,
			            "directive \"return\": a %ld answer has no body", code);
		if (route_validate_return_body(d->args[2], why, sizeof(why)))
			return fail(err, errlen, WEIR_EINVAL, "directive \"return\": %s", why);
		if (d->args[2][0] && !(out->return_body = strdup(d->args[2])))
			return WEIR_ENOMEM;
	}
	out->return_code = (uint16_t)code;
	return 0;
}

/* rewrite REGEX REPLACEMENT [FLAG] in a configuration-snippet. */
static int t_rewrite(const struct snippet_directive *d, struct snippet_policy *out, char *err,
                     size_t errlen)
{
	char why[240], qb[96];
	if (d->nargs < 3 || d->nargs > 4)
		return fail(err, errlen, WEIR_EINVAL,
		            "directive \"rewrite\" takes a regex, a replacement and a flag");
	if (out->nrewrites == ROUTE_REWRITES_MAX)
		return fail(err, errlen, WEIR_EINVAL, "more than %u \"rewrite\" directives",
		            ROUTE_REWRITES_MAX);
	const char *repl = d->args[2], *flag = d->nargs == 4 ? d->args[3] : NULL;
	/* nginx answers a replacement that is a URL with a redirect at once */
	bool url = strncmp(repl, "http://", 7) == 0 || strncmp(repl, "https://", 8) == 0 ||
	           strncmp(repl, "$scheme", 7) == 0;
	struct route_rewrite rw = {d->args[1], (char *)repl, ROUTE_REWRITE_BREAK};
	if (flag && strcmp(flag, "permanent") == 0)
		rw.flag = ROUTE_REWRITE_PERMANENT;
	else if ((flag && strcmp(flag, "redirect") == 0) || url)
		rw.flag = ROUTE_REWRITE_REDIRECT;
	else if (flag && strcmp(flag, "break") == 0)
		rw.flag = ROUTE_REWRITE_BREAK;
	else if (!flag || strcmp(flag, "last") == 0)
		return fail(err, errlen, WEIR_EINVAL,
		            "directive \"rewrite\" %s: nginx looks for the location again with "
		            "the new URI, weir routes a request once; not translated (use break)",
		            flag ? "with flag last" : "without a flag");
	else
		return fail(err, errlen, WEIR_EINVAL,
		            "directive \"rewrite\": flag %s is not "
		            "break, last, redirect or permanent",
		            q(flag, qb, sizeof(qb)));
	if (route_validate_rewrite(&rw, why, sizeof(why)))
		return fail(err, errlen, WEIR_EINVAL, "directive \"rewrite\": %s", why);
	struct route_rewrite *list =
	    realloc(out->rewrites, (out->nrewrites + 1) * sizeof(*out->rewrites));
	if (!list)
		return WEIR_ENOMEM;
	out->rewrites = list;
	struct route_rewrite *r = &list[out->nrewrites];
	r->flag = rw.flag;
	r->regex = strdup(rw.regex);
	r->replacement = strdup(rw.replacement);
	out->nrewrites++; /* counted first: cleanup frees what was copied */
	return r->regex && r->replacement ? 0 : WEIR_ENOMEM;
}

/* One directive into out. */
static int translate(const struct snippet_directive *d, enum snippet_kind kind,
                     struct snippet_policy *out, char *err, size_t errlen)
{
	const char *dir = d->args[0];
	char nbuf[256], qb[96];
	const char *vname, *value = NULL;
	size_t vlen;
	int rc;

	static const char *const known[] = {
	    "proxy_set_header",   "more_set_input_headers", "more_set_headers", "add_header",
	    "more_clear_headers", "proxy_hide_header",      "return",
	};
	if (strcmp(dir, "rewrite") == 0 && kind == SNIPPET_CONFIGURATION)
		return t_rewrite(d, out, err, errlen);
	bool is_known = false;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		is_known = is_known || strcmp(dir, known[i]) == 0;
	if (!is_known || (kind == SNIPPET_AUTH && strcmp(dir, "proxy_set_header") != 0))
		goto untranslated;

	/* Variables: only in the values of header directives, only those the
	 * proxy expands (route_var_lookup). */
	bool values_expand = kind != SNIPPET_AUTH && strcmp(dir, "proxy_hide_header") != 0 &&
	                     strcmp(dir, "more_clear_headers") != 0 && strcmp(dir, "return") != 0;
	for (size_t i = 1; i < d->nargs; i++) {
		bool allow = values_expand && (dir[0] == 'm' || i == 2);
		for (const char *p = strchr(d->args[i], '$'); p; p = strchr(p + 1, '$')) {
			size_t n = route_template_var(p, &vname, &vlen);
			if (n == 0)
				return fail(err, errlen, WEIR_EINVAL,
				            "directive \"%s\": '$' that names no variable in %s",
				            dir, q(d->args[i], qb, sizeof(qb)));
			int shown = (int)(vlen > 64 ? 64 : vlen);
			if (!allow)
				return fail(
				    err, errlen, WEIR_EINVAL,
				    "directive \"%s\": variable \"$%.*s\" is not supported here "
				    "(weir expands variables only in header values)",
				    dir, shown, vname);
			if (route_var_lookup(vname, vlen) == ROUTE_VAR_NONE)
				return fail(
				    err, errlen, WEIR_EINVAL,
				    "directive \"%s\": variable \"$%.*s\" is not supported "
				    "(weir expands $host, $scheme, $request_uri, $remote_addr, "
				    "$request_id, $req_id and $http_NAME)",
				    dir, shown, vname);
		}
	}

	if (kind == SNIPPET_AUTH) {
		if (d->nargs != 3)
			return fail(err, errlen, WEIR_EINVAL,
			            "directive \"proxy_set_header\" takes a name and a value");
		char why[200];
		if (route_validate_auth_set_header(d->args[1], d->args[2], why, sizeof(why)))
			return fail(err, errlen, WEIR_EINVAL, "directive \"proxy_set_header\": %s",
			            why);
		return snippet_headers_set(&out->auth_headers, &out->nauth_headers, d->args[1],
		                           d->args[2], false);
	}

	if (strcmp(dir, "proxy_set_header") == 0) {
		if (kind == SNIPPET_SERVER)
			return fail(
			    err, errlen, WEIR_EINVAL,
			    "directive \"proxy_set_header\" in a server-snippet has no effect in "
			    "ingress-nginx (each location sets its own); use "
			    "configuration-snippet");
		if (d->nargs != 3)
			return fail(err, errlen, WEIR_EINVAL,
			            "directive \"proxy_set_header\" takes a name and a value");
		if ((rc = check_header(dir, d->args[1], d->args[2], err, errlen)))
			return rc;
		return snippet_headers_set(&out->request_headers, &out->nrequest_headers,
		                           d->args[1], d->args[2], strchr(d->args[2], '$') != NULL);
	}
	if (strcmp(dir, "more_set_input_headers") == 0 || strcmp(dir, "more_set_headers") == 0) {
		bool input = dir[9] == 'i';
		if (d->nargs < 2)
			return fail(err, errlen, WEIR_EINVAL,
			            "directive \"%s\" needs 'Name: value'", dir);
		for (size_t i = 1; i < d->nargs; i++) {
			if ((rc = refuse_option(dir, d->args[i], err, errlen)) ||
			    (rc = split_colon(dir, d->args[i], nbuf, sizeof(nbuf), &value, err,
			                      errlen)) ||
			    (rc = check_header(dir, nbuf, value, err, errlen)))
				return rc;
			if (input && derived_header(nbuf))
				return fail(
				    err, errlen, WEIR_EINVAL,
				    "directive \"%s\": ingress-nginx sets %s on the upstream "
				    "request from its own variables, so a changed request header "
				    "does not reach the upstream as written; not translated (use "
				    "proxy_set_header)",
				    dir, q(nbuf, qb, sizeof(qb)));
			bool expand = strchr(value, '$') != NULL;
			rc =
			    input
			        ? snippet_headers_set(&out->request_headers, &out->nrequest_headers,
			                              nbuf, value, expand)
			        : snippet_headers_set(&out->response_headers,
			                              &out->nresponse_headers, nbuf, value, expand);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (strcmp(dir, "add_header") == 0) {
		bool always = d->nargs == 4 && strcmp(d->args[3], "always") == 0;
		if (d->nargs != 3 && !always)
			return fail(
			    err, errlen, WEIR_EINVAL,
			    "directive \"add_header\" takes a name, a value and an optional "
			    "\"always\"");
		if ((rc = check_header(dir, d->args[1], d->args[2], err, errlen)))
			return rc;
		struct route_add_header *grown =
		    realloc(out->add_headers, (out->nadd_headers + 1) * sizeof(*grown));
		if (!grown)
			return WEIR_ENOMEM;
		out->add_headers = grown;
		struct route_add_header *h = &grown[out->nadd_headers++];
		h->always = always;
		h->expand = strchr(d->args[2], '$') != NULL;
		h->name = strdup(d->args[1]);
		h->value = strdup(d->args[2]);
		return h->name && h->value ? 0 : WEIR_ENOMEM;
	}
	if (strcmp(dir, "more_clear_headers") == 0 || strcmp(dir, "proxy_hide_header") == 0) {
		bool more = dir[0] == 'm';
		if (d->nargs < 2 || (!more && d->nargs != 2))
			return fail(err, errlen, WEIR_EINVAL, "directive \"%s\" takes %s", dir,
			            more ? "header names" : "one header name");
		for (size_t i = 1; i < d->nargs; i++) {
			if (more && (rc = refuse_option(dir, d->args[i], err, errlen)))
				return rc;
			if (strchr(d->args[i], '*'))
				return fail(err, errlen, WEIR_EINVAL,
				            "directive \"%s\": wildcard %s is not translated", dir,
				            q(d->args[i], qb, sizeof(qb)));
			if ((rc = check_header(dir, d->args[i], NULL, err, errlen)) ||
			    (rc = snippet_names_add(&out->hide_headers, &out->nhide_headers,
			                            d->args[i])))
				return rc;
		}
		return 0;
	}
	if (strcmp(dir, "return") == 0) {
		if (kind == SNIPPET_SERVER)
			return fail(
			    err, errlen, WEIR_EINVAL,
			    "directive \"return\" in a server-snippet answers every request of "
			    "the host, other Ingresses' paths included; not translated (use "
			    "configuration-snippet)");
		if ((rc = t_return(d, out, err, errlen)))
			return rc;
		return 0;
	}
untranslated:
	if (strcmp(dir, "rewrite") == 0)
		return fail(err, errlen, WEIR_EINVAL,
		            kind == SNIPPET_SERVER
		                ? "directive \"rewrite\" in a server-snippet runs for every path "
		                  "of the host before a location is chosen; not translated (use "
		                  "configuration-snippet)"
		                : "directive \"rewrite\" is not translated in an auth-snippet");
	return fail(err, errlen, WEIR_EINVAL, "directive %s is not translated%s%s",
	            q(dir, qb, sizeof(qb)), kind == SNIPPET_AUTH ? " in " : "",
	            kind == SNIPPET_AUTH ? kind_name(kind) : "");
}

int snippet_translate(const char *text, size_t len, enum snippet_kind kind,
                      struct snippet_policy *out, char *err, size_t errlen)
{
	struct snippet_directives ds = {0, NULL};
	int rc = snippet_tokenize(text, len, &ds, err, errlen);
	if (rc)
		goto out;
	for (size_t i = 0; i < ds.n; i++) {
		if ((rc = translate(&ds.items[i], kind, out, err, errlen)))
			goto out;
	}
	rc = 0;
out:
	snippet_directives_cleanup(&ds);
	return rc;
}
