/*
 * ident - the identities of a client besides its network: the
 * organisational domain of its verified name, and a sender reduced to its
 * organisational domain.
 *
 * Pure: no DNS, no clock.  Organisational domains come from the Public
 * Suffix List through libpsl (the registrable domain: one label below the
 * longest matching public suffix, private section included, so customers
 * of a platform such as github.io are told apart).
 *
 * Ownership: ident_open() loads the list once at start; the ident_t is
 * read-only afterwards but for a memo of libpsl's answers, which locks
 * itself (suffix_memo.h), so any number of threads may use one handle at
 * once.  ident_close() frees it when no thread uses it any more.
 *
 * Names are handled as Postfix passes them: ASCII, internationalised
 * labels in their A-label form (xn--...), any case, one optional trailing
 * dot.  Anything else (non-ASCII bytes, empty or over-long labels, a
 * numeric top label such as an IPv4 literal, brackets) is not a name.
 */
#ifndef GREYHOLD_IDENT_H
#define GREYHOLD_IDENT_H

#include <stdbool.h>
#include <stddef.h>

/* Longest domain name in text form (RFC 1035), without the NUL. */
#define IDENT_MAX_NAME 253

typedef struct ident ident_t;

/*
 * Load the Public Suffix List.  With psl_file NULL: the newest of the
 * distribution's list (Debian's package publicsuffix) and the list built
 * into libpsl, falling back to the built-in one.  With a file (the
 * DAFSA or the text format libpsl reads) only that file; a file that does
 * not load is -ENOENT with the reason in err.  -ENOMEM on allocation.
 */
int ident_open(ident_t **out, const char *psl_file, char *err, size_t errsz);
void ident_close(ident_t *id);

/* Where the list came from, for the start-up log line. */
const char *ident_source(const ident_t *id);

/*
 * Organisational domain of a name, lower-cased, into out (at least
 * IDENT_MAX_NAME + 1 bytes, NUL-terminated), its length in *outlen.
 * 0; -EINVAL when name is not a valid domain name (see above, IP literals
 * included); -ENOENT when it has no organisational domain (it is itself
 * a public suffix, e.g. "co.uk", or a single label such as "localhost").
 */
int ident_org_domain(const ident_t *id, const char *name, size_t len,
		     char *out, size_t outsz, size_t *outlen);

/*
 * Whether a name looks like one an ISP or hoster gives to a customer's
 * address rather than one a mail operator chose: the name carries the
 * whole client address (decimal octets forward, reversed or in another
 * order, with any separators, zero-padded or run together, the 32-bit
 * number, hex; an
 * IPv6 address in hex, as dashed text or nibble by nibble), or three
 * octets of it in order, or a word such as "dyn", "dsl", "cable", "pool",
 * "dhcp", "ppp", "client" or "customer" left of the organisational
 * domain (the longer words also starting a letter run: "dynamicip").  Two octets ("a8-30.smtp-out.amazonses.com") are not enough: a
 * provider numbers its pool that way.  addr is the client address text;
 * when it does not parse only the words count.  An invalid name is not
 * judged dynamic here (ident_name() rejects it anyway).
 */
bool ident_looks_dynamic(const ident_t *id, const char *name, size_t len,
			 const char *addr, size_t addr_len);

/* Why a client has no name identity (IDENT_NAME_OK: it has one). */
enum ident_name_why {
	IDENT_NAME_OK = 0,
	IDENT_NAME_UNKNOWN,	/* "unknown", "[UNAVAILABLE]", empty: not verified */
	IDENT_NAME_INVALID,	/* not a domain name (an IP literal included) */
	IDENT_NAME_SUFFIX,	/* a bare public suffix: nobody's domain */
	IDENT_NAME_DYNAMIC,	/* an ISP's or hoster's name for an address */
};

struct ident_name {
	char org[IDENT_MAX_NAME + 1];	/* organisational domain, NUL-terminated */
	size_t org_len;
	enum ident_name_why why;
};

/*
 * The name identity of a client: the organisational domain of its
 * forward-confirmed client_name (Postfix's client_name, never
 * reverse_client_name), when the name is valid and does not look dynamic
 * for client_addr.  0 with out->org set, or -ENOENT with out->why saying
 * why there is none.
 */
int ident_name(const ident_t *id, const char *client_name, size_t name_len,
	       const char *client_addr, size_t addr_len,
	       struct ident_name *out);

/* Short word for a reason, as logged ("ok", "unknown", "dynamic", ...). */
const char *ident_name_why_str(enum ident_name_why why);

/*
 * The sender for the keys of the name and SPF identities: an (already
 * normalised) envelope sender with its domain replaced by the domain's
 * organisational domain, the local part kept as it is, so a return path
 * naming the sending host (bounce-x@mail123.atl31.mcsv.net) keys as one
 * sender (bounce-x@mcsv.net).  A sender without a domain that has one
 * (the null sender, no '@', an address literal, a public suffix) is
 * copied unchanged.  Writes at most len bytes (never more than the
 * input) into out and returns the length written; out is not
 * NUL-terminated.
 */
size_t ident_sender_org(const ident_t *id, char *out, const char *sender,
			size_t len);

#endif
