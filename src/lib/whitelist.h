/*
 * whitelist - client and recipient whitelists in postgrey's file format.
 *
 * A whitelist is built (entries added from files or from the live
 * whitelist in the database), finished, and from then on only read: the
 * daemon swaps whole whitelists, so a lookup never sees a half-built one.
 * Lookups are for one thread at a time (they share a PCRE2 match block).
 *
 * Client entries:
 *   192.0.2.7, 2001:db8::1              one address
 *   192.0.2.0/24, 2001:db8::/32         a CIDR block
 *   10, 10.1, 10.1.2                    partial IPv4: /8, /16, /24
 *   example.com                         client_name is example.com or
 *                                       ends in .example.com
 *   /^mail\d+\.example\.net$/           PCRE2 regex on client_name,
 *                                       case-insensitive, match-limited
 * Names and regexes are matched against the verified client_name only,
 * never against an unverified reverse name; "unknown" matches nothing.
 *
 * Recipient entries:
 *   postmaster@                         that local part at any domain
 *   user@example.org                    that address
 *   example.org, @example.org           the domain and its subdomains
 *   /regex/                             PCRE2 regex on the recipient
 * Local parts also match with a +extension (postmaster+x@ matches
 * postmaster@).
 */
#ifndef GREYHOLD_WHITELIST_H
#define GREYHOLD_WHITELIST_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"
#include "config.h"

typedef struct whitelist whitelist_t;

enum whitelist_kind { WHITELIST_CLIENTS, WHITELIST_RECIPIENTS };

/* PCRE2 match limit for one regex against one value. */
#define WHITELIST_MATCH_LIMIT 100000
#define WHITELIST_DEPTH_LIMIT 1000
/*
 * Entries are shorter than this (one line of a file); the live whitelist
 * stores them in LMDB keys of at most 511 bytes with a 2-byte prefix.
 */
#define WHITELIST_MAX_ENTRY 500

int whitelist_create(whitelist_t **out);
void whitelist_free(whitelist_t *wl);

/* Add one entry; on error writes why into err (no location). */
int whitelist_add(whitelist_t *wl, enum whitelist_kind kind,
		  const char *entry, char *err, size_t errsz);

/*
 * Add every entry of a file ('#' comments, blank lines).  A missing file
 * is -ENOENT with nothing added; a bad line is -EINVAL with "FILE:LINE:
 * why" in err.
 */
int whitelist_load_file(whitelist_t *wl, enum whitelist_kind kind,
			const char *path, char *err, size_t errsz);

/* Prepare for lookups; no entry may be added afterwards. */
int whitelist_finish(whitelist_t *wl);

/*
 * Build the static whitelist a config names: each whitelist_clients and
 * whitelist_recipients file and, if present, its ".local" companion.
 * A missing main file is logged as a warning and skipped; a bad line is
 * an error ("FILE:LINE: why" in err) and nothing is built.
 */
int whitelist_load_config(whitelist_t **out, const struct config *cfg,
			  char *err, size_t errsz);

/*
 * Whether the client is whitelisted by its address text (NULL or not an
 * address: by name only) or by its verified name.
 */
bool whitelist_match_client(const whitelist_t *wl, const char *addr,
			    size_t addr_len, const char *name, size_t name_len);
/*
 * The same with the address parsed once for the whole request
 * (addr_parse(); family ADDR_NONE matches by name only).
 */
bool whitelist_match_client_addr(const whitelist_t *wl, const struct addr *a,
				 const char *name, size_t name_len);
bool whitelist_match_recipient(const whitelist_t *wl, const char *rcpt,
			       size_t len);

/* Number of entries (for the log). */
size_t whitelist_size(const whitelist_t *wl);

#endif
