/*
 * spf_eval - records, frames and terms of one SPF evaluation.
 *
 * Reads the top frame's record (selection: RFC 7208 4.5), checks it
 * whole (4.6), walks its terms, turns each DNS-querying term into a
 * question (counting it against the limits of 4.6.4), opens a frame per
 * include, replaces the frame on redirect, and maps an include's result
 * into the including record (5.2).  The answers of a, mx, ptr and exists
 * are in spf_mech.c; the state is described in spf_eval.h.
 */
#include "spf_eval.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spf_macro.h"

/* ---- small helpers ------------------------------------------------------ */

struct spf_frame *
spf_eval_top(spf_t *s)
{
	return &s->frames[s->depth - 1];
}

static int
quote_len(const struct spf_term *t)
{
	return (int)(t->len < SPF_QUOTE_MAX ? t->len : SPF_QUOTE_MAX);
}

void __attribute__((format(printf, 2, 3)))
spf_eval_why(spf_t *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
}

/* End the evaluation; the caller has set s->why. */
void
spf_eval_finish(spf_t *s, enum spf_result r)
{
	s->result = r;
	s->wait = SPF_W_DONE;
}

/* Error inside the current term: "... at 'term' in domain". */
void
spf_eval_fail_term(spf_t *s, enum spf_result r, const char *what)
{
	struct spf_frame *f = spf_eval_top(s);

	spf_eval_why(s, "%s at '%.*s' in %s", what, quote_len(&f->cur), f->cur.text,
		f->domain);
	spf_eval_finish(s, r);
}

void
spf_eval_ask(spf_t *s, enum spf_wait w, enum dns_type type, const char *name)
{
	s->wait = w;
	s->qtype = type;
	snprintf(s->qname, sizeof(s->qname), "%s", name);
}

enum dns_type
spf_eval_addr_type(const spf_t *s)
{
	return s->client.family == ADDR_V4 ? DNS_T_A : DNS_T_AAAA;
}

static enum spf_result
qual_result(enum spf_qualifier q)
{
	switch (q) {
	case SPF_QUAL_FAIL: return SPF_FAIL;
	case SPF_QUAL_SOFTFAIL: return SPF_SOFTFAIL;
	case SPF_QUAL_NEUTRAL: return SPF_NEUTRAL;
	default: return SPF_PASS;
	}
}

enum spf_answer
spf_eval_classify(const struct dns_result *a)
{
	switch (a->status) {
	case DNS_OK:
		return a->n > 0 && a->rr != NULL ? SPF_ANS_RECORDS : SPF_ANS_VOID;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		return SPF_ANS_VOID;
	default:
		return SPF_ANS_ERROR;
	}
}

/* ---- frames -------------------------------------------------------------- */

/*
 * A frame ended with pass, fail, softfail or neutral.  At the top that
 * is the result; in an include, RFC 7208 5.2 maps it: pass matches the
 * include (and the including frame ends with its qualifier), the others
 * do not match and the including record goes on.
 */
static void
frame_done(spf_t *s, enum spf_result r)
{
	char inner[SPF_WHY_MAX];
	struct spf_frame *f;

	while (s->depth > 1) {
		f = spf_eval_top(s);
		free(f->rec);
		memset(f, 0, sizeof(*f));
		s->depth--;
		if (r != SPF_PASS) {
			s->wait = SPF_W_RUN;
			return;
		}
		f = spf_eval_top(s);
		r = qual_result(f->cur.qual);
		memcpy(inner, s->why, sizeof(inner));
		spf_eval_why(s, "matched '%.*s' in %s; %s", quote_len(&f->cur),
			f->cur.text, f->domain, inner);
	}
	spf_eval_finish(s, r);
}

/*
 * Whether a matching term authorises a range no mail operator owns:
 * "all", or an address mechanism (ip4, ip6, a, mx) with a prefix shorter
 * than SPF_BROAD_V4 / SPF_BROAD_V6 bits.  The documentation-address probe
 * misses such a range when it lies in the other half of the address
 * space (ip4:0.0.0.0/1 does not cover 192.0.2.1).
 */
static bool
term_is_broad(const struct spf_term *t, enum addr_family family)
{
	switch (t->kind) {
	case SPF_TERM_ALL:
		return true;
	case SPF_TERM_IP4:
	case SPF_TERM_IP6:
	case SPF_TERM_A:
	case SPF_TERM_MX:
		return family == ADDR_V4 ? t->cidr4 < SPF_BROAD_V4
					 : t->cidr6 < SPF_BROAD_V6;
	default:
		return false;
	}
}

void
spf_eval_matched(spf_t *s)
{
	struct spf_frame *f = spf_eval_top(s);

	spf_eval_why(s, "matched '%.*s' in %s", quote_len(&f->cur), f->cur.text,
		f->domain);
	/* The innermost record that matched: whose policy authorised it. */
	snprintf(s->matched, sizeof(s->matched), "%s", f->domain);
	s->broad = term_is_broad(&f->cur, s->client.family);
	frame_done(s, qual_result(f->cur.qual));
}

void
spf_eval_no_match(spf_t *s)
{
	s->wait = SPF_W_RUN;
}

/* Start reading the record of domain into the top frame. */
static void
read_record(spf_t *s, const char *domain, bool redirected)
{
	struct spf_frame *f = spf_eval_top(s);

	free(f->rec);
	memset(f, 0, sizeof(*f));
	snprintf(f->domain, sizeof(f->domain), "%s", domain);
	f->redirected = redirected;
	spf_eval_ask(s, SPF_W_TXT, DNS_T_TXT, f->domain);
}

/* The RFC 7208 4.3 check of the starting domain: else "none". */
static bool
initial_domain_ok(const char *d, size_t n)
{
	bool dot = false, alpha = false;

	if (!spf_name_valid(d, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = d[i];

		if (c == '.') {
			dot = true;
			alpha = false;
			continue;
		}
		if (!((c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return false;
		alpha = alpha || (c < '0' || c > '9');
	}
	return dot && alpha;	/* multi-label, and not an address */
}

void
spf_eval_start(spf_t *s)
{
	const char *d = s->sender + s->local_len + 1;
	size_t n = strlen(d);

	if (n > 0 && d[n - 1] == '.')
		n--;
	if (!initial_domain_ok(d, n)) {
		spf_eval_why(s, "'%.*s' is not a domain name",
			     (int)(n < SPF_QUOTE_MAX ? n : SPF_QUOTE_MAX), d);
		spf_eval_finish(s, SPF_NONE);
		return;
	}
	s->depth = 1;
	memcpy(s->target, d, n);
	s->target[n] = '\0';
	read_record(s, s->target, false);
}

void
spf_eval_on_txt(spf_t *s, const struct dns_result *a)
{
	struct spf_frame *f = spf_eval_top(s);
	enum spf_answer cls = spf_eval_classify(a);
	const struct dns_rr *rr = NULL;
	size_t found = 0;
	const char *why = "";

	if (cls == SPF_ANS_ERROR) {
		spf_eval_why(s, "TXT lookup of %s failed", f->domain);
		spf_eval_finish(s, SPF_TEMPERROR);
		return;
	}
	for (size_t i = 0; cls == SPF_ANS_RECORDS && i < a->n; i++) {
		if (a->rr[i].data != NULL &&
		    spf_record_is_spf(a->rr[i].data, a->rr[i].len)) {
			found++;
			rr = &a->rr[i];
		}
	}
	if (found == 0) {
		/* RFC 7208 5.2 and 6.1: none below the top is a permerror. */
		bool top_level = s->depth == 1 && !f->redirected;

		spf_eval_why(s, "no SPF record at %s%s", f->domain,
			top_level ? "" : f->redirected ? " (redirect target)" :
			" (include target)");
		spf_eval_finish(s, top_level ? SPF_NONE : SPF_PERMERROR);
		return;
	}
	if (found > 1) {
		spf_eval_why(s, "%zu SPF records at %s", found, f->domain);
		spf_eval_finish(s, SPF_PERMERROR);
		return;
	}
	if (rr->len > SPF_RECORD_MAX) {
		spf_eval_why(s, "SPF record at %s is longer than %d bytes", f->domain,
			SPF_RECORD_MAX);
		spf_eval_finish(s, SPF_PERMERROR);
		return;
	}
	f->rec = malloc(rr->len + 1);
	if (f->rec == NULL) {
		spf_eval_why(s, "out of memory");
		spf_eval_finish(s, SPF_TEMPERROR);
		return;
	}
	memcpy(f->rec, rr->data, rr->len);
	f->rec[rr->len] = '\0';
	f->len = rr->len;
	if (spf_record_check(f->rec, f->len, &f->info, &why) < 0) {
		spf_eval_why(s, "syntax error in the SPF record at %s: %s", f->domain,
			why);
		spf_eval_finish(s, SPF_PERMERROR);
		return;
	}
	f->pos = SPF_VERSION_LEN;
	s->wait = SPF_W_RUN;
}

/* ---- terms --------------------------------------------------------------- */

/*
 * Expand the current term's domain-spec (or take the frame's domain) into
 * out as a query name.  false when the evaluation ended (permerror).
 */
static bool
term_target(spf_t *s, char out[DNS_NAME_MAX + 1])
{
	struct spf_frame *f = spf_eval_top(s);
	struct spf_macro_ctx ctx = {
		.sender = s->sender, .local_len = s->local_len,
		.domain = f->domain, .helo = s->helo, .receiver = s->receiver,
		.client = &s->client, .now = s->now,
	};
	size_t n = 0;
	int rc;

	if (f->cur.spec == NULL) {
		memcpy(out, f->domain, sizeof(f->domain));
		return true;
	}
	rc = spf_macro_expand(&ctx, f->cur.spec, f->cur.spec_len, 0, s->expand,
			      sizeof(s->expand), &n);
	if (rc < 0) {
		spf_eval_fail_term(s, SPF_PERMERROR, rc == -ENOSPC ?
			  "macro expansion too long" : "bad macro");
		return false;
	}
	n = spf_name_fit(s->expand, n);
	if (!spf_name_valid(s->expand, n)) {
		spf_eval_fail_term(s, SPF_PERMERROR, "expands to an invalid name");
		return false;
	}
	memcpy(out, s->expand, n + 1);
	return true;
}

/* Count a DNS-querying term and find its target; false when ended. */
static bool
begin_query(spf_t *s)
{
	if (++s->lookups > SPF_MAX_LOOKUPS) {
		spf_eval_fail_term(s, SPF_PERMERROR, "more than 10 DNS-querying terms");
		return false;
	}
	return term_target(s, s->target);
}

/* A term's query came back void; false when that passed the limit. */
bool
spf_eval_count_void(spf_t *s)
{
	if (++s->voids > SPF_MAX_VOID) {
		spf_eval_fail_term(s, SPF_PERMERROR, "more than 2 void lookups");
		return false;
	}
	return true;
}

/* in-addr.arpa or ip6.arpa name of the client, for "ptr". */
static void
reverse_name(const struct addr *a, char out[DNS_NAME_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	if (a->family == ADDR_V4) {
		snprintf(out, DNS_NAME_MAX + 1, "%u.%u.%u.%u.in-addr.arpa",
			 a->bytes[3], a->bytes[2], a->bytes[1], a->bytes[0]);
		return;
	}
	for (int i = 15; i >= 0; i--) {
		out[n++] = hex[a->bytes[i] & 0xf];
		out[n++] = '.';
		out[n++] = hex[a->bytes[i] >> 4];
		out[n++] = '.';
	}
	memcpy(out + n, "ip6.arpa", sizeof("ip6.arpa"));
}

static bool
net_match(const spf_t *s, const struct spf_term *t)
{
	struct addr net;

	memset(&net, 0, sizeof(net));
	net.family = t->kind == SPF_TERM_IP4 ? ADDR_V4 : ADDR_V6;
	memcpy(net.bytes, t->net, net.family == ADDR_V4 ? 4 : 16);
	if (net.family != s->client.family)
		return false;
	return addr_in_net(&s->client, &net,
			   net.family == ADDR_V4 ? t->cidr4 : t->cidr6);
}

/* No mechanism matched: redirect= if there is one, else neutral. */
static void
end_of_record(spf_t *s)
{
	struct spf_frame *f = spf_eval_top(s);

	if (f->info.has_redirect && !f->info.has_all) {
		f->cur = f->info.redirect;
		if (!begin_query(s))
			return;
		read_record(s, s->target, true);
		return;
	}
	spf_eval_why(s, "no mechanism matched in %s (neutral by default)",
		f->domain);
	frame_done(s, SPF_NEUTRAL);
}

static void
push_include(spf_t *s)
{
	if (s->depth >= SPF_MAX_DEPTH) {
		spf_eval_fail_term(s, SPF_PERMERROR, "includes nested too deep");
		return;
	}
	s->depth++;
	read_record(s, s->target, false);
}

void
spf_eval_next_term(spf_t *s)
{
	struct spf_frame *f = spf_eval_top(s);
	const char *why = "";
	int rc = spf_term_next(f->rec, f->len, &f->pos, &f->cur, &why);

	if (rc < 0) {	/* spf_record_check() passed it: cannot happen */
		spf_eval_why(s, "syntax error in the SPF record at %s: %s",
			f->domain, why);
		spf_eval_finish(s, SPF_PERMERROR);
		return;
	}
	if (rc == 0) {
		end_of_record(s);
		return;
	}
	switch (f->cur.kind) {
	case SPF_TERM_ALL:
		spf_eval_matched(s);
		return;
	case SPF_TERM_IP4:
	case SPF_TERM_IP6:
		if (net_match(s, &f->cur))
			spf_eval_matched(s);
		return;
	case SPF_TERM_A:
		if (begin_query(s))
			spf_eval_ask(s, SPF_W_A, spf_eval_addr_type(s), s->target);
		return;
	case SPF_TERM_MX:
		if (begin_query(s))
			spf_eval_ask(s, SPF_W_MX, DNS_T_MX, s->target);
		return;
	case SPF_TERM_EXISTS:
		if (begin_query(s))
			spf_eval_ask(s, SPF_W_EXISTS, DNS_T_A, s->target);
		return;
	case SPF_TERM_PTR:
		if (begin_query(s)) {
			char rev[DNS_NAME_MAX + 1];

			reverse_name(&s->client, rev);
			spf_eval_ask(s, SPF_W_PTR, DNS_T_PTR, rev);
		}
		return;
	case SPF_TERM_INCLUDE:
		if (begin_query(s))
			push_include(s);
		return;
	default:	/* modifiers: redirect comes at the end, the rest are ignored */
		return;
	}
}
