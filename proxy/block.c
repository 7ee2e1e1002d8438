/* proxy/block.c - the global block lists (block.h). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "block.h"
#include "error.h"
#include "route_validate.h"

struct pattern {
	const char *text;  /* plain entry (borrowed from the settings) */
	size_t len;
	pcre2_code *re;    /* "~" entries */
};

struct block_list {
	const struct route_settings *s;
	size_t nua, nref;
	struct pattern *ua, *ref;
};

static void free_patterns(struct pattern *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++)
		pcre2_code_free(p[i].re);
	free(p);
}

void block_list_free(struct block_list *b)
{
	if (!b)
		return;
	free_patterns(b->ua, b->nua);
	free_patterns(b->ref, b->nref);
	free(b);
}

static int build(char *const *src, size_t n, const char *what, struct pattern **out, char *err,
                 size_t errlen)
{
	if (n == 0)
		return 0;
	struct pattern *p = calloc(n, sizeof(*p));
	if (!p)
		return WEIR_ENOMEM;
	*out = p;
	for (size_t i = 0; i < n; i++) {
		char why[200] = "";
		p[i].text = src[i];
		p[i].len = strlen(src[i]);
		if (src[i][0] != '~')
			continue;
		p[i].re = route_block_pattern_compile(src[i], why, sizeof(why));
		if (!p[i].re) {
			snprintf(err, errlen, "settings.%s[%zu]: %s", what, i, why);
			return WEIR_EINVAL;
		}
	}
	return 0;
}

int block_list_new(const struct route_settings *s, struct block_list **out, char *err,
                   size_t errlen)
{
	*out = NULL;
	if (!s->nblock_cidrs && !s->nblock_user_agents && !s->nblock_referers)
		return 0;
	struct block_list *b = calloc(1, sizeof(*b));
	if (!b)
		return WEIR_ENOMEM;
	b->s = s;
	b->nua = s->nblock_user_agents;
	b->nref = s->nblock_referers;
	int rc = build(s->block_user_agents, b->nua, "block_user_agents", &b->ua, err, errlen);
	if (!rc)
		rc = build(s->block_referers, b->nref, "block_referers", &b->ref, err, errlen);
	if (rc) {
		block_list_free(b);
		return rc;
	}
	*out = b;
	return 0;
}

static bool match_one(const struct pattern *p, const char *v, size_t len)
{
	if (!p->re)
		return p->len == len && strncasecmp(p->text, v, len) == 0;
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(p->re, NULL);
	if (!md)
		return true; /* out of memory: refuse rather than let a blocked client in */
	int rc = pcre2_match(p->re, (PCRE2_SPTR)v, len, 0, 0, md, NULL);
	pcre2_match_data_free(md);
	return rc >= 0;
}

static bool header_matches(const struct pattern *p, size_t np, const struct http_request *req,
                           const char *name)
{
	if (np == 0)
		return false;
	size_t nl = strlen(name);
	size_t nh = req->nheaders < HTTP_MAX_HEADERS ? req->nheaders : HTTP_MAX_HEADERS;
	for (size_t i = 0; i < nh; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len != nl || strncasecmp(h->name, name, nl) != 0)
			continue;
		const char *v = h->value, *e = h->value + h->value_len;
		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		for (size_t j = 0; j < np; j++)
			if (match_one(&p[j], v, (size_t)(e - v)))
				return true;
	}
	return false;
}

static bool client_blocked(const struct route_settings *s, const struct http_client *c)
{
	uint8_t addr[16];
	int family;
	if (c->addr.ss_family == AF_INET) {
		memcpy(addr, &c->addr.in4.sin_addr, 4);
		family = 4;
	} else if (c->addr.ss_family == AF_INET6) {
		memcpy(addr, &c->addr.in6.sin6_addr, 16);
		family = 6;
	} else {
		return false;
	}
	for (size_t i = 0; i < s->nblock_cidrs; i++)
		if (route_cidr_contains(&s->block_cidrs[i], family, addr))
			return true;
	return false;
}

bool block_check(const struct block_list *b, const struct http_request *req,
                 const struct http_client *client)
{
	if (!b)
		return false;
	return client_blocked(b->s, client) || header_matches(b->ua, b->nua, req, "User-Agent") ||
	       header_matches(b->ref, b->nref, req, "Referer");
}
