/*
 * triplet - build the greylisting keys from a request's fields.
 *
 * Pure.  A triplet key is  CLIENT '\0' SENDER '\0' RECIPIENT  where CLIENT is
 * the client network in canonical text ("192.0.2.0/24", "2001:db8::/64",
 * or "192.0.2.7/32" when looking up by host), SENDER is the normalised
 * envelope sender and RECIPIENT the lower-cased recipient.  The client key
 * alone keys the auto-whitelist.  Keys are text so that mdb_dump and
 * greyholdctl show them as they are, and a client's records sort together.
 *
 * Sender and recipient are cut at TRIPLET_MAX_ADDR bytes so a key always
 * fits LMDB's 511-byte key limit; RFC 5321 paths are at most 256 bytes.
 */
#ifndef GREYHOLD_TRIPLET_H
#define GREYHOLD_TRIPLET_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

#define TRIPLET_MAX_ADDR 230
#define TRIPLET_MAX_CLIENT ADDR_NET_STRLEN
#define TRIPLET_MAX_KEY (TRIPLET_MAX_CLIENT + 1 + TRIPLET_MAX_ADDR + 1 + TRIPLET_MAX_ADDR)

struct triplet_opts {
	bool by_host;		/* full address instead of the subnet */
	unsigned ipv4_prefix;	/* 24 by default */
	unsigned ipv6_prefix;	/* 64 by default */
};

struct triplet_key {
	char client[TRIPLET_MAX_CLIENT];	/* NUL-terminated */
	size_t client_len;
	/*
	 * Whether client is a real network.  When Postfix sent no usable
	 * address ("unknown"), every such client shares one client key, which
	 * must never be auto-whitelisted.
	 */
	bool client_is_net;
	char key[TRIPLET_MAX_KEY];		/* not NUL-terminated */
	size_t key_len;
};

/*
 * Client key from client_address text; returns whether it parsed as an
 * address.  An address that does not parse (Postfix may say "unknown")
 * keys as its lower-cased text, cut to fit, so such clients are still
 * greylisted by sender and recipient.
 */
bool triplet_client(char *out, size_t outsz, size_t *outlen,
		    const char *addr, size_t addr_len,
		    const struct triplet_opts *opts);

/*
 * The same from an address parsed once for the whole request: client is
 * addr_parse()'s result on text (family ADDR_NONE when it did not parse,
 * and then text keys as above).
 */
bool triplet_client_addr(char *out, size_t outsz, size_t *outlen,
			 const struct addr *client, const char *text,
			 size_t text_len, const struct triplet_opts *opts);

/*
 * Normalise an envelope sender into out (at most TRIPLET_MAX_ADDR bytes):
 * lower case; BATV "prvs=TAG=" and SRS0/SRS1 hashes and timestamps folded;
 * "+extension" dropped from the local part; all-digit VERP tokens in the
 * local part replaced with '#'.  The null sender stays empty.
 * Returns the length written.
 */
size_t triplet_normalise_sender(char *out, const char *sender, size_t len);

/* Lower-cased recipient, cut to TRIPLET_MAX_ADDR bytes. */
size_t triplet_normalise_recipient(char *out, const char *rcpt, size_t len);

/* Build client and triplet key for one request. */
void triplet_build(struct triplet_key *out, const char *client_addr,
		   size_t client_len, const char *sender, size_t sender_len,
		   const char *rcpt, size_t rcpt_len,
		   const struct triplet_opts *opts);

/* triplet_build() with the client address already parsed, as above. */
void triplet_build_addr(struct triplet_key *out, const struct addr *client,
			const char *client_text, size_t client_len,
			const char *sender, size_t sender_len,
			const char *rcpt, size_t rcpt_len,
			const struct triplet_opts *opts);

/*
 * Keys of an identity other than the client network (decide.h): the
 * client part is TAG ':' DOMAIN ("n:example.org" for a verified name's
 * organisational domain, "s:example.org" for an SPF-validated sender
 * domain), which no address text can be, and the sender is the one given
 * (already reduced to its organisational domain by the caller),
 * normalised as above.  Returns false, building nothing, when the domain
 * is empty or too long for the client part (TRIPLET_MAX_CLIENT - 3
 * bytes): such a request simply has no identity of that kind.
 * client_is_net is false: whether an identity may auto-whitelist is the
 * caller's decision.
 */
bool triplet_build_ident(struct triplet_key *out, char tag, const char *domain,
			 size_t domain_len, const char *sender,
			 size_t sender_len, const char *rcpt, size_t rcpt_len);

#endif
