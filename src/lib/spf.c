/*
 * spf - check_host() of RFC 7208 as a state machine that asks for DNS.
 *
 * State: a fixed stack of frames, one per record being evaluated (the
 * top record, then one per open include; a redirect replaces its frame,
 * as its result is the frame's result).  Each frame owns a copy of its
 * record text (at most SPF_RECORD_MAX bytes) and a cursor into it; the
 * evaluation owns the frames and the MX/PTR name list of the mechanism
 * being evaluated.  s->wait says which answer is expected next; W_RUN
 * means "evaluate the next term", which spf_step() does in a loop until
 * a question or a result comes up.  Every iteration consumes a term, an
 * answer or a frame, so the loop ends.
 *
 * Every text written into s->why comes from checked sources (the query,
 * validated names, syntax-checked terms), so it is printable ASCII.
 */
#include "spf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spf_macro.h"
#include "spf_parse.h"

#define WHY_MAX 256
/* Longest macro expansion before it is cut to a name (RFC 7208 4.8). */
#define EXPAND_MAX 2048
/* How much of a term an explanation quotes. */
#define QUOTE_MAX 80

enum wait {
	W_START,	/* nothing asked yet */
	W_RUN,		/* no question pending: evaluate the next term */
	W_TXT,		/* the top frame's record */
	W_A,		/* "a": addresses of the target */
	W_MX,		/* "mx": the target's exchanges */
	W_MX_ADDR,	/* "mx": addresses of names[name_i] */
	W_PTR,		/* "ptr": names of the client address */
	W_PTR_ADDR,	/* "ptr": addresses of names[name_i] */
	W_EXISTS,	/* "exists": A records of the target */
	W_DONE,
};

struct frame {
	char domain[DNS_NAME_MAX + 1];	/* %{d} */
	char *rec;		/* record text, NUL-terminated; NULL until read */
	size_t len;
	size_t pos;		/* where the next term starts looking */
	struct spf_record_info info;
	struct spf_term cur;	/* the term being evaluated */
	bool redirected;	/* reached through redirect= */
};

struct spf {
	struct addr client;
	char sender[SPF_SENDER_MAX + 16];	/* room for "postmaster@" */
	size_t local_len;
	char helo[DNS_NAME_MAX + 2];
	char receiver[DNS_NAME_MAX + 2];
	int64_t now;

	struct frame frames[SPF_MAX_DEPTH];
	unsigned depth;
	enum wait wait;
	enum dns_type qtype;
	char qname[DNS_NAME_MAX + 1];
	unsigned lookups;
	unsigned voids;

	char target[DNS_NAME_MAX + 1];	/* the current mechanism's domain */
	char names[SPF_MAX_NAMES][DNS_NAME_MAX + 1];
	unsigned nnames;
	unsigned name_i;

	enum spf_result result;
	char why[WHY_MAX];
	char expand[EXPAND_MAX];
};

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void
client_normalize(struct addr *a)
{
	if (a->family == ADDR_V6 && memcmp(a->bytes, v4mapped, 12) == 0) {
		memmove(a->bytes, a->bytes + 12, 4);
		memset(a->bytes + 4, 0, 12);
		a->family = ADDR_V4;
	}
}

/* NULL or "" is fine; otherwise printable ASCII, at most max bytes. */
static bool
text_ok(const char *s, size_t max)
{
	size_t n = 0;

	if (s == NULL)
		return true;
	for (; s[n] != '\0'; n++) {
		if (n >= max || (unsigned char)s[n] < 0x21 ||
		    (unsigned char)s[n] > 0x7e)
			return false;
	}
	return true;
}

const char *
spf_query_invalid(const struct spf_query *q)
{
	if (q == NULL)
		return "no query";
	if (q->client.family != ADDR_V4 && q->client.family != ADDR_V6)
		return "no client address";
	if (!text_ok(q->sender, SPF_SENDER_MAX))
		return "sender too long or not printable ASCII";
	if (!text_ok(q->helo, DNS_NAME_MAX + 1))
		return "HELO name too long or not printable ASCII";
	if (!text_ok(q->receiver, DNS_NAME_MAX + 1))
		return "receiver name too long or not printable ASCII";
	if ((q->sender == NULL || q->sender[0] == '\0') &&
	    (q->helo == NULL || q->helo[0] == '\0'))
		return "null sender without a HELO name";
	return NULL;
}

int
spf_new(spf_t **out, const struct spf_query *q)
{
	spf_t *s;
	const char *at;

	*out = NULL;
	if (spf_query_invalid(q) != NULL)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->client = q->client;
	client_normalize(&s->client);
	/* RFC 7208 2.4 and 4.3: postmaster@HELO for <>, postmaster@ for @d. */
	if (q->sender == NULL || q->sender[0] == '\0')
		snprintf(s->sender, sizeof(s->sender), "postmaster@%s", q->helo);
	else if (strchr(q->sender, '@') == NULL)
		snprintf(s->sender, sizeof(s->sender), "postmaster@%s", q->sender);
	else if (q->sender[0] == '@')
		snprintf(s->sender, sizeof(s->sender), "postmaster%s", q->sender);
	else
		snprintf(s->sender, sizeof(s->sender), "%s", q->sender);
	at = strrchr(s->sender, '@');
	s->local_len = (size_t)(at - s->sender);
	snprintf(s->helo, sizeof(s->helo), "%s", q->helo ? q->helo : "");
	snprintf(s->receiver, sizeof(s->receiver), "%s",
		 q->receiver ? q->receiver : "");
	s->now = q->now;
	s->wait = W_START;
	s->result = SPF_TEMPERROR;
	snprintf(s->why, sizeof(s->why), "evaluation not finished");
	*out = s;
	return 0;
}

void
spf_free(spf_t *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < SPF_MAX_DEPTH; i++)
		free(s->frames[i].rec);
	free(s);
}

enum spf_result
spf_result(const spf_t *s)
{
	return s->wait == W_DONE ? s->result : SPF_TEMPERROR;
}

const char *
spf_why(const spf_t *s)
{
	return s->why;
}

unsigned
spf_lookups(const spf_t *s)
{
	return s->lookups;
}

const char *
spf_result_name(enum spf_result r)
{
	switch (r) {
	case SPF_NONE: return "none";
	case SPF_NEUTRAL: return "neutral";
	case SPF_PASS: return "pass";
	case SPF_FAIL: return "fail";
	case SPF_SOFTFAIL: return "softfail";
	case SPF_TEMPERROR: return "temperror";
	case SPF_PERMERROR: return "permerror";
	}
	return "unknown";
}

/* ---- small helpers ------------------------------------------------------ */

static struct frame *
top(spf_t *s)
{
	return &s->frames[s->depth - 1];
}

static int
quote_len(const struct spf_term *t)
{
	return (int)(t->len < QUOTE_MAX ? t->len : QUOTE_MAX);
}

static void __attribute__((format(printf, 2, 3)))
set_why(spf_t *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
}

/* End the evaluation; the caller has set s->why. */
static void
finish(spf_t *s, enum spf_result r)
{
	s->result = r;
	s->wait = W_DONE;
}

/* Error inside the current term: "... at 'term' in domain". */
static void
fail_term(spf_t *s, enum spf_result r, const char *what)
{
	struct frame *f = top(s);

	set_why(s, "%s at '%.*s' in %s", what, quote_len(&f->cur), f->cur.text,
		f->domain);
	finish(s, r);
}

static void
ask(spf_t *s, enum wait w, enum dns_type type, const char *name)
{
	s->wait = w;
	s->qtype = type;
	snprintf(s->qname, sizeof(s->qname), "%s", name);
}

static enum dns_type
addr_type(const spf_t *s)
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

/* What an answer amounts to; an unknown status is an error. */
enum answer { ANS_RECORDS, ANS_VOID, ANS_ERROR };

static enum answer
classify(const struct dns_result *a)
{
	switch (a->status) {
	case DNS_OK:
		return a->n > 0 && a->rr != NULL ? ANS_RECORDS : ANS_VOID;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		return ANS_VOID;
	default:
		return ANS_ERROR;
	}
}

/* Whether an A/AAAA answer holds an address within client/prefix. */
static bool
addrs_match(const spf_t *s, const struct dns_result *a, unsigned prefix)
{
	size_t need = s->client.family == ADDR_V4 ? 4 : 16;
	struct addr net;

	for (size_t i = 0; i < a->n; i++) {
		if (a->rr[i].data == NULL || a->rr[i].len != need)
			continue;
		memset(&net, 0, sizeof(net));
		net.family = s->client.family;
		memcpy(net.bytes, a->rr[i].data, need);
		if (addr_in_net(&s->client, &net, prefix))
			return true;
	}
	return false;
}

/* ---- frames ---------------------------------------------------------------- */

/*
 * A frame ended with pass, fail, softfail or neutral.  At the top that
 * is the result; in an include, RFC 7208 5.2 maps it: pass matches the
 * include (and the including frame ends with its qualifier), the others
 * do not match and the including record goes on.
 */
static void
frame_done(spf_t *s, enum spf_result r)
{
	char inner[WHY_MAX];
	struct frame *f;

	while (s->depth > 1) {
		f = top(s);
		free(f->rec);
		memset(f, 0, sizeof(*f));
		s->depth--;
		if (r != SPF_PASS) {
			s->wait = W_RUN;
			return;
		}
		f = top(s);
		r = qual_result(f->cur.qual);
		memcpy(inner, s->why, sizeof(inner));
		set_why(s, "matched '%.*s' in %s; %s", quote_len(&f->cur),
			f->cur.text, f->domain, inner);
	}
	finish(s, r);
}

static void
matched(spf_t *s)
{
	struct frame *f = top(s);

	set_why(s, "matched '%.*s' in %s", quote_len(&f->cur), f->cur.text,
		f->domain);
	frame_done(s, qual_result(f->cur.qual));
}

static void
no_match(spf_t *s)
{
	s->wait = W_RUN;
}

/* Start reading the record of domain into the top frame. */
static void
read_record(spf_t *s, const char *domain, bool redirected)
{
	struct frame *f = top(s);

	free(f->rec);
	memset(f, 0, sizeof(*f));
	snprintf(f->domain, sizeof(f->domain), "%s", domain);
	f->redirected = redirected;
	ask(s, W_TXT, DNS_T_TXT, f->domain);
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

static void
start(spf_t *s)
{
	const char *d = s->sender + s->local_len + 1;
	size_t n = strlen(d);

	if (n > 0 && d[n - 1] == '.')
		n--;
	if (!initial_domain_ok(d, n)) {
		set_why(s, "'%.*s' is not a domain name", (int)(n < QUOTE_MAX ? n : QUOTE_MAX), d);
		finish(s, SPF_NONE);
		return;
	}
	s->depth = 1;
	memcpy(s->target, d, n);
	s->target[n] = '\0';
	read_record(s, s->target, false);
}

static void
on_txt(spf_t *s, const struct dns_result *a)
{
	struct frame *f = top(s);
	enum answer cls = classify(a);
	const struct dns_rr *rr = NULL;
	size_t found = 0;
	const char *why = "";

	if (cls == ANS_ERROR) {
		set_why(s, "TXT lookup of %s failed", f->domain);
		finish(s, SPF_TEMPERROR);
		return;
	}
	for (size_t i = 0; cls == ANS_RECORDS && i < a->n; i++) {
		if (a->rr[i].data != NULL &&
		    spf_record_is_spf(a->rr[i].data, a->rr[i].len)) {
			found++;
			rr = &a->rr[i];
		}
	}
	if (found == 0) {
		/* RFC 7208 5.2 and 6.1: none below the top is a permerror. */
		bool top_level = s->depth == 1 && !f->redirected;

		set_why(s, "no SPF record at %s%s", f->domain,
			top_level ? "" : f->redirected ? " (redirect target)" :
			" (include target)");
		finish(s, top_level ? SPF_NONE : SPF_PERMERROR);
		return;
	}
	if (found > 1) {
		set_why(s, "%zu SPF records at %s", found, f->domain);
		finish(s, SPF_PERMERROR);
		return;
	}
	if (rr->len > SPF_RECORD_MAX) {
		set_why(s, "SPF record at %s is longer than %d bytes", f->domain,
			SPF_RECORD_MAX);
		finish(s, SPF_PERMERROR);
		return;
	}
	f->rec = malloc(rr->len + 1);
	if (f->rec == NULL) {
		set_why(s, "out of memory");
		finish(s, SPF_TEMPERROR);
		return;
	}
	memcpy(f->rec, rr->data, rr->len);
	f->rec[rr->len] = '\0';
	f->len = rr->len;
	if (spf_record_check(f->rec, f->len, &f->info, &why) < 0) {
		set_why(s, "syntax error in the SPF record at %s: %s", f->domain,
			why);
		finish(s, SPF_PERMERROR);
		return;
	}
	f->pos = SPF_VERSION_LEN;
	s->wait = W_RUN;
}

/* ---- terms ------------------------------------------------------------------ */

/*
 * Expand the current term's domain-spec (or take the frame's domain) into
 * out as a query name.  false when the evaluation ended (permerror).
 */
static bool
term_target(spf_t *s, char out[DNS_NAME_MAX + 1])
{
	struct frame *f = top(s);
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
		fail_term(s, SPF_PERMERROR, rc == -ENOSPC ?
			  "macro expansion too long" : "bad macro");
		return false;
	}
	n = spf_name_fit(s->expand, n);
	if (!spf_name_valid(s->expand, n)) {
		fail_term(s, SPF_PERMERROR, "expands to an invalid name");
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
		fail_term(s, SPF_PERMERROR, "more than 10 DNS-querying terms");
		return false;
	}
	return term_target(s, s->target);
}

/* A term's query came back void; false when that passed the limit. */
static bool
count_void(spf_t *s)
{
	if (++s->voids > SPF_MAX_VOID) {
		fail_term(s, SPF_PERMERROR, "more than 2 void lookups");
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
	struct frame *f = top(s);

	if (f->info.has_redirect && !f->info.has_all) {
		f->cur = f->info.redirect;
		if (!begin_query(s))
			return;
		read_record(s, s->target, true);
		return;
	}
	set_why(s, "no mechanism matched in %s (neutral by default)",
		f->domain);
	frame_done(s, SPF_NEUTRAL);
}

static void
push_include(spf_t *s)
{
	if (s->depth >= SPF_MAX_DEPTH) {
		fail_term(s, SPF_PERMERROR, "includes nested too deep");
		return;
	}
	s->depth++;
	read_record(s, s->target, false);
}

static void
next_term(spf_t *s)
{
	struct frame *f = top(s);
	const char *why = "";
	int rc = spf_term_next(f->rec, f->len, &f->pos, &f->cur, &why);

	if (rc < 0) {	/* spf_record_check() passed it: cannot happen */
		set_why(s, "syntax error in the SPF record at %s: %s",
			f->domain, why);
		finish(s, SPF_PERMERROR);
		return;
	}
	if (rc == 0) {
		end_of_record(s);
		return;
	}
	switch (f->cur.kind) {
	case SPF_TERM_ALL:
		matched(s);
		return;
	case SPF_TERM_IP4:
	case SPF_TERM_IP6:
		if (net_match(s, &f->cur))
			matched(s);
		return;
	case SPF_TERM_A:
		if (begin_query(s))
			ask(s, W_A, addr_type(s), s->target);
		return;
	case SPF_TERM_MX:
		if (begin_query(s))
			ask(s, W_MX, DNS_T_MX, s->target);
		return;
	case SPF_TERM_EXISTS:
		if (begin_query(s))
			ask(s, W_EXISTS, DNS_T_A, s->target);
		return;
	case SPF_TERM_PTR:
		if (begin_query(s)) {
			char rev[DNS_NAME_MAX + 1];

			reverse_name(&s->client, rev);
			ask(s, W_PTR, DNS_T_PTR, rev);
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

/* ---- answers --------------------------------------------------------------- */

static unsigned
term_prefix(const spf_t *s)
{
	const struct spf_term *t = &s->frames[s->depth - 1].cur;

	return s->client.family == ADDR_V4 ? t->cidr4 : t->cidr6;
}

/* "a" and "exists": one answer decides. */
static void
on_a(spf_t *s, const struct dns_result *a, bool exists)
{
	switch (classify(a)) {
	case ANS_ERROR:
		fail_term(s, SPF_TEMPERROR, "DNS lookup failed");
		return;
	case ANS_VOID:
		if (count_void(s))
			no_match(s);
		return;
	case ANS_RECORDS:
		if (exists || addrs_match(s, a, term_prefix(s)))
			matched(s);
		else
			no_match(s);
		return;
	}
}

/* Ask for the addresses of names[name_i], or give up: no match. */
static void
next_name(spf_t *s, enum wait w)
{
	if (s->name_i >= s->nnames) {
		no_match(s);
		return;
	}
	ask(s, w, addr_type(s), s->names[s->name_i++]);
}

/* Keep the valid names of rr[0..n) that within (if not NULL) admits. */
static void
keep_names(spf_t *s, const struct dns_result *a, size_t n, const char *within)
{
	s->nnames = 0;
	s->name_i = 0;
	for (size_t i = 0; i < n && s->nnames < SPF_MAX_NAMES; i++) {
		const char *name = (const char *)a->rr[i].data;
		size_t len = a->rr[i].len;

		if (name == NULL || !spf_name_valid(name, len))
			continue;	/* also the null MX "." (RFC 7505) */
		if (within != NULL &&
		    !spf_name_within(name, len, within, strlen(within)))
			continue;
		memcpy(s->names[s->nnames], name, len);
		s->names[s->nnames][len] = '\0';
		s->nnames++;
	}
}

static void
on_mx(spf_t *s, const struct dns_result *a)
{
	switch (classify(a)) {
	case ANS_ERROR:
		fail_term(s, SPF_TEMPERROR, "DNS lookup failed");
		return;
	case ANS_VOID:
		if (count_void(s))
			no_match(s);
		return;
	case ANS_RECORDS:
		if (a->n > SPF_MAX_NAMES) {
			fail_term(s, SPF_PERMERROR, "more than 10 MX records");
			return;
		}
		keep_names(s, a, a->n, NULL);
		next_name(s, W_MX_ADDR);
		return;
	}
}

static void
on_mx_addr(spf_t *s, const struct dns_result *a)
{
	switch (classify(a)) {
	case ANS_ERROR:
		fail_term(s, SPF_TEMPERROR, "DNS lookup of an MX host failed");
		return;
	case ANS_VOID:
		next_name(s, W_MX_ADDR);
		return;
	case ANS_RECORDS:
		if (addrs_match(s, a, term_prefix(s)))
			matched(s);
		else
			next_name(s, W_MX_ADDR);
		return;
	}
}

/* RFC 7208 5.5: DNS errors in ptr make it not match rather than err. */
static void
on_ptr(spf_t *s, const struct dns_result *a)
{
	switch (classify(a)) {
	case ANS_ERROR:
		no_match(s);
		return;
	case ANS_VOID:
		if (count_void(s))
			no_match(s);
		return;
	case ANS_RECORDS:
		/* Only the first 10 names count; the rest are ignored. */
		keep_names(s, a, a->n < SPF_MAX_NAMES ? a->n : SPF_MAX_NAMES,
			   s->target);
		next_name(s, W_PTR_ADDR);
		return;
	}
}

static void
on_ptr_addr(spf_t *s, const struct dns_result *a)
{
	if (classify(a) == ANS_RECORDS &&
	    addrs_match(s, a, addr_bits(&s->client)))
		matched(s);
	else
		next_name(s, W_PTR_ADDR);
}

static void
on_answer(spf_t *s, const struct dns_result *a)
{
	switch (s->wait) {
	case W_TXT: on_txt(s, a); return;
	case W_A: on_a(s, a, false); return;
	case W_EXISTS: on_a(s, a, true); return;
	case W_MX: on_mx(s, a); return;
	case W_MX_ADDR: on_mx_addr(s, a); return;
	case W_PTR: on_ptr(s, a); return;
	case W_PTR_ADDR: on_ptr_addr(s, a); return;
	default: return;
	}
}

enum spf_step
spf_step(spf_t *s, const struct dns_result *answer, enum dns_type *qtype,
	 char qname[DNS_NAME_MAX + 1])
{
	if (s->wait == W_START) {
		start(s);
	} else if (s->wait != W_DONE) {
		if (answer == NULL) {
			set_why(s, "no answer to the %s query", s->qname);
			finish(s, SPF_TEMPERROR);
		} else {
			on_answer(s, answer);
		}
	}
	while (s->wait == W_RUN)
		next_term(s);
	if (s->wait == W_DONE)
		return SPF_STEP_DONE;
	*qtype = s->qtype;
	memcpy(qname, s->qname, sizeof(s->qname));
	return SPF_STEP_LOOKUP;
}

/* ---- the probe for records that pass anyone --------------------------------- */

bool
spf_query_probe(struct spf_query *probe, const struct spf_query *q)
{
	static const uint8_t doc4[4] = {192, 0, 2, 1};
	static const uint8_t doc6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
					 0, 0, 0, 0, 0, 0, 0, 1};
	size_t n;

	if (spf_query_invalid(q) != NULL)
		return false;
	*probe = *q;
	client_normalize(&probe->client);
	n = probe->client.family == ADDR_V4 ? 4 : 16;
	if (memcmp(probe->client.bytes, n == 4 ? doc4 : doc6, n) == 0) {
		probe->client.bytes[n - 1] = 2;	/* never the client itself */
		return true;
	}
	memset(probe->client.bytes, 0, sizeof(probe->client.bytes));
	memcpy(probe->client.bytes, n == 4 ? doc4 : doc6, n);
	return true;
}

bool
spf_proven(enum spf_result real, enum spf_result probe)
{
	return real == SPF_PASS &&
	       (probe == SPF_FAIL || probe == SPF_SOFTFAIL ||
		probe == SPF_NEUTRAL || probe == SPF_NONE);
}
