/*
 * backend_redis - the store in Redis (or Valkey), shared by several MX hosts.
 *
 * Every decision is one server-side Lua script (greylist.lua) that reads
 * each identity's auto-whitelist record and triplet record, applies
 * decide() (decide.h) exactly, writes back only what decide() would write
 * (with a TTL), and returns the verdict.  The script runs atomically, so
 * two MX hosts deciding the same triplet at once see each other, like two
 * jobs in one LMDB batch.  Time in the script is the Redis server's, so
 * every MX decides on one clock; the job's own `now` (this host's clock)
 * still dates the log lines and headers.
 *
 * This file opens and closes the backend and holds its operations; the
 * modules are listed in backend_redis.h.  Keys and values: redis_codec.h.
 *
 * Ownership: a submitted job is ours until ev.job_done.  The backend owns
 * four timers and is freed when they are all closed (and no name lookup
 * is pending).  All of it runs on the loop thread.
 */
#include "backend_redis.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_conn.h"
#include "redis_endpoint.h"
#include "redis_jobs.h"
#include "redis_sentinel.h"
#include "redis_wl.h"

#define WL_POLL_MS 1000

static void
redis_submit(struct backend *base, struct store_job *job)
{
	redis_jobs_submit((struct backend_redis *)base, job);
}

static void
redis_set_params(struct backend *base, const struct engine_params *p)
{
	((struct backend_redis *)base)->params = *p;
}

static void
redis_get_stats(struct backend *base, struct store_stats *out)
{
	struct backend_redis *b = (struct backend_redis *)base;
	uint64_t now = uv_now(b->loop);

	*out = b->stats;
	if (b->nsentinels == 0)
		return;
	out->sentinel = true;
	out->failovers = b->failovers;
	out->no_primary_msec = b->down_ms;
	if (b->down_since != 0) {
		out->no_primary_msec += now - b->down_since;
		out->no_primary_now_msec = now - b->down_since;
	}
	if (b->healthy && b->host != NULL)
		snprintf(out->primary, sizeof(out->primary),
			 strchr(b->host, ':') != NULL ? "[%s]:%u" : "%s:%u",
			 b->host, b->port);
}

static void
backend_free(struct backend_redis *b)
{
	free(b->host);
	free(b->path);
	free(b->user);
	free(b->password);
	free(b->prefix);
	free(b->where);
	free(b->sentinels);
	free(b->master);
	free(b->sentinel_user);
	free(b->sentinel_password);
	free(b);
}

void
backend_redis_maybe_free(struct backend_redis *b)
{
	if (b->open_handles == 0 && !b->resolving)
		backend_free(b);
}

static void
on_timer_closed(uv_handle_t *h)
{
	struct backend_redis *b = h->data;

	b->open_handles--;
	backend_redis_maybe_free(b);
}

static void
on_check_timer(uv_timer_t *t)
{
	redis_conn_check(t->data);
}

static void
redis_close(struct backend *base)
{
	struct backend_redis *b = (struct backend_redis *)base;
	uv_timer_t *timers[] = {&b->retry_timer, &b->check_timer, &b->wl_timer,
				&b->fail_timer};

	b->closing = true;
	redis_conn_close(b);
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
		uv_close((uv_handle_t *)timers[i], on_timer_closed);
}

static const struct backend_ops redis_ops = {
	.name = "redis",
	.submit = redis_submit,
	.set_params = redis_set_params,
	.get_stats = redis_get_stats,
	.close = redis_close,
};

/* ---- opening ------------------------------------------------------------ */

static char *
dup_or_null(const char *s)
{
	return s[0] != '\0' ? strdup(s) : NULL;
}

static int
init_where(struct backend_redis *b, const struct config *cfg,
	   const struct redis_endpoint *ep, char *err, size_t errsz)
{
	if (strlen(cfg->redis_prefix) > REDIS_PREFIX_MAX) {
		snprintf(err, errsz, "redis_prefix is longer than %d bytes",
			 REDIS_PREFIX_MAX);
		return -EINVAL;
	}
	b->host = dup_or_null(ep->host);
	b->path = dup_or_null(ep->path);
	b->port = ep->port;
	b->db = ep->db;
	b->user = strdup(cfg->redis_user);
	b->password = strdup(cfg->redis_password);
	b->prefix = strdup(cfg->redis_prefix);
	b->where = strdup(cfg->store);
	b->nsentinels = ep->nsentinels;
	if (ep->nsentinels > 0) {
		b->sentinels = calloc(ep->nsentinels, sizeof(*b->sentinels));
		if (b->sentinels != NULL)
			memcpy(b->sentinels, ep->sentinels,
			       ep->nsentinels * sizeof(*b->sentinels));
		b->master = strdup(ep->master);
		b->sentinel_user = strdup(cfg->redis_sentinel_user);
		b->sentinel_password = strdup(cfg->redis_sentinel_password);
		if (b->sentinels == NULL || b->master == NULL ||
		    b->sentinel_user == NULL || b->sentinel_password == NULL) {
			snprintf(err, errsz, "out of memory");
			return -ENOMEM;
		}
	}
	if ((b->host == NULL && b->path == NULL && b->nsentinels == 0) ||
	    b->user == NULL || b->password == NULL || b->prefix == NULL ||
	    b->where == NULL) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static void
timer_init(struct backend_redis *b, uv_timer_t *t)
{
	uv_timer_init(b->loop, t);
	t->data = b;
	b->open_handles++;
}

int
backend_redis_open(struct backend **out, uv_loop_t *loop,
		   const struct config *cfg, const struct engine_params *p,
		   const struct backend_events *ev, char *err, size_t errsz)
{
	struct backend_redis *b;
	struct redis_endpoint ep;
	int rc;

	*out = NULL;
	rc = redis_endpoint_parse(cfg->store, &ep, err, errsz);
	if (rc < 0)
		return rc;
	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	rc = init_where(b, cfg, &ep, err, errsz);
	if (rc < 0) {
		backend_free(b);
		return rc;
	}
	b->base.ops = &redis_ops;
	b->base.ev = *ev;
	b->loop = loop;
	b->params = *p;
	/* Jobs wait for the first attempt (a name lookup may come first). */
	b->starting = true;
	b->backoff_ms = REDIS_BACKOFF_MIN_MS;
	/* sentinel://: time without a primary counts from the start. */
	if (b->nsentinels > 0)
		b->down_since = uv_now(loop) != 0 ? uv_now(loop) : 1;
	timer_init(b, &b->retry_timer);
	timer_init(b, &b->check_timer);
	timer_init(b, &b->wl_timer);
	timer_init(b, &b->fail_timer);
	uv_timer_start(&b->check_timer, on_check_timer, REDIS_CHECK_MS,
		       REDIS_CHECK_MS);
	uv_timer_start(&b->wl_timer, redis_wl_on_timer, WL_POLL_MS, WL_POLL_MS);
	log_msg(LOG_LEVEL_INFO, "redis: store %s, key prefix \"%s\"", b->where,
		b->prefix);
	redis_conn_start(b);
	*out = &b->base;
	return 0;
}
