/*
 * redis_endpoint - the Redis address parser.  See redis_endpoint.h.
 *
 * Every rejection is -EINVAL, as the header promises, whatever the part
 * that was wrong.  An address holding credentials is refused without
 * being repeated: the message goes to the log and to `greyhold -n`.
 */
#include "redis_endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Decimal digits s[0..len) into *out, at most max; else -EINVAL. */
static int
parse_uint(const char *s, size_t len, unsigned max, unsigned *out)
{
	unsigned long v = 0;

	if (len == 0 || len > 10)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* "HOST[:PORT][/DB]" or "[V6][:PORT][/DB]" after "redis://". */
static int
parse_tcp(const char *s, struct redis_endpoint *ep)
{
	const char *host = s, *end;
	size_t hlen;

	if (*s == '[') {
		host = s + 1;
		end = strchr(host, ']');
		if (end == NULL)
			return -EINVAL;
		hlen = (size_t)(end - host);
		s = end + 1;
	} else {
		hlen = strcspn(s, ":/");
		s += hlen;
	}
	if (hlen == 0 || hlen >= sizeof(ep->host))
		return -EINVAL;
	memcpy(ep->host, host, hlen);
	ep->host[hlen] = '\0';
	ep->port = REDIS_ENDPOINT_DEFAULT_PORT;
	if (*s == ':') {
		size_t n = strcspn(s + 1, "/");

		if (parse_uint(s + 1, n, 65535, &ep->port) < 0 || ep->port == 0)
			return -EINVAL;
		s += 1 + n;
	}
	if (*s == '/' && s[1] != '\0')
		return parse_uint(s + 1, strlen(s + 1), 1000000, &ep->db);
	return *s == '\0' || strcmp(s, "/") == 0 ? 0 : -EINVAL;
}

/* "/PATH[?db=N]" after "unix://". */
static int
parse_unix(const char *s, struct redis_endpoint *ep)
{
	size_t n = strcspn(s, "?");

	if (s[0] != '/' || n >= sizeof(ep->path))
		return -EINVAL;
	memcpy(ep->path, s, n);
	ep->path[n] = '\0';
	if (s[n] == '\0')
		return 0;
	if (strncmp(s + n, "?db=", 4) != 0)
		return -EINVAL;
	return parse_uint(s + n + 4, strlen(s + n + 4), 1000000, &ep->db);
}

int
redis_endpoint_parse(const char *store, struct redis_endpoint *ep, char *err, size_t errsz)
{
	int rc;

	memset(ep, 0, sizeof(*ep));
	if (strchr(store, '@') != NULL) {
		snprintf(err, errsz, "store: the address holds credentials (not "
			 "shown here); put them in redis_user and redis_password");
		return -EINVAL;
	}
	if (strncmp(store, "redis://", 8) == 0)
		rc = parse_tcp(store + 8, ep);
	else if (strncmp(store, "unix://", 7) == 0)
		rc = parse_unix(store + 7, ep);
	else
		rc = -EINVAL;
	if (rc < 0)
		snprintf(err, errsz, "store = %s: expected redis://HOST[:PORT][/DB] "
			 "or unix:///PATH[?db=N]", store);
	return rc;
}
