/*
 * redis_sentinel - the primary of a sentinel:// store: asking the
 * sentinels for it and following it through a failover.
 *
 * hiredis knows nothing of Sentinel, so we speak to the sentinels over
 * the same asynchronous client.  A question goes to the sentinels in turn
 * (AUTH with redis_sentinel_user/redis_sentinel_password when set, then
 * SENTINEL get-master-addr-by-name), each given REDIS_TIMEOUT_MS; the
 * first address named becomes b->host and b->port and redis_conn_start()
 * connects to it (redis_conn checks its ROLE).  When no sentinel names
 * one, the round fails like a refused connection (redis_conn_failed: log,
 * backoff, retry), saying whether the master name is unknown or no
 * sentinel answered.
 *
 * One further connection stays SUBSCRIBEd to +switch-master on the
 * sentinel that answered; a switch of our master drops the connection to
 * the old primary and connects to the new one at once, without waiting
 * for the backoff.  If that subscription dies it is made again (at most
 * once a second) while the backend runs.
 *
 * Ownership: the backend owns the two struct rsent (b->ask, b->watch);
 * each is freed when its poll handle has closed, after hiredis let go of
 * its context.  Loop thread only.
 */
#ifndef GREYHOLD_REDIS_SENTINEL_H
#define GREYHOLD_REDIS_SENTINEL_H

#include "backend_redis.h"

/* Start a round of questions unless one is under way. */
void redis_sentinel_ask(struct backend_redis *b);

/* Timeouts of a question; the subscription made again if it died. */
void redis_sentinel_check(struct backend_redis *b);

/* At close: drop both connections. */
void redis_sentinel_close(struct backend_redis *b);

#endif
