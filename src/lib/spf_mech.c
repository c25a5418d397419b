/*
 * spf_mech - the answers to a, mx, ptr and exists (RFC 7208 5.3-5.7).
 *
 * DNS errors end the evaluation with temperror (RFC 7208 5), except in
 * ptr, where they make the mechanism not match (5.5).  Answers are read
 * during the call only; the names an answer brings (MX exchanges, PTR
 * targets) are copied into the evaluation, at most SPF_MAX_NAMES.
 */
#include "spf_mech.h"

#include <string.h>

#include "spf_eval.h"

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



static unsigned
term_prefix(const spf_t *s)
{
	const struct spf_term *t = &s->frames[s->depth - 1].cur;

	return s->client.family == ADDR_V4 ? t->cidr4 : t->cidr6;
}

/* "a" and "exists": one answer decides. */
void
spf_mech_on_a(spf_t *s, const struct dns_result *a, bool exists)
{
	switch (spf_eval_classify(a)) {
	case SPF_ANS_ERROR:
		spf_eval_fail_term(s, SPF_TEMPERROR, "DNS lookup failed");
		return;
	case SPF_ANS_VOID:
		if (spf_eval_count_void(s))
			spf_eval_no_match(s);
		return;
	case SPF_ANS_RECORDS:
		if (exists || addrs_match(s, a, term_prefix(s)))
			spf_eval_matched(s);
		else
			spf_eval_no_match(s);
		return;
	}
}

/* Ask for the addresses of names[name_i], or give up: no match. */
static void
next_name(spf_t *s, enum spf_wait w)
{
	if (s->name_i >= s->nnames) {
		spf_eval_no_match(s);
		return;
	}
	spf_eval_ask(s, w, spf_eval_addr_type(s), s->names[s->name_i++]);
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

void
spf_mech_on_mx(spf_t *s, const struct dns_result *a)
{
	switch (spf_eval_classify(a)) {
	case SPF_ANS_ERROR:
		spf_eval_fail_term(s, SPF_TEMPERROR, "DNS lookup failed");
		return;
	case SPF_ANS_VOID:
		if (spf_eval_count_void(s))
			spf_eval_no_match(s);
		return;
	case SPF_ANS_RECORDS:
		if (a->n > SPF_MAX_NAMES) {
			spf_eval_fail_term(s, SPF_PERMERROR, "more than 10 MX records");
			return;
		}
		keep_names(s, a, a->n, NULL);
		next_name(s, SPF_W_MX_ADDR);
		return;
	}
}

void
spf_mech_on_mx_addr(spf_t *s, const struct dns_result *a)
{
	switch (spf_eval_classify(a)) {
	case SPF_ANS_ERROR:
		spf_eval_fail_term(s, SPF_TEMPERROR, "DNS lookup of an MX host failed");
		return;
	case SPF_ANS_VOID:
		next_name(s, SPF_W_MX_ADDR);
		return;
	case SPF_ANS_RECORDS:
		if (addrs_match(s, a, term_prefix(s)))
			spf_eval_matched(s);
		else
			next_name(s, SPF_W_MX_ADDR);
		return;
	}
}

/* RFC 7208 5.5: DNS errors in ptr make it not match rather than err. */
void
spf_mech_on_ptr(spf_t *s, const struct dns_result *a)
{
	switch (spf_eval_classify(a)) {
	case SPF_ANS_ERROR:
		spf_eval_no_match(s);
		return;
	case SPF_ANS_VOID:
		if (spf_eval_count_void(s))
			spf_eval_no_match(s);
		return;
	case SPF_ANS_RECORDS:
		/* Only the first 10 names count; the rest are ignored. */
		keep_names(s, a, a->n < SPF_MAX_NAMES ? a->n : SPF_MAX_NAMES,
			   s->target);
		next_name(s, SPF_W_PTR_ADDR);
		return;
	}
}

void
spf_mech_on_ptr_addr(spf_t *s, const struct dns_result *a)
{
	if (spf_eval_classify(a) == SPF_ANS_RECORDS &&
	    addrs_match(s, a, addr_bits(&s->client)))
		spf_eval_matched(s);
	else
		next_name(s, SPF_W_PTR_ADDR);
}
