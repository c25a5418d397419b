/*
 * answer - what greyhold says to Postfix and writes to its log.
 *
 * Pure formatting over a request, the config and a verdict.  Replies are
 * one "action=..." line and the empty line that ends a policy response.
 * Decision log lines follow postgrey's shape so existing log tools keep
 * working:
 *   action=greylist, reason=new, client_name=..., client_address=..., ...
 *   action=pass, reason=triplet found, delay=312, client_name=..., ...
 */
#ifndef GREYHOLD_ANSWER_H
#define GREYHOLD_ANSWER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine.h"
#include "policy.h"

/* Room for any reply and any log line this module writes. */
#define ANSWER_REPLY_MAX 1024
#define ANSWER_FIELDS_MAX 1400
#define ANSWER_LOG_MAX 1600
/* Longest untrusted value shown in a log line (longer ones are cut). */
#define ANSWER_FIELD_MAX 256

enum answer_kind {
	ANSWER_GREYLIST,	/* ask the store */
	ANSWER_NOT_RCPT,	/* protocol_state is not RCPT: DUNNO */
	ANSWER_AUTHENTICATED,	/* sasl_username set: DUNNO */
};

enum answer_kind answer_classify(const struct policy_request *r,
				 const struct config *cfg);

/*
 * The request's identifying fields for log lines, escaped and cut:
 * "client_name=X, client_address=Y, sender=Z, recipient=W".
 */
void answer_log_fields(char *out, size_t outsz, const struct policy_request *r);

/* Recipient domain (after the last '@'), lower case, for %r. */
void answer_rcpt_domain(char *out, size_t outsz, const struct policy_request *r);

/*
 * Reply for a verdict, or for a store failure when err < 0.  Returns the
 * length written (including the final empty line).
 */
size_t answer_reply(char *out, size_t outsz, const struct config *cfg,
		    const struct engine_verdict *v, int err,
		    const char *rcpt_domain);

/* postgrey's header, with greyhold's name: see answer_prepend_text(). */
#define ANSWER_DEFAULT_HEADER "X-Greylist: delayed %t seconds by greyhold-%v at %h; %d"

/*
 * The reply for a first pass after a delay when x_greylist_header is on:
 * "action=PREPEND " and the header template with %t (the delay in
 * seconds), %v (greyhold's version), %h (host) and %d (now as an RFC 5322
 * date, UTC) expanded.
 */
size_t answer_prepend_text(char *out, size_t outsz, const char *tmpl,
			   int64_t delay, const char *host, int64_t now);
/* The same with ANSWER_DEFAULT_HEADER. */
size_t answer_prepend(char *out, size_t outsz, int64_t delay,
		      const char *host, int64_t now);

/* Reply with the fixed action "DUNNO". */
size_t answer_dunno(char *out, size_t outsz);

/* Decision log line for a verdict or a store failure. */
void answer_log_line(char *out, size_t outsz, const struct config *cfg,
		     const struct engine_verdict *v, int err,
		     const char *fields);
/* The same with the configured failure action given on its own. */
void answer_log_verdict(char *out, size_t outsz, const char *failure_action,
			const struct engine_verdict *v, int err,
			const char *fields);
/*
 * The line's words before ", FIELDS" ("action=pass, reason=triplet found,
 * delay=312"); returns their length as written (cut to outsz - 1).
 */
size_t answer_log_head(char *out, size_t outsz, const char *failure_action,
		       const struct engine_verdict *v, int err);

#endif
