/*
 * fuzz_policy - the policy parser and everything the daemon does with a
 * request before it reaches the store.
 *
 * Input: byte 0 chooses the config (bit 7: a stress config with the
 * longest reply texts) and how the rest is cut into reads (bits 0-6:
 * 0 = one read, 1..63 = reads of 1..N bytes, 64..127 = reads of up to
 * (N - 63) * 300 bytes, sizes drawn from a generator seeded by the input).
 * The remaining bytes are the stream a Postfix client would send.
 *
 * The stream is parsed twice: in those reads, and in one read.  Both must
 * yield the same requests and the same outcome, since a read boundary is
 * not something the protocol can see, and both must agree with a small
 * line-by-line model of policy.h's contract (the fields it names, the
 * limits and malformations it refuses).  Each request from the split run is
 * handled as server.c handles it: classified, its log fields escaped, its
 * triplet key built, matched against a small whitelist, and answered for
 * each kind of verdict.  Invariants are checked with abort():
 *   - policy_feed() never uses more than it was given, uses everything
 *     when it needs more, and fails for good once it has failed;
 *   - a request's fields point inside the parser's buffer and hold no LF
 *     or NUL;
 *   - a triplet key fits TRIPLET_MAX_KEY and is CLIENT\0SENDER\0RCPT;
 *   - a reply is "action=..." on one line followed by the empty line;
 *   - log text and the recipient domain hold no control bytes.
 */
#include "fuzz.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "config.h"
#include "engine.h"
#include "log.h"
#include "policy.h"
#include "triplet.h"
#include "whitelist.h"

/* A plausible clock: the daemon's now is time(NULL). */
#define FUZZ_NOW 1700000000

static struct config *cfg_default;
static struct config *cfg_stress;
static whitelist_t *wl;
static struct policy_parser split_parser;
static struct policy_parser whole_parser;

static void
check(bool ok)
{
	if (!ok)
		abort();
}

/* ---- fixed state, built on the first input ------------------------------ */

static struct config *
load_config(const struct config_override *ov, size_t nov)
{
	struct config *cfg;
	char err[512];

	if (config_load(&cfg, NULL, false, ov, nov, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_policy: config: %s\n", err);
		abort();
	}
	return cfg;
}

/* The longest texts config accepts, so replies hit answer.c's cut. */
static struct config *
load_stress_config(void)
{
	static char text[401];
	static char action[401];
	static char failure[401];
	static char header[401];
	static char host[301];
	const struct config_override ov[] = {
		{"greylist_text", text},
		{"greylist_action", action},
		{"failure_action", failure},
		{"x_greylist_header_text", header},
		{"hostname", host},
		{"greylist_authenticated", "yes"},
		{"lookup_by_host", "yes"},
		{"ipv4_cidr", "17"},
		{"ipv6_cidr", "33"},
	};
	size_t i;

	for (i = 0; i + 4 <= 400; i += 4)
		memcpy(text + i, i % 8 == 0 ? "%r%s" : "%%%r", 4);
	text[i] = '\0';
	memset(action, 'X', 400);
	memcpy(action, "DEFER_IF_PERMIT ", 16);
	action[400] = '\0';
	memset(failure, 'y', 400);
	memcpy(failure, "451 4.3.0 ", 10);
	failure[400] = '\0';
	memcpy(header, "X-Greylist:", 11);
	for (i = 11; i + 2 <= 400; i += 2)
		memcpy(header + i, i % 4 == 1 ? "%h" : "%d", 2);
	header[i] = '\0';
	memset(host, 'h', 300);
	host[300] = '\0';
	return load_config(ov, sizeof(ov) / sizeof(ov[0]));
}

static void
add_entry(enum whitelist_kind kind, const char *entry)
{
	char err[256];

	if (whitelist_add(wl, kind, entry, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_policy: whitelist %s: %s\n", entry, err);
		abort();
	}
}

static void
setup(void)
{
	static const char *const clients[] = {
		"192.0.2.0/24", "2001:db8::/32", "10.1", "198.51.100.7",
		"example.com", "/^mail\\d+\\.example\\.net$/",
	};
	static const char *const rcpts[] = {
		"postmaster@", "abuse@example.org", "example.net",
		"/^list-.*@/",
	};
	size_t i;

	cfg_default = load_config(NULL, 0);
	cfg_stress = load_stress_config();
	check(whitelist_create(&wl) == 0);
	for (i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
		add_entry(WHITELIST_CLIENTS, clients[i]);
	for (i = 0; i < sizeof(rcpts) / sizeof(rcpts[0]); i++)
		add_entry(WHITELIST_RECIPIENTS, rcpts[i]);
	check(whitelist_finish(wl) == 0);
}

/* ---- how the stream is cut into reads ------------------------------------ */

struct splitter {
	uint32_t state;
	size_t max;		/* 0: everything in one read */
};

static void
splitter_init(struct splitter *s, uint8_t selector, size_t size)
{
	unsigned m = selector & 0x7f;

	s->state = 0x9e3779b9u ^ (uint32_t)size ^ ((uint32_t)selector << 16);
	if (s->state == 0)
		s->state = 1;
	s->max = m < 64 ? m : (size_t)(m - 63) * 300;
}

static size_t
splitter_next(struct splitter *s, size_t left)
{
	size_t n;

	if (s->max == 0)
		return left;
	/* xorshift32 */
	s->state ^= s->state << 13;
	s->state ^= s->state >> 17;
	s->state ^= s->state << 5;
	n = 1 + s->state % s->max;
	return n < left ? n : left;
}

/* ---- checks ---------------------------------------------------------------- */

/* Escaped log text: printable ASCII only, NUL-terminated within size. */
static void
check_log_text(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	check(n < size);
	for (size_t i = 0; i < n; i++)
		check((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f);
}

/* One "action=..." line and the empty line, nothing else. */
static void
check_reply(const char *reply, size_t len, size_t size)
{
	check(len >= 9 && len < size);
	check(strlen(reply) == len);
	check(memcmp(reply, "action=", 7) == 0);
	check(reply[len - 1] == '\n' && reply[len - 2] == '\n');
	for (size_t i = 0; i < len - 2; i++)
		check((unsigned char)reply[i] >= 0x20 &&
		      (unsigned char)reply[i] < 0x7f);
}

static void
check_field(const struct policy_parser *p, struct policy_str s)
{
	if (s.ptr == NULL) {
		check(s.len == 0);
		return;
	}
	check(s.ptr >= p->buf && s.len <= p->len &&
	      s.ptr <= p->buf + p->len - s.len);
	check(memchr(s.ptr, '\n', s.len) == NULL);
	check(memchr(s.ptr, '\0', s.len) == NULL);
	check(s.len < POLICY_MAX_LINE);
}

static void
check_request(const struct policy_parser *p, const struct policy_request *r)
{
	check(r == &p->req);
	check(p->len <= sizeof(p->buf));
	check(r->nattrs >= 1 && r->nattrs <= POLICY_MAX_ATTRS);
	check(r->request.ptr != NULL);
	check_field(p, r->request);
	check_field(p, r->protocol_state);
	check_field(p, r->client_address);
	check_field(p, r->client_name);
	check_field(p, r->reverse_client_name);
	check_field(p, r->helo_name);
	check_field(p, r->sender);
	check_field(p, r->recipient);
	check_field(p, r->sasl_username);
	check_field(p, r->instance);
	check_field(p, r->queue_id);
	check(!policy_in_request(p));
}

/* CLIENT '\0' SENDER '\0' RECIPIENT, each part within its bound. */
static void
check_key(const struct triplet_key *k)
{
	const char *sep1, *sep2;

	check(k->client_len < TRIPLET_MAX_CLIENT);
	check(strlen(k->client) == k->client_len);
	check(k->key_len <= TRIPLET_MAX_KEY);
	check(k->key_len >= k->client_len + 2);
	check(memcmp(k->key, k->client, k->client_len) == 0);
	sep1 = k->key + k->client_len;
	check(*sep1 == '\0');
	sep2 = memchr(sep1 + 1, '\0', k->key_len - k->client_len - 1);
	check(sep2 != NULL);
	check(sep2 - (sep1 + 1) <= TRIPLET_MAX_ADDR);
	check(k->key + k->key_len - (sep2 + 1) <= TRIPLET_MAX_ADDR);
	check(memchr(sep2 + 1, '\0', (size_t)(k->key + k->key_len - sep2 - 1)) ==
	      NULL);
}

static void
check_domain(const char *d, size_t size)
{
	size_t n = strnlen(d, size);

	check(n < size);
	for (size_t i = 0; i < n; i++) {
		char c = d[i];
		check((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_');
	}
}

/* ---- handling a request as server.c does ---------------------------------- */

static void
answer_verdict(const struct config *cfg, const struct engine_verdict *v,
	       int err, const char *domain, const char *fields)
{
	char reply[ANSWER_REPLY_MAX];
	char line[ANSWER_LOG_MAX];
	size_t n;

	n = answer_reply(reply, sizeof(reply), cfg, v, err, domain);
	check_reply(reply, n, sizeof(reply));
	answer_log_line(line, sizeof(line), cfg, v, err, fields);
	check_log_text(line, sizeof(line));
}

static void
answer_all_verdicts(const struct config *cfg, const struct triplet_key *key,
		    const char *domain, const char *fields)
{
	struct engine_params params = {cfg->delay, cfg->retry_window,
				       cfg->max_age, cfg->auto_whitelist_clients};
	struct engine_verdict v;
	struct record out;
	struct record pending = {FUZZ_NOW - 1, FUZZ_NOW - 1, 0};
	char reply[ANSWER_REPLY_MAX];
	size_t n;
	int64_t now = FUZZ_NOW + (int64_t)(key->key_len * 7919);

	check(engine_triplet(NULL, now, &params, &out, &v));
	check(v.action == ENGINE_DEFER && v.seconds_left == cfg->delay);
	answer_verdict(cfg, &v, 0, domain, fields);

	engine_triplet(&pending, FUZZ_NOW, &params, &out, &v);
	check(v.action == ENGINE_DEFER && v.reason == ENGINE_EARLY);
	answer_verdict(cfg, &v, 0, domain, fields);

	engine_triplet(&pending, FUZZ_NOW - 1 + cfg->delay, &params, &out, &v);
	check(v.action == ENGINE_PASS && v.reason == ENGINE_PASSED);
	answer_verdict(cfg, &v, 0, domain, fields);
	n = answer_prepend_text(reply, sizeof(reply), cfg->x_greylist_header_text,
				v.delay, cfg->hostname[0] != '\0' ? cfg->hostname :
				"mx.example.org", now);
	check_reply(reply, n, sizeof(reply));
	n = answer_prepend(reply, sizeof(reply), v.delay, "mx.example.org", now);
	check_reply(reply, n, sizeof(reply));

	answer_verdict(cfg, &v, -EIO, domain, fields);
	n = answer_dunno(reply, sizeof(reply));
	check_reply(reply, n, sizeof(reply));
}

static void
handle_request(const struct policy_request *r, const struct config *cfg)
{
	struct triplet_opts opts = {cfg->lookup_by_host, cfg->ipv4_cidr,
				    cfg->ipv6_cidr};
	struct triplet_key key;
	char fields[ANSWER_FIELDS_MAX];
	char domain[TRIPLET_MAX_ADDR + 1];
	char shown[80];
	enum answer_kind kind;

	if (!policy_str_eq(r->request, "smtpd_access_policy")) {
		/* The daemon logs the value and closes the connection. */
		log_escape(shown, sizeof(shown), r->request.ptr, r->request.len,
			   40);
		check_log_text(shown, sizeof(shown));
		return;
	}
	kind = answer_classify(r, cfg);
	check((kind == ANSWER_NOT_RCPT) ==
	      !policy_str_eq(r->protocol_state, "RCPT"));
	if (kind == ANSWER_NOT_RCPT)
		return;
	answer_log_fields(fields, sizeof(fields), r);
	check_log_text(fields, sizeof(fields));
	if (kind == ANSWER_AUTHENTICATED)
		return;
	if (whitelist_match_client(wl, r->client_address.ptr,
				   r->client_address.len, r->client_name.ptr,
				   r->client_name.len) ||
	    whitelist_match_recipient(wl, r->recipient.ptr, r->recipient.len))
		return;
	answer_rcpt_domain(domain, sizeof(domain), r);
	check_domain(domain, sizeof(domain));
	triplet_build(&key, r->client_address.ptr, r->client_address.len,
		      r->sender.ptr, r->sender.len, r->recipient.ptr,
		      r->recipient.len, &opts);
	check_key(&key);
	answer_all_verdicts(cfg, &key, domain, fields);
}

/* ---- parsing ----------------------------------------------------------------- */

struct outcome {
	unsigned requests;
	uint64_t digest;	/* of every request's fields, in order */
	int rc;			/* first error, or 0 */
	bool in_request;	/* an unfinished request at the end */
};

static uint64_t
digest_bytes(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t
digest_str(uint64_t h, struct policy_str s)
{
	uint8_t present = s.ptr != NULL;

	h = digest_bytes(h, &present, 1);
	h = digest_bytes(h, &s.len, sizeof(s.len));
	return s.ptr != NULL ? digest_bytes(h, s.ptr, s.len) : h;
}

static uint64_t
digest_request(uint64_t h, const struct policy_request *r)
{
	h = digest_str(h, r->request);
	h = digest_str(h, r->protocol_state);
	h = digest_str(h, r->client_address);
	h = digest_str(h, r->client_name);
	h = digest_str(h, r->reverse_client_name);
	h = digest_str(h, r->helo_name);
	h = digest_str(h, r->sender);
	h = digest_str(h, r->recipient);
	h = digest_str(h, r->sasl_username);
	h = digest_str(h, r->instance);
	h = digest_str(h, r->queue_id);
	return digest_bytes(h, &r->nattrs, sizeof(r->nattrs));
}

/* Feed one read, the way conn_process_input() does; false after an error. */
static bool
feed_read(struct policy_parser *p, const char *data, size_t len,
	  const struct config *cfg, struct outcome *o)
{
	size_t off = 0;

	while (off < len) {
		const struct policy_request *r;
		size_t used = (size_t)-1;
		int rc = policy_feed(p, data + off, len - off, &used, &r);

		check(used <= len - off);
		if (rc < 0) {
			check(rc == -EBADMSG || rc == -EMSGSIZE || rc == -E2BIG);
			check(p->failed && p->error != NULL && r == NULL);
			/* Failed for good: nothing more is taken. */
			check(policy_feed(p, data, len, &used, &r) == -EBADMSG);
			check(used == 0 && r == NULL);
			o->rc = rc;
			return false;
		}
		if (rc == POLICY_NEED_MORE) {
			check(used == len - off && r == NULL);
		} else {
			check(rc == POLICY_REQUEST && r != NULL && used >= 1);
			check_request(p, r);
			o->requests++;
			o->digest = digest_request(o->digest, r);
			if (cfg != NULL)
				handle_request(r, cfg);
		}
		off += used;
	}
	return true;
}

static void
parse_stream(struct policy_parser *p, const char *data, size_t len,
	     struct splitter *sp, const struct config *cfg, struct outcome *o)
{
	size_t off = 0;

	memset(o, 0, sizeof(*o));
	o->digest = 0xcbf29ce484222325ULL;
	policy_init(p);
	check(!policy_in_request(p));
	while (off < len) {
		size_t n = splitter_next(sp, len - off);

		if (!feed_read(p, data + off, n, cfg, o))
			return;
		off += n;
	}
	o->in_request = policy_in_request(p);
}

/* ---- a reference model of the protocol, line by line ------------------------ */

/*
 * policy.h's contract restated over whole lines, without reads or a
 * buffer: what a request must contain and when the parser must fail.
 * Its fields point into the stream itself; digests compare contents.
 */
static const char *const model_names[] = {
	"request", "protocol_state", "client_address", "client_name",
	"reverse_client_name", "helo_name", "sender", "recipient",
	"sasl_username", "instance", "queue_id",
};
#define MODEL_NATTRS (sizeof(model_names) / sizeof(model_names[0]))

/* The field model_names[i] names. */
static struct policy_str *
model_slot(struct policy_request *r, size_t i)
{
	struct policy_str *const slots[MODEL_NATTRS] = {
		&r->request, &r->protocol_state, &r->client_address,
		&r->client_name, &r->reverse_client_name, &r->helo_name,
		&r->sender, &r->recipient, &r->sasl_username, &r->instance,
		&r->queue_id,
	};

	return slots[i];
}

/* One attribute line (without LF); 0 or the error the parser must give. */
static int
model_line(struct policy_request *r, const char *line, size_t len)
{
	const char *eq;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\0', len) != NULL)
		return -EBADMSG;
	eq = memchr(line, '=', len);
	if (eq == NULL || eq == line)
		return -EBADMSG;
	if (++r->nattrs > POLICY_MAX_ATTRS)
		return -E2BIG;
	for (size_t i = 0; i < MODEL_NATTRS; i++) {
		struct policy_str *slot;

		if (strlen(model_names[i]) != (size_t)(eq - line) ||
		    memcmp(model_names[i], line, (size_t)(eq - line)) != 0)
			continue;
		slot = model_slot(r, i);
		if (slot->ptr != NULL)
			return -EBADMSG;
		slot->ptr = eq + 1;
		slot->len = len - (size_t)(eq + 1 - line);
		break;
	}
	return 0;
}

static void
model_parse(const char *data, size_t len, struct outcome *o)
{
	struct policy_request r;
	size_t total = 0;	/* request bytes, LFs not counted */
	size_t off = 0;

	memset(o, 0, sizeof(*o));
	o->digest = 0xcbf29ce484222325ULL;
	memset(&r, 0, sizeof(r));
	while (off < len) {
		const char *line = data + off;
		const char *nl = memchr(line, '\n', len - off);
		size_t n = nl != NULL ? (size_t)(nl - line) : len - off;

		if (n > POLICY_MAX_LINE || total + n > POLICY_MAX_REQUEST) {
			o->rc = -EMSGSIZE;
			return;
		}
		total += n;
		off += n;
		if (nl == NULL)
			break;
		off++;
		if (n == 0 || (n == 1 && line[0] == '\r')) {
			if (r.nattrs == 0 || r.request.ptr == NULL) {
				o->rc = -EBADMSG;
				return;
			}
			o->requests++;
			o->digest = digest_request(o->digest, &r);
			memset(&r, 0, sizeof(r));
			total = 0;
			continue;
		}
		o->rc = model_line(&r, line, n);
		if (o->rc < 0)
			return;
	}
	o->in_request = total > 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct splitter split, whole;
	struct outcome a, b, m;
	const struct config *cfg;

	if (!ready) {
		setup();
		ready = true;
	}
	if (size < 1)
		return 0;
	cfg = (data[0] & 0x80) != 0 ? cfg_stress : cfg_default;
	splitter_init(&split, data[0], size);
	splitter_init(&whole, 0, size);

	parse_stream(&split_parser, (const char *)data + 1, size - 1, &split,
		     cfg, &a);
	parse_stream(&whole_parser, (const char *)data + 1, size - 1, &whole,
		     NULL, &b);
	check(a.requests == b.requests);
	check(a.digest == b.digest);
	check(a.rc == b.rc);
	check(a.in_request == b.in_request);
	model_parse((const char *)data + 1, size - 1, &m);
	check(a.requests == m.requests);
	check(a.digest == m.digest);
	check(a.rc == m.rc);
	check(a.in_request == m.in_request);
	return 0;
}
