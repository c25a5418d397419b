/*
 * smart - trusted senders and the identities of a request.  The rules
 * and why they are shaped so are in smart.h.
 */
#include "smart.h"

#include <string.h>

/* Organisational domain of a domain name into out ("" when none). */
static void
org_of(const ident_t *id, const char *domain, size_t len, char *out,
       size_t outsz)
{
	size_t n;

	out[0] = '\0';
	if (domain == NULL || len == 0 ||
	    ident_org_domain(id, domain, len, out, outsz, &n) != 0)
		out[0] = '\0';
}

/* The domain of a sender address (after the last '@'), or NULL. */
static const char *
sender_domain(const struct policy_str *s, size_t *len)
{
	const char *at;

	if (s->ptr == NULL || s->len == 0)
		return NULL;
	at = memrchr(s->ptr, '@', s->len);
	if (at == NULL || (size_t)(at - s->ptr) + 1 >= s->len)
		return NULL;
	*len = s->len - (size_t)(at - s->ptr) - 1;
	return at + 1;
}

static bool
same_domain(const char *a, const char *b)
{
	return a[0] != '\0' && strcmp(a, b) == 0;
}

/* Add an identity keyed by tag:domain; false when it does not fit. */
static bool
add_identity(struct store_job *job, char tag, const char *domain,
	     const char *sender, size_t sender_len,
	     const struct policy_request *r, bool awl)
{
	struct job_ident *ji;

	if (job->n_more >= JOB_MAX_MORE)
		return false;
	ji = &job->more[job->n_more];
	if (!triplet_build_ident(&ji->key, tag, domain, strlen(domain), sender,
				 sender_len, r->recipient.ptr, r->recipient.len))
		return false;
	ji->awl = awl;
	job->n_more++;
	return true;
}

void
smart_assess(const ident_t *id, const struct smart_rules *rules,
	     const struct policy_request *r, const struct smart_evidence *ev,
	     struct store_job *job, struct smart_outcome *out)
{
	smart_assess_again(id, rules, r, ev, NULL, job, out);
}

void
smart_assess_again(const ident_t *id, const struct smart_rules *rules,
		   const struct policy_request *r,
		   const struct smart_evidence *ev,
		   const struct smart_outcome *earlier, struct store_job *job,
		   struct smart_outcome *out)
{
	char normal[TRIPLET_MAX_ADDR], reduced[TRIPLET_MAX_ADDR];
	char authorised_org[IDENT_MAX_NAME + 1], spf_org[IDENT_MAX_NAME + 1];
	const char *domain;
	size_t dlen = 0, nlen, rlen;
	bool have_name;

	memset(out, 0, sizeof(*out));
	job->n_more = 0;
	if (earlier != NULL) {
		/* The name and the sender's domain depend on the request
		   alone: what the earlier call found still holds. */
		out->name = earlier->name;
		memcpy(out->sender_org, earlier->sender_org,
		       sizeof(out->sender_org));
		have_name = out->name.why == IDENT_NAME_OK;
	} else {
		domain = sender_domain(&r->sender, &dlen);
		org_of(id, domain, dlen, out->sender_org,
		       sizeof(out->sender_org));
		have_name = ident_name(id, r->client_name.ptr,
				       r->client_name.len,
				       r->client_address.ptr,
				       r->client_address.len, &out->name) == 0;
	}

	/* The sender's own, SPF-proven server, unless a blocklist objects. */
	if (!ev->dnsbl && rules->trust_spf_aligned && ev->spf_proven &&
	    have_name && same_domain(out->name.org, out->sender_org)) {
		out->trust = SMART_TRUSTED_SPF;
		return;
	}
	if (!ev->dnsbl && ev->dnswl) {
		out->trust = SMART_DNSWL;
		return;
	}
	out->trust = SMART_GREYLIST;

	nlen = triplet_normalise_sender(normal, r->sender.ptr, r->sender.len);
	rlen = ident_sender_org(id, reduced, normal, nlen);
	if (rules->name_identity && have_name) {
		org_of(id, ev->spf_authorised_by,
		       ev->spf_authorised_by ? strlen(ev->spf_authorised_by) : 0,
		       authorised_org, sizeof(authorised_org));
		out->name_aligned =
			same_domain(out->name.org, out->sender_org) ||
			(ev->spf_proven &&
			 same_domain(out->name.org, authorised_org));
		out->name_awl = out->name_aligned && ev->spf_proven;
		if (out->name_aligned)
			out->name_id = add_identity(job, 'n', out->name.org,
						    reduced, rlen, r,
						    out->name_awl);
	}
	if (rules->spf_identity && ev->spf_proven && ev->spf_domain != NULL) {
		org_of(id, ev->spf_domain, strlen(ev->spf_domain), spf_org,
		       sizeof(spf_org));
		if (spf_org[0] != '\0')
			out->spf_id = add_identity(job, 's', spf_org, reduced,
						   rlen, r, true);
	}
}

bool
smart_rules_need_spf(const struct smart_rules *rules)
{
	return rules->name_identity || rules->spf_identity ||
	       rules->trust_spf_aligned;
}

const char *
smart_trust_name(enum smart_trust t)
{
	switch (t) {
	case SMART_GREYLIST:
		return "greylist";
	case SMART_TRUSTED_SPF:
		return "trusted-spf";
	case SMART_DNSWL:
		return "dnswl";
	}
	return "unknown";
}
