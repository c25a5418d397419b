/*
 * privacy - keyed hashes in place of addresses in stored keys.
 *
 * With privacy on, a triplet key is 'h' H(client) H(sender) H(recipient)
 * and a client key 'h' H(client), where H is keyed BLAKE2b cut to
 * PRIVACY_HASH_BYTES with a one-byte domain tag per part.  Without the
 * secret key (a file beside the database, mode 0600) the stored hashes
 * cannot be tested against guessed addresses, unlike postgrey's unkeyed
 * SHA-1.  Hashing per part keeps a client's records together (prefix
 * scans by client still work) and lets the admin CLI forget an address
 * by hashing it the same way.
 */
#ifndef GREYHOLD_PRIVACY_H
#define GREYHOLD_PRIVACY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "triplet.h"

#define PRIVACY_KEY_BYTES 32
#define PRIVACY_HASH_BYTES 16
#define PRIVACY_KEY_LEN (1 + 3 * PRIVACY_HASH_BYTES)
#define PRIVACY_CLIENT_LEN (1 + PRIVACY_HASH_BYTES)

enum privacy_part { PRIVACY_CLIENT = 'c', PRIVACY_SENDER = 's',
		    PRIVACY_RECIPIENT = 'r' };

struct privacy {
	uint8_t key[PRIVACY_KEY_BYTES];
};

/* Whether this build can hash (libsodium was found). */
bool privacy_available(void);

/*
 * Read the secret key from path; with create, make a new random one
 * (mode 0600, never overwriting) when the file does not exist.
 */
int privacy_load_key(struct privacy *out, const char *path, bool create,
		     char *err, size_t errsz);

/* H(part) of text into out[PRIVACY_HASH_BYTES]. */
void privacy_hash(const struct privacy *p, enum privacy_part part,
		  const char *text, size_t len, uint8_t *out);

/* The key file a config names: privacy_key_file, or DBDIR/privacy.key. */
void privacy_key_path(const struct config *cfg, char *out, size_t outsz);

/* Turn a built key (text parts) into its hashed form, in place. */
void privacy_apply(const struct privacy *p, struct triplet_key *k);

#endif
