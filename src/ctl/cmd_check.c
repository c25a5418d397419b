/*
 * cmd_check - check: what the daemon would answer to one request now,
 * and why, changing nothing.
 *
 * The steps are the daemon's, in its order: an authenticated client; the
 * static then the live client whitelist; the static then the live
 * recipient whitelist; then smart greylisting (check_smart.c: the
 * identities, the DNS evidence gathered by the daemon's own code, trust)
 * and the auto-whitelist and triplet records of every identity through
 * the one decision function, decide_request(), on copies of the records.
 * The reasons and the reply are the daemon's own (engine_reason_name(),
 * smart_trust_name(), answer.c).  A live
 * entry is matched by building a whitelist of that entry alone, so the
 * matching entry can be named.
 *
 * Exit: 0 if the request would pass, EXIT_NOTFOUND if it would be deferred.
 */
#include "cmd_check.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "answer.h"
#include "args.h"
#include "check_smart.h"
#include "check_view.h"
#include "keys.h"
#include "output.h"
#include "policy.h"
#include "record_view.h"
#include "whitelist.h"

/* What the daemon would do with one request, and why. */
struct explanation {
	bool pass;
	const char *reason;		/* as the daemon logs it */
	char rule[WHITELIST_MAX_ENTRY + DB_WL_COMMENT_MAX + 64];
	char reply[ANSWER_REPLY_MAX];
	struct keyed key;
	size_t live_entries;
	bool wl_checked;		/* reached the whitelists */
	bool awl_checked;		/* reached the auto-whitelist */
	bool awl_on;			/* auto-whitelist applies to this client */
	bool have_client;
	struct record client;
	bool triplet_looked_up;
	bool have_triplet;
	struct record triplet;
	struct engine_verdict verdict;
	char reason_buf[CHECK_ZONE_MAX + 32];
	bool smart;			/* reached greylisting (check_smart) */
	struct check_smart cs;
};

struct live_list {
	struct db_wl_entry *v;
	size_t n, cap;
	int64_t now;
};

static int
collect_live(const struct db_wl_entry *e, void *arg)
{
	struct live_list *l = arg;
	struct db_wl_entry *grown;

	if (e->expires != 0 && e->expires <= l->now)
		return 0;	/* the daemon ignores expired entries */
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		grown = realloc(l->v, l->cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		l->v = grown;
	}
	l->v[l->n++] = *e;
	return 0;
}

static struct policy_str
pstr(const char *s)
{
	struct policy_str p = {s, s != NULL ? strlen(s) : 0};
	return p;
}

/* Whether one live entry matches the request (built alone, as a list). */
static bool
live_entry_matches(const struct db_wl_entry *e, const struct policy_request *r)
{
	whitelist_t *wl;
	char err[300];
	bool hit = false;

	if (whitelist_create(&wl) < 0)
		return false;
	if (whitelist_add(wl, e->kind, e->entry, err, sizeof(err)) == 0 &&
	    whitelist_finish(wl) == 0) {
		hit = e->kind == WHITELIST_CLIENTS
		      ? whitelist_match_client(wl, r->client_address.ptr,
					       r->client_address.len,
					       r->client_name.ptr,
					       r->client_name.len)
		      : whitelist_match_recipient(wl, r->recipient.ptr,
						  r->recipient.len);
	}
	whitelist_free(wl);
	return hit;
}

static bool
live_match(const struct live_list *l, enum whitelist_kind kind,
	   const struct policy_request *r, struct explanation *x)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct db_wl_entry *e = &l->v[i];

		if (e->kind != kind || !live_entry_matches(e, r))
			continue;
		snprintf(x->rule, sizeof(x->rule), "live %s entry %s%s%s",
			 kind == WHITELIST_CLIENTS ? "client" : "recipient",
			 e->entry, e->comment[0] ? ": " : "", e->comment);
		return true;
	}
	return false;
}

/*
 * The whitelists in the daemon's order: static client, live client,
 * static recipient, live recipient.  Returns 0 or EXIT_ERROR.
 */
static int
check_whitelists(struct ctl *ctl, const struct policy_request *r,
		 struct explanation *x)
{
	struct live_list live = {NULL, 0, 0, ctl->now};
	whitelist_t *wl;
	char err[1024];
	int rc;

	if (whitelist_load_config(&wl, ctl->cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "greyholdctl: %s\n", err);
		return EXIT_ERROR;
	}
	rc = db_wl_foreach(ctl->db, collect_live, &live);
	if (rc < 0) {
		whitelist_free(wl);
		free(live.v);
		return db_failed("cannot read the live whitelist", rc);
	}
	x->live_entries = live.n;
	x->wl_checked = true;
	if (whitelist_match_client(wl, r->client_address.ptr,
				   r->client_address.len, r->client_name.ptr,
				   r->client_name.len)) {
		x->reason = "client whitelist";
		snprintf(x->rule, sizeof(x->rule), "a client entry of the "
			 "whitelist files");
	} else if (live_match(&live, WHITELIST_CLIENTS, r, x)) {
		x->reason = "client whitelist (live)";
	} else if (whitelist_match_recipient(wl, r->recipient.ptr,
					     r->recipient.len)) {
		x->reason = "recipient whitelist";
		snprintf(x->rule, sizeof(x->rule), "a recipient entry of the "
			 "whitelist files");
	} else if (live_match(&live, WHITELIST_RECIPIENTS, r, x)) {
		x->reason = "recipient whitelist (live)";
	}
	x->pass = x->reason != NULL;
	whitelist_free(wl);
	free(live.v);
	return 0;
}

static void
hostname_for(const struct config *cfg, char *out, size_t outsz)
{
	if (cfg->hostname[0] != '\0')
		snprintf(out, outsz, "%s", cfg->hostname);
	else if (gethostname(out, outsz) < 0)
		snprintf(out, outsz, "localhost");
	out[outsz - 1] = '\0';
}

/*
 * Greylisting as the daemon takes it (check_smart.c): identities, the DNS
 * evidence, trust, and decide_request() over every identity's records,
 * on copies: the result is shown, never stored.
 */
static int
check_records(struct ctl *ctl, const struct policy_request *r,
	      struct explanation *x)
{
	const struct check_ident *net = &x->cs.id[0];
	char domain[256], host[256];
	int rc;

	hostname_for(ctl->cfg, host, sizeof(host));
	x->awl_checked = true;
	rc = check_smart_run(ctl, r, host, &x->cs);
	if (rc != 0)
		return rc;
	x->smart = true;
	x->awl_on = net->awl;
	x->have_client = net->have_client;
	x->client = net->client;
	x->have_triplet = net->have_triplet;
	x->triplet = net->triplet;
	if (!x->cs.decided) {
		/* A trusted sender: DUNNO before any record is decided. */
		x->pass = true;
		snprintf(x->reason_buf, sizeof(x->reason_buf), "%s%s%s%s",
			 smart_trust_name(x->cs.out.trust),
			 x->cs.out.trust == SMART_DNSWL ? " (" : "",
			 x->cs.out.trust == SMART_DNSWL ? x->cs.dns.dnswl_zone
							: "",
			 x->cs.out.trust == SMART_DNSWL ? ")" : "");
		x->reason = x->reason_buf;
		check_smart_trust_why(&x->cs, x->rule, sizeof(x->rule));
		x->triplet_looked_up = true;
		return 0;
	}
	x->verdict = x->cs.verdict;
	x->pass = x->verdict.action == ENGINE_PASS;
	x->reason = engine_reason_name(x->verdict.reason);
	/* A listed client is decided before its triplet is looked at. */
	x->triplet_looked_up = x->verdict.reason != ENGINE_AWL;
	if (x->verdict.reason == ENGINE_AWL)
		return 0;
	if (x->verdict.reason == ENGINE_PASSED && ctl->cfg->x_greylist_header) {
		answer_prepend(x->reply, sizeof(x->reply), x->verdict.delay,
			       host, ctl->now);
	} else {
		answer_rcpt_domain(domain, sizeof(domain), r);
		answer_reply(x->reply, sizeof(x->reply), ctl->cfg, &x->verdict,
			     0, domain);
	}
	return 0;
}

static int
explain(struct ctl *ctl, const struct policy_request *r, struct explanation *x)
{
	int rc;

	triplet_build(&x->key.plain, r->client_address.ptr,
		      r->client_address.len, r->sender.ptr, r->sender.len,
		      r->recipient.ptr, r->recipient.len, &ctl->topts);
	store_form(ctl, &x->key);
	answer_dunno(x->reply, sizeof(x->reply));
	if (answer_classify(r, ctl->cfg) == ANSWER_AUTHENTICATED) {
		x->pass = true;
		x->reason = "authenticated";
		snprintf(x->rule, sizeof(x->rule), "sasl_username is set and "
			 "greylist_authenticated is no");
		return 0;
	}
	rc = check_whitelists(ctl, r, x);
	if (rc != 0 || x->pass)
		return rc;
	return check_records(ctl, r, x);
}

/* The reply without its final empty line, for display. */
static const char *
reply_line(struct explanation *x)
{
	char *nl = strchr(x->reply, '\n');

	if (nl != NULL)
		*nl = '\0';
	return x->reply;
}

static void
print_explanation_json(const struct ctl *ctl, struct explanation *x,
		       const struct policy_request *r)
{
	print_key_json(ctl, &x->key);
	printf(",\"action\":\"%s\",\"reason\":", x->pass ? "pass" : "defer");
	json_string(stdout, x->reason);
	printf(",\"rule\":");
	json_string(stdout, x->rule);
	printf(",\"reply\":");
	json_string(stdout, reply_line(x));
	printf(",\"seconds_left\":%" PRId64 ",\"live_whitelist_entries\":%zu"
	       ",\"client\":", x->pass ? 0 : x->verdict.seconds_left,
	       x->live_entries);
	print_plain_json(ctl, &x->key, true,
			 x->have_client ? &x->client : NULL);
	printf(",\"triplet\":");
	print_plain_json(ctl, &x->key, false,
			 x->have_triplet ? &x->triplet : NULL);
	if (x->smart)
		check_view_json(ctl, &x->cs, r);
	printf(",\"changed\":false}\n");
}

static void
print_verdict_human(const struct explanation *x)
{
	char left[32];

	const char *by = x->smart ? check_view_decider(&x->cs) : NULL;

	if (x->pass && by != NULL) {
		printf("verdict:    pass (%s) by identity %s\n", x->reason, by);
		return;
	}
	if (x->pass) {
		printf("verdict:    pass (%s)%s%s\n", x->reason,
		       x->rule[0] ? ": " : "", x->rule);
		return;
	}
	format_age(left, sizeof(left), x->verdict.seconds_left);
	printf("verdict:    defer (%s): a retry can pass in %s\n", x->reason,
	       left);
}

static void
print_explanation_human(const struct ctl *ctl, struct explanation *x,
			const struct policy_request *r)
{
	print_key_human(ctl, &x->key);
	if (x->wl_checked && (x->rule[0] == '\0' || x->smart))
		printf("whitelists: no entry matches (files and %zu live "
		       "entr%s)\n", x->live_entries,
		       x->live_entries == 1 ? "y" : "ies");
	if (x->smart)
		check_view_evidence_human(ctl, &x->cs, r);
	if (x->awl_checked && !x->awl_on)
		printf("client:     auto-whitelist %s\n",
		       ctl->params.awl_passes == 0 ? "off" :
		       "not used for this client (no usable address)");
	else if (x->awl_checked)
		print_client_human(ctl, x->key.plain.client,
				   x->have_client ? &x->client : NULL);
	if (x->triplet_looked_up && x->have_triplet)
		print_triplet_human(ctl, &x->triplet);
	else if (x->triplet_looked_up)
		printf("triplet:    not in the database\n");
	if (x->smart)
		check_view_identities_human(ctl, &x->cs);
	print_verdict_human(x);
	printf("reply:      %s\n", reply_line(x));
	printf("(nothing was changed)\n");
}

static int
parse_check_options(int argc, char **argv, struct policy_request *r,
		    bool *no_dns)
{
	static const struct option opts[] = {
		{"client-name", required_argument, NULL, 'n'},
		{"helo", required_argument, NULL, 'H'},
		{"sasl-username", required_argument, NULL, 'u'},
		{"no-dns", no_argument, NULL, 'N'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'n')
			r->client_name = pstr(optarg);
		else if (ch == 'H')
			r->helo_name = pstr(optarg);
		else if (ch == 'u')
			r->sasl_username = pstr(optarg);
		else if (ch == 'N')
			*no_dns = true;
		else
			return EXIT_ERROR;
	}
	if (argc - optind != 3)
		return -1;
	r->client_address = pstr(argv[optind]);
	r->sender = pstr(sender_arg(argv[optind + 1]));
	r->recipient = pstr(argv[optind + 2]);
	return 0;
}

int
cmd_check(struct ctl *ctl, int argc, char **argv)
{
	struct policy_request r;
	struct explanation x;
	int rc;

	memset(&r, 0, sizeof(r));
	memset(&x, 0, sizeof(x));
	r.request = pstr("smtpd_access_policy");
	r.protocol_state = pstr("RCPT");
	r.client_name = pstr("unknown");	/* as Postfix says it */
	r.helo_name = pstr("");
	rc = parse_check_options(argc, argv, &r, &x.cs.no_dns);
	if (rc != 0)
		return rc;
	if (open_db(ctl, OPEN_READ) < 0)
		return EXIT_ERROR;
	rc = explain(ctl, &r, &x);
	if (rc != 0)
		return rc;
	if (ctl->json)
		print_explanation_json(ctl, &x, &r);
	else
		print_explanation_human(ctl, &x, &r);
	return x.pass ? 0 : EXIT_NOTFOUND;
}
