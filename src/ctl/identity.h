/*
 * identity - the client part of a name or SPF identity's keys (decide.h,
 * triplet_build_ident()) as greyholdctl reads and shows it (see
 * identity.c).
 */
#ifndef GREYHOLD_CTL_IDENTITY_H
#define GREYHOLD_CTL_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "ctl.h"
#include "keys.h"

/* Longest shown client part: "name:" and the stored domain. */
#define IDENTITY_SHOWN_MAX (TRIPLET_MAX_CLIENT + 8)

/*
 * A client argument naming an identity: "name:ORG" or "spf:ORG" (or the
 * stored forms "n:ORG", "s:ORG"), any case.  Writes the stored client
 * part ("n:org") into out (TRIPLET_MAX_CLIENT bytes) and returns true;
 * false when text names no identity.  *tag is 'n' or 's', *domain the
 * part after the colon (in text).
 */
bool identity_parse(const char *text, char *out, size_t *outlen, char *tag,
		    const char **domain);

/*
 * The readable form of a stored client part: "n:ORG" -> "name:ORG",
 * "s:ORG" -> "spf:ORG".  Returns NULL (out untouched) for any other part
 * (a network, Postfix's "unknown", a hash).
 */
const char *identity_shown(char *out, size_t outsz, const char *client,
			   size_t len);

/* "name", "spf" or NULL: the kind of a stored client part. */
const char *identity_kind(const char *client, size_t len);

/*
 * Build an identity's keys as the daemon does: the sender reduced to its
 * organisational domain (ident_sender_org(), so the Public Suffix List is
 * loaded: open_ident()), then hashed with privacy.  0, or EXIT_ERROR
 * after saying why (the list did not load, the domain is too long).
 */
int identity_build_key(struct ctl *ctl, struct keyed *kd, char tag,
		       const char *domain, const char *sender,
		       const char *rcpt);

#endif
