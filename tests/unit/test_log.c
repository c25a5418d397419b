/*
 * test_log - escaping of untrusted text, the stderr sink's line shape,
 * verbosity, the log writer thread (order, drain on stop, dropping when
 * it lags), whole lines from two threads, and the error rate limiter.
 *
 * log_escape() is what keeps a hostile sender or client name from forging
 * a log line or a field of one, so it is checked byte by byte over all
 * 256 byte values, and its cuts (by input length and by output room)
 * against a sentinel just past the buffer.  The sink tests point stderr
 * at a temporary file and read back what a log reader would see.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

static char tmpdir[] = "/tmp/test_log.XXXXXX";

/* ---- escaping ---------------------------------------------------------------- */

static const char *
esc(char *out, size_t outsz, const char *in, size_t inlen, size_t max_in)
{
	return log_escape(out, outsz, in, inlen, max_in);
}

static void
expect_escape(const char *in, size_t inlen, const char *want)
{
	char out[256];

	assert_ptr_equal(esc(out, sizeof(out), in, inlen, 64), out);
	if (strcmp(out, want) != 0)
		fail_msg("escaped '%s', expected '%s'", out, want);
}

static void
test_escape_printable_unchanged(void **state)
{
	static const char text[] =
		"client_name=mail.example.com, sender=<a\"b'c@[192.0.2.1]> ~{}|";

	(void)state;
	/* Fields are not quoted, so a quote is harmless and kept as is. */
	expect_escape(text, strlen(text), text);
	expect_escape("", 0, "");
}

static void
test_escape_control_bytes(void **state)
{
	(void)state;
	/* A newline would start a forged log line. */
	expect_escape("a\nb", 3, "a\\x0ab");
	expect_escape("a\r\nfake: action=pass", 20, "a\\x0d\\x0afake: action=pass");
	expect_escape("\t\x1b[31m", 6, "\\x09\\x1b[31m");
	expect_escape("\x7f", 1, "\\x7f");
	expect_escape("\x01\x1f", 2, "\\x01\\x1f");
}

static void
test_escape_backslash_doubled(void **state)
{
	(void)state;
	/* So a literal "\x0a" cannot pass for an escaped newline. */
	expect_escape("\\x0a", 4, "\\\\x0a");
	expect_escape("\\", 1, "\\\\");
}

/* NUL and bytes past it are data: the length, not a terminator, counts. */
static void
test_escape_nul_and_utf8(void **state)
{
	(void)state;
	expect_escape("a\0b", 3, "a\\x00b");
	expect_escape("\0", 1, "\\x00");
	/* UTF-8 is not decoded: each byte of "é" and "€" stands alone. */
	expect_escape("caf\xc3\xa9", 5, "caf\\xc3\\xa9");
	expect_escape("\xe2\x82\xac", 3, "\\xe2\\x82\\xac");
	expect_escape("\xff\x80", 2, "\\xff\\x80");
}

/* Every byte value: printable ASCII but '\' as is, the rest \xHH. */
static void
test_escape_every_byte(void **state)
{
	char in[1], out[16], want[16];

	(void)state;
	for (unsigned c = 0; c < 256; c++) {
		in[0] = (char)c;
		esc(out, sizeof(out), in, 1, 1);
		if (c == '\\')
			snprintf(want, sizeof(want), "\\\\");
		else if (c >= 0x20 && c < 0x7f)
			snprintf(want, sizeof(want), "%c", c);
		else
			snprintf(want, sizeof(want), "\\x%02x", c);
		if (strcmp(out, want) != 0)
			fail_msg("byte 0x%02x escaped as '%s', expected '%s'", c,
				 out, want);
	}
}

static void
test_escape_cut_at_max_in(void **state)
{
	char out[64];

	(void)state;
	esc(out, sizeof(out), "abcdefgh", 8, 8);
	assert_string_equal(out, "abcdefgh");
	esc(out, sizeof(out), "abcdefghi", 9, 8);
	assert_string_equal(out, "abcdefgh...");
	/* The cut counts input bytes, before they grow. */
	esc(out, sizeof(out), "\n\n\n\n", 4, 2);
	assert_string_equal(out, "\\x0a\\x0a...");
	esc(out, sizeof(out), "abc", 3, 0);
	assert_string_equal(out, "...");
}

/*
 * However small the buffer, the result is terminated inside it, marked
 * "..." when the room ran out, and never ends in half an escape.
 */
static void
test_escape_cut_by_room(void **state)
{
	char in[100], out[128];

	(void)state;
	memset(in, '\n', sizeof(in));
	for (size_t outsz = 1; outsz <= 64; outsz++) {
		size_t len;

		memset(out, '#', sizeof(out));
		esc(out, outsz, in, sizeof(in), sizeof(in));
		len = strlen(out);
		assert_true(len < outsz);
		for (size_t i = outsz; i < sizeof(out); i++)
			if (out[i] != '#')
				fail_msg("outsz %zu: byte %zu past the buffer "
					 "written", outsz, i);
		if (outsz >= 4 && (len < 3 || strcmp(out + len - 3, "...") != 0))
			fail_msg("outsz %zu: '%s' is not marked as cut", outsz,
				 out);
		/* Whole escapes only: the part before "..." is \x0a repeated. */
		if (len >= 3 && (len - 3) % 4 != 0)
			fail_msg("outsz %zu: half an escape in '%s'", outsz, out);
		for (size_t i = 0; len >= 3 && i < len - 3; i += 4)
			if (strncmp(out + i, "\\x0a", 4) != 0)
				fail_msg("outsz %zu: half an escape in '%s'",
					 outsz, out);
	}
	/* Zero room: nothing written at all. */
	out[0] = '#';
	esc(out, 0, "abc", 3, 3);
	assert_int_equal(out[0], '#');
}

/* The callers' sizing (4 bytes per input byte + 4) never cuts early. */
static void
test_escape_room_for_worst_case(void **state)
{
	char in[64], out[4 * sizeof(in) + 4];

	(void)state;
	memset(in, 0x01, sizeof(in));
	esc(out, sizeof(out), in, sizeof(in), sizeof(in));
	assert_int_equal(strlen(out), 4 * sizeof(in));
	assert_null(strstr(out, "..."));
}

/*
 * The escaping, byte by byte as its contract states it: each input byte is
 * written only while its longest form, "..." and the NUL fit after it.
 * log_escape() copies runs of plain bytes at once; it must agree with this
 * on every input, room and cut.
 */
static void
reference_escape(char *out, size_t outsz, const char *in, size_t inlen,
		 size_t max_in)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	bool cut = inlen > max_in;

	if (cut)
		inlen = max_in;
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (o + 4 + 3 + 1 > outsz) {
			cut = true;
			break;
		}
		if (c == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	if (cut && o + 3 < outsz) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void
test_escape_agrees_with_reference(void **state)
{
	char in[300], want[1300], got[1300];
	unsigned seed = 12345;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t inlen = (seed = seed * 1103515245u + 12345u) % 300;
		size_t outsz = 1 + (seed = seed * 1103515245u + 12345u) % 1299;
		size_t max_in = (seed = seed * 1103515245u + 12345u) % 320;
		/* Mostly plain text with some bytes to escape, or any bytes. */
		bool any = round % 3 == 0;

		for (size_t i = 0; i < inlen; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = any || (seed >> 16) % 8 == 0 ? (char)(seed >> 8)
							      : (char)('a' + (seed >> 16) % 26);
		}
		reference_escape(want, outsz, in, inlen, max_in);
		log_escape(got, outsz, in, inlen, max_in);
		if (strcmp(got, want) != 0)
			fail_msg("round %d (inlen %zu, outsz %zu, max_in %zu): "
				 "'%s' != '%s'", round, inlen, outsz, max_in,
				 got, want);
	}
}

/* ---- the stderr sink --------------------------------------------------------- */

struct capture {
	int saved_fd;
	char path[256];
};

static void
capture_start(struct capture *c)
{
	int fd;

	snprintf(c->path, sizeof(c->path), "%s/stderr", tmpdir);
	fflush(stderr);
	c->saved_fd = dup(STDERR_FILENO);
	assert_true(c->saved_fd >= 0);
	fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* What was written so far (caller frees). */
static char *
capture_read(const struct capture *c)
{
	FILE *fp = fopen(c->path, "r");
	char *text = calloc(1, 16 << 20);
	size_t n;

	assert_non_null(fp);
	assert_non_null(text);
	n = fread(text, 1, (16 << 20) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	return text;
}

static char *
capture_stop(struct capture *c)
{
	fflush(stderr);
	assert_int_equal(dup2(c->saved_fd, STDERR_FILENO), STDERR_FILENO);
	close(c->saved_fd);
	return capture_read(c);
}

static void
test_line_shape_and_levels(void **state)
{
	struct capture c;
	char *text;

	(void)state;
	log_open("test_log", false);
	log_set_verbose(false);
	capture_start(&c);
	log_msg(LOG_LEVEL_INFO, "action=%s, n=%d", "greylist", 7);
	log_msg(LOG_LEVEL_WARN, "slow %s", "store");
	log_msg(LOG_LEVEL_ERR, "broken");
	log_text(LOG_LEVEL_INFO, "ready line");
	log_msg(LOG_LEVEL_DEBUG, "hidden unless verbose");
	log_set_verbose(true);
	log_msg(LOG_LEVEL_DEBUG, "shown when verbose");
	log_set_verbose(false);
	log_text(LOG_LEVEL_DEBUG, "hidden again");
	text = capture_stop(&c);
	assert_string_equal(text,
			    "greyhold: action=greylist, n=7\n"
			    "greyhold: warning: slow store\n"
			    "greyhold: error: broken\n"
			    "greyhold: ready line\n"
			    "greyhold: shown when verbose\n");
	free(text);
}

static void
test_errno_appends_reason(void **state)
{
	struct capture c;
	char *text, want[256];

	(void)state;
	log_open("test_log", false);
	capture_start(&c);
	log_errno(LOG_LEVEL_ERR, -ENOSPC, "commit of %d records", 3);
	log_errno(LOG_LEVEL_WARN, EACCES, "open %s", "/x");
	text = capture_stop(&c);
	snprintf(want, sizeof(want),
		 "greyhold: error: commit of 3 records: %s\n"
		 "greyhold: warning: open /x: %s\n",
		 strerror(ENOSPC), strerror(EACCES));
	assert_string_equal(text, want);
	free(text);
}

/* An over-long message is cut, but still one line. */
static void
test_long_message_one_line(void **state)
{
	struct capture c;
	char *text, *big = malloc(10000);

	(void)state;
	assert_non_null(big);
	memset(big, 'x', 9999);
	big[9999] = '\0';
	log_open("test_log", false);
	capture_start(&c);
	log_msg(LOG_LEVEL_INFO, "%s", big);
	log_errno(LOG_LEVEL_ERR, -EIO, "%s", big);
	text = capture_stop(&c);
	assert_true(strlen(text) > 2000);
	assert_true(strlen(text) < 2 * 2048 + 64);
	assert_non_null(strchr(text, '\n'));
	assert_non_null(strchr(strchr(text, '\n') + 1, '\n'));
	assert_string_equal(strchr(strchr(text, '\n') + 1, '\n'), "\n");
	free(text);
	free(big);
}

/* A record format function for the tests: the record is "N:TEXT". */
static size_t
format_numbered(char *out, size_t outsz, const void *rec, size_t len)
{
	return (size_t)snprintf(out, outsz, "record %.*s", (int)len,
				(const char *)rec);
}

/* Wait up to 5 s for the captured text to contain want (caller frees). */
static char *
capture_wait_for(const struct capture *c, const char *want)
{
	char *text = NULL;

	for (int i = 0; i < 500; i++) {
		free(text);
		text = capture_read(c);
		if (strstr(text, want) != NULL)
			return text;
		usleep(10000);
	}
	fail_msg("'%s' not written within 5 s; got '%s'", want, text);
	return text;
}

/*
 * Without the writer a record is formatted and written at once; with it,
 * lines and records come out in the order they were queued, once the
 * loop's turn ends (log_flush()), and stopping writes everything queued.
 */
static void
test_writer_order_and_drain(void **state)
{
	struct capture c;
	char *text;

	(void)state;
	log_open("test_log", false);
	capture_start(&c);
	log_record(LOG_LEVEL_INFO, format_numbered, "0:direct", 8);
	text = capture_read(&c);
	assert_string_equal(text, "greyhold: record 0:direct\n");
	free(text);

	assert_int_equal(log_writer_start(), 0);
	log_msg(LOG_LEVEL_INFO, "one");
	log_record(LOG_LEVEL_WARN, format_numbered, "2:two", 5);
	log_msg(LOG_LEVEL_DEBUG, "hidden");
	log_text(LOG_LEVEL_INFO, "three");
	log_flush();
	text = capture_wait_for(&c, "three");
	assert_string_equal(text, "greyhold: record 0:direct\n"
			    "greyhold: one\n"
			    "greyhold: warning: record 2:two\n"
			    "greyhold: three\n");
	free(text);
	for (int i = 0; i < 1000; i++)
		log_msg(LOG_LEVEL_INFO, "burst %d", i);
	/* No flush: stopping alone must write the burst, in order. */
	log_writer_stop();
	log_msg(LOG_LEVEL_INFO, "after");
	text = capture_stop(&c);
	{
		const char *p = strstr(text, "greyhold: burst 0\n");

		assert_non_null(p);
		for (int i = 1; i < 1000; i++) {
			char want[64];

			snprintf(want, sizeof(want), "greyhold: burst %d\n", i);
			p = strstr(p, want);
			if (p == NULL)
				fail_msg("burst line %d missing or out of order", i);
		}
		assert_string_equal(strstr(p, "\n") + 1, "greyhold: after\n");
	}
	free(text);
}

/*
 * A writer that cannot keep up (its disk or syslog stalls) costs lines,
 * never the caller's time: while the writer is held inside a record,
 * queueing goes on, lines beyond the queue's bound are dropped and
 * counted, and once the writer is free it writes what was queued and says
 * how many were dropped.
 */
static sem_t held_entered, held_release;

static size_t
format_held(char *out, size_t outsz, const void *rec, size_t len)
{
	(void)rec;
	(void)len;
	sem_post(&held_entered);
	sem_wait(&held_release);
	return (size_t)snprintf(out, outsz, "held");
}

static void
test_writer_drops_when_behind(void **state)
{
	struct capture c;
	char *text, want[512], pad[201];
	uint64_t before = log_dropped(), dropped;
	int queued = 0, written = 0;
	const char *p;

	(void)state;
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	assert_int_equal(sem_init(&held_entered, 0, 0), 0);
	assert_int_equal(sem_init(&held_release, 0, 0), 0);
	log_open("test_log", false);
	capture_start(&c);
	assert_int_equal(log_writer_start(), 0);
	log_record(LOG_LEVEL_INFO, format_held, "", 0);
	log_flush();
	assert_int_equal(sem_wait(&held_entered), 0);
	/* 100k lines of ~220 bytes: far beyond the queue's few MiB. */
	for (int i = 0; i < 100000; i++) {
		log_msg(LOG_LEVEL_INFO, "queued %d %s", i, pad);
		queued++;
	}
	dropped = log_dropped() - before;
	assert_true(dropped > 0);
	assert_true(dropped < (uint64_t)queued);
	sem_post(&held_release);
	log_writer_stop();
	text = capture_stop(&c);
	for (p = text; (p = strstr(p, "greyhold: queued ")) != NULL; p++)
		written++;
	assert_int_equal((uint64_t)written + dropped, (uint64_t)queued);
	/* What was kept is the oldest, in order: the first lines queued. */
	snprintf(want, sizeof(want), "greyhold: queued %d %s", written - 1, pad);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), "greyhold: warning: log writer fell "
		 "behind (the log's disk or syslog was slow): %llu lines "
		 "dropped\n", (unsigned long long)dropped);
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, "greyhold: held\n"));
	free(text);
	sem_destroy(&held_entered);
	sem_destroy(&held_release);
}

#define WRITER_LINES 2000

static void *
writer(void *arg)
{
	const char *tag = arg;

	for (int i = 0; i < WRITER_LINES; i++)
		log_msg(LOG_LEVEL_INFO, "%s line %d %s", tag, i,
			"padding-padding-padding-padding-padding-padding");
	return NULL;
}

/* The loop thread and the store thread both log: no line is torn. */
static void
test_two_threads_whole_lines(void **state)
{
	struct capture c;
	pthread_t a, b;
	char *text, *line, *save = NULL;
	int seen[2] = {0, 0};
	char loop_tag[] = "loop", store_tag[] = "store";

	(void)state;
	log_open("test_log", false);
	capture_start(&c);
	assert_int_equal(log_writer_start(), 0);
	assert_int_equal(pthread_create(&a, NULL, writer, loop_tag), 0);
	assert_int_equal(pthread_create(&b, NULL, writer, store_tag), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	log_writer_stop();
	text = capture_stop(&c);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char tag[16], pad[64];
		int n;

		if (sscanf(line, "greyhold: %15s line %d %63s", tag, &n, pad) != 3 ||
		    strcmp(pad, "padding-padding-padding-padding-padding-padding") != 0)
			fail_msg("torn line: '%s'", line);
		if (strcmp(tag, "loop") == 0)
			seen[0]++;
		else if (strcmp(tag, "store") == 0)
			seen[1]++;
		else
			fail_msg("torn line: '%s'", line);
	}
	assert_int_equal(seen[0], WRITER_LINES);
	assert_int_equal(seen[1], WRITER_LINES);
	free(text);
}

/* ---- rate limiting ------------------------------------------------------------ */

static void
test_ratelimit_once_per_interval(void **state)
{
	struct log_ratelimit rl = {0, 0};

	(void)state;
	assert_true(log_ratelimit_allow(&rl, 1000, 1));
	assert_false(log_ratelimit_allow(&rl, 1000, 1));
	assert_false(log_ratelimit_allow(&rl, 1000, 1));
	assert_int_equal(rl.suppressed, 2);
	assert_true(log_ratelimit_allow(&rl, 1001, 1));
	/* The caller reports and clears the count; the limiter keeps it. */
	assert_int_equal(rl.suppressed, 2);
	rl.suppressed = 0;

	assert_true(log_ratelimit_allow(&rl, 2000, 10));
	assert_false(log_ratelimit_allow(&rl, 2009, 10));
	assert_true(log_ratelimit_allow(&rl, 2010, 10));
	assert_int_equal(rl.suppressed, 1);
}

/* A clock stepped back must not silence errors until it catches up. */
static void
test_ratelimit_clock_stepped_back(void **state)
{
	struct log_ratelimit rl = {0, 0};

	(void)state;
	assert_true(log_ratelimit_allow(&rl, 5000, 60));
	assert_true(log_ratelimit_allow(&rl, 4000, 60));
	assert_false(log_ratelimit_allow(&rl, 4001, 60));
}

/* ---- runner ------------------------------------------------------------------- */

static int
group_setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
	char path[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/stderr", tmpdir);
	unlink(path);
	return rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_printable_unchanged),
		cmocka_unit_test(test_escape_control_bytes),
		cmocka_unit_test(test_escape_backslash_doubled),
		cmocka_unit_test(test_escape_nul_and_utf8),
		cmocka_unit_test(test_escape_every_byte),
		cmocka_unit_test(test_escape_cut_at_max_in),
		cmocka_unit_test(test_escape_cut_by_room),
		cmocka_unit_test(test_escape_room_for_worst_case),
		cmocka_unit_test(test_escape_agrees_with_reference),
		cmocka_unit_test(test_line_shape_and_levels),
		cmocka_unit_test(test_errno_appends_reason),
		cmocka_unit_test(test_long_message_one_line),
		cmocka_unit_test(test_writer_order_and_drain),
		cmocka_unit_test(test_writer_drops_when_behind),
		cmocka_unit_test(test_two_threads_whole_lines),
		cmocka_unit_test(test_ratelimit_once_per_interval),
		cmocka_unit_test(test_ratelimit_clock_stepped_back),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
