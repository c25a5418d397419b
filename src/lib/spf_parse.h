/*
 * spf_parse - the grammar of SPF records (RFC 7208 sections 4.5, 4.6, 5, 6)
 * and of the domain names they produce.
 *
 * Pure text code.  A record is first checked whole (RFC 7208 4.6: one
 * syntax error anywhere makes the whole record a permerror, before any
 * mechanism is evaluated); evaluation then walks it one term at a time
 * with spf_term_next(), keeping only a cursor, so a parsed record costs
 * no memory beyond its text.  Terms point into the record text and live
 * as long as it does.
 */
#ifndef GREYHOLD_SPF_PARSE_H
#define GREYHOLD_SPF_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Longest record accepted, in bytes.  RFC 7208 3.4 asks publishers to
 * keep answers within 512 bytes and real records stay below 2 KiB; a
 * longer "v=spf1" record is a permerror rather than a reason to copy
 * unbounded text.
 */
#define SPF_RECORD_MAX 4096

/* Length of "v=spf1", where the first term starts looking. */
#define SPF_VERSION_LEN 6

enum spf_term_kind {
	SPF_TERM_ALL,
	SPF_TERM_INCLUDE,
	SPF_TERM_A,
	SPF_TERM_MX,
	SPF_TERM_PTR,
	SPF_TERM_IP4,
	SPF_TERM_IP6,
	SPF_TERM_EXISTS,
	SPF_TERM_REDIRECT,	/* modifiers from here on */
	SPF_TERM_EXP,
	SPF_TERM_UNKNOWN_MODIFIER,
};

/* The qualifier of a directive: what a match makes the result. */
enum spf_qualifier {
	SPF_QUAL_PASS,		/* "+" or none */
	SPF_QUAL_FAIL,		/* "-" */
	SPF_QUAL_SOFTFAIL,	/* "~" */
	SPF_QUAL_NEUTRAL,	/* "?" */
};

struct spf_term {
	enum spf_term_kind kind;
	enum spf_qualifier qual;
	const char *text;	/* the whole term, for explanations */
	size_t len;
	const char *spec;	/* domain-spec or modifier value; NULL = none */
	size_t spec_len;
	unsigned cidr4;		/* ip4, a, mx; 32 when not given */
	unsigned cidr6;		/* ip6, a, mx; 128 when not given */
	uint8_t net[16];	/* ip4 (first 4 bytes) and ip6 */
};

/* What the whole-record check learns for the evaluation. */
struct spf_record_info {
	bool has_all;		/* an "all" anywhere: redirect is ignored */
	bool has_redirect;
	struct spf_term redirect;
};

/* Whether a TXT record is an SPF record: "v=spf1" then a space or end. */
bool spf_record_is_spf(const uint8_t *txt, size_t len);

/*
 * Check the whole record (starting with "v=spf1"): every term's syntax,
 * at most one redirect= and one exp=.  0, or -EINVAL with *why set to a
 * static text naming the fault.
 */
int spf_record_check(const char *rec, size_t len, struct spf_record_info *info,
		     const char **why);

/*
 * Read the term at or after *pos (spaces skipped) and advance *pos past
 * it.  1 = a term in *t, 0 = end of record, -EINVAL = syntax error
 * (*why set).  Start with *pos = SPF_VERSION_LEN.
 */
int spf_term_next(const char *rec, size_t len, size_t *pos, struct spf_term *t,
		  const char **why);

/*
 * Whether name[0..len) can be asked of DNS: 1..253 bytes, labels of
 * 1..63 printable ASCII bytes other than backslash, no empty label (no
 * trailing dot either: strip it first).
 */
bool spf_name_valid(const char *name, size_t len);

/*
 * Turn an expanded domain-spec into a query name in place: drop one
 * trailing dot, then whole labels from the left until at most
 * DNS_NAME_MAX bytes remain (RFC 7208 4.8).  Returns the new length.
 */
size_t spf_name_fit(char *name, size_t len);

/* Whether name equals domain or is below it, ignoring ASCII case. */
bool spf_name_within(const char *name, size_t nlen, const char *domain,
		     size_t dlen);

#endif
