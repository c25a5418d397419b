/*
 * suffix_memo - libpsl's registrable domain, with the public-suffix
 * answers remembered.
 *
 * libpsl answers "is this a public suffix?" by walking its DAFSA from the
 * top each time (a few thousand instructions), and its registrable-domain
 * lookup asks that once per label from the left, so a four-label name
 * costs four walks: measured, about 2 us per name, several times per new
 * triplet.  The upper labels of mail names repeat across hosts and
 * senders ("out.relay.example", "relay.example", "example"), so the
 * answers per suffix are kept in a fixed direct-mapped table and the
 * lookup asks libpsl only for suffixes it has not seen.  The result is
 * psl_registrable_domain()'s, suffix by suffix the same questions in the
 * same order (tests/unit/test_ident.c compares the two over every rule of
 * the list).
 *
 * Ownership: the memo borrows the libpsl context, which must outlive it.
 * A mutex guards the table, so threads may share one memo; its size is
 * fixed at creation (SUFFIX_MEMO_SLOTS entries, about 300 KiB).
 */
#ifndef GREYHOLD_SUFFIX_MEMO_H
#define GREYHOLD_SUFFIX_MEMO_H

#include <libpsl.h>

/* Entries remembered (a power of two). */
#define SUFFIX_MEMO_SLOTS 4096

typedef struct suffix_memo suffix_memo_t;

/* 0 or -ENOMEM. */
int suffix_memo_new(suffix_memo_t **out, const psl_ctx_t *psl);
void suffix_memo_free(suffix_memo_t *m);

/*
 * What psl_registrable_domain(psl, name) returns: a pointer into name at
 * its registrable domain, or NULL when name has none (it is a public
 * suffix, or empty).  name is NUL-terminated, lower case, without a
 * leading dot.
 */
const char *suffix_memo_registrable(suffix_memo_t *m, const char *name);

#endif
