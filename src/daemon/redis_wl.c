/*
 * redis_wl - the live whitelist in Redis, polled.  The contract is in
 * redis_wl.h; the entry format in redis_codec.h.
 */
#include "redis_wl.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "redis_codec.h"

static int
wl_send(struct backend_redis *b, enum rreq_kind kind, const char *cmd,
	const char *name)
{
	char key[REDIS_PREFIX_MAX + 32];
	const char *argv[2] = {cmd, key};
	size_t lens[2];

	if (redis_codec_name(key, sizeof(key), b->prefix, name) < 0)
		return -1;
	lens[0] = strlen(cmd);
	lens[1] = strlen(key);
	return redis_conn_send(b->conn, kind, NULL, false, uv_now(b->loop), 2,
			       argv, lens);
}

/* Once a second, and at once after connecting: has the list changed? */
void
redis_wl_poll(struct backend_redis *b)
{
	if (b->closing || !b->healthy || b->conn == NULL || b->wl_busy)
		return;
	if (wl_send(b, RQ_WL_GEN, "GET", "wl_generation") == 0)
		b->wl_busy = true;
}

void
redis_wl_on_timer(uv_timer_t *t)
{
	redis_wl_poll(t->data);
}

static void
on_gen_reply(struct backend_redis *b, const redisReply *reply)
{
	char gen[sizeof(b->wl_gen)] = "";
	int64_t now = (int64_t)time(NULL);

	if (reply->type == REDIS_REPLY_STRING && reply->len < sizeof(gen))
		memcpy(gen, reply->str, reply->len + 1);
	else if (reply->type != REDIS_REPLY_NIL) {
		log_msg(LOG_LEVEL_WARN, "redis: live whitelist: unexpected "
			"reply to GET %swl_generation", b->prefix);
		b->wl_busy = false;
		return;
	}
	if (b->wl_loaded && strcmp(gen, b->wl_gen) == 0 &&
	    (b->wl_next_expiry == 0 || now < b->wl_next_expiry)) {
		b->wl_busy = false;
		return;
	}
	memcpy(b->wl_pending_gen, gen, sizeof(gen));
	if (wl_send(b, RQ_WL_ALL, "HGETALL", "whitelist") < 0)
		b->wl_busy = false;
}

static void
log_malformed(const redisReply *field)
{
	char shown[80];

	if (field->type == REDIS_REPLY_STRING)
		log_escape(shown, sizeof(shown), field->str, field->len, 60);
	else
		snprintf(shown, sizeof(shown), "(not a string)");
	log_msg(LOG_LEVEL_WARN, "redis: live whitelist: skipping a malformed "
		"entry %s", shown);
}

/*
 * One whitelist entry.  Expired entries are left out; the earliest expiry
 * to come is kept so the list is rebuilt when it passes.
 */
static void
add_pair(whitelist_t *wl, const redisReply *field, const redisReply *value,
	 int64_t now, int64_t *next_expiry)
{
	struct db_wl_entry e;
	char err[300];

	if (field->type != REDIS_REPLY_STRING ||
	    value->type != REDIS_REPLY_STRING ||
	    redis_codec_wl_decode(field->str, field->len, value->str,
				  value->len, &e) < 0) {
		log_malformed(field);
		return;
	}
	if (e.expires != 0 && e.expires <= now)
		return;
	if (e.expires != 0 && (*next_expiry == 0 || e.expires < *next_expiry))
		*next_expiry = e.expires;
	if (whitelist_add(wl, e.kind, e.entry, err, sizeof(err)) < 0)
		log_msg(LOG_LEVEL_WARN, "redis: live whitelist: skipping %s "
			"entry: %s", e.kind == WHITELIST_CLIENTS ? "client" :
			"recipient", err);
}

static void
on_all_reply(struct backend_redis *b, const redisReply *reply)
{
	int64_t now = (int64_t)time(NULL), next_expiry = 0;
	whitelist_t *wl;
	size_t i;

	b->wl_busy = false;
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0) {
		log_msg(LOG_LEVEL_WARN, "redis: live whitelist: unexpected "
			"reply to HGETALL %swhitelist", b->prefix);
		return;
	}
	if (whitelist_create(&wl) < 0)
		return;
	for (i = 0; i < reply->elements; i += 2)
		add_pair(wl, reply->element[i], reply->element[i + 1], now,
			 &next_expiry);
	whitelist_finish(wl);
	memcpy(b->wl_gen, b->wl_pending_gen, sizeof(b->wl_gen));
	b->wl_loaded = true;
	b->wl_next_expiry = next_expiry;
	b->base.ev.live_whitelist(wl, b->base.ev.arg);
}

void
redis_wl_on_reply(struct backend_redis *b, enum rreq_kind kind,
		  const redisReply *reply)
{
	if (kind == RQ_WL_GEN)
		on_gen_reply(b, reply);
	else
		on_all_reply(b, reply);
}
