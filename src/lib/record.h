/*
 * record - the stored values: fixed-size, little-endian, versioned.
 *
 * Pure.  Each encoded value starts with a version byte.  The decoder
 * accepts every version it knows (today: 1) and reports anything else,
 * or a wrong size, as -EBADMSG so the store can delete and log it.
 *
 * Triplet record v1 (24 bytes):
 *   0  u8   version (1)
 *   1  u8   flags (0, reserved)
 *   2  u16  reserved (0)
 *   4  u64  first_seen   (unix seconds)
 *  12  u64  last_seen    (unix seconds; last pass once passed)
 *  20  u32  passes       (0 = pending; counted at most once per hour)
 *
 * Client record v1 (auto-whitelist, 24 bytes): same layout, where
 * first_seen is the first pass, last_seen the last counted pass and
 * passes the number of counted passes.
 */
#ifndef GREYHOLD_RECORD_H
#define GREYHOLD_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define RECORD_VERSION 1
#define RECORD_SIZE 24
/* Latest time a record may hold (about the year 36800). */
#define RECORD_MAX_TIME (1ULL << 40)

struct record {
	int64_t first_seen;
	int64_t last_seen;
	uint32_t passes;
};

void record_encode(uint8_t out[RECORD_SIZE], const struct record *r);
int record_decode(struct record *out, const void *data, size_t len);

#endif
