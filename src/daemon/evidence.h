/*
 * evidence - what DNS says about one request, gathered on the loop thread:
 * the sender's SPF result for the client address (and, after a pass, for
 * a documentation address, so a record that passes for anyone proves
 * nothing: spf_proven()), and the configured DNS allow- and blocklists.
 * smart_assess() (src/lib/smart.h) turns it into trust and identities.
 *
 * Everything runs within the request's budget (dns_budget): when it runs
 * out, the request goes on with what is known; a failed or refused lookup
 * simply leaves its piece out.  DNS trouble therefore means plain
 * greylisting for that request, never a stall and never an open door.
 *
 * Ownership: evidence_start() copies the strings it needs.  The callback
 * runs once, from the loop, never inside evidence_start(); the
 * smart_evidence it gets is valid during the call only.
 * evidence_cancel() (the caller's connection is gone) means the callback
 * never runs.  The request's memory lives until its last lookup has
 * answered, which the resolver guarantees within its timeout.
 */
#ifndef GREYHOLD_EVIDENCE_H
#define GREYHOLD_EVIDENCE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "dns.h"
#include "smart.h"

struct evidence;

struct evidence_opts {
	uv_loop_t *loop;
	bool spf;			/* evaluate SPF (some rule uses it) */
	const char *receiver;		/* our host name, for %{r} */
	const struct config_list *dnswl;	/* "ZONE" or "ZONE:MIN" */
	const struct config_list *dnsbl;	/* "ZONE" */
	uint32_t budget_ms;
};

struct evidence_input {
	const char *client_address;
	const char *sender;		/* "" for <> */
	const char *helo;
	int64_t now;
};

/* One DNS list's answer (greyholdctl check shows each). */
struct evidence_list {
	const char *zone;		/* as configured ("ZONE" or "ZONE:MIN") */
	bool allow;			/* an allowlist (dnswl) */
	bool answered;			/* its answer came within the budget */
	enum dns_status status;		/* when answered */
	bool listed;			/* an answer that counts */
};

/* What came back, for logs and metrics as well as smart_assess(). */
struct evidence_report {
	struct smart_evidence ev;
	char spf_why[160];		/* spf_why() of the real evaluation */
	bool probed;			/* the probe ran (after a pass) */
	enum spf_result probe;		/* its result, when probed */
	const char *dnswl_zone;		/* the list that vouched, or NULL */
	const char *dnsbl_zone;		/* the list that listed, or NULL */
	bool budget_spent;		/* the budget ran out first */
	size_t n_lists;			/* lists asked: allowlists first */
	struct evidence_list lists[CONFIG_MAX_DNS_LISTS];
};

typedef void (*evidence_cb)(void *arg, const struct evidence_report *rep);

/* Which list answers count: dnslist_answer_counts() (src/lib/dnslist.h). */

/*
 * Start gathering; 0 with *out set, or a negative errno (the caller goes
 * on without evidence).
 */
int evidence_start(struct dns_resolver *dns, const struct evidence_opts *o,
		   const struct evidence_input *in, evidence_cb cb, void *arg,
		   struct evidence **out);

/* The caller no longer wants the answer; the callback will not run. */
void evidence_cancel(struct evidence *e);

#endif
