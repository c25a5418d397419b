/*
 * smart - what a request's proofs make of it: whether its sender is
 * trusted outright, and which identities besides its client network it is
 * greylisted under (decide.h).
 *
 * Pure: the daemon gathers the evidence asynchronously (SPF through its
 * resolver, the DNS lists) and hands it here; the replay in tests/bench
 * and greyholdctl check call the same function, so the rules exist once.
 *
 * The rules (each can be switched off):
 *   - name identity: the organisational domain of a forward-confirmed
 *     client_name that does not look dynamic (ident.h) groups a provider
 *     pool's addresses, so a retry from another address of the pool is a
 *     retry.  Only for senders aligned with the name: the sender's
 *     organisational domain is the name's (a provider's own return paths,
 *     as SES and Mailchimp use), or SPF proved the sender through a
 *     record in the name's domain (a customer's record including the
 *     provider's, as for Office 365, Google or SendGrid).  A bulk sender
 *     with its own verified names but unrelated sender domains (snowshoe)
 *     gets no grouping: its repeated sends from other networks would
 *     otherwise count as retries.  The identity auto-whitelists only with
 *     SPF proof, so a hoster or ISP whose static-looking names cover
 *     customers' servers is never whitelisted as a whole because a few
 *     customers retried.
 *   - SPF identity: a sender whose SPF passes for the client (and would
 *     not pass for an address nobody owns: spf_proven()) is greylisted
 *     under its organisational domain too, so any address the domain
 *     authorises counts as the same client.
 *   - trusted sender: SPF proven, and the verified name's organisational
 *     domain is the sender's: the domain's own mail server, which a bot
 *     cannot arrange without the domain's DNS.  Skips greylisting.
 *   - DNS allowlist: a configured list vouches for the client.  Skips
 *     greylisting.
 *   - DNS blocklist: a listed client is never trusted by the two rules
 *     above; the daemon also gives it a longer delay.
 * In the identities' keys the sender's domain is its organisational
 * domain (ident_sender_org()), so a return path naming the sending host
 * stays one sender.
 */
#ifndef GREYHOLD_SMART_H
#define GREYHOLD_SMART_H

#include <stdbool.h>
#include <stddef.h>

#include "ident.h"
#include "job.h"
#include "policy.h"
#include "spf.h"

struct smart_rules {
	bool name_identity;
	bool spf_identity;
	bool trust_spf_aligned;
};

/* What the daemon found out about a request (all false: nothing). */
struct smart_evidence {
	enum spf_result spf;		/* SPF_NONE when not evaluated */
	bool spf_proven;		/* spf_proven(): pass, probe did not */
	const char *spf_domain;		/* the domain SPF checked (sender's,
					   or HELO for <>); NULL: none */
	const char *spf_authorised_by;	/* domain whose record held the
					   matching mechanism; NULL: none */
	bool dnswl;			/* an allowlist vouches for the client */
	bool dnsbl;			/* a blocklist lists the client */
};

enum smart_trust {
	SMART_GREYLIST,		/* decide with the identities */
	SMART_TRUSTED_SPF,	/* the sender's own, SPF-proven server */
	SMART_DNSWL,		/* vouched for by a DNS allowlist */
};

struct smart_outcome {
	enum smart_trust trust;
	struct ident_name name;		/* the name identity, or why none */
	char sender_org[IDENT_MAX_NAME + 1];	/* "" when none */
	bool name_aligned;		/* the sender is the name's domain's */
	bool name_id;			/* a name identity was added */
	bool name_awl;			/* ...and it may auto-whitelist */
	bool spf_id;			/* an SPF identity was added */
};

/*
 * Assess a request.  job->key (the network identity) must be built; the
 * further identities go into job->more (n_more set).  out says whether
 * the sender is trusted and why the identities are what they are.
 */
void smart_assess(const ident_t *id, const struct smart_rules *rules,
		  const struct policy_request *r,
		  const struct smart_evidence *ev, struct store_job *job,
		  struct smart_outcome *out);

/*
 * The same for a request assessed before (earlier: that call's outcome),
 * now with more evidence: the name identity and the sender's domain
 * depend on the request alone, so they are taken from earlier instead of
 * being worked out again (libpsl, the dynamic-name checks).  The daemon
 * assesses each new request once without DNS and once with its evidence.
 * earlier NULL: as smart_assess().
 */
void smart_assess_again(const ident_t *id, const struct smart_rules *rules,
			const struct policy_request *r,
			const struct smart_evidence *ev,
			const struct smart_outcome *earlier,
			struct store_job *job, struct smart_outcome *out);

/*
 * Whether the rules read SPF (every rule but the DNS lists does: the name
 * identity for its alignment, the SPF identity, the trusted sender).
 */
bool smart_rules_need_spf(const struct smart_rules *rules);

/* Short reason as logged: "greylist", "trusted-spf", "dnswl". */
const char *smart_trust_name(enum smart_trust t);

#endif
