/*
 * check_smart - check's greylisting step as the daemon takes it with
 * smart greylisting: identities, DNS evidence, trust, and the one
 * decision over every identity's records (see check_smart.c).
 */
#ifndef GREYHOLD_CTL_CHECK_SMART_H
#define GREYHOLD_CTL_CHECK_SMART_H

#include <stdbool.h>
#include <stddef.h>

#include "check_dns.h"
#include "ctl.h"
#include "decide.h"
#include "identity.h"
#include "keys.h"
#include "policy.h"
#include "smart.h"

/* One identity of the request, its keys and records as read. */
struct check_ident {
	char label[IDENTITY_SHOWN_MAX];	/* "network", "name:ORG", "spf:ORG" */
	struct keyed key;
	bool awl;			/* its auto-whitelist record is read */
	bool have_client, have_triplet;
	struct record client, triplet;
};

struct check_smart {
	bool no_dns;			/* --no-dns: decide without evidence */
	struct smart_rules rules;
	/* Passed before any DNS: the daemon's read-only fast path answers
	   a retry that needs no write without waiting for lookups. */
	bool fast;
	struct check_evidence dns;	/* when not fast */
	struct smart_outcome out;	/* the assessment that decided */
	int64_t delay;			/* the delay applied */
	size_t n;			/* identities */
	struct check_ident id[DECIDE_MAX_IDS];
	bool decided;			/* decide_request() ran last */
	struct engine_verdict verdict;	/* when decided */
	size_t matched;			/* identity that decided a pass */
};

/*
 * Run the daemon's steps after the whitelists for request r: identities
 * without DNS and the fast path; then the evidence (unless cs->no_dns),
 * smart_assess() with it, trust, and decide_request() over every
 * identity's records, on copies (nothing is written).  receiver is our
 * host name (SPF's %{r}).  0, or EXIT_ERROR after saying why.
 */
int check_smart_run(struct ctl *ctl, const struct policy_request *r,
		    const char *receiver, struct check_smart *cs);

/* Why the sender is trusted or not, in one sentence, into out. */
void check_smart_trust_why(const struct check_smart *cs, char *out,
			   size_t outsz);

/* Why the name identity is what it is, in one sentence, into out. */
void check_smart_name_why(const struct check_smart *cs,
			  const struct policy_request *r, char *out,
			  size_t outsz);

#endif
