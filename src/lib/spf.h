/*
 * spf - evaluate the SPF policy (RFC 7208) of a sender for a client
 * address, without resolving anything.
 *
 * The evaluator is driven step by step: it names the DNS question it
 * needs, the caller answers it (from its asynchronous resolver, a cache,
 * or a test table) and calls again, until the result is known:
 *
 *	spf_t *s;
 *	enum dns_type qtype;
 *	char qname[DNS_NAME_MAX + 1];
 *	const struct dns_result *answer = NULL;
 *
 *	if (spf_new(&s, &query) < 0) ...	(spf_query_invalid() says why)
 *	while (spf_step(s, answer, &qtype, qname) == SPF_STEP_LOOKUP)
 *		answer = resolve(qtype, qname);	(may be asynchronous)
 *	log(spf_result_name(spf_result(s)), spf_why(s));
 *	spf_free(s);
 *
 * The check_host() identity is the MAIL FROM address; for the null sender
 * it is postmaster@HELO (RFC 7208 2.4).  A sender domain or HELO name that
 * is not a multi-label domain name gives "none" (RFC 7208 4.3).
 *
 * Limits, each a permerror when passed (RFC 7208 4.6.4): 10 terms that
 * query DNS (include, a, mx, ptr, exists, redirect) per evaluation,
 * includes and redirects of every level counted together; 10 MX names
 * per mx (more is a permerror); 10 PTR names per ptr (the rest ignored);
 * 2 void lookups (NXDOMAIN, or no record of the type) counted once per
 * term that queries; records longer than SPF_RECORD_MAX bytes.  Include
 * and redirect loops end at the 10-term limit; the include stack is a
 * fixed array of SPF_MAX_DEPTH frames, so no recursion and no unbounded
 * memory: one allocation of about 11 KiB per evaluation, plus the text of
 * each open record (at most SPF_MAX_DEPTH x SPF_RECORD_MAX bytes).
 *
 * DNS: TEMPFAIL and PERMFAIL answers both give temperror (a refused or
 * malformed answer says nothing about the domain's policy), except
 * inside ptr, where RFC 7208 5.5 makes a failed lookup a non-match.  A
 * TXT answer must carry each record's strings already concatenated.
 * The %{p} macro expands to "unknown" (no PTR query is made for it).
 * exp= is checked for syntax and otherwise ignored: no explanation
 * string is fetched.
 *
 * Queries name record types from dns_result.h: TXT for records, A or
 * AAAA (by the client's family) for a, mx hosts and ptr names, MX, PTR
 * of the reverse name (in-addr.arpa / ip6.arpa), and A for exists.  A
 * query name is 1..253 bytes of printable ASCII without backslash and
 * without trailing dot; it may hold bytes a host name would not (from a
 * macro expanding the sender's local part), which the resolver must
 * send as literal label bytes.
 *
 * Ownership: spf_new() copies what it keeps of the query; answers are
 * read during spf_step() only.  One spf_t per evaluation, one thread at
 * a time; different spf_t share nothing.
 */
#ifndef GREYHOLD_SPF_H
#define GREYHOLD_SPF_H

#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "dns_result.h"

typedef struct spf spf_t;

/* RFC 7208 4.6.4: DNS-querying terms, MX and PTR names, void lookups. */
#define SPF_MAX_LOOKUPS 10
#define SPF_MAX_NAMES 10
#define SPF_MAX_VOID 2
/* The top record plus one frame per include the lookup limit allows. */
#define SPF_MAX_DEPTH (SPF_MAX_LOOKUPS + 1)
/* Longest sender (64-byte local part, '@', 255-byte domain). */
#define SPF_SENDER_MAX 320

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

struct spf_query {
	struct addr client;	/* IPv4-mapped IPv6 is evaluated as IPv4 */
	const char *sender;	/* MAIL FROM: local@domain; "" or NULL = <> */
	const char *helo;	/* HELO/EHLO name; may be NULL unless <> */
	const char *receiver;	/* our host name for %{r}; NULL = "unknown" */
	int64_t now;		/* %{t} */
};

enum spf_step { SPF_STEP_LOOKUP, SPF_STEP_DONE };

/*
 * NULL when q can be evaluated, else why not: no client address, a
 * sender longer than SPF_SENDER_MAX or a HELO longer than DNS_NAME_MAX,
 * bytes outside printable ASCII, a null sender without a HELO name.
 */
const char *spf_query_invalid(const struct spf_query *q);

/* Start an evaluation: 0, -EINVAL (spf_query_invalid()) or -ENOMEM. */
int spf_new(spf_t **out, const struct spf_query *q);

/*
 * Advance.  Call first with answer == NULL; on SPF_STEP_LOOKUP, resolve
 * (*qtype, qname) and call again with its answer.  SPF_STEP_DONE means
 * spf_result() is final; further calls return SPF_STEP_DONE.  A NULL
 * answer to a pending question counts as a failed lookup (temperror).
 */
enum spf_step spf_step(spf_t *s, const struct dns_result *answer,
		       enum dns_type *qtype, char qname[DNS_NAME_MAX + 1]);

/* The result; temperror until spf_step() has returned SPF_STEP_DONE. */
enum spf_result spf_result(const spf_t *s);

/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" */
const char *spf_result_name(enum spf_result r);

/*
 * One line for logs and greyholdctl check: the mechanism that matched
 * and in which domain's record, or the error.  Printable ASCII only;
 * valid until spf_free().
 */
const char *spf_why(const spf_t *s);

/*
 * With a pass: the domain whose record held the mechanism that matched
 * (the innermost one of an include or redirect chain), so the caller can
 * tell a provider's record (include:spf.provider.example) from the
 * sender's own.  NULL for any other result.  Valid until spf_free().
 */
const char *spf_authorised_by(const spf_t *s);

/*
 * With a pass: whether the term that matched covers a range far larger
 * than any operator's ("all", or ip4/a/mx shorter than /8, ip6 shorter
 * than /16).  Such a pass proves nothing even when the probe (below)
 * does not pass: the caller treats it as not proven.
 */
#define SPF_BROAD_V4 8
#define SPF_BROAD_V6 16
bool spf_too_broad(const spf_t *s);

/* DNS-querying terms used so far (at most SPF_MAX_LOOKUPS + 1). */
unsigned spf_lookups(const spf_t *s);

void spf_free(spf_t *s);

/*
 * "A record that would also pass for an address nobody owns validates
 * nothing."  +all, ip4:0.0.0.0/0 or a huge include pass for anyone, so a
 * pass proves something only if the same sender does not also pass for a
 * documentation address (192.0.2.1, RFC 5737; 2001:db8::1, RFC 3849; the
 * next one of each when the client is that address).
 *
 * spf_query_probe() fills *probe with q for that address (same family,
 * same sender, HELO, receiver and time; the strings are q's, so q's
 * strings must outlive probe).  false when q is not evaluable.  The
 * caller evaluates both (the probe's DNS questions are mostly the same
 * ones, so a cache answers them) and combines them with spf_proven().
 * One probe address catches what covers it: +all, ip4:0.0.0.0/0 or
 * 128.0.0.0/1, ip6:2000::/3, an exists: on a wildcard name.  A range
 * that covers the client and not 192.0.2.1 (ip4:0.0.0.0/1 for a client
 * in 10/8) is caught by spf_too_broad() instead: the caller needs both.
 */
bool spf_query_probe(struct spf_query *probe, const struct spf_query *q);

/*
 * Whether the sender proved itself: the real evaluation passed and the
 * probe gave a definite non-pass (fail, softfail, neutral or none).  A
 * probe that passes too, or errs, proves nothing.
 */
bool spf_proven(enum spf_result real, enum spf_result probe);

#endif
