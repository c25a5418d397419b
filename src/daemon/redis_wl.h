/*
 * redis_wl - the live whitelist kept in Redis, polled once a second.
 *
 * The hash PREFIX"whitelist" and the counter PREFIX"wl_generation" (format
 * in redis_codec.h), written by greyholdctl (redis_admin.c).  Each poll
 * reads the generation; when it moved or an entry expired, the hash is
 * read and a new whitelist handed to the server (ev.live_whitelist).
 * Expiry is judged on this host's clock.  Loop thread only.
 */
#ifndef GREYHOLD_REDIS_WL_H
#define GREYHOLD_REDIS_WL_H

#include <hiredis/hiredis.h>

#include "backend_redis.h"
#include "redis_conn.h"

/* Poll now, if connected and no poll is in flight. */
void redis_wl_poll(struct backend_redis *b);
void redis_wl_on_timer(uv_timer_t *t);

void redis_wl_on_reply(struct backend_redis *b, enum rreq_kind kind,
		       const redisReply *reply);

#endif
