/*
 * keys - database keys as the daemon builds them, and their parts.
 *
 * A key is built by triplet_build() with the config's network sizes, then,
 * with privacy = yes, turned into keyed hashes by privacy_apply() with the
 * daemon's key (loaded by open_db(), so build keys after it).  Stored keys
 * are split back into their parts for matching and display; a key that
 * does not split is undecodable and left to the daemon's sweep.
 *
 * key_parts point into the key they were split from and live as long as it.
 */
#include "keys.h"

#include <string.h>

#include "args.h"
#include "identity.h"

static bool
split_hashed(const char *key, size_t len, struct key_parts *p)
{
	if (len != PRIVACY_KEY_LEN || key[0] != 'h')
		return false;
	p->hashed = true;
	p->client = key + 1;
	p->sender = p->client + PRIVACY_HASH_BYTES;
	p->rcpt = p->sender + PRIVACY_HASH_BYTES;
	p->client_len = p->sender_len = p->rcpt_len = PRIVACY_HASH_BYTES;
	return true;
}

bool
split_key(const char *key, size_t len, struct key_parts *p)
{
	const char *z1 = memchr(key, '\0', len);
	const char *z2;

	if (split_hashed(key, len, p))
		return true;
	p->hashed = false;
	if (z1 == NULL)
		return false;
	z2 = memchr(z1 + 1, '\0', len - (size_t)(z1 + 1 - key));
	if (z2 == NULL || memchr(z2 + 1, '\0', len - (size_t)(z2 + 1 - key)))
		return false;
	p->client = key;
	p->client_len = (size_t)(z1 - key);
	p->sender = z1 + 1;
	p->sender_len = (size_t)(z2 - p->sender);
	p->rcpt = z2 + 1;
	p->rcpt_len = len - (size_t)(p->rcpt - key);
	return true;
}

void
client_parts(const char *key, size_t len, struct key_parts *p)
{
	memset(p, 0, sizeof(*p));
	p->hashed = len == PRIVACY_CLIENT_LEN && key[0] == 'h';
	p->client = p->hashed ? key + 1 : key;
	p->client_len = p->hashed ? PRIVACY_HASH_BYTES : len;
}

bool
hash_eq(const struct key_parts *p, const char *part, const uint8_t *hash)
{
	return p->hashed && memcmp(part, hash, PRIVACY_HASH_BYTES) == 0;
}

void
store_form(const struct ctl *ctl, struct keyed *kd)
{
	kd->stored = kd->plain;
	if (ctl->privacy_on)
		privacy_apply(&ctl->privacy, &kd->stored);
}

/* Build the key as the daemon does; call after open_db() (privacy). */
int
build_key(struct ctl *ctl, struct keyed *kd, const char *client,
	  const char *sender, const char *rcpt)
{
	char part[TRIPLET_MAX_CLIENT], tag;
	const char *domain;
	size_t len;

	sender = sender_arg(sender);
	if (identity_parse(client, part, &len, &tag, &domain))
		return identity_build_key(ctl, kd, tag, domain, sender, rcpt);
	triplet_build(&kd->plain, client, strlen(client), sender, strlen(sender),
		      rcpt, strlen(rcpt), &ctl->topts);
	store_form(ctl, kd);
	return 0;
}

/* The stored client key of a client text: itself, or 'h' and its hash. */
size_t
client_store_key(const struct ctl *ctl, char *out, const char *client,
		 size_t len)
{
	if (!ctl->privacy_on) {
		memmove(out, client, len);
		return len;
	}
	privacy_hash(&ctl->privacy, PRIVACY_CLIENT, client, len,
		     (uint8_t *)out + 1);
	out[0] = 'h';
	return PRIVACY_CLIENT_LEN;
}
