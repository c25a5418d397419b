/*
 * logline - parse one decision line of greyhold's or postgrey's log.
 *
 * The lines have postgrey's shape, which greyhold keeps (answer.c,
 * server.c):
 *
 *   action=greylist, reason=new, client_name=N, client_address=A,
 *	sender=S, recipient=R
 *   action=greylist, reason=early-retry (42s missing), client_name=...
 *   action=pass, reason=triplet found, delay=312, client_name=...
 *   action=pass, reason=client whitelist (live), client_name=...
 *   action=error, reason=store failure (Input/output error),
 *	answer=DUNNO, client_name=...
 *
 * (one line each), after one of these prefixes:
 *
 *   greyhold: 					the daemon's stderr
 *   Nov 28 21:30:00 host greyhold[123]: 	syslog (a fraction of a
 *						second may follow)
 *   2026-11-28T21:30:00.123+01:00 host greyhold[123]: 	RFC 3339 syslog
 *   Nov 28 21:30:00 host greyhold[123]: greyhold: 	stderr in the journal
 *   Nov 28 21:30:00 host postgrey[123]: [QUEUEID: ]	postgrey
 *
 * or none (journalctl -o cat).  postgrey leaves out empty fields, so a
 * missing client_name or sender is empty, not an error.
 *
 * Field values are untrusted mail data that the daemon escaped, but
 * escaping keeps ", " and "=": a sender may read "a, recipient=b".  The
 * client name (a name Postfix verified) and address (an address) cannot,
 * so each ends at the first ", " that starts a later field; the sender
 * ends at the last ", recipient=", since the recipient, which Postfix
 * accepted for delivery, is the less likely to be hostile.
 */
#include "logline.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#define TAG_GREYHOLD "greyhold"
#define TAG_POSTGREY "postgrey"

/* A syslog timestamp longer than this is not one. */
#define STAMP_MAX 40
/* Numbers in a line: enough for any delay, short of overflow. */
#define DIGITS_MAX 18

/* Every field after the reason; the last four identify the request. */
static const char *const field_keys[] = {
	"delay=", "answer=",
	"client_name=", "client_address=", "sender=", "recipient=",
};
#define NFIELDS (sizeof(field_keys) / sizeof(field_keys[0]))
#define NIDENTITY 4
static const char *const *const identity_keys =
	field_keys + NFIELDS - NIDENTITY;

static struct logline_span
span(const char *p, size_t len)
{
	struct logline_span s = {p, len};
	return s;
}

static bool
starts(const char *p, const char *end, const char *word)
{
	size_t n = strlen(word);

	return (size_t)(end - p) >= n && memcmp(p, word, n) == 0;
}

static bool
span_is(struct logline_span s, const char *word)
{
	return s.len == strlen(word) && memcmp(s.ptr, word, s.len) == 0;
}

/* The first occurrence of needle in [p, end), or NULL. */
static const char *
find(const char *p, const char *end, const char *needle)
{
	return memmem(p, (size_t)(end - p), needle, strlen(needle));
}

/* The last occurrence of needle in [p, end), or NULL. */
static const char *
find_last(const char *p, const char *end, const char *needle)
{
	const char *last = NULL, *hit;

	while ((hit = find(p, end, needle)) != NULL) {
		last = hit;
		p = hit + 1;
	}
	return last;
}

/*
 * The first ", " in [p, end) followed by one of keys[0..n), or NULL.
 */
static const char *
find_field_end(const char *p, const char *end, const char *const *keys,
	       size_t n)
{
	const char *sep;

	while ((sep = find(p, end, ", ")) != NULL) {
		for (size_t i = 0; i < n; i++) {
			if (starts(sep + 2, end, keys[i]))
				return sep;
		}
		p = sep + 1;
	}
	return NULL;
}

/* A decimal number of 1 to DIGITS_MAX digits, nothing else. */
static bool
parse_number(const char *p, size_t len, int64_t *out)
{
	int64_t v = 0;

	if (len == 0 || len > DIGITS_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)p[i]))
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return true;
}

static bool
is_identity(const char *p, const char *end)
{
	for (size_t i = 0; i < NIDENTITY; i++) {
		if (starts(p, end, identity_keys[i]))
			return true;
	}
	return false;
}

/* ---- the prefix ------------------------------------------------------------- */

static size_t
digits_len(const char *p, const char *end)
{
	size_t n = 0;

	while (p + n < end && isdigit((unsigned char)p[n]))
		n++;
	return n;
}

/* "Nov 28 21:30:00" or "Nov  3 01:02:03", maybe with ".123456". */
static size_t
bsd_stamp_len(const char *p, const char *end)
{
	static const char shape[] = "Aaa _9 99:99:99";
	size_t n = sizeof(shape) - 1;

	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		bool ok;

		switch (shape[i]) {
		case 'A':
			ok = isupper(c);
			break;
		case 'a':
			ok = islower(c);
			break;
		case '9':
			ok = isdigit(c);
			break;
		case '_':
			ok = c == ' ' || isdigit(c);
			break;
		default:
			ok = c == (unsigned char)shape[i];
		}
		if (!ok)
			return 0;
	}
	if (p + n < end && p[n] == '.')
		n += 1 + digits_len(p + n + 1, end);
	return n;
}

/* "2026-11-28T21:30:00.123456+01:00", "2026-11-28T21:30:00Z"... */
static size_t
iso_stamp_len(const char *p, const char *end)
{
	static const char shape[] = "9999-99-99T";
	size_t n = sizeof(shape) - 1;

	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (shape[i] == '9' ? !isdigit((unsigned char)p[i])
				    : p[i] != shape[i])
			return 0;
	}
	while (p + n < end && p[n] != ' ') {
		if (strchr("0123456789:.+-Z", p[n]) == NULL || n >= STAMP_MAX)
			return 0;
		n++;
	}
	return n;
}

/* A timestamp followed by a space: its length, or 0. */
static size_t
stamp_len(const char *p, const char *end)
{
	size_t n = bsd_stamp_len(p, end);

	if (n == 0)
		n = iso_stamp_len(p, end);
	if (n == 0 || n > STAMP_MAX || p + n >= end || p[n] != ' ')
		return 0;
	return n;
}

/* "greyhold: ", "postgrey[123]: ": its length, or 0. */
static size_t
tag_len(const char *p, const char *end, enum logline_tag *tag)
{
	size_t n;

	if (starts(p, end, TAG_GREYHOLD)) {
		*tag = LOGLINE_TAG_GREYHOLD;
		n = strlen(TAG_GREYHOLD);
	} else if (starts(p, end, TAG_POSTGREY)) {
		*tag = LOGLINE_TAG_POSTGREY;
		n = strlen(TAG_POSTGREY);
	} else {
		return 0;
	}
	if (p + n < end && p[n] == '[') {
		size_t d = digits_len(p + n + 1, end);

		if (d == 0 || p + n + 1 + d >= end || p[n + 1 + d] != ']')
			return 0;
		n += d + 2;
	}
	return starts(p + n, end, ": ") ? n + 2 : 0;
}

/* postgrey's "QUEUEID: " before "action=": its length, or 0. */
static size_t
queue_id_len(const char *p, const char *end)
{
	size_t n = 0;

	while (p + n < end && isalnum((unsigned char)p[n]))
		n++;
	return n > 0 && starts(p + n, end, ": ") ? n + 2 : 0;
}

/*
 * Skip the prefix: the start of "action=", or NULL for a line that is
 * not a decision line of greyhold or postgrey.
 */
static const char *
skip_prefix(const char *p, const char *end, struct logline *out)
{
	size_t n;

	if (starts(p, end, "action="))
		return p;
	n = stamp_len(p, end);
	if (n > 0) {
		out->stamp = span(p, n);
		p += n + 1;
		/* The host, unless the syslog left it out. */
		if (tag_len(p, end, &out->tag) == 0) {
			const char *sp = memchr(p, ' ', (size_t)(end - p));

			if (sp == NULL || sp == p)
				return NULL;
			p = sp + 1;
		}
	}
	n = tag_len(p, end, &out->tag);
	if (n == 0)
		return NULL;
	p += n;
	if (out->tag == LOGLINE_TAG_GREYHOLD && starts(p, end, "greyhold: "))
		p += strlen("greyhold: ");
	if (out->tag == LOGLINE_TAG_POSTGREY)
		p += queue_id_len(p, end);
	return starts(p, end, "action=") ? p : NULL;
}

/* ---- the fields ------------------------------------------------------------- */

static bool
parse_action(struct logline_span s, enum logline_action *action)
{
	for (int a = 0; a < LOGLINE_NACTIONS; a++) {
		if (span_is(s, logline_action_name((enum logline_action)a))) {
			*action = (enum logline_action)a;
			return true;
		}
	}
	return false;
}

/* Whether s is "NAME" alone (detail empty) or "NAME (DETAIL)". */
static bool
reason_with_detail(struct logline_span s, const char *name,
		   struct logline_span *detail)
{
	size_t n = strlen(name);

	*detail = span(s.ptr, 0);
	if (s.len < n || memcmp(s.ptr, name, n) != 0)
		return false;
	if (s.len == n)
		return true;
	if (s.len < n + 3 || memcmp(s.ptr + n, " (", 2) != 0 ||
	    s.ptr[s.len - 1] != ')')
		return false;
	*detail = span(s.ptr + n + 2, s.len - n - 3);
	return true;
}

static void
classify_reason(struct logline *out)
{
	static const char missing_suffix[] = "s missing";
	struct logline_span s = out->reason_text, detail;

	for (int r = 0; r < LOGLINE_OTHER; r++) {
		if (span_is(s, logline_reason_name((enum logline_reason)r))) {
			out->reason = (enum logline_reason)r;
			return;
		}
	}
	out->reason = LOGLINE_OTHER;
	if (reason_with_detail(s, "early-retry", &detail)) {
		size_t n = sizeof(missing_suffix) - 1;

		out->reason = LOGLINE_EARLY_RETRY;
		/* "42s missing"; another detail leaves missing at -1. */
		if (detail.len > n &&
		    memcmp(detail.ptr + detail.len - n, missing_suffix, n) == 0)
			parse_number(detail.ptr, detail.len - n, &out->missing);
	} else if (reason_with_detail(s, "store failure", &detail)) {
		out->reason = LOGLINE_STORE_FAILURE;
	}
}

/*
 * The fields between the reason and the client's: "delay=N", and any
 * other "key=value" such as the error line's "answer=" (config text,
 * which may hold ", "; it ends where a known field starts).  *pp is left
 * at the first identity field.
 */
static bool
parse_extras(const char **pp, const char *end, struct logline *out)
{
	const char *p = *pp;

	while (!is_identity(p, end)) {
		const char *eq = memchr(p, '=', (size_t)(end - p));
		const char *value, *sep;

		if (eq == NULL || eq == p)
			return false;
		for (const char *k = p; k < eq; k++) {
			if (!islower((unsigned char)*k) && *k != '_')
				return false;
		}
		value = eq + 1;
		if (starts(p, end, "delay=")) {
			sep = find(value, end, ", ");
			if (sep == NULL || !parse_number(value,
							 (size_t)(sep - value),
							 &out->delay))
				return false;
		} else {
			sep = find_field_end(value, end, field_keys, NFIELDS);
			if (sep == NULL)
				return false;
		}
		p = sep + 2;
	}
	*pp = p;
	return true;
}

/* client_name=, client_address=, sender=, recipient= to the end. */
static bool
parse_identity(const char *p, const char *end, struct logline *out)
{
	struct logline_span *dst[NIDENTITY] = {
		&out->client_name, &out->client_address, &out->sender,
		&out->recipient,
	};
	bool seen[NIDENTITY] = {false};

	for (size_t i = 0; i < NIDENTITY; i++) {
		const char *vend;

		if (!starts(p, end, identity_keys[i]))
			continue;
		p += strlen(identity_keys[i]);
		if (i + 1 == NIDENTITY)
			vend = end;
		else if (i + 2 == NIDENTITY)
			vend = find_last(p, end, ", recipient=");
		else
			vend = find_field_end(p, end, identity_keys + i + 1,
					      NIDENTITY - i - 1);
		if (vend == NULL)
			vend = end;
		*dst[i] = span(p, (size_t)(vend - p));
		seen[i] = true;
		p = vend < end ? vend + 2 : end;
	}
	/* Unconsumed text means fields out of order. */
	return p == end && seen[1] && seen[3];
}

static bool
parse_decision(const char *p, const char *end, struct logline *out)
{
	const char *sep;

	p += strlen("action=");
	sep = find(p, end, ", ");
	if (sep == NULL ||
	    !parse_action(span(p, (size_t)(sep - p)), &out->action))
		return false;
	p = sep + 2;
	if (!starts(p, end, "reason="))
		return false;
	p += strlen("reason=");
	sep = find(p, end, ", ");
	if (sep == NULL || sep == p)
		return false;
	out->reason_text = span(p, (size_t)(sep - p));
	classify_reason(out);
	p = sep + 2;
	return parse_extras(&p, end, out) && parse_identity(p, end, out);
}

int
logline_parse(const char *text, size_t len, struct logline *out)
{
	const char *end = text + len;
	const char *p;

	memset(out, 0, sizeof(*out));
	out->delay = -1;
	out->missing = -1;
	if (len > 0 && end[-1] == '\r')
		end--;
	p = skip_prefix(text, end, out);
	if (p == NULL) {
		out->tag = LOGLINE_TAG_NONE;
		out->stamp = span(NULL, 0);
		return -ENOENT;
	}
	/* The daemon escapes every byte below 0x20: a NUL is damage. */
	if (memchr(p, '\0', (size_t)(end - p)) != NULL ||
	    !parse_decision(p, end, out))
		return -EINVAL;
	return 0;
}

const char *
logline_action_name(enum logline_action action)
{
	switch (action) {
	case LOGLINE_GREYLIST:
		return "greylist";
	case LOGLINE_PASS:
		return "pass";
	case LOGLINE_ERROR:
		return "error";
	default:
		return "unknown";
	}
}

const char *
logline_reason_name(enum logline_reason reason)
{
	switch (reason) {
	case LOGLINE_NEW:
		return "new";
	case LOGLINE_RESTART:
		return "new (seen too long ago)";
	case LOGLINE_EARLY_RETRY:
		return "early-retry";
	case LOGLINE_TRIPLET_FOUND:
		return "triplet found";
	case LOGLINE_CLIENT_WHITELIST:
		return "client whitelist";
	case LOGLINE_CLIENT_WHITELIST_LIVE:
		return "client whitelist (live)";
	case LOGLINE_RECIPIENT_WHITELIST:
		return "recipient whitelist";
	case LOGLINE_RECIPIENT_WHITELIST_LIVE:
		return "recipient whitelist (live)";
	case LOGLINE_CLIENT_AWL:
		return "client AWL";
	case LOGLINE_AUTHENTICATED:
		return "authenticated";
	case LOGLINE_STORE_FAILURE:
		return "store failure";
	default:
		return "other";
	}
}
