/*
 * redis_codec - how greyhold's data looks in Redis: keys, records, the
 * decision script's reply, error replies, live-whitelist entries.
 *
 * Pure: no hiredis, no sockets.  The daemon's Redis backend and
 * greyholdctl's redis_admin build and read every Redis key and value
 * through here; the decision script (src/daemon/greylist.lua) is the one
 * other place that knows the record format, and the unit test and the
 * scenario test pin both to it.
 *
 * Keys, each after redis_prefix (at most REDIS_PREFIX_MAX bytes):
 *   c:{CLIENT}                   an identity's auto-whitelist record
 *   t:{CLIENT}\0SENDER\0RCPT     a triplet record
 *   whitelist                    hash of live-whitelist entries
 *   wl_generation                counter bumped with every entry change
 * The {CLIENT} hash tag keeps one script call's keys in one Cluster slot;
 * a client key holding a brace (a binary privacy hash may) goes in hex so
 * the tag always ends where it should.  Keys are binary-safe byte strings.
 *
 * Records: "1 FIRST LAST PASSES" (version 1, decimal unix seconds and
 * count, one space apart), the same fields as record.h.
 *
 * Live whitelist: hash field "c:ENTRY" (client) or "r:ENTRY" (recipient),
 * byte for byte the LMDB key (db_wl.c); value "ADDED,EXPIRES,COMMENT"
 * (unix seconds, EXPIRES 0 = never; the comment runs to the end and may
 * hold commas; "ADDED,EXPIRES" alone means no comment).
 *
 * Errors: 0 or a negative errno (-EBADMSG: does not decode; -E2BIG: does
 * not fit; -EPROTO: a reply not shaped as expected).
 */
#ifndef GREYHOLD_REDIS_CODEC_H
#define GREYHOLD_REDIS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db_wl.h"
#include "engine.h"
#include "record.h"
#include "redis_endpoint.h"
#include "triplet.h"
#include "whitelist.h"
#include "wl_entry.h"

/* "t:{" CLIENT (maybe in hex) "}" and the rest of the triplet key. */
#define REDIS_CODEC_KEY_MAX \
	(REDIS_PREFIX_MAX + 4 + TRIPLET_MAX_KEY + TRIPLET_MAX_CLIENT)
/* "1 " and three numbers. */
#define REDIS_CODEC_RECORD_MAX 64
/* "c:" ENTRY */
#define REDIS_CODEC_WL_FIELD_MAX WL_ENTRY_NAME_MAX
/* ADDED "," EXPIRES "," COMMENT */
#define REDIS_CODEC_WL_VALUE_MAX (2 * 21 + 2 + DB_WL_COMMENT_MAX)
/* Elements of the decision script's reply (greylist.lua). */
#define REDIS_CODEC_VERDICT_ELEMS 7

/*
 * Client and triplet key of k after prefix, into ckey and tkey (each
 * REDIS_CODEC_KEY_MAX bytes, not NUL-terminated); -E2BIG if the prefix is
 * longer than REDIS_PREFIX_MAX.
 */
int redis_codec_keys(const char *prefix, const struct triplet_key *k,
		     char *ckey, size_t *clen, char *tkey, size_t *tlen);

/* prefix + name ("whitelist", "wl_generation"), NUL-terminated. */
int redis_codec_name(char *out, size_t outsz, const char *prefix,
		     const char *name);

/* A record as the script stores it, NUL-terminated; returns its length. */
size_t redis_codec_record_encode(char out[REDIS_CODEC_RECORD_MAX],
				 const struct record *r);
/* 0, or -EBADMSG when data is not a version-1 record. */
int redis_codec_record_decode(struct record *out, const char *data,
			      size_t len);

/*
 * One element of a reply as the client library delivered it.  The daemon
 * fills these from hiredis replies, so this module needs no hiredis.
 */
enum redis_codec_type {
	REDIS_CODEC_INT,
	REDIS_CODEC_STR,
	REDIS_CODEC_OTHER,
};

struct redis_codec_elem {
	enum redis_codec_type type;
	long long integer;		/* REDIS_CODEC_INT */
	const char *str;		/* REDIS_CODEC_STR, not NUL-terminated */
	size_t len;
};

struct redis_codec_verdict {
	struct engine_verdict verdict;
	bool wrote;			/* the script wrote a record */
	unsigned corrupt;		/* records deleted as undecodable */
	unsigned matched;		/* identity that decided a pass */
};

/* The decision script's reply (n elements) into *out; -EPROTO if odd. */
int redis_codec_verdict_parse(const struct redis_codec_elem *e, size_t n,
			      struct redis_codec_verdict *out);

/*
 * A negative errno for a Redis error reply ("LOADING ...", "NOAUTH ...",
 * "READONLY ..."); -EPROTO for one without a meaning of its own.
 */
int redis_codec_error_errno(const char *msg);

/* The hash field of a live-whitelist entry; returns its length or -E2BIG. */
int redis_codec_wl_field(char out[REDIS_CODEC_WL_FIELD_MAX],
			 enum whitelist_kind kind, const char *entry);
/* The value of e (comment cut to DB_WL_COMMENT_MAX); its length. */
size_t redis_codec_wl_value(char out[REDIS_CODEC_WL_VALUE_MAX],
			    const struct db_wl_entry *e);
/*
 * A field and value from the whitelist hash into *e; -EBADMSG when they
 * are not an entry (the comment is cut at DB_WL_COMMENT_MAX bytes or a
 * NUL, so a long hand-written one does not lose the entry).
 */
int redis_codec_wl_decode(const char *field, size_t flen, const char *value,
			  size_t vlen, struct db_wl_entry *e);

#endif
