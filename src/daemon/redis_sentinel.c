/*
 * redis_sentinel - asking the sentinels for the primary and following
 * +switch-master.  The contract is in redis_sentinel.h.
 *
 * A struct rsent is one connection to one sentinel: a question (b->ask)
 * or the subscription (b->watch).  Its b pointer is cleared when we let
 * go of it, so callbacks hiredis still runs (with a NULL reply, while it
 * frees the context) do nothing.
 */
#include "redis_sentinel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "redis_conn.h"
#include "redis_endpoint.h"
#include "redis_events.h"

/* The subscription is made again at most this often. */
#define WATCH_RETRY_MS 1000

struct rsent {
	struct redis_events ev;		/* ev.ac: the hiredis context */
	struct backend_redis *b;	/* NULL once we let go */
	bool watch;			/* the subscription, not a question */
	bool subscribed;		/* the sentinel confirmed SUBSCRIBE */
	unsigned idx;			/* which sentinel */
	uint64_t started;		/* uv_now() at connect */
};

static void ask_next(struct backend_redis *b);
static void watch_start(struct backend_redis *b, unsigned idx);

static const char *
sentinel_name(const struct backend_redis *b, unsigned idx, char *buf,
	      size_t bufsz)
{
	const struct redis_endpoint_host *h = &b->sentinels[idx];

	snprintf(buf, bufsz, strchr(h->host, ':') != NULL ? "[%s]:%u" : "%s:%u",
		 h->host, h->port);
	return buf;
}

/* ---- connections to sentinels ------------------------------------------- */

static void
on_events_closed(struct redis_events *ev)
{
	free(ev->data);
}

/* Let go of rs; free_ctx: we are not inside hiredis's connect callback. */
static void
rsent_drop(struct rsent *rs, bool free_ctx)
{
	struct backend_redis *b = rs->b;

	if (b != NULL) {
		if (b->ask == rs)
			b->ask = NULL;
		if (b->watch == rs)
			b->watch = NULL;
	}
	rs->b = NULL;
	if (free_ctx && rs->ev.ac != NULL)
		redisAsyncFree(rs->ev.ac);
}

/* One sentinel failed our question: note why and ask the next. */
static void
ask_failed(struct rsent *rs, const char *why, bool free_ctx)
{
	struct backend_redis *b = rs->b;
	char name[300];

	if (b == NULL)
		return;
	if (rs->watch) {
		/* Not every failed attempt: the questions' errors say enough. */
		if (rs->subscribed)
			log_msg(LOG_LEVEL_WARN, "redis: lost the +switch-master "
				"subscription on sentinel %s (%s); making it "
				"again", sentinel_name(b, rs->idx, name,
						       sizeof(name)), why);
		rsent_drop(rs, free_ctx);
		b->sentinel_turn++;	/* made again on the next sentinel */
		return;
	}
	snprintf(b->ask_why, sizeof(b->ask_why), "%s: %s",
		 sentinel_name(b, rs->idx, name, sizeof(name)), why);
	rsent_drop(rs, free_ctx);
	b->sentinel_turn++;
	ask_next(b);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct rsent *rs = ac->data;

	if (status != REDIS_OK)
		ask_failed(rs, ac->errstr[0] != '\0' ? ac->errstr
						     : "cannot connect", false);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rsent *rs = ac->data;

	(void)status;
	ask_failed(rs, ac->errstr[0] != '\0' ? ac->errstr
					     : "connection closed", false);
}

static void
on_events_error(struct redis_events *ev, int status)
{
	ask_failed(ev->data, uv_strerror(status), true);
}

/* Connect to sentinel idx; NULL (and why) if that failed at once. */
static struct rsent *
rsent_connect(struct backend_redis *b, unsigned idx, bool watch,
	      const char **why)
{
	const struct redis_endpoint_host *h = &b->sentinels[idx];
	redisAsyncContext *ac = redisAsyncConnect(h->host, (int)h->port);
	struct rsent *rs;

	*why = "out of memory";
	if (ac == NULL)
		return NULL;
	if (ac->err != 0) {
		/* Numeric (redis_endpoint): hiredis looks up nothing here. */
		*why = ac->errstr;
		redisAsyncFree(ac);
		return NULL;
	}
	rs = calloc(1, sizeof(*rs));
	if (rs != NULL) {
		rs->ev.data = rs;
		rs->ev.on_error = on_events_error;
		rs->ev.on_closed = on_events_closed;
	}
	if (rs == NULL || redis_events_attach(&rs->ev, b->loop, ac) < 0) {
		free(rs);
		redisAsyncFree(ac);
		return NULL;
	}
	rs->b = b;
	rs->watch = watch;
	rs->idx = idx;
	rs->started = uv_now(b->loop);
	ac->data = rs;
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	return rs;
}

static void on_auth_reply(redisAsyncContext *ac, void *r, void *privdata);

/* AUTH first when the sentinels want a password. */
static int
send_auth(struct backend_redis *b, struct rsent *rs)
{
	const char *argv[3];
	size_t lens[3];
	int n = 0;

	if (b->sentinel_password[0] == '\0')
		return 0;
	argv[n] = "AUTH";
	lens[n++] = 4;
	if (b->sentinel_user[0] != '\0') {
		argv[n] = b->sentinel_user;
		lens[n++] = strlen(b->sentinel_user);
	}
	argv[n] = b->sentinel_password;
	lens[n] = strlen(b->sentinel_password);
	return redisAsyncCommandArgv(rs->ev.ac, on_auth_reply, rs, n + 1, argv,
				     lens) == REDIS_OK ? 0 : -ENOMEM;
}

static void
on_auth_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	const redisReply *reply = r;
	struct rsent *rs = privdata;
	char why[200];

	(void)ac;
	if (reply == NULL || rs->b == NULL || reply->type != REDIS_REPLY_ERROR)
		return;
	snprintf(why, sizeof(why), "AUTH: %s (redis_sentinel_user, "
		 "redis_sentinel_password)", reply->str);
	ask_failed(rs, why, true);
}

/* ---- the question ------------------------------------------------------- */

/* The primary is at ip:port (a sentinel said so). */
static void
set_primary(struct backend_redis *b, const char *ip, const char *port_s)
{
	char *end;
	unsigned long port = strtoul(port_s, &end, 10);
	char *host;

	if (*end != '\0' || port == 0 || port > 65535)
		return;
	if (b->host != NULL && strcmp(b->host, ip) == 0 && b->port == port) {
		b->primary_known = true;
		return;
	}
	host = strdup(ip);
	if (host == NULL)
		return;
	if (b->host != NULL) {
		b->failovers++;
		log_msg(LOG_LEVEL_WARN, "redis: the primary of '%s' moved from "
			"%s:%u to %s:%lu", b->master, b->host, b->port, ip, port);
	} else {
		log_msg(LOG_LEVEL_INFO, "redis: the sentinels name %s:%lu the "
			"primary of '%s'", ip, port, b->master);
	}
	free(b->host);
	b->host = host;
	b->port = (unsigned)port;
	b->primary_known = true;
}

static void
on_master_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	const redisReply *reply = r;
	struct rsent *rs = privdata;
	struct backend_redis *b = rs->b;
	char why[200];

	(void)ac;
	if (reply == NULL || b == NULL)
		return;
	if (reply->type == REDIS_REPLY_NIL) {
		b->no_such_master = true;
		snprintf(why, sizeof(why), "knows no master named '%s'",
			 b->master);
		ask_failed(rs, why, true);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		ask_failed(rs, reply->str, true);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_STRING) {
		ask_failed(rs, "unexpected reply to SENTINEL "
			   "get-master-addr-by-name", true);
		return;
	}
	set_primary(b, reply->element[0]->str, reply->element[1]->str);
	rsent_drop(rs, true);
	if (!b->primary_known) {
		redis_conn_failed(b, -EPROTO, "a sentinel named a bad address");
		return;
	}
	if (b->watch == NULL)
		watch_start(b, rs->idx);
	redis_conn_start(b);
}

/* Ask the sentinel whose turn it is, or give up the round. */
static void
ask_next(struct backend_redis *b)
{
	const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", b->master};
	size_t lens[3] = {8, 23, strlen(b->master)};
	const char *why;
	char reason[800];
	struct rsent *rs;

	while (b->asked < b->nsentinels && !b->closing) {
		unsigned idx = b->sentinel_turn % b->nsentinels;

		b->asked++;
		rs = rsent_connect(b, idx, false, &why);
		if (rs == NULL) {
			snprintf(b->ask_why, sizeof(b->ask_why), "%s", why);
			b->sentinel_turn++;
			continue;
		}
		b->ask = rs;
		if (send_auth(b, rs) < 0 ||
		    redisAsyncCommandArgv(rs->ev.ac, on_master_reply, rs, 3, argv,
					  lens) != REDIS_OK) {
			snprintf(b->ask_why, sizeof(b->ask_why), "cannot queue "
				 "the question");
			rsent_drop(rs, true);
			b->sentinel_turn++;
			continue;
		}
		return;
	}
	if (b->closing)
		return;
	if (b->no_such_master)
		snprintf(reason, sizeof(reason), "no sentinel knows a master "
			 "named '%s' (check the name in store)", b->master);
	else
		snprintf(reason, sizeof(reason), "no sentinel named the primary "
			 "of '%s'; last: %s", b->master, b->ask_why);
	b->sentinel_round_failed = true;
	redis_conn_failed(b, b->no_such_master ? -ENOENT : -EHOSTUNREACH,
			  reason);
}

void
redis_sentinel_ask(struct backend_redis *b)
{
	if (b->ask != NULL || b->closing)
		return;
	b->asked = 0;
	b->no_such_master = false;
	b->ask_why[0] = '\0';
	ask_next(b);
}

/* ---- the subscription --------------------------------------------------- */

/* "NAME OLDIP OLDPORT NEWIP NEWPORT" about our master: go to NEWIP. */
static void
on_switch(struct backend_redis *b, const char *msg)
{
	char name[REDIS_ENDPOINT_MASTER_MAX + 1], ip[64], port[8];

	if (sscanf(msg, "%64s %*63s %*7s %63s %7s", name, ip, port) != 3 ||
	    strcmp(name, b->master) != 0)
		return;
	log_msg(LOG_LEVEL_WARN, "redis: sentinel reports +switch-master %s",
		msg);
	if (b->conn != NULL && b->primary_known && b->host != NULL &&
	    strcmp(b->host, ip) == 0 && b->port == strtoul(port, NULL, 10))
		return;	/* already there */
	/* Dropped first: losing it would forget the new address. */
	if (b->conn != NULL)
		redis_conn_abort(b, b->conn, -EROFS, "the sentinels switched "
				 "the primary");
	set_primary(b, ip, port);
	if (!b->primary_known || b->ask != NULL)
		return;
	/* Now, not after the backoff: the new primary is there. */
	uv_timer_stop(&b->retry_timer);
	b->backoff_ms = REDIS_BACKOFF_MIN_MS;
	redis_conn_start(b);
}

static void
on_message(redisAsyncContext *ac, void *r, void *privdata)
{
	const redisReply *reply = r;
	struct rsent *rs = privdata;

	(void)ac;
	if (reply == NULL || rs->b == NULL)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		ask_failed(rs, reply->str, true);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	if (strcmp(reply->element[0]->str, "subscribe") == 0) {
		rs->subscribed = true;
		return;
	}
	if (reply->element[2]->type != REDIS_REPLY_STRING ||
	    strcmp(reply->element[0]->str, "message") != 0)
		return;
	on_switch(rs->b, reply->element[2]->str);
}

static void
watch_start(struct backend_redis *b, unsigned idx)
{
	const char *argv[2] = {"SUBSCRIBE", "+switch-master"};
	size_t lens[2] = {9, 14};
	const char *why;
	struct rsent *rs;

	b->watch_tried = uv_now(b->loop);
	rs = rsent_connect(b, idx, true, &why);
	if (rs == NULL)
		return;
	b->watch = rs;
	if (send_auth(b, rs) < 0 ||
	    redisAsyncCommandArgv(rs->ev.ac, on_message, rs, 2, argv, lens) !=
	    REDIS_OK)
		rsent_drop(rs, true);
}

/* ---- timeouts and closing ----------------------------------------------- */

void
redis_sentinel_check(struct backend_redis *b)
{
	uint64_t now = uv_now(b->loop);

	if (b->nsentinels == 0 || b->closing)
		return;
	if (b->ask != NULL && now - b->ask->started >= REDIS_TIMEOUT_MS)
		ask_failed(b->ask, "no answer within the request timeout", true);
	if (b->watch == NULL && b->ask == NULL &&
	    now - b->watch_tried >= WATCH_RETRY_MS)
		watch_start(b, b->sentinel_turn % b->nsentinels);
}

void
redis_sentinel_close(struct backend_redis *b)
{
	if (b->ask != NULL)
		rsent_drop(b->ask, true);
	if (b->watch != NULL)
		rsent_drop(b->watch, true);
}
