/*
 * redis_admin - greyholdctl's blocking Redis client.  See redis_admin.h for
 * the keys and the contract.
 *
 * hiredis's synchronous API with a timeout on connect and on every reply,
 * so a command line never hangs on a dead Redis.  Changes to the live
 * whitelist are small Lua scripts: the entry and the generation change in
 * one atomic step, so a daemon that sees the new generation also sees the
 * new entry.  With sentinel:// the sentinels are asked in turn (each
 * within the timeout) for the primary, which must say it is one (ROLE).
 * Addresses are parsed by redis_endpoint, key names and
 * entries encoded and decoded by redis_codec, as in the daemon.
 */
#include "redis_admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "redis_codec.h"
#include "redis_endpoint.h"


struct redis_admin {
	redisContext *c;
	char *prefix;
	char error[256];
};

/* HSET the entry and bump the generation, atomically. */
static const char PUT_SCRIPT[] =
	"redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
	"return redis.call('INCR', KEYS[2])\n";

/* HDEL the entry; bump the generation only if it was there. */
static const char DEL_SCRIPT[] =
	"if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
	"redis.call('INCR', KEYS[2])\n"
	"return 1\n";


/* ---- commands ----------------------------------------------------------- */

/* An errno for what broke the context (after a NULL reply). */
static int
context_errno(const redisContext *c, int saved_errno)
{
	switch (c->err) {
	case REDIS_ERR_IO:
		if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)
			return -ETIMEDOUT;
		return saved_errno > 0 ? -saved_errno : -EIO;
	case REDIS_ERR_EOF:
		return -ECONNRESET;
	case REDIS_ERR_OOM:
		return -ENOMEM;
	default:
		return -EPROTO;
	}
}

/*
 * Run one command; on success *out is the reply (caller frees it with
 * freeReplyObject).  An error reply is an error here, with its text in
 * ra->error.
 */
static int
command(redis_admin_t *ra, int argc, const char **argv, const size_t *lens,
	redisReply **out)
{
	redisReply *r;
	int saved_errno;

	*out = NULL;
	errno = 0;
	r = redisCommandArgv(ra->c, argc, argv, lens);
	saved_errno = errno;
	if (r == NULL) {
		snprintf(ra->error, sizeof(ra->error), "%s", ra->c->errstr);
		return context_errno(ra->c, saved_errno);
	}
	if (r->type == REDIS_REPLY_ERROR) {
		int err = redis_codec_error_errno(r->str);

		snprintf(ra->error, sizeof(ra->error), "%s", r->str);
		freeReplyObject(r);
		return err;
	}
	*out = r;
	return 0;
}

/* A command whose reply only says whether it worked. */
static int
command_ok(redis_admin_t *ra, int argc, const char **argv)
{
	size_t lens[4];
	redisReply *r;
	int rc;

	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	rc = command(ra, argc, argv, lens, &r);
	freeReplyObject(r);
	return rc;
}

static void
key_name(const redis_admin_t *ra, char *out, size_t outsz, const char *name)
{
	/* Fits: the prefix is at most REDIS_PREFIX_MAX (config.c). */
	(void)redis_codec_name(out, outsz, ra->prefix, name);
}

/* ---- connecting --------------------------------------------------------- */

bool
redis_admin_wanted(const struct config *cfg)
{
	return strcmp(cfg->store, "lmdb") != 0;
}

static int
authenticate(redis_admin_t *ra, const struct config *cfg, unsigned db)
{
	const char *argv[3];
	char dbtext[16];
	int n = 0, rc = 0;

	if (cfg->redis_password[0] != '\0') {
		argv[n++] = "AUTH";
		if (cfg->redis_user[0] != '\0')
			argv[n++] = cfg->redis_user;
		argv[n++] = cfg->redis_password;
		rc = command_ok(ra, n, argv);
	}
	if (rc == 0 && db != 0) {
		snprintf(dbtext, sizeof(dbtext), "%u", db);
		argv[0] = "SELECT";
		argv[1] = dbtext;
		rc = command_ok(ra, 2, argv);
	}
	return rc;
}

/*
 * sentinel://: ask sentinel h for the primary's address (into ep->host and
 * ep->port).  0; -ENOENT when it knows no such master; else a negative
 * errno.  why: what went wrong.
 */
static int
ask_sentinel(const struct redis_endpoint_host *h, const struct config *cfg,
	     const char *master, struct redis_endpoint *ep, struct timeval tv,
	     char *why, size_t whysz)
{
	redis_admin_t s = {0};
	const char *argv[3];
	size_t lens[3];
	redisReply *r = NULL;
	int n = 0, rc = 0;

	errno = 0;
	s.c = redisConnectWithTimeout(h->host, (int)h->port, tv);
	if (s.c == NULL || s.c->err != 0) {
		snprintf(why, whysz, "%s", s.c != NULL ? s.c->errstr
						       : "out of memory");
		rc = s.c != NULL ? context_errno(s.c, errno) : -ENOMEM;
		if (s.c != NULL)
			redisFree(s.c);
		return rc;
	}
	redisSetTimeout(s.c, tv);
	if (cfg->redis_sentinel_password[0] != '\0') {
		argv[n++] = "AUTH";
		if (cfg->redis_sentinel_user[0] != '\0')
			argv[n++] = cfg->redis_sentinel_user;
		argv[n++] = cfg->redis_sentinel_password;
		rc = command_ok(&s, n, argv);
	}
	if (rc == 0) {
		argv[0] = "SENTINEL";
		argv[1] = "get-master-addr-by-name";
		argv[2] = master;
		for (int i = 0; i < 3; i++)
			lens[i] = strlen(argv[i]);
		rc = command(&s, 3, argv, lens, &r);
	}
	if (rc < 0) {
		snprintf(why, whysz, "%s", s.error);
	} else if (r->type == REDIS_REPLY_NIL) {
		snprintf(why, whysz, "knows no master named '%s'", master);
		rc = -ENOENT;
	} else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		   r->element[0]->type != REDIS_REPLY_STRING ||
		   r->element[1]->type != REDIS_REPLY_STRING ||
		   strlen(r->element[0]->str) >= sizeof(ep->host) ||
		   (ep->port = (unsigned)atoi(r->element[1]->str)) == 0) {
		snprintf(why, whysz, "unexpected reply to SENTINEL "
			 "get-master-addr-by-name");
		rc = -EPROTO;
	} else {
		snprintf(ep->host, sizeof(ep->host), "%s", r->element[0]->str);
	}
	freeReplyObject(r);
	redisFree(s.c);
	return rc;
}

/* sentinel://: the sentinels in turn, until one names the primary. */
static int
find_primary(struct redis_endpoint *ep, const struct config *cfg,
	     struct timeval tv, char *err, size_t errsz)
{
	char why[300] = "", name[300];
	bool unknown = false;

	for (unsigned i = 0; i < ep->nsentinels; i++) {
		const struct redis_endpoint_host *h = &ep->sentinels[i];
		int rc = ask_sentinel(h, cfg, ep->master, ep, tv, why,
				      sizeof(why));

		if (rc == 0)
			return 0;
		unknown = unknown || rc == -ENOENT;
		snprintf(name, sizeof(name), strchr(h->host, ':') != NULL ?
			 "[%s]:%u" : "%s:%u", h->host, h->port);
		snprintf(err, errsz, "%s: %s", name, why);
	}
	if (unknown) {
		snprintf(err, errsz, "%s: no sentinel knows a master named "
			 "'%s' (check the name in store)", cfg->store, ep->master);
		return -ENOENT;
	}
	snprintf(why, sizeof(why), "%s", err);
	snprintf(err, errsz, "%s: no sentinel named the primary of '%s'; "
		 "last: %s", cfg->store, ep->master, why);
	return -EHOSTUNREACH;
}

/* sentinel://: the server named must still be the primary. */
static int
check_role(redis_admin_t *ra)
{
	const char *argv[1] = {"ROLE"};
	size_t lens[1] = {4};
	redisReply *r;
	int rc = command(ra, 1, argv, lens, &r);

	if (rc < 0)
		return rc;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "master") != 0) {
		snprintf(ra->error, sizeof(ra->error), "ROLE: not the primary "
			 "(a failover under way? try again)");
		rc = -EROFS;
	}
	freeReplyObject(r);
	return rc;
}

int
redis_admin_open(redis_admin_t **out, const struct config *cfg, char *err,
		 size_t errsz)
{
	struct timeval tv = {REDIS_ADMIN_TIMEOUT_MS / 1000,
			     (REDIS_ADMIN_TIMEOUT_MS % 1000) * 1000};
	struct redis_endpoint ep;
	redis_admin_t *ra;
	int saved_errno, rc;

	*out = NULL;
	rc = redis_endpoint_parse(cfg->store, &ep, err, errsz);
	if (rc == 0 && ep.nsentinels > 0)
		rc = find_primary(&ep, cfg, tv, err, errsz);
	if (rc < 0)
		return rc;
	ra = calloc(1, sizeof(*ra));
	if (ra == NULL || (ra->prefix = strdup(cfg->redis_prefix)) == NULL) {
		free(ra);
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	errno = 0;
	if (ep.path[0] != '\0')
		ra->c = redisConnectUnixWithTimeout(ep.path, tv);
	else
		ra->c = redisConnectWithTimeout(ep.host, (int)ep.port, tv);
	saved_errno = errno;
	if (ra->c == NULL || ra->c->err != 0) {
		rc = ra->c != NULL ? context_errno(ra->c, saved_errno)
				   : -ENOMEM;
		snprintf(err, errsz, "cannot connect to %s%s%s: %s", cfg->store,
			 ep.nsentinels > 0 ? ", primary " : "",
			 ep.nsentinels > 0 ? ep.host : "",
			 ra->c != NULL ? ra->c->errstr : "out of memory");
		redis_admin_close(ra);
		return rc;
	}
	redisSetTimeout(ra->c, tv);
	rc = authenticate(ra, cfg, ep.db);
	if (rc == 0 && ep.nsentinels > 0)
		rc = check_role(ra);
	if (rc < 0) {
		snprintf(err, errsz, "%s: %s", cfg->store, ra->error);
		redis_admin_close(ra);
		return rc;
	}
	*out = ra;
	return 0;
}

void
redis_admin_close(redis_admin_t *ra)
{
	if (ra == NULL)
		return;
	if (ra->c != NULL)
		redisFree(ra->c);
	free(ra->prefix);
	free(ra);
}

const char *
redis_admin_error(const redis_admin_t *ra)
{
	return ra->error;
}

/* ---- live whitelist ----------------------------------------------------- */

/* EVAL a script over (whitelist, wl_generation) with one or two ARGV. */
static int
wl_script(redis_admin_t *ra, const char *script, const char *field,
	  size_t field_len, const char *value, size_t value_len,
	  redisReply **out)
{
	char wl[300], gen[300];
	const char *argv[7] = {"EVAL", script, "2", wl, gen, field, value};
	size_t lens[7];
	int argc = value != NULL ? 7 : 6;

	key_name(ra, wl, sizeof(wl), "whitelist");
	key_name(ra, gen, sizeof(gen), "wl_generation");
	for (int i = 0; i < 5; i++)
		lens[i] = strlen(argv[i]);
	lens[5] = field_len;
	lens[6] = value_len;
	return command(ra, argc, argv, lens, out);
}

int
redis_admin_wl_put(redis_admin_t *ra, const struct db_wl_entry *e)
{
	char field[REDIS_CODEC_WL_FIELD_MAX];
	char value[REDIS_CODEC_WL_VALUE_MAX];
	int flen = redis_codec_wl_field(field, e->kind, e->entry);
	redisReply *r;
	int rc;

	if (flen < 0)
		return flen;
	rc = wl_script(ra, PUT_SCRIPT, field, (size_t)flen, value,
		       redis_codec_wl_value(value, e), &r);
	freeReplyObject(r);
	return rc;
}

int
redis_admin_wl_del(redis_admin_t *ra, enum whitelist_kind kind,
		   const char *entry)
{
	char field[REDIS_CODEC_WL_FIELD_MAX];
	int flen = redis_codec_wl_field(field, kind, entry);
	redisReply *r;
	int rc;

	if (flen < 0)
		return -ENOENT;
	rc = wl_script(ra, DEL_SCRIPT, field, (size_t)flen, NULL, 0, &r);
	if (rc == 0 && r->type != REDIS_REPLY_INTEGER)
		rc = -EPROTO;
	else if (rc == 0 && r->integer == 0)
		rc = -ENOENT;
	freeReplyObject(r);
	return rc;
}

int
redis_admin_wl_generation(redis_admin_t *ra, uint64_t *out)
{
	char gen[300];
	const char *argv[2] = {"GET", gen};
	size_t lens[2];
	redisReply *r;
	int rc;

	*out = 0;
	key_name(ra, gen, sizeof(gen), "wl_generation");
	lens[0] = 3;
	lens[1] = strlen(gen);
	rc = command(ra, 2, argv, lens, &r);
	if (rc == 0 && r->type == REDIS_REPLY_STRING)
		*out = strtoull(r->str, NULL, 10);
	else if (rc == 0 && r->type != REDIS_REPLY_NIL)
		rc = -EPROTO;
	freeReplyObject(r);
	return rc;
}

static bool
decode_wl(const redisReply *field, const redisReply *value,
	  struct db_wl_entry *e)
{
	return field->type == REDIS_REPLY_STRING &&
	       value->type == REDIS_REPLY_STRING &&
	       redis_codec_wl_decode(field->str, field->len, value->str,
				     value->len, e) == 0;
}

struct wl_pair {
	const redisReply *field;
	const redisReply *value;
};

/* Sort as LMDB keeps them: by the raw field bytes ("c:" before "r:"). */
static int
cmp_pair(const void *a, const void *b)
{
	const redisReply *x = ((const struct wl_pair *)a)->field;
	const redisReply *y = ((const struct wl_pair *)b)->field;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->str, y->str, n);

	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* HGETALL's flat field, value, ... array as pairs sorted by field. */
static struct wl_pair *
sorted_pairs(const redisReply *all)
{
	size_t n = all->elements / 2;
	struct wl_pair *pairs = calloc(n > 0 ? n : 1, sizeof(*pairs));

	if (pairs == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (all->element[2 * i]->type != REDIS_REPLY_STRING) {
			free(pairs);
			return NULL;
		}
		pairs[i].field = all->element[2 * i];
		pairs[i].value = all->element[2 * i + 1];
	}
	qsort(pairs, n, sizeof(*pairs), cmp_pair);
	return pairs;
}

int
redis_admin_wl_foreach(redis_admin_t *ra,
		       int (*fn)(const struct db_wl_entry *, void *), void *arg)
{
	char wl[300];
	const char *argv[2] = {"HGETALL", wl};
	size_t lens[2];
	redisReply *all;
	struct wl_pair *pairs;
	struct db_wl_entry e;
	int rc, stop = 0;

	key_name(ra, wl, sizeof(wl), "whitelist");
	lens[0] = 7;
	lens[1] = strlen(wl);
	rc = command(ra, 2, argv, lens, &all);
	if (rc < 0)
		return rc;
	if (all->type != REDIS_REPLY_ARRAY || all->elements % 2 != 0 ||
	    (pairs = sorted_pairs(all)) == NULL) {
		snprintf(ra->error, sizeof(ra->error),
			 "unexpected reply to HGETALL");
		freeReplyObject(all);
		return -EPROTO;
	}
	for (size_t i = 0; i < all->elements / 2 && stop == 0; i++) {
		if (!decode_wl(pairs[i].field, pairs[i].value, &e)) {
			log_msg(LOG_LEVEL_WARN, "skipping a malformed live "
				"whitelist entry (%zu bytes)",
				pairs[i].field->len);
			continue;
		}
		stop = fn(&e, arg);
	}
	free(pairs);
	freeReplyObject(all);
	return stop;
}
