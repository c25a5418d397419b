/*
 * dns_wire - the TTLs of a DNS response, read from its wire form.
 *
 * The resolver library parses record data but does not report every
 * TTL (MX, TXT, PTR) nor the SOA of a negative answer, so this walks the
 * message itself (RFC 1035 4.1) with every read bounds-checked.  Pure:
 * bytes in, numbers out.
 */
#ifndef GREYHOLD_DNS_WIRE_H
#define GREYHOLD_DNS_WIRE_H

#include <stddef.h>
#include <stdint.h>

struct dns_wire_ttls {
	uint32_t answer_ttl;	/* least TTL over the answer section's RRs
				   (CNAMEs included); UINT32_MAX if none */
	int64_t soa_ttl;	/* min(SOA TTL, SOA MINIMUM) from the
				   authority section (RFC 2308 5); -1 if none */
};

/* Returns 0, or -EBADMSG if msg is truncated or malformed. */
int dns_wire_ttls(const uint8_t *msg, size_t len, struct dns_wire_ttls *out);

#endif
