/*
 * record_view - triplet and auto-whitelist records as tables, sentences
 * and JSON objects, shared by list, show and check.
 *
 * A record's state is judged as the daemon judges it (engine.c, with the
 * config's parameters and ctl->now).  Keys are shown as the user gave them
 * (the plain key), with a note when the database holds them hashed.
 * Everything goes to standard output.
 */
#include "record_view.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "identity.h"
#include "output.h"

/* Whether the state of a record is "passed" (a triplet) or "listed". */
static const char *
triplet_state(const struct record *r)
{
	return r->passes > 0 ? "passed" : "pending";
}

static const char *
client_state(const struct ctl *ctl, const struct record *r)
{
	return engine_client_listed(r, ctl->now, &ctl->params) ? "listed"
							       : "counting";
}

/* A client part for a terminal: an identity readably, else shown(). */
static const char *
client_shown(char *out, size_t outsz, const char *client, size_t len,
	     bool hashed)
{
	const char *id = hashed ? NULL : identity_shown(out, outsz, client, len);

	return id != NULL ? id : shown(out, outsz, client, len, hashed);
}

static void
client_json(const char *client, size_t len, bool hashed)
{
	char id[IDENTITY_SHOWN_MAX];

	if (!hashed && identity_shown(id, sizeof(id), client, len) != NULL)
		json_string(stdout, id);
	else
		json_part(stdout, client, len, hashed);
}

void
print_record_json(const struct ctl *ctl, const struct key_parts *p,
		  const struct record *r)
{
	printf("{\"client\":");
	client_json(p->client, p->client_len, p->hashed);
	if (p->sender != NULL) {
		printf(",\"sender\":");
		json_part(stdout, p->sender, p->sender_len, p->hashed);
		printf(",\"recipient\":");
		json_part(stdout, p->rcpt, p->rcpt_len, p->hashed);
	}
	printf(",\"state\":\"%s\",\"first_seen\":%" PRId64 ",\"last_seen\":%"
	       PRId64 ",\"passes\":%" PRIu32 "}",
	       p->sender != NULL ? triplet_state(r) : client_state(ctl, r),
	       r->first_seen, r->last_seen, r->passes);
}

void
print_triplet_row(const struct key_parts *p, const struct record *r, bool head)
{
	char c[SHOWN_MAX], s[SHOWN_MAX], t[SHOWN_MAX];
	char first[32], last[32];

	if (head)
		printf("%-18s %-30s %-30s %-7s %-20s %-20s %s\n", "CLIENT",
		       "SENDER", "RECIPIENT", "STATE", "FIRST SEEN", "LAST SEEN",
		       "PASSES");
	format_time(first, sizeof(first), r->first_seen);
	format_time(last, sizeof(last), r->last_seen);
	printf("%-18s %-30s %-30s %-7s %-20s %-20s %" PRIu32 "\n",
	       client_shown(c, sizeof(c), p->client, p->client_len, p->hashed),
	       shown(s, sizeof(s), p->sender, p->sender_len, p->hashed),
	       shown(t, sizeof(t), p->rcpt, p->rcpt_len, p->hashed),
	       triplet_state(r),
	       first, last, r->passes);
}

void
print_client_row(const struct ctl *ctl, const struct key_parts *p,
		 const struct record *r, bool head)
{
	char c[SHOWN_MAX], first[32], last[32];

	if (head)
		printf("%-43s %-8s %-20s %-20s %s\n", "CLIENT", "STATE",
		       "FIRST PASS", "LAST PASS", "PASSES");
	format_time(first, sizeof(first), r->first_seen);
	format_time(last, sizeof(last), r->last_seen);
	printf("%-43s %-8s %-20s %-20s %" PRIu32 "\n",
	       client_shown(c, sizeof(c), p->client, p->client_len, p->hashed),
	       client_state(ctl, r), first, last, r->passes);
}

static void
key_parts_of(const struct triplet_key *k, struct key_parts *p)
{
	if (!split_key(k->key, k->key_len, p)) {
		/* cannot happen: triplet_build keeps NULs out of the parts */
		memset(p, 0, sizeof(*p));
	}
}

void
print_key_human(const struct ctl *ctl, const struct keyed *kd)
{
	struct key_parts p;
	char c[SHOWN_MAX], s[SHOWN_MAX], t[SHOWN_MAX];

	key_parts_of(&kd->plain, &p);
	printf("key:        client %s, sender %s, recipient %s%s\n",
	       client_shown(c, sizeof(c), p.client, p.client_len, false),
	       shown(s, sizeof(s), p.sender, p.sender_len, false),
	       shown(t, sizeof(t), p.rcpt, p.rcpt_len, false),
	       ctl->privacy_on ? " (stored as keyed hashes)" : "");
}

void
print_triplet_human(const struct ctl *ctl, const struct record *r)
{
	char first[32], last[32], age[32];

	format_time(first, sizeof(first), r->first_seen);
	format_time(last, sizeof(last), r->last_seen);
	format_age(age, sizeof(age), ctl->now - r->first_seen);
	printf("triplet:    %s, first seen %s (%s ago), last seen %s, "
	       "%" PRIu32 " pass%s\n", triplet_state(r), first, age, last,
	       r->passes, r->passes == 1 ? "" : "es");
}

void
print_client_human(const struct ctl *ctl, const char *client,
		   const struct record *r)
{
	char last[32], c[SHOWN_MAX];

	client = client_shown(c, sizeof(c), client, strlen(client), false);
	if (r == NULL) {
		printf("client:     %s has no counted passes\n", client);
		return;
	}
	format_time(last, sizeof(last), r->last_seen);
	printf("client:     %s: %s, %" PRIu32 " counted pass%s (auto-whitelist "
	       "after %u), last %s\n", client, client_state(ctl, r), r->passes,
	       r->passes == 1 ? "" : "es", ctl->params.awl_passes, last);
}

/* Opens an object: {"key":{...},"hashed":B */
void
print_key_json(const struct ctl *ctl, const struct keyed *kd)
{
	struct key_parts p;

	key_parts_of(&kd->plain, &p);
	printf("{\"key\":{\"client\":");
	client_json(p.client, p.client_len, false);
	printf(",\"sender\":");
	json_mem(stdout, p.sender, p.sender_len);
	printf(",\"recipient\":");
	json_mem(stdout, p.rcpt, p.rcpt_len);
	printf("},\"hashed\":%s", ctl->privacy_on ? "true" : "false");
}

/* A record under the plain (shown) key parts. */
void
print_plain_json(const struct ctl *ctl, const struct keyed *kd, bool client,
		 const struct record *r)
{
	struct key_parts p;

	if (r == NULL) {
		printf("null");
		return;
	}
	key_parts_of(&kd->plain, &p);
	if (client)
		p.sender = NULL;
	print_record_json(ctl, &p, r);
}
