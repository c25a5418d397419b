/*
 * answer - replies and decision log lines.
 */
#include "answer.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define FIELD_MAX ANSWER_FIELD_MAX

enum answer_kind
answer_classify(const struct policy_request *r, const struct config *cfg)
{
	if (!policy_str_eq(r->protocol_state, "RCPT"))
		return ANSWER_NOT_RCPT;
	if (!cfg->greylist_authenticated && r->sasl_username.ptr != NULL &&
	    r->sasl_username.len > 0)
		return ANSWER_AUTHENTICATED;
	return ANSWER_GREYLIST;
}

static const char *
esc(char *buf, size_t bufsz, struct policy_str s)
{
	if (s.ptr == NULL)
		return "";
	return log_escape(buf, bufsz, s.ptr, s.len, FIELD_MAX);
}

void
answer_log_fields(char *out, size_t outsz, const struct policy_request *r)
{
	char name[FIELD_MAX + 8], addr[FIELD_MAX + 8];
	char sender[FIELD_MAX + 8], rcpt[FIELD_MAX + 8];

	/* Escaping can grow a byte fourfold; the cut keeps lines bounded. */
	snprintf(out, outsz,
		 "client_name=%s, client_address=%s, sender=%s, recipient=%s",
		 esc(name, sizeof(name), r->client_name),
		 esc(addr, sizeof(addr), r->client_address),
		 esc(sender, sizeof(sender), r->sender),
		 esc(rcpt, sizeof(rcpt), r->recipient));
}

void
answer_rcpt_domain(char *out, size_t outsz, const struct policy_request *r)
{
	const char *at = NULL;
	size_t i, n = 0;

	if (outsz == 0)
		return;
	out[0] = '\0';
	if (r->recipient.ptr == NULL)
		return;
	for (i = r->recipient.len; i > 0; i--) {
		if (r->recipient.ptr[i - 1] == '@') {
			at = r->recipient.ptr + i;
			break;
		}
	}
	if (at == NULL)
		return;
	/* Only what may stand in a domain goes into a reply we send. */
	for (; at < r->recipient.ptr + r->recipient.len && n + 1 < outsz; at++) {
		unsigned char c = (unsigned char)*at;
		if (isalnum(c) || c == '.' || c == '-' || c == '_')
			out[n++] = (char)tolower(c);
	}
	out[n] = '\0';
}

/*
 * The length of a reply snprintf() wrote.  A cut reply still ends in the
 * empty line; a buffer too small for even that gets an empty string.
 */
static size_t
finish_reply(char *out, size_t outsz, int n)
{
	if (outsz < 3) {
		if (outsz > 0)
			out[0] = '\0';
		return 0;
	}
	if (n < 0 || (size_t)n >= outsz) {
		out[outsz - 3] = '\n';
		out[outsz - 2] = '\n';
		out[outsz - 1] = '\0';
		return outsz - 1;
	}
	return (size_t)n;
}

/*
 * Expand a template into out: "%c" for each code c in codes becomes
 * values[i] (codes[i] == c), "%%" becomes "%", and the result is cut to
 * fit.  Config validation has already refused any other '%' sequence.
 */
static size_t
expand(char *out, size_t outsz, const char *tmpl, const char *codes,
       const char *const *values)
{
	size_t o = 0;

	for (; *tmpl != '\0' && o + 1 < outsz; tmpl++) {
		const char *code;
		size_t n;

		if (*tmpl != '%') {
			out[o++] = *tmpl;
			continue;
		}
		tmpl++;
		if (*tmpl == '\0')
			break;
		if (*tmpl == '%') {
			out[o++] = '%';
			continue;
		}
		code = strchr(codes, *tmpl);
		if (code == NULL)
			continue;
		n = strlen(values[code - codes]);
		if (n > outsz - o - 1)
			n = outsz - o - 1;
		memcpy(out + o, values[code - codes], n);
		o += n;
	}
	out[o] = '\0';
	return o;
}

/* greylist_text with %s (seconds left), %r (recipient domain). */
static size_t
expand_text(char *out, size_t outsz, const char *text, int64_t seconds,
	    const char *domain)
{
	char secs[24];
	const char *values[] = {secs, domain};

	snprintf(secs, sizeof(secs), "%" PRId64, seconds);
	return expand(out, outsz, text, "sr", values);
}

size_t
answer_reply(char *out, size_t outsz, const struct config *cfg,
	     const struct engine_verdict *v, int err, const char *rcpt_domain)
{
	char text[ANSWER_REPLY_MAX];
	int n;

	if (err < 0)
		n = snprintf(out, outsz, "action=%s\n\n", cfg->failure_action);
	else if (v->action == ENGINE_PASS)
		return answer_dunno(out, outsz);
	else {
		expand_text(text, sizeof(text), cfg->greylist_text,
			    v->seconds_left, rcpt_domain);
		n = snprintf(out, outsz, "action=%s%s%s\n\n",
			     cfg->greylist_action, text[0] != '\0' ? " " : "",
			     text);
	}
	return finish_reply(out, outsz, n);
}

size_t
answer_prepend_text(char *out, size_t outsz, const char *tmpl, int64_t delay,
		    const char *host, int64_t now)
{
	time_t t = (time_t)now;
	struct tm tm;
	char date[64], secs[24];
	char header[ANSWER_REPLY_MAX];
	const char *values[] = {secs, PACKAGE_VERSION, host, date};

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	snprintf(secs, sizeof(secs), "%" PRId64, delay);
	expand(header, sizeof(header), tmpl, "tvhd", values);
	return finish_reply(out, outsz, snprintf(out, outsz,
						 "action=PREPEND %s\n\n", header));
}

size_t
answer_prepend(char *out, size_t outsz, int64_t delay, const char *host,
	       int64_t now)
{
	return answer_prepend_text(out, outsz, ANSWER_DEFAULT_HEADER, delay,
				   host, now);
}

size_t
answer_dunno(char *out, size_t outsz)
{
	static const char dunno[] = "action=DUNNO\n\n";

	/* Most answers are this one: a copy, not a format. */
	if (outsz < sizeof(dunno)) {
		/* Cut, it still ends in the empty line (finish_reply()). */
		if (outsz >= 3)
			memcpy(out, dunno, outsz - 3);
		return finish_reply(out, outsz, -1);
	}
	memcpy(out, dunno, sizeof(dunno));
	return sizeof(dunno) - 1;
}

void
answer_log_line(char *out, size_t outsz, const struct config *cfg,
		const struct engine_verdict *v, int err, const char *fields)
{
	answer_log_verdict(out, outsz, cfg->failure_action, v, err, fields);
}

void
answer_log_verdict(char *out, size_t outsz, const char *failure_action,
		   const struct engine_verdict *v, int err, const char *fields)
{
	size_t n = answer_log_head(out, outsz, failure_action, v, err);

	if (n + 1 < outsz)
		snprintf(out + n, outsz - n, ", %s", fields);
}

size_t
answer_log_head(char *out, size_t outsz, const char *failure_action,
		const struct engine_verdict *v, int err)
{
	const char *reason;
	int n;

	if (err < 0) {
		n = snprintf(out, outsz, "action=error, reason=store failure "
			     "(%s), answer=%s", strerror(-err), failure_action);
	} else {
		reason = engine_reason_name(v->reason);
		if (v->action == ENGINE_DEFER && v->reason == ENGINE_EARLY)
			n = snprintf(out, outsz, "action=greylist, reason=%s "
				     "(%" PRId64 "s missing)", reason,
				     v->seconds_left);
		else if (v->action == ENGINE_DEFER)
			n = snprintf(out, outsz, "action=greylist, reason=%s",
				     reason);
		else if (v->reason == ENGINE_PASSED)
			n = snprintf(out, outsz, "action=pass, reason=%s, "
				     "delay=%" PRId64, reason, v->delay);
		else
			n = snprintf(out, outsz, "action=pass, reason=%s",
				     reason);
	}
	if (n < 0)
		n = 0;
	return outsz == 0 ? 0 : (size_t)n < outsz ? (size_t)n : outsz - 1;
}
