/*
 * dnslist - the pure rules of DNS allow- and blocklists (dnswl, dnsbl):
 * what a configured list looks like, which name is asked for a client,
 * and which answers count.
 *
 * The daemon (src/daemon/evidence.c) asks the questions on its loop;
 * the configuration check (config.c) and anything else that judges a
 * list setting call the same functions, so each rule exists once.
 *
 * Pure value code: no DNS, no state.  Errors are 0 or a negative errno.
 */
#ifndef GREYHOLD_DNSLIST_H
#define GREYHOLD_DNSLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "dns_result.h"

/*
 * Longest zone: the query name for an IPv6 client is 32 nibbles, each
 * with its dot (64 bytes), in front of the zone, and the whole must stay
 * a domain name (DNS_NAME_MAX).  A longer zone could never be asked for
 * IPv6 clients, so the configuration refuses it instead of the daemon
 * silently skipping the list for them.
 */
#define DNSLIST_ZONE_MAX (DNS_NAME_MAX - 64)

/* Room for any query name dnslist_query_name() writes, NUL included. */
#define DNSLIST_QNAME_SIZE (DNS_NAME_MAX + 1)

/* One configured list. */
struct dnslist_spec {
	char zone[DNSLIST_ZONE_MAX + 1];	/* NUL-terminated */
	int min_last;	/* allowlists: least last octet (0-255); -1: any */
};

/*
 * Parse a list setting: "ZONE", or for an allowlist "ZONE:MIN" (MIN a
 * decimal 0-255: the least last octet, dnswl.org's trust level 0-3).
 * ZONE is a domain name of letters, digits, '-' and '.', at least two
 * labels, none empty or over 63 bytes, no leading or trailing dot, at
 * most DNSLIST_ZONE_MAX bytes.  0, or -EINVAL (out is then unspecified).
 */
int dnslist_parse(struct dnslist_spec *out, const char *spec, bool allowlist);

/*
 * The name to ask (type A) for client a in zone: IPv4 as reversed
 * octets ("4.3.2.1.zone"), IPv6 as reversed nibbles, lower-case hex
 * ("1.0.0.0...8.b.d.0.1.0.0.2.zone").  An IPv4-mapped IPv6 address is
 * the IPv4 address it carries (addr_parse() already made it one).
 * 0; -EINVAL without an address family or an empty zone;
 * -ENAMETOOLONG when the name would exceed DNS_NAME_MAX bytes or out
 * (outsz bytes, DNSLIST_QNAME_SIZE is always enough) is too small.
 */
int dnslist_query_name(char *out, size_t outsz, const struct addr *a,
		       const char *zone);

/*
 * Whether an A answer from a list counts.  An answer outside 127.0.0.0/8
 * is no answer (a hijacking resolver's advertising address);
 * 127.255.255.0/24 are the lists' error codes (Spamhaus: "query
 * refused", "public resolver") and, for an allowlist, 127.0.0.255 is
 * dnswl.org's "blocked": none of these ever counts.  For an allowlist
 * with min_last >= 0 the last octet (dnswl.org's trust level) must reach
 * it; blocklists ignore min_last.
 */
bool dnslist_answer_counts(const uint8_t a[4], bool allowlist, int min_last);

#endif
