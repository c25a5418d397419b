/*
 * logline - one decision line of greyhold's (or postgrey's) log, split
 * into its fields (see logline.c).
 *
 * Pure: text in, struct out.  The struct points into the caller's text,
 * which must outlive it.  Field values are kept as logged, escaped by the
 * daemon (log_escape()); nothing is unescaped.
 */
#ifndef GREYHOLD_LOGLINE_H
#define GREYHOLD_LOGLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Part of the caller's text: ptr == NULL only with len == 0. */
struct logline_span {
	const char *ptr;
	size_t len;
};

enum logline_tag {
	LOGLINE_TAG_NONE,	/* bare "action=..." (journalctl -o cat) */
	LOGLINE_TAG_GREYHOLD,
	LOGLINE_TAG_POSTGREY,
};

enum logline_action {
	LOGLINE_GREYLIST,
	LOGLINE_PASS,
	LOGLINE_ERROR,
	LOGLINE_NACTIONS
};

enum logline_reason {
	LOGLINE_NEW,			/* "new" */
	LOGLINE_RESTART,		/* "new (seen too long ago)" */
	LOGLINE_EARLY_RETRY,		/* "early-retry (Ns missing)" */
	LOGLINE_TRIPLET_FOUND,		/* "triplet found" */
	LOGLINE_CLIENT_WHITELIST,	/* "client whitelist" */
	LOGLINE_CLIENT_WHITELIST_LIVE,	/* "client whitelist (live)" */
	LOGLINE_RECIPIENT_WHITELIST,	/* "recipient whitelist" */
	LOGLINE_RECIPIENT_WHITELIST_LIVE, /* "recipient whitelist (live)" */
	LOGLINE_CLIENT_AWL,		/* "client AWL" */
	LOGLINE_AUTHENTICATED,		/* "authenticated" */
	LOGLINE_STORE_FAILURE,		/* "store failure (strerror)" */
	LOGLINE_OTHER,			/* anything else: see reason_text */
	LOGLINE_NREASONS
};

struct logline {
	enum logline_tag tag;
	/* The syslog timestamp as written ("Nov 28 21:30:00" or RFC 3339),
	 * empty when the line has none (the daemon's stderr). */
	struct logline_span stamp;
	enum logline_action action;
	enum logline_reason reason;
	struct logline_span reason_text;	/* the whole reason as logged */
	int64_t delay;		/* "delay=N" (a first pass), or -1 */
	int64_t missing;	/* N of "early-retry (Ns missing)", or -1 */
	struct logline_span client_name;	/* empty when not logged */
	struct logline_span client_address;
	struct logline_span sender;	/* empty: the null sender */
	struct logline_span recipient;
};

/*
 * Parse one line (len bytes, without its newline; a trailing '\r' is
 * ignored).  Returns 0 and fills *out for a decision line; -ENOENT for a
 * line that is not a greyhold or postgrey decision (another program, or
 * another kind of greyhold message): skip it; -EINVAL for a decision line
 * of greyhold or postgrey that does not parse (out->tag and out->stamp
 * are set): count it.
 */
int logline_parse(const char *text, size_t len, struct logline *out);

/* "greylist", "pass", "error". */
const char *logline_action_name(enum logline_action action);
/* The reason as logged without its details: "early-retry", "other"... */
const char *logline_reason_name(enum logline_reason reason);

#endif
