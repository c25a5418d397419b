/*
 * identity - the keys of name and SPF identities, for the commands that
 * name records (list, show, delete, pass, forget).
 *
 * The daemon keys a request's further identities (smart.h) with the
 * client part "n:ORG" (a verified name's organisational domain) or
 * "s:ORG" (an SPF-validated sender's), and the sender reduced to its
 * organisational domain.  Stored keys keep those bytes (dump and load copy
 * them as they are); people read and type "name:ORG" and "spf:ORG", the
 * form the daemon's log uses (identity=name:ORG).  With privacy = yes the
 * client part is hashed like a network's, so a stored hash cannot be told
 * apart from a network's; a typed identity is hashed the same way to find
 * it.
 */
#include "identity.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct identity_form {
	char tag;
	const char *word;
};

static const struct identity_form forms[] = {
	{'n', "name"},
	{'s', "spf"},
};
#define NFORMS (sizeof(forms) / sizeof(forms[0]))

/* The form whose word or tag starts text (followed by ':'), or NULL. */
static const struct identity_form *
form_of(const char *text, size_t len, size_t *skip)
{
	for (size_t i = 0; i < NFORMS; i++) {
		size_t wl = strlen(forms[i].word);

		if (len > wl && text[wl] == ':' &&
		    strncasecmp(text, forms[i].word, wl) == 0) {
			*skip = wl + 1;
			return &forms[i];
		}
		if (len > 2 && text[1] == ':' &&
		    tolower((unsigned char)text[0]) == forms[i].tag) {
			*skip = 2;
			return &forms[i];
		}
	}
	return NULL;
}

bool
identity_parse(const char *text, char *out, size_t *outlen, char *tag,
	       const char **domain)
{
	size_t len = strlen(text), skip;
	const struct identity_form *f = form_of(text, len, &skip);

	/* "t:" + domain + NUL must fit, as in triplet_build_ident(). */
	if (f == NULL || len - skip + 3 > TRIPLET_MAX_CLIENT)
		return false;
	out[0] = f->tag;
	out[1] = ':';
	for (size_t i = skip; i <= len; i++)
		out[2 + i - skip] = (char)tolower((unsigned char)text[i]);
	*outlen = 2 + len - skip;
	*tag = f->tag;
	*domain = text + skip;
	return true;
}

const char *
identity_kind(const char *client, size_t len)
{
	if (len < 3 || client[1] != ':')
		return NULL;
	for (size_t i = 0; i < NFORMS; i++)
		if (client[0] == forms[i].tag)
			return forms[i].word;
	return NULL;
}

const char *
identity_shown(char *out, size_t outsz, const char *client, size_t len)
{
	const char *kind = identity_kind(client, len);

	if (kind == NULL)
		return NULL;
	snprintf(out, outsz, "%s:%.*s", kind, (int)(len - 2), client + 2);
	return out;
}

int
identity_build_key(struct ctl *ctl, struct keyed *kd, char tag,
		   const char *domain, const char *sender, const char *rcpt)
{
	char org[TRIPLET_MAX_CLIENT], normal[TRIPLET_MAX_ADDR];
	char reduced[TRIPLET_MAX_ADDR];
	size_t dlen = strlen(domain), nlen, rlen;

	if (open_ident(ctl) < 0)
		return EXIT_ERROR;
	if (dlen + 3 > sizeof(org)) {
		fprintf(stderr, "greyholdctl: '%s' is too long for an identity "
			"key\n", domain);
		return EXIT_ERROR;
	}
	for (size_t i = 0; i <= dlen; i++)
		org[i] = (char)tolower((unsigned char)domain[i]);
	nlen = triplet_normalise_sender(normal, sender, strlen(sender));
	rlen = ident_sender_org(ctl->ident, reduced, normal, nlen);
	if (!triplet_build_ident(&kd->plain, tag, org, dlen, reduced, rlen,
				 rcpt, strlen(rcpt))) {
		fprintf(stderr, "greyholdctl: no identity key for '%s'\n",
			domain);
		return EXIT_ERROR;
	}
	store_form(ctl, kd);
	return 0;
}
