/*
 * test_record - the stored value layout.
 *
 * The layout is a file format: databases outlive binaries, so the bytes
 * are checked at their documented offsets, not just round-tripped.
 */
#include "record.h"

#include <errno.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

static void
assert_round_trip(struct record r)
{
	uint8_t buf[RECORD_SIZE];
	struct record back;

	record_encode(buf, &r);
	memset(&back, 0x55, sizeof(back));
	assert_int_equal(record_decode(&back, buf, sizeof(buf)), 0);
	assert_int_equal(back.first_seen, r.first_seen);
	assert_int_equal(back.last_seen, r.last_seen);
	assert_int_equal(back.passes, r.passes);
}

static void
test_round_trip(void **state)
{
	static const struct record cases[] = {
		{0, 0, 0},
		{1700000000, 1700000300, 1},
		{1700000000, 1703024000, 42},
		{(int64_t)RECORD_MAX_TIME, (int64_t)RECORD_MAX_TIME - 1, UINT32_MAX},
		{0x0102030405, 0x1112131415, 0x21222324},
	};
	size_t i;

	(void)state;
	assert_int_equal(RECORD_SIZE, 24);
	assert_int_equal(RECORD_VERSION, 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_round_trip(cases[i]);
}

/* Times the engine could overflow on are corrupt, not data. */
static void
test_out_of_range_times_rejected(void **state)
{
	static const struct record cases[] = {
		{(int64_t)RECORD_MAX_TIME + 1, 0, 1},
		{0, (int64_t)RECORD_MAX_TIME + 1, 1},
		{-1, 0, 0},
		{0, INT64_MIN, 0},
		{INT64_MAX, INT64_MAX, UINT32_MAX},
	};
	uint8_t buf[RECORD_SIZE];
	struct record back;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		record_encode(buf, &cases[i]);
		assert_int_equal(record_decode(&back, buf, sizeof(buf)), -EBADMSG);
	}
}

static void
test_layout_little_endian_at_documented_offsets(void **state)
{
	static const uint8_t expect[RECORD_SIZE] = {
		/* 0: version, 1: flags, 2-3: reserved */
		0x01, 0x00, 0x00, 0x00,
		/* 4: first_seen u64 LE */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		/* 12: last_seen u64 LE */
		0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,
		/* 20: passes u32 LE */
		0x24, 0x23, 0x22, 0x21,
	};
	const struct record r = {0x0102030405060708, 0x1112131415161718,
				 0x21222324};
	uint8_t buf[RECORD_SIZE + 4];

	(void)state;
	memset(buf, 0xee, sizeof(buf));
	record_encode(buf, &r);
	assert_memory_equal(buf, expect, RECORD_SIZE);
	/* Nothing written past the record. */
	assert_int_equal(buf[RECORD_SIZE], 0xee);
}

static void
test_layout_real_timestamp(void **state)
{
	/* 1700000000 = 0x6553f100, 300 passes = 0x012c */
	static const uint8_t expect[RECORD_SIZE] = {
		0x01, 0x00, 0x00, 0x00,
		0x00, 0xf1, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00,
		0x2c, 0xf2, 0x53, 0x65, 0x00, 0x00, 0x00, 0x00,
		0x2c, 0x01, 0x00, 0x00,
	};
	const struct record r = {1700000000, 1700000300, 300};
	uint8_t buf[RECORD_SIZE];
	struct record back;

	(void)state;
	record_encode(buf, &r);
	assert_memory_equal(buf, expect, RECORD_SIZE);
	/* And a record written by hand decodes. */
	assert_int_equal(record_decode(&back, expect, sizeof(expect)), 0);
	assert_int_equal(back.first_seen, 1700000000);
	assert_int_equal(back.last_seen, 1700000300);
	assert_int_equal(back.passes, 300);
}

static void
test_encode_clears_reserved_bytes(void **state)
{
	const struct record r = {-1, -1, UINT32_MAX};
	uint8_t buf[RECORD_SIZE];

	(void)state;
	memset(buf, 0xff, sizeof(buf));
	record_encode(buf, &r);
	assert_int_equal(buf[0], RECORD_VERSION);
	assert_int_equal(buf[1], 0);
	assert_int_equal(buf[2], 0);
	assert_int_equal(buf[3], 0);
}

static void
test_wrong_version_rejected(void **state)
{
	static const uint8_t versions[] = {0, 2, 3, 0x7f, 0x80, 0xff};
	const struct record r = {1700000000, 1700000300, 1};
	uint8_t buf[RECORD_SIZE];
	struct record back;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		record_encode(buf, &r);
		buf[0] = versions[i];
		assert_int_equal(record_decode(&back, buf, sizeof(buf)),
				 -EBADMSG);
	}
}

static void
test_wrong_size_rejected(void **state)
{
	static const size_t sizes[] = {0, 1, 4, 12, 20, 23, 25, 32, 48};
	const struct record r = {1700000000, 1700000300, 1};
	uint8_t buf[64];
	struct record back;
	size_t i;

	(void)state;
	memset(buf, 0, sizeof(buf));
	record_encode(buf, &r);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (record_decode(&back, buf, sizes[i]) != -EBADMSG)
			fail_msg("a %zu-byte value decoded", sizes[i]);
	}
	assert_int_equal(record_decode(&back, buf, RECORD_SIZE), 0);
}

static void
test_empty_value_rejected_without_reading(void **state)
{
	struct record back;

	(void)state;
	assert_int_equal(record_decode(&back, NULL, 0), -EBADMSG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_out_of_range_times_rejected),
		cmocka_unit_test(test_layout_little_endian_at_documented_offsets),
		cmocka_unit_test(test_layout_real_timestamp),
		cmocka_unit_test(test_encode_clears_reserved_bytes),
		cmocka_unit_test(test_wrong_version_rejected),
		cmocka_unit_test(test_wrong_size_rejected),
		cmocka_unit_test(test_empty_value_rejected_without_reading),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
