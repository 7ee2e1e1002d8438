/* controller/snippet.h - nginx configuration snippets (the
 * configuration-snippet, server-snippet and auth-snippet annotations): a
 * tokenizer of nginx configuration syntax and a translation of the few
 * directives people put there into route policy values. Pure: no I/O, no
 * globals. Nothing of a snippet ever reaches a template or a shell; what is
 * not translated exactly is refused with a reason. */
#ifndef WEIR_CONTROLLER_SNIPPET_H
#define WEIR_CONTROLLER_SNIPPET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "route_table.h"

/* Longest snippet accepted, in bytes: longer ones are refused whole. */
#define SNIPPET_MAX_BYTES (16u * 1024u)
/* Most words one directive may have (its name included). */
#define SNIPPET_MAX_ARGS 64

/* One directive: args[0] is its name, then its arguments with quotes
 * removed and backslash escapes resolved (as nginx reads them). */
struct snippet_directive {
	size_t nargs;
	char **args;
	unsigned line; /* 1-based line of its first word */
};

struct snippet_directives {
	size_t n;
	struct snippet_directive *items;
};

/* Tokenize text[0..len) by nginx's rules: words separated by blanks (space,
 * tab, CR, LF), directives ended by ';', "..." and '...' strings (only at the
 * start of a word) with \" \' \\ \t \r \n escapes (other backslashes kept),
 * '#' comments to the end of the line (at the start of a word), '{' ... '}'
 * blocks, "${name}" kept inside a word. A block is refused whole (weir
 * translates no block). Refused: more than SNIPPET_MAX_BYTES, a NUL byte,
 * an unterminated string or directive, a quote not followed by a blank or
 * ';', a '{' or '}'. On success returns 0 and fills *out (caller storage,
 * zeroed; release with snippet_directives_cleanup, also on failure). Else
 * WEIR_EINVAL or WEIR_ETOOBIG with one line in err naming what and where
 * (e.g. "line 2: unterminated \"...\" string"), or WEIR_ENOMEM. */
int snippet_tokenize(const char *text, size_t len, struct snippet_directives *out, char *err,
                     size_t errlen);
void snippet_directives_cleanup(struct snippet_directives *d);

/* The first nginx variable reference in s ("$name" or "${name}"): returns
 * true and sets *name / *name_len (borrowed from s) to the name. A '$' not
 * followed by a name character or "{name}" is also a reference (nginx
 * refuses it): then *name_len is 0. */
bool snippet_find_variable(const char *s, const char **name, size_t *name_len);

/* Where a snippet sits in ingress-nginx's configuration. */
enum snippet_kind {
	SNIPPET_CONFIGURATION = 0, /* configuration-snippet: inside each location */
	SNIPPET_SERVER = 1,        /* server-snippet: the server block of the host */
	SNIPPET_AUTH = 2,          /* auth-snippet: the forward-auth subrequest location */
};

/* What a snippet translates to; every string owned. */
struct snippet_policy {
	size_t nrequest_headers; /* proxy_set_header, more_set_input_headers */
	struct route_header *request_headers;
	size_t nresponse_headers; /* more_set_headers: every status, replacing */
	struct route_header *response_headers;
	size_t nadd_headers; /* add_header [always] */
	struct route_add_header *add_headers;
	size_t nhide_headers; /* more_clear_headers, proxy_hide_header */
	char **hide_headers;
	size_t nauth_headers; /* auth-snippet proxy_set_header */
	struct route_header *auth_headers;
	uint16_t redirect_code; /* return 301|302|303|307|308 URL; 0: none */
	char *redirect_url;
	uint16_t return_code; /* return CODE ["text"]; 0: none */
	char *return_body;    /* NULL: empty body */
	size_t nrewrites;     /* rewrite REGEX REPLACEMENT FLAG, in order */
	struct route_rewrite *rewrites;
};

/* Translate the snippet text[0..len) of the given kind into out (caller
 * storage, zeroed; release with snippet_policy_cleanup, also on failure).
 * Translated (each value checked by common/route_validate.c's rules; a
 * header value may name the variables the proxy expands, route_var_lookup,
 * and is then marked expand; no other '$' anywhere):
 *   proxy_set_header NAME VALUE;           -> request header (configuration)
 *                                             or auth request header (auth)
 *   more_set_input_headers 'NAME: VALUE'...; -> request header
 *   more_set_headers 'NAME: VALUE'...;     -> response header, every status
 *   add_header NAME VALUE [always];        -> add_headers
 *   more_clear_headers NAME...; proxy_hide_header NAME; -> hide_headers
 *   return CODE [URL|TEXT]; return URL;    -> redirect or fixed answer
 *   rewrite REGEX REPLACEMENT break|redirect|permanent; -> rewrites
 *                                             (configuration only; "last"
 *                                             or no flag only when the
 *                                             replacement is a URL, which
 *                                             nginx answers as a redirect)
 * Anything else is refused. Returns 0, WEIR_EINVAL / WEIR_ETOOBIG with one
 * line in err (e.g. "directive \"lua_need_request_body\" is not
 * translated"), or WEIR_ENOMEM. */
int snippet_translate(const char *text, size_t len, enum snippet_kind kind,
                      struct snippet_policy *out, char *err, size_t errlen);
void snippet_policy_cleanup(struct snippet_policy *p);

/* Set name: value in the header list *list / *n (realloc'd; strings
 * copied), replacing the value of an entry with the same name (case
 * insensitive) in place: the later setting wins, as nginx's last
 * proxy_set_header and headers-more's last set do. Returns 0 or
 * WEIR_ENOMEM (the list stays consistent). */
int snippet_headers_set(struct route_header **list, size_t *n, const char *name, const char *value,
                        bool expand);
/* Append a copy of name to *list / *n unless present (case insensitive).
 * Returns 0 or WEIR_ENOMEM. */
int snippet_names_add(char ***list, size_t *n, const char *name);

#endif
