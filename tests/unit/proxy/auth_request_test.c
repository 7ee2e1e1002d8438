/* tests/unit/proxy/auth_request_test.c - forward auth without sockets: the
 * subrequest head byte for byte, the decision table, the signin Location and
 * the head edits that carry auth headers upstream and cookies to the client. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/error.h"
#include "proxy/auth_request.h"
#include "request_fixture.h"

static void client_init(struct http_client *cl, bool tls)
{
	memset(cl, 0, sizeof(*cl));
	strcpy(cl->ip, "192.0.2.9");
	cl->local_port = tls ? 443 : 80;
	cl->tls = tls;
	strcpy(cl->request_id, "0123456789abcdef0123456789abcdef");
}

static void build_head(void)
{
	static const char raw[] = "POST /app/x?a=1 HTTP/1.1\r\n"
	                          "Host: app.test\r\n"
	                          "Cookie: s=1\r\n"
	                          "Connection: keep-alive, X-Hop\r\n"
	                          "X-Hop: gone\r\n"
	                          "Content-Length: 5\r\n"
	                          "X-Forwarded-For: 203.0.113.1\r\n"
	                          "X-Original-URL: http://evil/\r\n"
	                          "Upgrade: websocket\r\n"
	                          "Accept: */*\r\n"
	                          "\r\n";
	struct http_request req;
	struct http_client cl;
	struct route_ext_auth auth;
	struct url url;
	char buf[4096];
	fixture_parse_request(raw, &req);
	client_init(&cl, false);
	memset(&auth, 0, sizeof(auth));
	auth.url = "http://10.1.2.3:4180/oauth2/auth?x=y";
	CHECK_INT(url_parse(auth.url, &url), 0);
	struct auth_request_params p = {.auth = &auth, .req = &req, .client = &cl};
	int n = auth_request_build_head(&p, &url, buf, sizeof(buf) - 1);
	CHECK(n > 0);
	buf[n > 0 ? n : 0] = '\0';
	CHECK_STR(buf, "GET /oauth2/auth?x=y HTTP/1.1\r\n"
	               "Host: 10.1.2.3:4180\r\n"
	               "Cookie: s=1\r\n"
	               "Accept: */*\r\n"
	               "X-Original-URL: http://app.test/app/x?a=1\r\n"
	               "X-Original-Method: POST\r\n"
	               "X-Sent-From: nginx-ingress-controller\r\n"
	               "X-Real-IP: 192.0.2.9\r\n"
	               "X-Forwarded-For: 192.0.2.9\r\n"
	               "X-Forwarded-Proto: http\r\n"
	               "X-Forwarded-Host: app.test\r\n"
	               "X-Forwarded-Port: 80\r\n"
	               "X-Request-ID: 0123456789abcdef0123456789abcdef\r\n"
	               "X-Auth-Request-Redirect: /app/x?a=1\r\n"
	               "Connection: close\r\n"
	               "\r\n");

	/* The real client (realip.h) read from a trusted peer's
	 * X-Forwarded-For: X-Real-IP is that client, X-Forwarded-For the
	 * incoming chain plus the peer, as the upstream gets it; method and
	 * redirect from the annotations; https client. */
	auth.method = "POST";
	auth.request_redirect = "https://app.test/";
	client_init(&cl, true);
	strcpy(cl.ip, "203.0.113.1");
	strcpy(cl.hop_ip, "192.0.2.9");
	cl.forwarded_trusted = true;
	cl.forwarded_chain = true;
	n = auth_request_build_head(&p, &url, buf, sizeof(buf) - 1);
	CHECK(n > 0);
	buf[n > 0 ? n : 0] = '\0';
	CHECK(strncmp(buf, "POST /oauth2/auth?x=y HTTP/1.1\r\n", 32) == 0);
	CHECK(strstr(buf, "\r\nX-Real-IP: 203.0.113.1\r\n") != NULL);
	CHECK(strstr(buf, "\r\nX-Forwarded-For: 203.0.113.1, 192.0.2.9\r\n") != NULL);
	CHECK(strstr(buf, "\r\nX-Original-URL: https://app.test/app/x?a=1\r\n") != NULL);
	CHECK(strstr(buf, "\r\nX-Forwarded-Proto: https\r\n") != NULL);
	CHECK(strstr(buf, "\r\nX-Auth-Request-Redirect: https://app.test/\r\n") != NULL);
	/* With auth-method, ingress-nginx also sends these two. */
	CHECK(strstr(buf, "\r\nX-Original-URI: /app/x?a=1\r\n") != NULL);
	CHECK(strstr(buf, "\r\nX-Scheme: https\r\n") != NULL);

	/* Too small a buffer is refused, not truncated. */
	CHECK_INT(auth_request_build_head(&p, &url, buf, 100), WEIR_ETOOBIG);

	/* auth-proxy-set-headers: sent after the client's headers, and a
	 * client header of the same name (any case) is not sent. */
	struct route_header set[] = {{"cookie", "from=configmap", false},
	                             {"X-Tenant", "team-a", false}};
	auth.proxy_set_headers = set;
	auth.nproxy_set_headers = 2;
	auth.method = NULL;
	auth.request_redirect = NULL;
	client_init(&cl, false);
	n = auth_request_build_head(&p, &url, buf, sizeof(buf) - 1);
	CHECK(n > 0);
	buf[n > 0 ? n : 0] = '\0';
	CHECK(strncmp(buf,
	              "GET /oauth2/auth?x=y HTTP/1.1\r\n"
	              "Host: 10.1.2.3:4180\r\n"
	              "Accept: */*\r\n"
	              "cookie: from=configmap\r\n"
	              "X-Tenant: team-a\r\n"
	              "X-Original-URL: http://app.test/app/x?a=1\r\n",
	              strlen("GET /oauth2/auth?x=y HTTP/1.1\r\n"
	                     "Host: 10.1.2.3:4180\r\n"
	                     "Accept: */*\r\n"
	                     "cookie: from=configmap\r\n"
	                     "X-Tenant: team-a\r\n"
	                     "X-Original-URL: http://app.test/app/x?a=1\r\n")) == 0);
	CHECK(strstr(buf, "s=1") == NULL);
	auth.proxy_set_headers = NULL;
	auth.nproxy_set_headers = 0;
}

static void decisions(void)
{
	struct route_ext_auth a;
	memset(&a, 0, sizeof(a));
	CHECK_INT(auth_request_decision(&a, 200), 0);
	CHECK_INT(auth_request_decision(&a, 202), 0);
	CHECK_INT(auth_request_decision(&a, 204), 0);
	CHECK_INT(auth_request_decision(&a, 401), 401);
	CHECK_INT(auth_request_decision(&a, 403), 403);
	CHECK_INT(auth_request_decision(&a, 404), 500);
	CHECK_INT(auth_request_decision(&a, 302), 500);
	CHECK_INT(auth_request_decision(&a, 500), 500);
	CHECK_INT(auth_request_decision(&a, 0), 500);
	a.signin = "https://login/";
	CHECK_INT(auth_request_decision(&a, 401), 302);
	CHECK_INT(auth_request_decision(&a, 403), 403);
}

static void signin(void)
{
	static const char raw[] = "GET /p/a b?x=1&y=é HTTP/1.1\r\nHost: app.test:8080\r\n\r\n";
	struct http_request req;
	struct http_client cl;
	struct route_ext_auth a;
	char buf[512];
	fixture_parse_request(raw, &req);
	/* the fixture splits on spaces: give it the raw target by hand */
	req.target = "/p/a%20b?x=1&y=\xc3\xa9";
	req.target_len = strlen(req.target);
	client_init(&cl, true);
	memset(&a, 0, sizeof(a));
	a.signin = "https://login.test/start";
	CHECK(auth_request_signin_location(&a, &req, &cl, buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "https://login.test/start?rd=https://app.test:8080"
	               "%2Fp%2Fa%2520b%3Fx%3D1%26y%3D%C3%A9");
	a.signin = "https://login.test/start?app=1";
	a.signin_redirect_param = "return_to";
	CHECK(auth_request_signin_location(&a, &req, &cl, buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "https://login.test/start?app=1&return_to=https://app.test:8080"
	               "%2Fp%2Fa%2520b%3Fx%3D1%26y%3D%C3%A9");
	/* The parameter is already there: the URL is left as it is. */
	a.signin = "https://login.test/start?return_to=/home";
	CHECK(auth_request_signin_location(&a, &req, &cl, buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "https://login.test/start?return_to=/home");
	a.signin = "https://login.test/start";
	CHECK_INT(auth_request_signin_location(&a, &req, &cl, buf, 30), WEIR_ETOOBIG);

	/* nginx variables, as in the oauth2-proxy recipe. */
	static const char raw2[] = "GET /x HTTP/1.1\r\nHost: App.Test:8443\r\n\r\n";
	fixture_parse_request(raw2, &req);
	req.target = "/p?q=1";
	req.target_len = 6;
	a.signin_redirect_param = NULL;
	a.signin = "https://$host/oauth2/start?rd=$escaped_request_uri";
	CHECK(auth_request_signin_location(&a, &req, &cl, buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "https://app.test/oauth2/start?rd=%2Fp%3Fq%3D1");
	a.signin = "$scheme://$http_host/s?u=$request_uri&s=$pass_access_scheme&b=$best_http_host"
	           "&x=$unknown";
	CHECK(auth_request_signin_location(&a, &req, &cl, buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "https://App.Test:8443/s?u=/p?q=1&s=https&b=App.Test:8443&x=$unknown"
	               "&rd=https://App.Test:8443%2Fp%3Fq%3D1");
	/* Every variable the controller lets through is expanded. */
	char tmpl[256];
	for (const char *v = URL_SIGNIN_VARS; *v;) {
		size_t len = strcspn(v, " ");
		snprintf(tmpl, sizeof(tmpl), "https://a/?rd=$%.*s", (int)len, v);
		a.signin = tmpl;
		CHECK(auth_request_signin_location(&a, &req, &cl, buf, sizeof(buf)) > 0);
		CHECK(strchr(buf, '$') == NULL);
		v += len;
		v += *v == ' ';
	}
	/* IPv6 literal host: $host keeps the brackets, drops the port. */
	static const char raw3[] = "GET /x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n";
	fixture_parse_request(raw3, &req);
	a.signin = "https://$host/s?rd=x";
	CHECK(auth_request_signin_location(&a, &req, &cl, buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "https://[::1]/s?rd=x");
}

static void edit_head(void)
{
	char head[256];
	char *drop[] = {"X-Auth-User", "x-auth-email"};
	strcpy(head, "GET / HTTP/1.1\r\nHost: a\r\nX-Auth-User: mallory\r\nAccept: */*\r\n"
	             "x-auth-user: again\r\nX-AUTH-EMAIL: m@x\r\nX-Auth-Username: kept\r\n\r\n");
	int n = auth_request_edit_head(head, strlen(head), sizeof(head) - 1, drop, 2,
	                               "X-Auth-User: alice\r\n");
	CHECK(n > 0);
	head[n > 0 ? n : 0] = '\0';
	CHECK_STR(head, "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-Auth-Username: kept\r\n"
	                "X-Auth-User: alice\r\n\r\n");

	/* Only insertion (cookies into a response head). */
	strcpy(head, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	n = auth_request_edit_head(head, strlen(head), sizeof(head) - 1, NULL, 0,
	                           "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n");
	CHECK(n > 0);
	head[n > 0 ? n : 0] = '\0';
	CHECK_STR(head, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: a=1\r\n"
	                "Set-Cookie: b=2\r\n\r\n");

	/* No room: refused and unchanged. */
	strcpy(head, "HTTP/1.1 200 OK\r\n\r\n");
	size_t len = strlen(head);
	CHECK_INT(auth_request_edit_head(head, len, len + 5, NULL, 0, "Set-Cookie: a=1\r\n"),
	          WEIR_ETOOBIG);
	CHECK_STR(head, "HTTP/1.1 200 OK\r\n\r\n");
}

static void cache_key(void)
{
	/* "alice:secret" in Basic credentials */
	static const char raw[] = "GET /p?t=1&tok=XyZ HTTP/1.1\r\nHost: App.Test:80\r\n"
	                          "Authorization: Basic YWxpY2U6c2VjcmV0\r\n"
	                          "Cookie: a=1; session=s3; b=2\r\n"
	                          "X-Api-Key: k9\r\n\r\n";
	struct http_request req;
	struct http_client cl;
	struct route_ext_auth a;
	char buf[512];
	fixture_parse_request(raw, &req);
	client_init(&cl, false);
	memset(&a, 0, sizeof(a));
	a.cache_key = "$remote_user|$http_x_api_key|$cookie_session|$arg_tok|$host|$uri|"
	              "$request_uri|$remote_addr|$scheme|$http_missing|$cookie_none";
	CHECK(auth_request_cache_key(&a, &req, &cl, buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "alice|k9|s3|XyZ|app.test|/p|/p?t=1&tok=XyZ|192.0.2.9|http||");
	CHECK_INT(auth_request_cache_key(&a, &req, &cl, buf, 10), WEIR_ETOOBIG);
	/* Different credentials, different key. */
	static const char raw2[] = "GET /p HTTP/1.1\r\nHost: a\r\n"
	                           "Authorization: Basic Ym9iOnB3\r\n\r\n";
	fixture_parse_request(raw2, &req);
	a.cache_key = "$remote_user$http_authorization";
	CHECK(auth_request_cache_key(&a, &req, &cl, buf, sizeof(buf)) > 0);
	CHECK_STR(buf, "bobBasic Ym9iOnB3");
}

int main(void)
{
	cache_key();
	build_head();
	decisions();
	signin();
	edit_head();
	return check_finish("auth_request_test");
}
