/*
 * cmd_forget - forget: remove every record about a person or a host, for
 * a privacy request.
 *
 * For an email address: triplets whose sender is that address (normalised
 * as a sender) or whose sender or recipient is that mailbox in any case
 * and with any +extension, and the triplets of name and SPF identities
 * whose sender is the address with its organisational domain, as the
 * daemon keys them (identity.h).  For an IP address: triplets whose client
 * network holds it, and that network's auto-whitelist record (identity
 * records hold no address).  With
 * privacy = yes only the forms that can be hashed match (a hash has no
 * case or +extension).  Live whitelist entries naming it are counted, not
 * removed: they are configuration.  Deletion runs in DB_CHUNK-record
 * transactions; what was removed before an error stays removed.
 */
#include "cmd_forget.h"

#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "args.h"
#include "identity.h"
#include "keys.h"
#include "output.h"

struct forget {
	bool by_ip;
	struct addr ip;
	char base[TRIPLET_MAX_ADDR];	/* lower case, no +extension */
	size_t base_len;
	char sender[TRIPLET_MAX_ADDR];	/* normalised as a sender */
	size_t sender_len;
	/* ...with its domain reduced to the organisational domain, as the
	   daemon keys the sender of a name or SPF identity. */
	char reduced[TRIPLET_MAX_ADDR];
	size_t reduced_len;
	size_t triplets, clients, wl_entries;
	/*
	 * With privacy: hashes of the forms that can be hashed (a hash has
	 * no case or +extension to compare): the client network of the IP;
	 * the address normalised as a sender, without +extension and with
	 * its organisational domain (which matches any record's sender: a
	 * hash does not say whether its record is an identity's); as a
	 * recipient as given (lower case) and without +extension.
	 */
	bool hashed;
	uint8_t client_h[PRIVACY_HASH_BYTES];
	uint8_t sender_h[3][PRIVACY_HASH_BYTES];
	uint8_t rcpt_h[2][PRIVACY_HASH_BYTES];
};

static bool
mem_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

/*
 * An address in lower case without its +extension, into out
 * (TRIPLET_MAX_ADDR bytes): every variant of one mailbox gives one text.
 */
static size_t
mailbox_base(char *out, const char *addr, size_t len)
{
	size_t n = triplet_normalise_recipient(out, addr, len);
	char *at = memchr(out, '@', n);
	size_t local = at != NULL ? (size_t)(at - out) : n;
	char *plus = local > 1 ? memchr(out + 1, '+', local - 1) : NULL;

	if (plus == NULL)
		return n;
	if (at == NULL)
		return (size_t)(plus - out);
	memmove(plus, at, (size_t)(out + n - at));
	return n - (size_t)(at - plus);
}

static bool
net_contains(const char *client, size_t len, const struct addr *ip)
{
	struct addr net;
	unsigned prefix;

	return parse_net(client, len, &net, &prefix) &&
	       net.family == ip->family && addr_in_net(ip, &net, prefix);
}

static bool
mailbox_is(const struct forget *f, const char *addr, size_t len)
{
	char base[TRIPLET_MAX_ADDR];
	size_t n = mailbox_base(base, addr, len);

	return mem_eq(base, n, f->base, f->base_len);
}

static void
forget_hashes(const struct ctl *ctl, struct forget *f, const char *arg)
{
	const struct privacy *pv = &ctl->privacy;
	char text[TRIPLET_MAX_ADDR];
	size_t len;

	if (!ctl->privacy_on)
		return;
	f->hashed = true;
	if (f->by_ip) {
		triplet_client(text, sizeof(text), &len, arg, strlen(arg),
			       &ctl->topts);
		privacy_hash(pv, PRIVACY_CLIENT, text, len, f->client_h);
		return;
	}
	len = triplet_normalise_recipient(text, arg, strlen(arg));
	privacy_hash(pv, PRIVACY_SENDER, f->sender, f->sender_len, f->sender_h[0]);
	privacy_hash(pv, PRIVACY_SENDER, f->base, f->base_len, f->sender_h[1]);
	privacy_hash(pv, PRIVACY_SENDER, f->reduced, f->reduced_len,
		     f->sender_h[2]);
	privacy_hash(pv, PRIVACY_RECIPIENT, text, len, f->rcpt_h[0]);
	privacy_hash(pv, PRIVACY_RECIPIENT, f->base, f->base_len, f->rcpt_h[1]);
}

static bool
forget_hashed(const struct forget *f, const struct key_parts *p)
{
	if (!f->hashed)
		return false;
	if (f->by_ip)
		return hash_eq(p, p->client, f->client_h);
	for (int i = 0; i < 2; i++) {
		if (hash_eq(p, p->sender, f->sender_h[i]) ||
		    hash_eq(p, p->rcpt, f->rcpt_h[i]))
			return true;
	}
	return hash_eq(p, p->sender, f->sender_h[2]);
}

static int
forget_triplet(const char *key, size_t len, const struct record *r, void *arg)
{
	struct forget *f = arg;
	struct key_parts p;
	bool hit;

	(void)r;
	if (!split_key(key, len, &p))
		return DB_WALK_KEEP;
	if (p.hashed)
		hit = forget_hashed(f, &p);
	else if (f->by_ip)
		hit = net_contains(p.client, p.client_len, &f->ip);
	else
		hit = mem_eq(p.sender, p.sender_len, f->sender, f->sender_len) ||
		      mailbox_is(f, p.sender, p.sender_len) ||
		      mailbox_is(f, p.rcpt, p.rcpt_len) ||
		      (identity_kind(p.client, p.client_len) != NULL &&
		       mem_eq(p.sender, p.sender_len, f->reduced,
			      f->reduced_len));
	if (!hit)
		return DB_WALK_KEEP;
	f->triplets++;
	return DB_WALK_DELETE;
}

static int
forget_client(const char *key, size_t len, const struct record *r, void *arg)
{
	struct forget *f = arg;
	struct key_parts p;

	(void)r;
	client_parts(key, len, &p);
	if (p.hashed ? !forget_hashed(f, &p) : !net_contains(key, len, &f->ip))
		return DB_WALK_KEEP;
	f->clients++;
	return DB_WALK_DELETE;
}

static int
count_wl_mentions(const struct db_wl_entry *e, void *arg)
{
	struct forget *f = arg;

	if (mailbox_is(f, e->entry, strlen(e->entry)))
		f->wl_entries++;
	return 0;
}

static int
parse_forget_target(struct forget *f, const char *arg)
{
	size_t len = strlen(arg);

	if (addr_parse(&f->ip, arg, len) == 0) {
		f->by_ip = true;
	} else if (strchr(arg, '@') == NULL || len > TRIPLET_MAX_ADDR) {
		fprintf(stderr, "greyholdctl: forget takes an email address or "
			"an IP address, not '%s'\n", arg);
		return -1;
	}
	f->base_len = mailbox_base(f->base, arg, len);
	f->sender_len = triplet_normalise_sender(f->sender, arg, len);
	return 0;
}

/* The sender as an identity's key holds it (identity.h). */
static int
reduce_sender(struct ctl *ctl, struct forget *f)
{
	if (f->by_ip)
		return 0;
	if (open_ident(ctl) < 0)
		return -1;
	f->reduced_len = ident_sender_org(ctl->ident, f->reduced, f->sender,
					  f->sender_len);
	return 0;
}

int
cmd_forget(struct ctl *ctl, int argc, char **argv)
{
	struct forget f;
	int rc;

	if (argc != 2)
		return -1;
	memset(&f, 0, sizeof(f));
	if (parse_forget_target(&f, argv[1]) < 0 || reduce_sender(ctl, &f) < 0)
		return EXIT_ERROR;
	if (open_db(ctl, OPEN_WRITE) < 0)
		return EXIT_ERROR;
	forget_hashes(ctl, &f, argv[1]);
	rc = db_walk(ctl->db, DB_TRIPLETS, true, forget_triplet, &f);
	if (rc == 0 && f.by_ip)
		rc = db_walk(ctl->db, DB_CLIENTS, true, forget_client, &f);
	if (rc == 0)
		rc = db_wl_foreach(ctl->db, count_wl_mentions, &f);
	if (rc < 0)
		return db_failed("forget failed (records removed so far stay "
				 "removed; run it again)", rc);
	if (ctl->json) {
		printf("{\"forgotten\":");
		json_string(stdout, argv[1]);
		printf(",\"triplets\":%zu,\"clients\":%zu,"
		       "\"live_whitelist_entries\":%zu}\n", f.triplets, f.clients,
		       f.wl_entries);
	} else {
		printf("removed %zu triplet%s and %zu client record%s about %s\n",
		       f.triplets, f.triplets == 1 ? "" : "s", f.clients,
		       f.clients == 1 ? "" : "s", argv[1]);
		if (f.wl_entries > 0)
			printf("%zu live whitelist entr%s name%s it; remove them "
			       "with 'whitelist del' if they should go too\n",
			       f.wl_entries, f.wl_entries == 1 ? "y" : "ies",
			       f.wl_entries == 1 ? "s" : "");
	}
	return f.triplets + f.clients > 0 ? 0 : EXIT_NOTFOUND;
}
