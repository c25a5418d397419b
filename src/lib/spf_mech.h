/*
 * spf_mech - the answers to the questions of the a, mx, ptr and exists
 * mechanisms (RFC 7208 5.3-5.5, 5.7).
 *
 * Each function takes the answer to the question the current term
 * asked, and either decides the term (match, no match, or the end of
 * the evaluation on an error or a limit) or asks the next question (the
 * addresses of the next MX or PTR name).  Part of the evaluator; the
 * state is described in spf_eval.h.
 */
#ifndef GREYHOLD_SPF_MECH_H
#define GREYHOLD_SPF_MECH_H

#include <stdbool.h>

#include "dns_result.h"
#include "spf.h"

/* a (exists == false) and exists: one answer decides. */
void spf_mech_on_a(spf_t *s, const struct dns_result *a, bool exists);

/* mx: the exchanges, then the addresses of each (at most 10). */
void spf_mech_on_mx(spf_t *s, const struct dns_result *a);
void spf_mech_on_mx_addr(spf_t *s, const struct dns_result *a);

/* ptr: the client's names, then the addresses of those in the domain. */
void spf_mech_on_ptr(spf_t *s, const struct dns_result *a);
void spf_mech_on_ptr_addr(spf_t *s, const struct dns_result *a);

#endif
