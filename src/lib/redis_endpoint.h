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
#define REDIS_ENDPOINT_SENTINEL_PORT 26379
/* Sentinels one sentinel:// address may list. */
#define REDIS_ENDPOINT_MAX_SENTINELS 8
/* Longest master name (letters, digits, '.', '_', '-'). */
#define REDIS_ENDPOINT_MASTER_MAX 64
/* Longest redis_prefix accepted. */
#define REDIS_PREFIX_MAX 256

struct redis_endpoint_host {
	char host[256];
	unsigned port;
};

struct redis_endpoint {
	char host[256];		/* "" for a unix socket or sentinels */
	unsigned port;
	char path[108];		/* "" for TCP */
	unsigned db;
	/* sentinel://: the sentinels to ask, in order, and the master's name. */
	unsigned nsentinels;	/* 0: not sentinel:// */
	struct redis_endpoint_host sentinels[REDIS_ENDPOINT_MAX_SENTINELS];
	char master[REDIS_ENDPOINT_MASTER_MAX + 1];
};

/*
 * "redis://HOST[:PORT][/DB]" (HOST may be "[v6]"), "unix:///PATH[?db=N]"
 * or "sentinel://IP[:PORT][,IP[:PORT]...]/MASTER[?db=N]" (sentinels by
 * numeric address, "[v6]" in brackets, port 26379 by default); 0, or
 * -EINVAL with the reason in err.
 */
int redis_endpoint_parse(const char *store, struct redis_endpoint *ep,
			 char *err, size_t errsz);

#endif
