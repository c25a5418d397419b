/*
 * spf - the interface of the SPF evaluator: the query, the step loop,
 * the results, and the probe for records that pass anyone.
 *
 * spf_step() hands each answer to the part of the evaluator that asked
 * for it (spf_eval.c for records, spf_mech.c for mechanisms) and then
 * evaluates terms until a question or the result comes up.  The state
 * is described in spf_eval.h.
 */
#include "spf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spf_eval.h"
#include "spf_mech.h"

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
	s->wait = SPF_W_START;
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
	return s->wait == SPF_W_DONE ? s->result : SPF_TEMPERROR;
}

const char *
spf_authorised_by(const spf_t *s)
{
	if (s->result != SPF_PASS || s->matched[0] == '\0')
		return NULL;
	return s->matched;
}

bool
spf_too_broad(const spf_t *s)
{
	return s->result == SPF_PASS && s->broad;
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

static void
on_answer(spf_t *s, const struct dns_result *a)
{
	switch (s->wait) {
	case SPF_W_TXT: spf_eval_on_txt(s, a); return;
	case SPF_W_A: spf_mech_on_a(s, a, false); return;
	case SPF_W_EXISTS: spf_mech_on_a(s, a, true); return;
	case SPF_W_MX: spf_mech_on_mx(s, a); return;
	case SPF_W_MX_ADDR: spf_mech_on_mx_addr(s, a); return;
	case SPF_W_PTR: spf_mech_on_ptr(s, a); return;
	case SPF_W_PTR_ADDR: spf_mech_on_ptr_addr(s, a); return;
	default: return;
	}
}

enum spf_step
spf_step(spf_t *s, const struct dns_result *answer, enum dns_type *qtype,
	 char qname[DNS_NAME_MAX + 1])
{
	if (s->wait == SPF_W_START) {
		spf_eval_start(s);
	} else if (s->wait != SPF_W_DONE) {
		if (answer == NULL) {
			spf_eval_why(s, "no answer to the %s query", s->qname);
			spf_eval_finish(s, SPF_TEMPERROR);
		} else {
			on_answer(s, answer);
		}
	}
	while (s->wait == SPF_W_RUN)
		spf_eval_next_term(s);
	if (s->wait == SPF_W_DONE)
		return SPF_STEP_DONE;
	*qtype = s->qtype;
	memcpy(qname, s->qname, sizeof(s->qname));
	return SPF_STEP_LOOKUP;
}

/* ---- the probe for records that pass anyone ------------------------------ */

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
