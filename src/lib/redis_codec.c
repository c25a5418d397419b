/*
 * redis_codec - greyhold's keys and values in Redis.  The formats are in
 * redis_codec.h; the decision script (src/daemon/greylist.lua) writes and
 * reads the same record format, so change both or neither.
 */
#include "redis_codec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "wl_entry.h"
#include "decide.h"

static size_t
append(char *out, size_t o, const void *data, size_t len)
{
	memcpy(out + o, data, len);
	return o + len;
}

/*
 * "{CLIENT}" at out + o: the Cluster hash tag.  A client key holding a
 * brace goes in hex, so the tag always ends where we mean it to and is
 * never empty.
 */
static size_t
append_tag(char *out, size_t o, const struct triplet_key *k)
{
	static const char hex[] = "0123456789abcdef";

	out[o++] = '{';
	if (memchr(k->client, '{', k->client_len) == NULL &&
	    memchr(k->client, '}', k->client_len) == NULL) {
		o = append(out, o, k->client, k->client_len);
	} else {
		for (size_t i = 0; i < k->client_len; i++) {
			out[o++] = hex[(unsigned char)k->client[i] >> 4];
			out[o++] = hex[(unsigned char)k->client[i] & 15];
		}
	}
	out[o++] = '}';
	return o;
}

int
redis_codec_keys(const char *prefix, const struct triplet_key *k, char *ckey,
		 size_t *clen, char *tkey, size_t *tlen)
{
	size_t plen = strlen(prefix);
	size_t o;

	if (plen > REDIS_PREFIX_MAX)
		return -E2BIG;
	o = append(ckey, 0, prefix, plen);
	o = append(ckey, o, "c:", 2);
	*clen = append_tag(ckey, o, k);

	o = append(tkey, 0, prefix, plen);
	o = append(tkey, o, "t:", 2);
	o = append_tag(tkey, o, k);
	/* The triplet key after its CLIENT part: "\0SENDER\0RCPT". */
	*tlen = append(tkey, o, k->key + k->client_len,
		       k->key_len - k->client_len);
	return 0;
}

int
redis_codec_name(char *out, size_t outsz, const char *prefix, const char *name)
{
	int n = snprintf(out, outsz, "%s%s", prefix, name);

	return n < 0 || (size_t)n >= outsz ? -E2BIG : 0;
}

/* ---- records -------------------------------------------------------------- */

size_t
redis_codec_record_encode(char out[REDIS_CODEC_RECORD_MAX],
			  const struct record *r)
{
	return (size_t)snprintf(out, REDIS_CODEC_RECORD_MAX,
				"1 %" PRId64 " %" PRId64 " %" PRIu32,
				r->first_seen, r->last_seen, r->passes);
}

/*
 * Digits at *p up to end or stop, into *out (at most max).  What the
 * script's %d+ pattern takes: no sign, no space, at least one digit.
 */
static bool
parse_digits(const char **p, const char *end, char stop, uint64_t max,
	     uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s == end || *s < '0' || *s > '9')
		return false;
	for (; s < end && *s != stop; s++) {
		if (*s < '0' || *s > '9' || v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*out = v;
	return true;
}

int
redis_codec_record_decode(struct record *out, const char *data, size_t len)
{
	const char *p = data, *end = data + len;
	uint64_t first, last, passes;

	if (len < 2 || data[0] != '1' || data[1] != ' ')
		return -EBADMSG;
	p += 2;
	if (!parse_digits(&p, end, ' ', RECORD_MAX_TIME, &first) || p == end)
		return -EBADMSG;
	p++;
	if (!parse_digits(&p, end, ' ', RECORD_MAX_TIME, &last) || p == end)
		return -EBADMSG;
	p++;
	if (!parse_digits(&p, end, ' ', UINT32_MAX, &passes) || p != end)
		return -EBADMSG;
	out->first_seen = (int64_t)first;
	out->last_seen = (int64_t)last;
	out->passes = (uint32_t)passes;
	return 0;
}

/* ---- the decision script's reply --------------------------------------- */

static bool
all_ints(const struct redis_codec_elem *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* Element 1 is the reason, a string. */
		if (i != 1 && e[i].type != REDIS_CODEC_INT)
			return false;
	}
	return true;
}

static int
reason_parse(const struct redis_codec_elem *e, enum engine_reason *out)
{
	static const struct {
		const char *name;
		enum engine_reason reason;
	} reasons[] = {
		{"new", ENGINE_NEW}, {"restart", ENGINE_RESTART},
		{"early", ENGINE_EARLY}, {"passed", ENGINE_PASSED},
		{"known", ENGINE_KNOWN}, {"awl", ENGINE_AWL},
	};

	if (e->type != REDIS_CODEC_STR)
		return -EPROTO;
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		if (e->len == strlen(reasons[i].name) &&
		    memcmp(e->str, reasons[i].name, e->len) == 0) {
			*out = reasons[i].reason;
			return 0;
		}
	}
	return -EPROTO;
}

int
redis_codec_verdict_parse(const struct redis_codec_elem *e, size_t n,
			  struct redis_codec_verdict *out)
{
	memset(out, 0, sizeof(*out));
	if (n != REDIS_CODEC_VERDICT_ELEMS || !all_ints(e, n) ||
	    reason_parse(&e[1], &out->verdict.reason) < 0)
		return -EPROTO;
	if ((e[0].integer != 0 && e[0].integer != 1) || e[2].integer < 0 ||
	    e[3].integer < 0 || e[5].integer < 0 ||
	    e[5].integer > 2 * DECIDE_MAX_IDS || e[6].integer < 0 ||
	    e[6].integer >= DECIDE_MAX_IDS)
		return -EPROTO;
	out->verdict.action = e[0].integer == 0 ? ENGINE_PASS : ENGINE_DEFER;
	out->verdict.seconds_left = e[2].integer;
	out->verdict.delay = e[3].integer;
	out->wrote = e[4].integer != 0;
	out->corrupt = (unsigned)e[5].integer;
	out->matched = (unsigned)e[6].integer;
	return 0;
}

int
redis_codec_error_errno(const char *msg)
{
	static const struct {
		const char *prefix;
		int err;
	} map[] = {
		{"LOADING", EAGAIN}, {"BUSY", EBUSY}, {"NOAUTH", EACCES},
		{"WRONGPASS", EACCES}, {"NOPERM", EACCES}, {"READONLY", EROFS},
		{"OOM", ENOMEM}, {"MASTERDOWN", EAGAIN}, {"TRYAGAIN", EAGAIN},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strncmp(msg, map[i].prefix, strlen(map[i].prefix)) == 0)
			return -map[i].err;
	}
	return -EPROTO;
}

/* ---- live whitelist -------------------------------------------------------- */

int
redis_codec_wl_field(char out[REDIS_CODEC_WL_FIELD_MAX],
		     enum whitelist_kind kind, const char *entry)
{
	return wl_entry_name(out, kind, entry);
}

size_t
redis_codec_wl_value(char out[REDIS_CODEC_WL_VALUE_MAX],
		     const struct db_wl_entry *e)
{
	return (size_t)snprintf(out, REDIS_CODEC_WL_VALUE_MAX,
				"%" PRId64 ",%" PRId64 ",%.*s", e->added,
				e->expires, DB_WL_COMMENT_MAX, e->comment);
}

static bool
wl_value_decode(const char *v, size_t vlen, struct db_wl_entry *e)
{
	const char *p = v, *end = v + vlen, *nul;
	uint64_t added, expires;
	size_t clen = 0;

	if (!parse_digits(&p, end, ',', INT64_MAX, &added) || p == end)
		return false;
	p++;
	if (!parse_digits(&p, end, ',', INT64_MAX, &expires))
		return false;
	if (p < end) {
		p++;		/* the comma before the comment */
		nul = memchr(p, '\0', (size_t)(end - p));
		clen = (size_t)((nul != NULL ? nul : end) - p);
		if (clen > DB_WL_COMMENT_MAX)
			clen = DB_WL_COMMENT_MAX;
		memcpy(e->comment, p, clen);
	}
	e->comment[clen] = '\0';
	e->added = (int64_t)added;
	e->expires = (int64_t)expires;
	return true;
}

int
redis_codec_wl_decode(const char *field, size_t flen, const char *value,
		      size_t vlen, struct db_wl_entry *e)
{
	memset(e, 0, sizeof(*e));
	if (!wl_entry_name_decode(field, flen, e) ||
	    !wl_value_decode(value, vlen, e))
		return -EBADMSG;
	return 0;
}
