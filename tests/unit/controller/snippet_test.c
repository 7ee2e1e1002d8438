/* tests/unit/controller/snippet_test.c - the nginx snippet tokenizer
 * (words, strings, escapes, comments, blocks, variables, hostile input) and
 * the translation of snippets into route policy values. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "controller/snippet.h"
#include "error.h"

static char err[512];

/* Tokenize s (strlen) expecting success; returns the directives. */
static struct snippet_directives tok_ok(const char *s)
{
	struct snippet_directives d = {0, NULL};
	err[0] = '\0';
	int rc = snippet_tokenize(s, strlen(s), &d, err, sizeof(err));
	CHECK_INT(rc, 0);
	if (rc)
		fprintf(stderr, "  input: %s\n  err: %s\n", s, err);
	return d;
}

/* Tokenize n bytes expecting failure rc with err containing want. */
static void tok_fail_n(const char *s, size_t n, int rc, const char *want)
{
	struct snippet_directives d = {0, NULL};
	err[0] = '\0';
	CHECK_INT(snippet_tokenize(s, n, &d, err, sizeof(err)), rc);
	CHECK(strstr(err, want) != NULL);
	if (!strstr(err, want))
		fprintf(stderr, "  err: \"%s\", wanted \"%s\"\n", err, want);
	snippet_directives_cleanup(&d);
}

static void tok_fail(const char *s, const char *want)
{
	tok_fail_n(s, strlen(s), WEIR_EINVAL, want);
}

static void test_words(void)
{
	struct snippet_directives d = tok_ok("add_header X-A b;\n\tmore_set_headers  'X: y'\r\n"
	                                     "  \"Z: w\" ;# trailing comment\n# whole line\n");
	CHECK_INT(d.n, 2);
	if (d.n == 2) {
		CHECK_INT(d.items[0].nargs, 3);
		CHECK_STR(d.items[0].args[0], "add_header");
		CHECK_STR(d.items[0].args[2], "b");
		CHECK_INT(d.items[0].line, 1);
		CHECK_INT(d.items[1].nargs, 3);
		CHECK_STR(d.items[1].args[1], "X: y");
		CHECK_STR(d.items[1].args[2], "Z: w");
		CHECK_INT(d.items[1].line, 2);
	}
	snippet_directives_cleanup(&d);

	/* empty and comment-only snippets hold no directive */
	d = tok_ok("");
	CHECK_INT(d.n, 0);
	snippet_directives_cleanup(&d);
	d = tok_ok("  # nothing here ; { }\n\n");
	CHECK_INT(d.n, 0);
	snippet_directives_cleanup(&d);

	/* '#' inside a word and quotes inside a word are literal */
	d = tok_ok("a b#c d\"e';");
	CHECK_INT(d.n, 1);
	if (d.n == 1) {
		CHECK_INT(d.items[0].nargs, 3);
		CHECK_STR(d.items[0].args[1], "b#c");
		CHECK_STR(d.items[0].args[2], "d\"e'");
	}
	snippet_directives_cleanup(&d);

	/* no blank needed before ';' and after it */
	d = tok_ok("a 1;b 2;");
	CHECK_INT(d.n, 2);
	snippet_directives_cleanup(&d);
}

static void test_strings(void)
{
	/* escapes: \" \' \\ \t \r \n resolved, others kept with the backslash */
	struct snippet_directives d = tok_ok(
	    "x \"a\\\"b\" 'c\\'d' \"e\\\\f\" \"g\\th\" \"i\\qj\" 'semi;colon' \"multi\nline\";");
	CHECK_INT(d.n, 1);
	if (d.n == 1 && d.items[0].nargs == 8) {
		CHECK_STR(d.items[0].args[1], "a\"b");
		CHECK_STR(d.items[0].args[2], "c'd");
		CHECK_STR(d.items[0].args[3], "e\\f");
		CHECK_STR(d.items[0].args[4], "g\th");
		CHECK_STR(d.items[0].args[5], "i\\qj");
		CHECK_STR(d.items[0].args[6], "semi;colon");
		CHECK_STR(d.items[0].args[7], "multi\nline");
	} else {
		CHECK(0);
	}
	snippet_directives_cleanup(&d);

	/* an empty string is a word */
	d = tok_ok("x \"\" '';");
	CHECK(d.n == 1 && d.items[0].nargs == 3 && d.items[0].args[1][0] == '\0');
	snippet_directives_cleanup(&d);

	/* backslash in a word protects ';' (kept with the backslash, as nginx) */
	d = tok_ok("x a\\;b;");
	CHECK(d.n == 1 && d.items[0].nargs == 2);
	if (d.n == 1 && d.items[0].nargs == 2)
		CHECK_STR(d.items[0].args[1], "a\\;b");
	snippet_directives_cleanup(&d);

	/* line numbers count newlines inside strings */
	d = tok_ok("a 'x\ny';\nb c;");
	CHECK(d.n == 2 && d.items[1].line == 3);
	snippet_directives_cleanup(&d);
}

static void test_variables(void)
{
	struct snippet_directives d = tok_ok("x ${host}name$y;");
	CHECK(d.n == 1 && d.items[0].nargs == 2);
	if (d.n == 1 && d.items[0].nargs == 2)
		CHECK_STR(d.items[0].args[1], "${host}name$y");
	snippet_directives_cleanup(&d);

	const char *name;
	size_t len;
	CHECK(snippet_find_variable("a $host b", &name, &len));
	CHECK(len == 4 && strncmp(name, "host", 4) == 0);
	CHECK(snippet_find_variable("${http_x_a}b", &name, &len));
	CHECK(len == 8 && strncmp(name, "http_x_a", 8) == 0);
	CHECK(snippet_find_variable("cost: 5$", &name, &len) && len == 0);
	CHECK(snippet_find_variable("${bad", &name, &len) && len == 0);
	CHECK(!snippet_find_variable("no variable", &name, &len));
}

static void test_hostile(void)
{
	tok_fail("add_header X \"unterminated;", "unterminated \"...\" string");
	tok_fail("add_header X 'unterminated;", "unterminated '...' string");
	tok_fail("add_header X \"ends in backslash\\", "unterminated");
	tok_fail("add_header X b", "directive \"add_header\" has no ending ';'");
	tok_fail("location /x { return 403; }", "block \"location\" is not translated");
	tok_fail("if ($a) {}", "block \"if\" is not translated");
	tok_fail("{ a; }", "unexpected '{'");
	tok_fail("a;}", "unexpected '}'");
	tok_fail(";", "unexpected ';'");
	tok_fail("a \"b\"c;", "unexpected \"c\" after a quoted string");
	/* the byte is shown escaped: the message goes into an Event */
	tok_fail("a 'b'\x01;", "unexpected \"\\x01\" after a quoted string");
	tok_fail("a ${b;", "unterminated \"${\"");
	tok_fail("a ${b\n};", "unterminated \"${\"");
	tok_fail("a;\n\nb 'x;", "line 3:");

	/* NUL anywhere */
	tok_fail_n("add_header X-A \"a\0b\";", 22, WEIR_EINVAL, "NUL byte");
	tok_fail_n("a\0;", 3, WEIR_EINVAL, "NUL byte");

	/* size cap, exactly at and one past it */
	size_t n = SNIPPET_MAX_BYTES;
	char *big = malloc(n + 2);
	if (big) {
		memset(big, ' ', n + 1);
		memcpy(big, "a b;", 4);
		struct snippet_directives d = {0, NULL};
		CHECK_INT(snippet_tokenize(big, n, &d, err, sizeof(err)), 0);
		CHECK_INT(d.n, 1);
		snippet_directives_cleanup(&d);
		tok_fail_n(big, n + 1, WEIR_ETOOBIG, "more than the 16384 allowed");
		/* one word of the whole size */
		memset(big, 'a', n);
		big[n - 1] = ';';
		d.n = 0;
		d.items = NULL;
		CHECK_INT(snippet_tokenize(big, n, &d, err, sizeof(err)), 0);
		CHECK(d.n == 1 && strlen(d.items[0].args[0]) == n - 1);
		snippet_directives_cleanup(&d);
		free(big);
	}

	/* too many words in one directive */
	char many[4 * (SNIPPET_MAX_ARGS + 2)];
	size_t m = 0;
	for (int i = 0; i < SNIPPET_MAX_ARGS + 1; i++) {
		many[m++] = 'w';
		many[m++] = ' ';
	}
	many[m++] = ';';
	many[m] = '\0';
	tok_fail(many, "more than 64 words");

	/* every prefix of a valid snippet either tokenizes or fails cleanly */
	const char *s = "more_set_headers 'A: b' \"C: \\\"d\\\"\"; # c\nadd_header ${x}y z always;";
	for (size_t i = 0; i <= strlen(s); i++) {
		struct snippet_directives d = {0, NULL};
		int rc = snippet_tokenize(s, i, &d, err, sizeof(err));
		CHECK(rc == 0 || rc == WEIR_EINVAL);
		snippet_directives_cleanup(&d);
	}
}

/* Translate s as kind expecting success. */
static int tr(const char *s, enum snippet_kind kind, struct snippet_policy *p)
{
	memset(p, 0, sizeof(*p));
	err[0] = '\0';
	int rc = snippet_translate(s, strlen(s), kind, p, err, sizeof(err));
	if (rc)
		fprintf(stderr, "  input: %s\n  err: %s\n", s, err);
	return rc;
}

static void tr_fail(const char *s, enum snippet_kind kind, const char *want)
{
	struct snippet_policy p;
	memset(&p, 0, sizeof(p));
	err[0] = '\0';
	CHECK_INT(snippet_translate(s, strlen(s), kind, &p, err, sizeof(err)), WEIR_EINVAL);
	CHECK(strstr(err, want) != NULL);
	if (!strstr(err, want))
		fprintf(stderr, "  input: %s\n  err: \"%s\", wanted \"%s\"\n", s, err, want);
	snippet_policy_cleanup(&p);
}

static void test_translate(void)
{
	struct snippet_policy p;
	CHECK_INT(tr("proxy_set_header X-A 1; proxy_set_header x-a 2;\n"
	             "more_set_input_headers 'X-B: b' \"X-C:c\";\n"
	             "more_set_headers 'X-D: d';\n"
	             "add_header X-E e; add_header X-E e2 always;\n"
	             "more_clear_headers Server X-Powered-By; proxy_hide_header server;\n",
	             SNIPPET_CONFIGURATION, &p),
	          0);
	CHECK_INT(p.nrequest_headers, 3);
	if (p.nrequest_headers == 3) {
		/* the later set of a name replaces the earlier, in place */
		CHECK_STR(p.request_headers[0].name, "X-A");
		CHECK_STR(p.request_headers[0].value, "2");
		CHECK_STR(p.request_headers[2].name, "X-C");
		CHECK_STR(p.request_headers[2].value, "c");
	}
	CHECK_INT(p.nresponse_headers, 1);
	CHECK_INT(p.nadd_headers, 2);
	if (p.nadd_headers == 2) {
		/* add_header adds: both stay */
		CHECK(!p.add_headers[0].always && p.add_headers[1].always);
		CHECK_STR(p.add_headers[1].value, "e2");
	}
	CHECK_INT(p.nhide_headers, 2); /* Server once (case-insensitive) */
	CHECK_INT(p.return_code, 0);
	snippet_policy_cleanup(&p);

	/* the variables the proxy expands mark their header expand */
	CHECK_INT(tr("proxy_set_header X-Host $host; proxy_set_header X-Lit lit;\n"
	             "more_set_headers \"Request-Id: $req_id\";\n"
	             "add_header X-U \"${scheme}://$host$request_uri from $remote_addr "
	             "$request_id $http_user_agent\" always;",
	             SNIPPET_CONFIGURATION, &p),
	          0);
	CHECK(p.nrequest_headers == 2 && p.request_headers[0].expand &&
	      !p.request_headers[1].expand);
	CHECK(p.nresponse_headers == 1 && p.response_headers[0].expand);
	CHECK(p.nadd_headers == 1 && p.add_headers[0].expand && p.add_headers[0].always);
	snippet_policy_cleanup(&p);

	CHECK_INT(tr("return 403 'go away';", SNIPPET_CONFIGURATION, &p), 0);
	CHECK_INT(p.return_code, 403);
	CHECK_STR(p.return_body, "go away");
	snippet_policy_cleanup(&p);
	CHECK_INT(tr("return 200;", SNIPPET_CONFIGURATION, &p), 0);
	CHECK(p.return_code == 200 && p.return_body == NULL);
	snippet_policy_cleanup(&p);
	CHECK_INT(tr("return 308 https://a.example.com/;", SNIPPET_CONFIGURATION, &p), 0);
	CHECK(p.redirect_code == 308 && p.return_code == 0);
	CHECK_STR(p.redirect_url, "https://a.example.com/");
	snippet_policy_cleanup(&p);
	CHECK_INT(tr("return http://b.example.com;", SNIPPET_CONFIGURATION, &p), 0);
	CHECK_INT(p.redirect_code, 302);
	snippet_policy_cleanup(&p);

	CHECK_INT(tr("proxy_set_header X-Tenant t;", SNIPPET_AUTH, &p), 0);
	CHECK(p.nauth_headers == 1 && p.nrequest_headers == 0);
	snippet_policy_cleanup(&p);

	CHECK_INT(tr("add_header X-S s; more_set_headers 'X-T: t';", SNIPPET_SERVER, &p), 0);
	CHECK(p.nadd_headers == 1 && p.nresponse_headers == 1);
	snippet_policy_cleanup(&p);
}

static void test_rewrite(void)
{
	struct snippet_policy p;
	char err[256];
	memset(&p, 0, sizeof(p));
	const char *s = "rewrite ^/a/(.*)$ /b/$1 break;\n"
	                "rewrite \"^/c/(\\d{2})$\" /d/$1?x=1 permanent;\n"
	                "rewrite ^/e /f redirect;\n"
	                "rewrite ^ $scheme://$host/g last;\n"
	                "rewrite ^/h https://h.example/;\n";
	CHECK_INT(snippet_translate(s, strlen(s), SNIPPET_CONFIGURATION, &p, err, sizeof(err)), 0);
	CHECK_INT(p.nrewrites, 5);
	if (p.nrewrites == 5) {
		CHECK_STR(p.rewrites[0].regex, "^/a/(.*)$");
		CHECK_STR(p.rewrites[0].replacement, "/b/$1");
		CHECK_INT(p.rewrites[0].flag, ROUTE_REWRITE_BREAK);
		CHECK_STR(p.rewrites[1].regex, "^/c/(\\d{2})$");
		CHECK_INT(p.rewrites[1].flag, ROUTE_REWRITE_PERMANENT);
		CHECK_INT(p.rewrites[2].flag, ROUTE_REWRITE_REDIRECT);
		CHECK_INT(p.rewrites[3].flag,
		          ROUTE_REWRITE_REDIRECT); /* a URL: no location search */
		CHECK_INT(p.rewrites[4].flag, ROUTE_REWRITE_REDIRECT);
	}
	snippet_policy_cleanup(&p);
}

static void test_refusals(void)
{
	tr_fail("lua_need_request_body on;", SNIPPET_CONFIGURATION,
	        "directive \"lua_need_request_body\" is not translated");
	tr_fail("rewrite ^/old(.*)$ /new$1 last;", SNIPPET_CONFIGURATION,
	        "directive \"rewrite\" with flag last: nginx looks for the location again");
	tr_fail("rewrite ^/old(.*)$ /new$1;", SNIPPET_CONFIGURATION,
	        "directive \"rewrite\" without a flag");
	tr_fail("rewrite ^/old(.*)$ /new$1 break;", SNIPPET_SERVER,
	        "directive \"rewrite\" in a server-snippet runs for every path");
	tr_fail("rewrite ^/old(.*)$ /new$1 break;", SNIPPET_AUTH,
	        "directive \"rewrite\" is not translated in an auth-snippet");
	tr_fail("rewrite ^/(a $1 break;", SNIPPET_CONFIGURATION, "bad regex: missing closing");
	tr_fail("rewrite ^/a /$remote_user break;", SNIPPET_CONFIGURATION,
	        "variable \"$remote_user\" is not one weir expands");
	tr_fail("rewrite ^/a /b break extra;", SNIPPET_CONFIGURATION,
	        "takes a regex, a replacement and a flag");
	tr_fail("more_set_headers \"Request-Id: $uri\";", SNIPPET_CONFIGURATION,
	        "variable \"$uri\" is not supported (weir expands $host");
	tr_fail("add_header X-A ${hostname};", SNIPPET_CONFIGURATION, "variable \"$hostname\"");
	tr_fail("add_header X-A $http_;", SNIPPET_CONFIGURATION, "variable \"$http_\"");
	tr_fail("add_header X-A 5$;", SNIPPET_CONFIGURATION, "'$' that names no variable");
	tr_fail("add_header X-A ${host;", SNIPPET_CONFIGURATION, "unterminated \"${\"");
	tr_fail("add_header X-$host a;", SNIPPET_CONFIGURATION, "not supported here");
	tr_fail("more_set_headers 'X-$host: a';", SNIPPET_CONFIGURATION,
	        "a variable in header name");
	tr_fail("add_header X-A b $host;", SNIPPET_CONFIGURATION, "not supported here");
	tr_fail("return 200 $host;", SNIPPET_CONFIGURATION, "not supported here");
	tr_fail("return 302 https://$host/;", SNIPPET_CONFIGURATION, "not supported here");
	tr_fail("more_clear_headers $http_x;", SNIPPET_CONFIGURATION, "not supported here");
	tr_fail("add_header \"X A\" b;", SNIPPET_CONFIGURATION, "bad header name");
	tr_fail("add_header X-A \"a\\r\\nInjected: 1\";", SNIPPET_CONFIGURATION,
	        "contains CR or LF");
	tr_fail("add_header X-A \"a\nb\";", SNIPPET_CONFIGURATION, "contains CR or LF");
	tr_fail("add_header X-A \"a\x01\";", SNIPPET_CONFIGURATION, "control character");
	tr_fail("add_header X-A b sometimes;", SNIPPET_CONFIGURATION, "optional \"always\"");
	tr_fail("add_header X-A;", SNIPPET_CONFIGURATION, "takes a name, a value");
	tr_fail("add_header Content-Length 5;", SNIPPET_CONFIGURATION, "proxy's own");
	tr_fail("proxy_set_header Transfer-Encoding chunked;", SNIPPET_CONFIGURATION,
	        "proxy's own");
	tr_fail("proxy_set_header X-A \"\";", SNIPPET_CONFIGURATION, "empty value");
	tr_fail("more_set_headers 'X-A:';", SNIPPET_CONFIGURATION, "empty value");
	tr_fail("more_set_headers 'X-A';", SNIPPET_CONFIGURATION, "is not 'Name: value'");
	tr_fail("more_set_headers ': v';", SNIPPET_CONFIGURATION, "is not 'Name: value'");
	tr_fail("more_set_headers -s 404 'X-A: b';", SNIPPET_CONFIGURATION, "option \"-s\"");
	tr_fail("more_set_input_headers -r 'X-A: b';", SNIPPET_CONFIGURATION, "option \"-r\"");
	tr_fail("more_clear_headers 'X-*';", SNIPPET_CONFIGURATION, "wildcard \"X-*\"");
	tr_fail("more_set_input_headers 'X-Real-IP: 1.2.3.4';", SNIPPET_CONFIGURATION,
	        "ingress-nginx sets \"X-Real-IP\"");
	tr_fail("more_set_input_headers 'x-forwarded-for: 1.2.3.4';", SNIPPET_SERVER,
	        "use proxy_set_header");
	tr_fail("proxy_hide_header A B;", SNIPPET_CONFIGURATION, "one header name");
	tr_fail("return 444;", SNIPPET_CONFIGURATION, "444");
	tr_fail("return 199;", SNIPPET_CONFIGURATION, "200..599");
	tr_fail("return 600 x;", SNIPPET_CONFIGURATION, "200..599");
	tr_fail("return 40x;", SNIPPET_CONFIGURATION, "not a status code");
	tr_fail("return +40;", SNIPPET_CONFIGURATION, "not a status code");
	tr_fail("return 301;", SNIPPET_CONFIGURATION, "needs a URL");
	tr_fail("return 302 'not a url';", SNIPPET_CONFIGURATION, "bad URL");
	tr_fail("return 204 body;", SNIPPET_CONFIGURATION, "has no body");
	tr_fail("return 403; return 404;", SNIPPET_CONFIGURATION, "appears twice");
	tr_fail("return 403 a b c;", SNIPPET_CONFIGURATION, "takes a code");
	tr_fail("return 200 \"\x01\";", SNIPPET_CONFIGURATION, "control character");
	tr_fail("proxy_set_header X-A b;", SNIPPET_SERVER, "has no effect in ingress-nginx");
	tr_fail("return 403;", SNIPPET_SERVER, "answers every request of the host");
	tr_fail("add_header X-A b;", SNIPPET_AUTH, "not translated in auth-snippet");
	tr_fail("proxy_set_header Host h;", SNIPPET_AUTH, "");
	tr_fail("proxy_set_header X-A $http_x;", SNIPPET_AUTH, "variable");
	tr_fail("location / { }", SNIPPET_CONFIGURATION, "block \"location\"");

	/* a body over the cap */
	char body[ROUTE_RETURN_BODY_MAX + 40];
	memcpy(body, "return 200 '", 12);
	memset(body + 12, 'a', ROUTE_RETURN_BODY_MAX + 1);
	memcpy(body + 12 + ROUTE_RETURN_BODY_MAX + 1, "';", 3);
	tr_fail(body, SNIPPET_CONFIGURATION, "more than the 1024 allowed");

	/* the quoted directive name of an unknown directive is escaped */
	tr_fail("\"evil\\nname\" x;", SNIPPET_CONFIGURATION, "\"evil\\nname\" is not translated");
}

int main(void)
{
	test_words();
	test_strings();
	test_variables();
	test_hostile();
	test_translate();
	test_rewrite();
	test_refusals();
	return check_finish("snippet_test");
}
