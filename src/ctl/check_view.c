/*
 * check_view - what check found on the way to a smart greylisting
 * decision, on standard output: the name identity and why, the sender's
 * organisational domain, SPF (result, why, probe, authorising domain),
 * each DNS list's answer, the trust verdict and why, and each further
 * identity's keys and records.  Reads a check_smart; decides nothing.
 */
#include "check_view.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "output.h"
#include "record_view.h"

/* Whether SPF was evaluated at all, and if not, why into why. */
static bool
spf_evaluated(const struct check_smart *cs, const char **why)
{
	if (cs->fast)
		*why = "not needed: passed before any DNS lookup";
	else if (!cs->dns.asked)
		*why = cs->dns.why_not;
	else if (!cs->dns.spf_wanted)
		*why = "no rule reads it";
	else
		return true;
	return false;
}

static void
spf_human(const struct check_smart *cs)
{
	const struct check_evidence *d = &cs->dns;
	const char *why;

	if (!spf_evaluated(cs, &why)) {
		printf("spf:        not evaluated (%s)\n", why);
		return;
	}
	printf("spf:        %s%s%s%s\n", spf_result_name(d->ev.spf),
	       d->spf_why[0] != '\0' ? ": " : "", d->spf_why,
	       d->budget_spent ? " (dns_budget ran out)" : "");
	if (d->ev.spf_proven)
		printf("            proven: the probe for a documentation address "
		       "gives %s; authorised by %s's record\n",
		       spf_result_name(d->probe),
		       d->ev.spf_authorised_by != NULL ? d->ev.spf_authorised_by
						       : "?");
	else if (d->probed)
		printf("            not proven: the probe for a documentation "
		       "address gives %s too\n", spf_result_name(d->probe));
	else if (d->ev.spf == SPF_PASS)
		printf("            not proven: the probe did not finish\n");
}

static void
lists_human(const struct ctl *ctl, const struct check_smart *cs)
{
	const struct check_evidence *d = &cs->dns;

	if (ctl->cfg->dnswl.n + ctl->cfg->dnsbl.n == 0) {
		printf("dns lists:  none configured\n");
		return;
	}
	if (!d->asked) {
		printf("dns lists:  not asked (%s)\n",
		       cs->fast ? "passed before any DNS lookup" : d->why_not);
		return;
	}
	for (size_t i = 0; i < d->n_lists; i++)
		printf("%s%s %s: %s\n", i == 0 ? "dns lists:  " : "            ",
		       d->lists[i].allow ? "allowlist" : "blocklist",
		       d->lists[i].zone, check_list_answer(&d->lists[i]));
}

void
check_view_evidence_human(const struct ctl *ctl, const struct check_smart *cs,
			  const struct policy_request *r)
{
	char line[IDENT_MAX_NAME * 3 + 256];

	check_smart_name_why(cs, r, line, sizeof(line));
	printf("name:       %s\n", line);
	printf("sender:     organisational domain %s\n",
	       cs->out.sender_org[0] != '\0' ? cs->out.sender_org : "(none)");
	spf_human(cs);
	lists_human(ctl, cs);
	check_smart_trust_why(cs, line, sizeof(line));
	printf("trust:      %s: %s\n", smart_trust_name(cs->out.trust), line);
}

void
check_view_identities_human(const struct ctl *ctl,
			    const struct check_smart *cs)
{
	char s[SHOWN_MAX], t[SHOWN_MAX];
	struct key_parts p;

	for (size_t i = 1; i < cs->n; i++) {
		const struct check_ident *ci = &cs->id[i];

		if (!split_key(ci->key.plain.key, ci->key.plain.key_len, &p))
			continue;
		printf("identity:   %s, sender %s, recipient %s%s\n", ci->label,
		       shown(s, sizeof(s), p.sender, p.sender_len, false),
		       shown(t, sizeof(t), p.rcpt, p.rcpt_len, false),
		       ci->awl ? "" : " (not auto-whitelisted)");
		if (ci->awl)
			print_client_human(ctl, ci->key.plain.client,
					   ci->have_client ? &ci->client : NULL);
		if (ci->have_triplet)
			print_triplet_human(ctl, &ci->triplet);
		else
			printf("triplet:    not in the database\n");
	}
}

const char *
check_view_decider(const struct check_smart *cs)
{
	if (!cs->decided || cs->verdict.action != ENGINE_PASS ||
	    cs->matched == 0 || cs->matched >= cs->n)
		return NULL;
	return cs->id[cs->matched].label;
}

/* ---- JSON ----------------------------------------------------------------- */

static void
json_or_null(const char *s)
{
	if (s == NULL || s[0] == '\0')
		printf("null");
	else
		json_string(stdout, s);
}

static void
name_json(const struct check_smart *cs, const struct policy_request *r)
{
	char why[IDENT_MAX_NAME * 3 + 256];
	const struct smart_outcome *o = &cs->out;

	check_smart_name_why(cs, r, why, sizeof(why));
	printf("\"name\":{\"client_name\":");
	json_mem(stdout, r->client_name.ptr != NULL ? r->client_name.ptr : "",
		 r->client_name.len);
	printf(",\"org\":");
	json_or_null(o->name.why == IDENT_NAME_OK ? o->name.org : NULL);
	printf(",\"why\":\"%s\",\"aligned\":%s,\"identity\":%s,"
	       "\"auto_whitelist\":%s,\"explanation\":",
	       ident_name_why_str(o->name.why), o->name_aligned ? "true" : "false",
	       o->name_id ? "true" : "false", o->name_awl ? "true" : "false");
	json_string(stdout, why);
	printf("},\"sender_org\":");
	json_or_null(o->sender_org);
}

static void
spf_json(const struct check_smart *cs)
{
	const struct check_evidence *d = &cs->dns;
	const char *why;

	if (!spf_evaluated(cs, &why)) {
		printf(",\"spf\":{\"evaluated\":false,\"why_not\":");
		json_string(stdout, why);
		printf("}");
		return;
	}
	printf(",\"spf\":{\"evaluated\":true,\"result\":\"%s\",\"why\":",
	       spf_result_name(d->ev.spf));
	json_string(stdout, d->spf_why);
	printf(",\"probe\":");
	if (d->probed)
		printf("\"%s\"", spf_result_name(d->probe));
	else
		printf("null");
	printf(",\"proven\":%s,\"domain\":", d->ev.spf_proven ? "true" : "false");
	json_or_null(d->ev.spf_domain);
	printf(",\"authorised_by\":");
	json_or_null(d->ev.spf_authorised_by);
	printf(",\"budget_spent\":%s}", d->budget_spent ? "true" : "false");
}

static void
dns_json(const struct check_smart *cs)
{
	const struct check_evidence *d = &cs->dns;

	printf(",\"dns\":{\"asked\":%s,\"why_not\":", d->asked ? "true" : "false");
	json_or_null(d->asked ? NULL : cs->fast ? "passed before any DNS lookup"
						 : d->why_not);
	printf(",\"lists\":[");
	for (size_t i = 0; i < d->n_lists; i++) {
		printf("%s{\"zone\":", i > 0 ? "," : "");
		json_string(stdout, d->lists[i].zone);
		printf(",\"kind\":\"%s\",\"answer\":",
		       d->lists[i].allow ? "allow" : "block");
		json_string(stdout, check_list_answer(&d->lists[i]));
		printf(",\"listed\":%s}", d->lists[i].listed ? "true" : "false");
	}
	printf("]}");
}

static void
identity_json(const struct ctl *ctl, const struct check_ident *ci)
{
	struct key_parts p;

	printf("{\"identity\":");
	json_string(stdout, ci->label);
	if (!split_key(ci->key.plain.key, ci->key.plain.key_len, &p))
		memset(&p, 0, sizeof(p));
	printf(",\"key\":{\"client\":");
	json_string(stdout, strcmp(ci->label, "network") == 0
		    ? ci->key.plain.client : ci->label);
	printf(",\"sender\":");
	json_mem(stdout, p.sender != NULL ? p.sender : "", p.sender_len);
	printf(",\"recipient\":");
	json_mem(stdout, p.rcpt != NULL ? p.rcpt : "", p.rcpt_len);
	printf("},\"auto_whitelist\":%s,\"client\":", ci->awl ? "true" : "false");
	print_plain_json(ctl, &ci->key, true, ci->have_client ? &ci->client
							       : NULL);
	printf(",\"triplet\":");
	print_plain_json(ctl, &ci->key, false, ci->have_triplet ? &ci->triplet
								 : NULL);
	printf("}");
}

void
check_view_json(const struct ctl *ctl, const struct check_smart *cs,
		const struct policy_request *r)
{
	char why[IDENT_MAX_NAME * 3 + 256];

	printf(",\"smart\":{");
	name_json(cs, r);
	spf_json(cs);
	dns_json(cs);
	check_smart_trust_why(cs, why, sizeof(why));
	printf(",\"trust\":\"%s\",\"trust_why\":", smart_trust_name(cs->out.trust));
	json_string(stdout, why);
	printf(",\"fast_path\":%s,\"delay\":%" PRId64 "}",
	       cs->fast ? "true" : "false", cs->delay);
	printf(",\"identities\":[");
	for (size_t i = 0; i < cs->n; i++) {
		if (i > 0)
			putchar(',');
		identity_json(ctl, &cs->id[i]);
	}
	printf("],\"identity\":");
	json_or_null(check_view_decider(cs));
}
