/*
 * server_smart - smart greylisting on the request path: identities,
 * trusted senders and the DNS evidence they need (see server_smart.c).
 */
#ifndef GREYHOLD_SERVER_SMART_H
#define GREYHOLD_SERVER_SMART_H

#include <stdbool.h>

#include "server_int.h"

/* Whether any rule is on that reads DNS or names (the resolver opens). */
bool smart_dns_wanted(const struct config *cfg);

/*
 * At start: the rules from the config, the Public Suffix List and the
 * resolver.  A list that does not load is fatal (-errno, err says why); a
 * resolver that does not open is logged and the daemon decides without.
 */
int smart_open(struct server *srv, char *err, size_t errsz);

/* Stopping: close the resolver (outstanding lookups answer at once). */
void smart_stop(struct server *srv);

/* After the loop has ended. */
void smart_free(struct server *srv);

/*
 * Decide a request that reached greylisting; s->job.key is built.  The
 * answer comes in the slot, now or later (request_job_done()).
 */
void smart_request(struct server *srv, struct slot *s,
		   const struct policy_request *r);

#endif
