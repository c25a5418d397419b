/*
 * redis_endpoint - the Redis address parser.  See redis_endpoint.h.
 *
 * A sentinel:// address is parsed as strictly as redis://: each sentinel
 * is HOST[:PORT] as there, HOST an IPv4 or IPv6 address (hiredis would look
 * a name up blocking the daemon's loop, and DNS may be what failed), the
 * master name is letters, digits, '.', '_'
 * and '-' only (it goes into a command and a channel message we match).
 *
 * Every rejection is -EINVAL, as the header promises, whatever the part
 * that was wrong.  An address holding credentials is refused without
 * being repeated: the message goes to the log and to `greyhold -n`.
 */
#include "redis_endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
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

/*
 * "HOST[:PORT]" or "[V6][:PORT]" at the start of s, up to a character of
 * stop; *rest: what follows.
 */
static int
parse_host_port(const char *s, unsigned dflt_port, const char *stop,
		char *out, size_t outsz, unsigned *port, const char **rest)
{
	const char *host = s, *end;
	size_t hlen;
	char stops[8];

	if (*s == '[') {
		host = s + 1;
		end = strchr(host, ']');
		if (end == NULL)
			return -EINVAL;
		hlen = (size_t)(end - host);
		s = end + 1;
	} else {
		snprintf(stops, sizeof(stops), ":%s", stop);
		hlen = strcspn(s, stops);
		s += hlen;
	}
	if (hlen == 0 || hlen >= outsz || memchr(host, ',', hlen) != NULL)
		return -EINVAL;
	memcpy(out, host, hlen);
	out[hlen] = '\0';
	*port = dflt_port;
	if (*s == ':') {
		size_t n = strcspn(s + 1, stop);

		if (parse_uint(s + 1, n, 65535, port) < 0 || *port == 0)
			return -EINVAL;
		s += 1 + n;
	}
	*rest = s;
	return 0;
}

/* "HOST[:PORT][/DB]" or "[V6][:PORT][/DB]" after "redis://". */
static int
parse_tcp(const char *s, struct redis_endpoint *ep)
{
	if (parse_host_port(s, REDIS_ENDPOINT_DEFAULT_PORT, "/", ep->host,
			    sizeof(ep->host), &ep->port, &s) < 0)
		return -EINVAL;
	if (*s == '/' && s[1] != '\0')
		return parse_uint(s + 1, strlen(s + 1), 1000000, &ep->db);
	return *s == '\0' || strcmp(s, "/") == 0 ? 0 : -EINVAL;
}

/* A sentinel is an IP address: no name lookup in the middle of a failover. */
static bool
is_numeric(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1;
}

static bool
master_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* "IP[:PORT][,IP[:PORT]...]/MASTER[?db=N]" after "sentinel://". */
static int
parse_sentinel(const char *s, struct redis_endpoint *ep)
{
	size_t n;

	for (;;) {
		struct redis_endpoint_host *h;

		if (ep->nsentinels == REDIS_ENDPOINT_MAX_SENTINELS)
			return -EINVAL;
		h = &ep->sentinels[ep->nsentinels];
		if (parse_host_port(s, REDIS_ENDPOINT_SENTINEL_PORT, ",/",
				    h->host, sizeof(h->host), &h->port, &s) < 0 ||
		    !is_numeric(h->host))
			return -EINVAL;
		ep->nsentinels++;
		if (*s != ',')
			break;
		s++;
	}
	if (*s != '/')
		return -EINVAL;
	s++;
	for (n = 0; master_char(s[n]); n++)
		;
	if (n == 0 || n > REDIS_ENDPOINT_MASTER_MAX)
		return -EINVAL;
	memcpy(ep->master, s, n);
	ep->master[n] = '\0';
	s += n;
	if (*s == '\0')
		return 0;
	if (strncmp(s, "?db=", 4) != 0)
		return -EINVAL;
	return parse_uint(s + 4, strlen(s + 4), 1000000, &ep->db);
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
	else if (strncmp(store, "sentinel://", 11) == 0)
		rc = parse_sentinel(store + 11, ep);
	else
		rc = -EINVAL;
	if (rc < 0) {
		memset(ep, 0, sizeof(*ep));
		snprintf(err, errsz, "store = %s: expected redis://HOST[:PORT][/DB] or "
			 "unix:///PATH[?db=N], or sentinel://IP[:PORT][,IP"
			 "[:PORT]...]/MASTER[?db=N] (at most %d sentinels)",
			 store, REDIS_ENDPOINT_MAX_SENTINELS);
	}
	return rc;
}
