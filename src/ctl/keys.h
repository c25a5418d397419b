/*
 * keys - database keys built as the daemon builds them, and split back
 * into their parts (see keys.c).
 */
#ifndef GREYHOLD_KEYS_H
#define GREYHOLD_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl.h"
#include "triplet.h"

/*
 * The parts of a stored key: a triplet key, CLIENT \0 SENDER \0 RECIPIENT
 * or with privacy 'h' and three keyed hashes; a client key (sender NULL),
 * CLIENT or 'h' and one hash.  Client keys in text never start with 'h'
 * (they are addresses, or Postfix's "unknown").
 */
struct key_parts {
	bool hashed;
	const char *client, *sender, *rcpt;
	size_t client_len, sender_len, rcpt_len;
};

/* A triplet's key as shown (text) and as stored (hashed with privacy). */
struct keyed {
	struct triplet_key plain;
	struct triplet_key stored;
};

/* Split a triplet key; false if it is neither form (undecodable). */
bool split_key(const char *key, size_t len, struct key_parts *p);
/* Split a client key (sender and recipient NULL). */
void client_parts(const char *key, size_t len, struct key_parts *p);
/* Whether a hashed part equals hash. */
bool hash_eq(const struct key_parts *p, const char *part, const uint8_t *hash);

/* kd->stored from kd->plain: hashed when privacy is on. */
void store_form(const struct ctl *ctl, struct keyed *kd);
/*
 * Build the key as the daemon does; call after open_db() (privacy).  A
 * client "name:ORG" or "spf:ORG" names that identity's records
 * (identity.h).  0, or EXIT_ERROR after saying why.
 */
int build_key(struct ctl *ctl, struct keyed *kd, const char *client,
	      const char *sender, const char *rcpt);
/*
 * The stored client key of a client text into out (TRIPLET_MAX_CLIENT
 * bytes): itself, or 'h' and its hash.  Returns its length.
 */
size_t client_store_key(const struct ctl *ctl, char *out, const char *client,
			size_t len);

#endif
