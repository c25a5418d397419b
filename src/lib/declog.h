/*
 * declog - decision log lines as records for the log writer (log.h).
 *
 * The loop thread keeps the four request values a decision line shows
 * raw (declog_fields_set(): a bounded copy, no escaping), and once the
 * request is decided it queues a record (declog_verdict(), declog_head())
 * holding those bytes, the verdict and the few words around them.  The
 * log writer formats the record into exactly the line answer_log_fields()
 * and answer_log_verdict() give, so escaping and formatting happen off the
 * event loop.  Pure apart from the queueing in declog_verdict() and
 * declog_head(); declog_encode() and declog_format() are the two halves,
 * exposed for tests.
 */
#ifndef GREYHOLD_DECLOG_H
#define GREYHOLD_DECLOG_H

#include <stddef.h>
#include <stdint.h>

#include "answer.h"
#include "engine.h"
#include "log.h"
#include "policy.h"

enum declog_field {
	DECLOG_CLIENT_NAME,
	DECLOG_CLIENT_ADDRESS,
	DECLOG_SENDER,
	DECLOG_RECIPIENT,
	DECLOG_NFIELDS
};

/* The logged values of one request, as Postfix sent them, cut. */
struct declog_fields {
	uint16_t len[DECLOG_NFIELDS];	/* bytes kept, <= ANSWER_FIELD_MAX */
	/* The value's length capped at ANSWER_FIELD_MAX + 1: longer than
	 * kept means the line shows it cut ("..."). */
	uint16_t full[DECLOG_NFIELDS];
	char text[DECLOG_NFIELDS][ANSWER_FIELD_MAX];
};

/* Room for any record declog_encode() writes. */
#define DECLOG_WORDS_MAX 512
#define DECLOG_RECORD_MAX (64 + 2 * DECLOG_WORDS_MAX + \
			   DECLOG_NFIELDS * ANSWER_FIELD_MAX)

void declog_fields_set(struct declog_fields *f, const struct policy_request *r);

/*
 * Encode a decision line into buf (at least DECLOG_RECORD_MAX bytes):
 * with v non-NULL, "HEAD[, EXTRA], FIELDS" where HEAD is what
 * answer_log_verdict() says for (failure_action, v, err); with v NULL,
 * the given head instead ("action=pass, reason=client whitelist").
 * extra may be NULL.  Words longer than DECLOG_WORDS_MAX are cut.
 * Returns the record's length.
 */
size_t declog_encode(void *buf, const struct declog_fields *f,
		     const struct engine_verdict *v, int err,
		     const char *failure_action, const char *head,
		     const char *extra);

/* The line of a record declog_encode() wrote (a log_format_fn). */
size_t declog_format(char *out, size_t outsz, const void *rec, size_t len);

/* Queue the line of a verdict (declog_encode() with v) at LOG_LEVEL_INFO. */
void declog_verdict(const struct declog_fields *f,
		    const struct engine_verdict *v, int err,
		    const char *failure_action, const char *extra);

/* Queue "HEAD[, EXTRA], FIELDS" at LOG_LEVEL_INFO. */
void declog_head(const struct declog_fields *f, const char *head,
		 const char *extra);

#endif
