/*
 * check_dns - the DNS evidence the daemon would gather for one request
 * (SPF with its probe, the DNS lists), for greyholdctl check (see
 * check_dns.c).  Plain values: no libuv here.
 */
#ifndef GREYHOLD_CTL_CHECK_DNS_H
#define GREYHOLD_CTL_CHECK_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dns_result.h"
#include "smart.h"

/* Longest list spec kept ("ZONE" or "ZONE:MIN"), as evidence.c keeps it. */
#define CHECK_ZONE_MAX 208

struct check_list {
	char zone[CHECK_ZONE_MAX];
	bool allow;			/* an allowlist (dnswl) */
	bool answered;			/* within dns_budget */
	enum dns_status status;		/* when answered */
	bool listed;			/* an answer that counts */
};

struct check_evidence {
	bool asked;			/* the resolver was asked */
	char why_not[320];		/* why not, when not asked */
	bool spf_wanted;		/* some rule reads SPF */
	/* What smart_assess() reads; its strings point into this struct,
	   so it is not to be copied. */
	struct smart_evidence ev;
	char spf_why[160];
	bool probed;			/* the probe ran (after a pass) */
	enum spf_result probe;
	char spf_domain[DNS_NAME_MAX + 1];
	char authorised_by[DNS_NAME_MAX + 1];
	char dnswl_zone[CHECK_ZONE_MAX];
	char dnsbl_zone[CHECK_ZONE_MAX];
	bool budget_spent;		/* dns_budget ran out first */
	size_t n_lists;
	struct check_list lists[CONFIG_MAX_DNS_LISTS];
};

struct check_dns_input {
	const char *client_address;
	const char *sender;		/* "" for <> */
	const char *helo;		/* "" when none */
	const char *receiver;		/* our host name, for %{r} */
	int64_t now;
};

/*
 * Gather the evidence with the daemon's own modules (evidence.c on a
 * resolver opened from cfg), on a private loop, within cfg's dns_budget.
 * With nothing to ask (no rule reads SPF, no lists) or a resolver that
 * does not open, out->asked is false and out->why_not says why: the
 * daemon then decides without evidence too.  Returns 0, or a negative
 * errno when the loop itself cannot run.
 */
int check_dns_gather(const struct config *cfg, const struct check_dns_input *in,
		     struct check_evidence *out);

/* "vouches", "listed", "not listed", "failed (...)", "no answer in time" */
const char *check_list_answer(const struct check_list *l);

#endif
