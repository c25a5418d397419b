/*
 * dns_parse - a c-ares answer turned into a dns_result.
 *
 * Takes what c-ares hands a query callback (its status and the raw
 * answer) and builds one heap block holding the dns_result, its records
 * and their bytes (free() it), with the status mapped and the TTL read
 * from the wire.  Only the resolver (dns.c) calls it.
 */
#ifndef GREYHOLD_DNS_PARSE_H
#define GREYHOLD_DNS_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "dns_result.h"

struct dns_parsed {
	struct dns_result *res;	/* one block; NULL only for -ENOMEM */
	int64_t soa_ttl;	/* negative answers: from the SOA, or -1 */
	bool timeout;		/* TEMPFAIL because no server answered */
	bool cacheable;		/* an answer about the name, not about us */
};

/*
 * status is the c-ares status of the query, abuf/alen its answer (may
 * be NULL).  Returns 0 or -ENOMEM.
 */
int dns_parse_answer(enum dns_type type, int status, const unsigned char *abuf,
		     int alen, struct dns_parsed *out);

#endif
