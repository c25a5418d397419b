/*
 * fuzz_spf - the SPF evaluator against hostile records and DNS answers.
 *
 * Input: a header line, then records separated by newlines.
 *   byte 0      client: bit 0 chooses IPv6, bit 1 IPv4-mapped IPv6,
 *               bits 2-7 vary the address's last byte
 *   byte 1      sender shape: bit 0 the null sender (postmaster@HELO),
 *               bits 1-7 the local part's length (0..127, 'a' and '-')
 *   then up to the first newline: ignored (room for a comment)
 *   each further line is one answer, handed out in order to the
 *   evaluator's questions; the last line is reused when they run out.
 *   A line's first byte chooses the status (n % 8: 0-3 OK, 4 NXDOMAIN,
 *   5 NODATA, 6 TEMPFAIL, 7 PERMFAIL); the rest, split on '|', are the
 *   records: for a TXT question the text itself (NULs and all), for MX
 *   and PTR a name, for A/AAAA raw bytes (4/16 expected; other sizes
 *   happen).  A line "\\" followed by bytes is a TXT answer of that one
 *   record unsplit, so records may hold '|'.
 *
 * The evaluation is also repeated for the probe query (spf_query_probe).
 *
 * Invariants (abort() when broken):
 *   - spf_step() ends within a fixed number of steps (the limits make
 *     at most 10 terms x (1 + 10 names) + 11 records questions);
 *   - every question names a type of dns_result.h and a name of
 *     1..DNS_NAME_MAX printable bytes, no backslash, no empty label;
 *   - the result is one of the seven, its name is the RFC's, spf_why()
 *     is non-empty printable ASCII, spf_lookups() <= SPF_MAX_LOOKUPS + 1;
 *   - spf_step() after DONE stays DONE with the same result;
 *   - a pass never comes with more than SPF_MAX_LOOKUPS lookups.
 *
 * The first answer line is also taken alone as text and checked:
 *   - as a record: when spf_record_check() accepts it, walking it with
 *     spf_term_next() meets no error, and every term lies inside the
 *     record with its CIDR lengths in range;
 *   - as a macro-string: spf_macro_check() and spf_macro_expand() agree
 *     (checked text expands or runs out of room, unchecked text is a
 *     syntax error), and an expansion is printable, of the length told;
 *   - as a name: after spf_name_fit() it is at most DNS_NAME_MAX bytes
 *     or spf_name_valid() refuses it.
 */
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "spf.h"
#include "spf_macro.h"
#include "spf_parse.h"

#define LINES_MAX 64
#define RRS_MAX 12
#define STEPS_MAX 400

static void
check(bool ok)
{
	if (!ok)
		abort();
}

struct line {
	const uint8_t *p;
	size_t len;
};

struct input {
	struct line lines[LINES_MAX];
	size_t n;
};

static void
split_lines(struct input *in, const uint8_t *data, size_t size)
{
	size_t start = 0;

	in->n = 0;
	for (size_t i = 0; i <= size && in->n < LINES_MAX; i++) {
		if (i == size || data[i] == '\n') {
			in->lines[in->n].p = data + start;
			in->lines[in->n].len = i - start;
			in->n++;
			start = i + 1;
		}
	}
}

static const enum dns_status statuses[8] = {
	DNS_OK, DNS_OK, DNS_OK, DNS_OK, DNS_NXDOMAIN, DNS_NODATA,
	DNS_TEMPFAIL, DNS_PERMFAIL,
};

/* Build the answer from one line. */
static void
make_answer(const struct line *l, enum dns_type qtype, struct dns_result *res,
	    struct dns_rr *rr)
{
	size_t start, i;

	memset(res, 0, sizeof(*res));
	res->rr = rr;
	res->ttl = 60;
	if (l->len == 0) {
		res->status = DNS_NXDOMAIN;
		return;
	}
	if (l->p[0] == '\\') {
		res->status = DNS_OK;
		rr[0].data = l->p + 1;
		rr[0].len = l->len - 1;
		rr[0].pref = 0;
		res->n = qtype == DNS_T_TXT ? 1 : 0;
		return;
	}
	res->status = statuses[l->p[0] % 8];
	if (res->status != DNS_OK)
		return;
	start = 1;
	for (i = 1; i <= l->len && res->n < RRS_MAX; i++) {
		if (i == l->len || l->p[i] == '|') {
			rr[res->n].data = l->p + start;
			rr[res->n].len = i - start;
			rr[res->n].pref = (uint16_t)res->n;
			res->n++;
			start = i + 1;
		}
	}
}

static bool
printable(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static void
evaluate(const struct spf_query *q, const struct input *in)
{
	struct dns_rr rr[RRS_MAX];
	struct dns_result res;
	const struct dns_result *answer = NULL;
	char qname[DNS_NAME_MAX + 1];
	enum dns_type qtype;
	enum spf_result r;
	size_t next = 1, steps = 0;
	spf_t *s;

	if (spf_new(&s, q) < 0)
		return;
	while (spf_step(s, answer, &qtype, qname) == SPF_STEP_LOOKUP) {
		size_t len = strnlen(qname, DNS_NAME_MAX + 1);

		check(++steps < STEPS_MAX);
		check(qtype == DNS_T_A || qtype == DNS_T_AAAA ||
		      qtype == DNS_T_MX || qtype == DNS_T_PTR ||
		      qtype == DNS_T_TXT);
		check(len <= DNS_NAME_MAX && spf_name_valid(qname, len));
		if (in->n <= 1) {
			memset(&res, 0, sizeof(res));
			res.status = DNS_NXDOMAIN;
		} else {
			make_answer(&in->lines[next], qtype, &res, rr);
			if (next + 1 < in->n)
				next++;
		}
		answer = &res;
	}
	r = spf_result(s);
	check(r >= SPF_NONE && r <= SPF_PERMERROR);
	check(strcmp(spf_result_name(r), "unknown") != 0);
	check(printable(spf_why(s)));
	check(spf_lookups(s) <= SPF_MAX_LOOKUPS + 1);
	check(r != SPF_PASS || spf_lookups(s) <= SPF_MAX_LOOKUPS);
	check(spf_step(s, NULL, &qtype, qname) == SPF_STEP_DONE);
	check(spf_result(s) == r);
	spf_free(s);
}

static void
check_record(const char *rec, size_t len)
{
	struct spf_record_info info;
	struct spf_term t;
	const char *why = NULL;
	size_t pos = SPF_VERSION_LEN;
	int rc;

	if (spf_record_check(rec, len, &info, &why) < 0) {
		check(why != NULL && printable(why));
		return;
	}
	while ((rc = spf_term_next(rec, len, &pos, &t, &why)) > 0) {
		check(t.text >= rec && t.text + t.len <= rec + len);
		check(t.spec == NULL ||
		      (t.spec >= t.text && t.spec + t.spec_len <= t.text + t.len));
		check(t.kind <= SPF_TERM_UNKNOWN_MODIFIER);
		check(t.cidr4 <= 32 && t.cidr6 <= 128);
	}
	check(rc == 0 && pos == len);
}

static void
check_macro(const char *text, size_t len)
{
	struct addr client = {.family = ADDR_V6, .bytes = {0x20, 0x01}};
	struct spf_macro_ctx ctx = {
		.sender = "first.last@example.com", .local_len = 10,
		.domain = "sub.example.com", .helo = "helo.example.org",
		.receiver = NULL, .client = &client, .now = 1,
	};
	char out[512];
	size_t n = 1;
	int c = spf_macro_check(text, len, SPF_MACRO_EXP, NULL);
	int e = spf_macro_expand(&ctx, text, len, SPF_MACRO_EXP, out,
				 sizeof(out), &n);

	if (c == 0) {
		check(e == 0 || e == -ENOSPC);
	} else {
		check(c == -EINVAL && e == -EINVAL);
	}
	if (e == 0) {
		check(n < sizeof(out) && strlen(out) == n);
		check(n == 0 || printable(out));
	}
	if (len < sizeof(out)) {
		memcpy(out, text, len);
		n = spf_name_fit(out, len);
		check(n <= DNS_NAME_MAX || !spf_name_valid(out, n));
	}
}

static void
check_text(const struct line *l)
{
	char *text = malloc(l->len + 1);

	check(text != NULL);
	memcpy(text, l->p, l->len);
	text[l->len] = '\0';
	check_record(text, l->len);
	check_macro(text, l->len);
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t v4[4] = {192, 0, 2, 0};
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8};
	char sender[160];
	struct spf_query q, probe;
	struct input in;
	size_t local;

	if (size < 2)
		return 0;
	memset(&q, 0, sizeof(q));
	if (data[0] & 1) {
		q.client.family = ADDR_V6;
		memcpy(q.client.bytes, v6, 16);
		q.client.bytes[15] = (uint8_t)(data[0] >> 2);
	} else {
		q.client.family = data[0] & 2 ? ADDR_V6 : ADDR_V4;
		if (data[0] & 2) {
			q.client.bytes[10] = q.client.bytes[11] = 0xff;
			memcpy(q.client.bytes + 12, v4, 4);
			q.client.bytes[15] = (uint8_t)(data[0] >> 2);
		} else {
			memcpy(q.client.bytes, v4, 4);
			q.client.bytes[3] = (uint8_t)(data[0] >> 2);
		}
	}
	local = data[1] >> 1;
	for (size_t i = 0; i < local; i++)
		sender[i] = i % 3 == 2 ? '-' : 'a';
	memcpy(sender + local, "@example.com", sizeof("@example.com"));
	q.sender = data[1] & 1 ? "" : sender;
	q.helo = "helo.example.org";
	q.receiver = "mx.example.net";
	q.now = 1700000000;

	split_lines(&in, data + 2, size - 2);
	if (in.n > 1)
		check_text(&in.lines[1]);
	evaluate(&q, &in);
	if (spf_query_probe(&probe, &q))
		evaluate(&probe, &in);
	return 0;
}
