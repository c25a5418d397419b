/*
 * redis_endpoint - parse the store setting that names a Redis server.
 *
 * Pure.  Shared by the daemon's Redis backend, greyholdctl and config
 * validation, so that `greyhold -n` rejects an address the backend would.
 * Credentials never go in the address (redis_user, redis_password).
 */
#ifndef GREYHOLD_REDIS_ENDPOINT_H
#define GREYHOLD_REDIS_ENDPOINT_H

#include <stddef.h>

#define REDIS_ENDPOINT_DEFAULT_PORT 6379
/* Longest redis_prefix accepted. */
#define REDIS_PREFIX_MAX 256

struct redis_endpoint {
	char host[256];		/* "" for a unix socket */
	unsigned port;
	char path[108];		/* "" for TCP */
	unsigned db;
};

/*
 * "redis://HOST[:PORT][/DB]" (HOST may be "[v6]") or
 * "unix:///PATH[?db=N]"; 0, or -EINVAL with the reason in err.
 */
int redis_endpoint_parse(const char *store, struct redis_endpoint *ep,
			 char *err, size_t errsz);

#endif
