/* proxy/http.c - helpers on the parsed message shapes of http.h. */
#include <string.h>
#include <strings.h>

#include "http.h"

bool http_name_is(const struct http_header *h, const char *name)
{
	size_t n = strlen(name);
	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}
