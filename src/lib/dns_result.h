/*
 * dns_result - one DNS answer as the library sees it.
 *
 * A plain value type shared by everything that consumes DNS data (the SPF
 * evaluator, the client identities, the allowlist checks) and by what
 * produces it (the daemon's asynchronous resolver and its cache, the
 * tests' fixed answers).  The library never resolves anything itself: it
 * asks for a (type, name) and is handed a dns_result.
 *
 * Ownership: a dns_result and the bytes its records point to belong to
 * whoever produced it and are valid only for the call they are passed to;
 * a consumer copies what it keeps.
 */
#ifndef GREYHOLD_DNS_RESULT_H
#define GREYHOLD_DNS_RESULT_H

#include <stddef.h>
#include <stdint.h>

/* Record types, numbered as on the wire (RFC 1035, RFC 3596). */
enum dns_type {
	DNS_T_A = 1,
	DNS_T_PTR = 12,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_AAAA = 28,
};

enum dns_status {
	DNS_OK,		/* records follow (n may still be 0: see NODATA) */
	DNS_NXDOMAIN,	/* the name does not exist */
	DNS_NODATA,	/* the name exists, no record of this type */
	DNS_TEMPFAIL,	/* SERVFAIL, timeout, truncation without TCP, ... */
	DNS_PERMFAIL,	/* REFUSED, FORMERR, a malformed answer */
};

/* Longest presentation-format name, without the trailing dot (RFC 1035). */
#define DNS_NAME_MAX 253

/*
 * One record of the answer section, of the asked type:
 *   A     data = 4 address bytes, network order
 *   AAAA  data = 16 address bytes, network order
 *   TXT   data = the record's character-strings concatenated (RFC 7208
 *         3.3), len bytes, not NUL-terminated, may contain any byte
 *   MX    data = exchange name, lower case, no trailing dot; pref set
 *   PTR   data = target name, lower case, no trailing dot
 */
struct dns_rr {
	const uint8_t *data;
	size_t len;
	uint16_t pref;		/* MX only */
};

struct dns_result {
	enum dns_status status;
	uint32_t ttl;		/* seconds the answer may be cached */
	size_t n;		/* records in rr */
	const struct dns_rr *rr;
};

#endif
