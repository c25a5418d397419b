/*
 * spf_macro - the macro language of SPF records (RFC 7208 section 7).
 *
 * Pure text code: a macro-string and the facts of one SMTP transaction
 * in, the expanded text out.  Nothing is looked up: %{p} (the validated
 * client name) always expands to "unknown", as RFC 7208 7.3 allows when
 * no validated name is at hand, so an expansion never costs a PTR query.
 *
 *   %{s} sender  %{l} its local part  %{o} its domain  %{d} current domain
 *   %{i} client address (dotted; IPv6 as 32 dot-separated nibbles)
 *   %{p} "unknown"  %{v} "in-addr" or "ip6"  %{h} HELO name
 *   %{c} client address as text, %{r} receiving host, %{t} timestamp:
 *        these three only in an exp= text (SPF_MACRO_EXP)
 *   %% %_ %-   "%", " ", "%20"
 * Transformers: %{d2} keeps the two rightmost parts, %{dr} reverses them
 * first, %{l-} splits on '-' instead of '.' (delimiters . - + , / _ =);
 * parts are rejoined with '.'.  An upper-case letter URL-escapes its
 * value (every byte outside A-Z a-z 0-9 - . _ ~ becomes %XX).
 *
 * Errors: -EINVAL for a syntax error (unknown letter, %{d0}, an
 * unterminated %{, a byte outside the macro-literal set, a stray %),
 * -ENOSPC when the expansion does not fit the caller's buffer.
 */
#ifndef GREYHOLD_SPF_MACRO_H
#define GREYHOLD_SPF_MACRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* Allow %{c}, %{r} and %{t}, which RFC 7208 keeps for exp= texts. */
#define SPF_MACRO_EXP 1u

/* The transaction a macro-string is expanded for; strings NUL-terminated. */
struct spf_macro_ctx {
	const char *sender;	/* local@domain, never empty */
	size_t local_len;	/* bytes of sender before its last '@' */
	const char *domain;	/* the domain being evaluated: %{d} */
	const char *helo;	/* %{h}; may be "" */
	const char *receiver;	/* %{r}; NULL or "" expands to "unknown" */
	const struct addr *client;	/* IPv4 or IPv6, not IPv4-mapped */
	int64_t now;		/* %{t}, seconds since the epoch */
};

/*
 * Check the syntax of in[0..len) as a macro-string.  *ends_in_expand
 * (may be NULL) says whether its last item is a macro-expand rather than
 * a literal, which the domain-spec grammar needs.  0 or -EINVAL.
 */
int spf_macro_check(const char *in, size_t len, unsigned flags,
		    bool *ends_in_expand);

/*
 * Expand in[0..len) into out (outsz bytes, NUL-terminated on success),
 * *outlen set to the length without the NUL.  0, -EINVAL or -ENOSPC.
 */
int spf_macro_expand(const struct spf_macro_ctx *ctx, const char *in,
		     size_t len, unsigned flags, char *out, size_t outsz,
		     size_t *outlen);

#endif
