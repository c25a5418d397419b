/*
 * declog - decision log records: built on the loop thread, formatted by
 * the log writer.  See declog.h.
 */
#include "declog.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* What precedes the bytes of a record; copied out, never cast in place. */
struct rec {
	struct engine_verdict v;
	int32_t err;
	uint8_t has_verdict;
	uint16_t words_len;	/* the head, or the failure action */
	uint16_t extra_len;
	uint16_t len[DECLOG_NFIELDS];
	uint16_t full[DECLOG_NFIELDS];
};

void
declog_fields_set(struct declog_fields *f, const struct policy_request *r)
{
	const struct policy_str *v[DECLOG_NFIELDS] = {
		&r->client_name, &r->client_address, &r->sender, &r->recipient,
	};

	for (int i = 0; i < DECLOG_NFIELDS; i++) {
		size_t n = v[i]->ptr != NULL ? v[i]->len : 0;

		f->full[i] = n > ANSWER_FIELD_MAX ? ANSWER_FIELD_MAX + 1
						  : (uint16_t)n;
		f->len[i] = n > ANSWER_FIELD_MAX ? ANSWER_FIELD_MAX : (uint16_t)n;
		if (f->len[i] > 0)
			memcpy(f->text[i], v[i]->ptr, f->len[i]);
	}
}

static size_t
put(char *p, const char *s, uint16_t *len)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n > DECLOG_WORDS_MAX)
		n = DECLOG_WORDS_MAX;
	if (n > 0)
		memcpy(p, s, n);
	*len = (uint16_t)n;
	return n;
}

size_t
declog_encode(void *buf, const struct declog_fields *f,
	      const struct engine_verdict *v, int err,
	      const char *failure_action, const char *head, const char *extra)
{
	struct rec h;
	char *p = (char *)buf + sizeof(h);

	memset(&h, 0, sizeof(h));
	if (v != NULL) {
		h.v = *v;
		h.err = err;
		h.has_verdict = 1;
		p += put(p, err < 0 ? failure_action : NULL, &h.words_len);
	} else {
		p += put(p, head, &h.words_len);
	}
	p += put(p, extra, &h.extra_len);
	for (int i = 0; i < DECLOG_NFIELDS; i++) {
		h.len[i] = f->len[i];
		h.full[i] = f->full[i];
		memcpy(p, f->text[i], f->len[i]);
		p += f->len[i];
	}
	memcpy(buf, &h, sizeof(h));
	return (size_t)(p - (char *)buf);
}

/* Append text at out[*n], keeping the NUL within outsz. */
static void
append(char *out, size_t outsz, size_t *n, const char *text, size_t len)
{
	if (*n + 1 >= outsz)
		return;
	if (len > outsz - 1 - *n)
		len = outsz - 1 - *n;
	memcpy(out + *n, text, len);
	*n += len;
	out[*n] = '\0';
}

size_t
declog_format(char *out, size_t outsz, const void *rec, size_t len)
{
	char words[DECLOG_WORDS_MAX + 1];
	struct policy_request r;
	struct policy_str *v[DECLOG_NFIELDS] = {
		&r.client_name, &r.client_address, &r.sender, &r.recipient,
	};
	const char *p = (const char *)rec + sizeof(struct rec);
	const char *extra;
	struct rec h;
	size_t need, n = 0;

	/* Lines are cut where the loop thread used to cut them. */
	if (outsz > ANSWER_LOG_MAX)
		outsz = ANSWER_LOG_MAX;
	if (outsz == 0)
		return 0;
	out[0] = '\0';
	if (len < sizeof(h))
		return 0;
	memcpy(&h, rec, sizeof(h));
	need = sizeof(h) + h.words_len + h.extra_len;
	for (int i = 0; i < DECLOG_NFIELDS; i++)
		need += h.len[i];
	if (need > len || h.words_len > DECLOG_WORDS_MAX ||
	    h.extra_len > DECLOG_WORDS_MAX)
		return 0;

	if (h.has_verdict) {
		memcpy(words, p, h.words_len);
		words[h.words_len] = '\0';
		n = answer_log_head(out, outsz, words, &h.v, h.err);
	} else {
		append(out, outsz, &n, p, h.words_len);
	}
	p += h.words_len;
	extra = p;
	p += h.extra_len;
	if (h.extra_len > 0) {
		append(out, outsz, &n, ", ", 2);
		append(out, outsz, &n, extra, h.extra_len);
	}
	append(out, outsz, &n, ", ", 2);
	memset(&r, 0, sizeof(r));
	for (int i = 0; i < DECLOG_NFIELDS; i++) {
		/* log_escape() reads at most ANSWER_FIELD_MAX bytes: the kept
		   ones; the full length only tells it to add "...". */
		v[i]->ptr = h.full[i] > 0 ? p : NULL;
		v[i]->len = h.full[i];
		p += h.len[i];
	}
	if (n + 1 < outsz)
		answer_log_fields(out + n, outsz - n, &r);
	return strlen(out);
}

void
declog_verdict(const struct declog_fields *f, const struct engine_verdict *v,
	       int err, const char *failure_action, const char *extra)
{
	char buf[DECLOG_RECORD_MAX];
	size_t n = declog_encode(buf, f, v, err, failure_action, NULL, extra);

	log_record(LOG_LEVEL_INFO, declog_format, buf, n);
}

void
declog_head(const struct declog_fields *f, const char *head,
	    const char *extra)
{
	char buf[DECLOG_RECORD_MAX];
	size_t n = declog_encode(buf, f, NULL, 0, NULL, head, extra);

	log_record(LOG_LEVEL_INFO, declog_format, buf, n);
}
