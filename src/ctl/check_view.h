/*
 * check_view - check's smart greylisting steps as lines and JSON (see
 * check_view.c).
 */
#ifndef GREYHOLD_CTL_CHECK_VIEW_H
#define GREYHOLD_CTL_CHECK_VIEW_H

#include "check_smart.h"

/* "name:", "sender:", "spf:", "dns lists:" and "trust:" lines. */
void check_view_evidence_human(const struct ctl *ctl,
			       const struct check_smart *cs,
			       const struct policy_request *r);

/* The further identities (after the network's), a block each. */
void check_view_identities_human(const struct ctl *ctl,
				 const struct check_smart *cs);

/* ,"smart":{...},"identities":[...],"identity":... (inside an object). */
void check_view_json(const struct ctl *ctl, const struct check_smart *cs,
		     const struct policy_request *r);

/* The identity that decided a pass ("name:ORG"), or NULL (the network). */
const char *check_view_decider(const struct check_smart *cs);

#endif
