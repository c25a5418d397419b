/*
 * server_request - what happens to a request: parse it from the
 * connection's buffer, answer it at once when it is not greylisted (not
 * RCPT, authenticated, whitelisted), or build its key and hand it to the
 * store; turn the store's verdict into the reply; one log line and the
 * counters per answer.
 */
#ifndef GREYHOLD_SERVER_REQUEST_H
#define GREYHOLD_SERVER_REQUEST_H

#include "metrics.h"
#include "store.h"
#include "whitelist.h"

struct conn;

/*
 * Parse what is left in the connection's read buffer, one request at a
 * time, until it is used up (then read more) or too many requests wait
 * for answers (then stop reading until some are answered).
 */
void request_process_input(struct conn *c);

/* Count a malformed request and log it (rate-limited); the caller closes. */
void request_protocol_error(struct conn *c, const char *why);

struct server;
struct slot;

enum request_try {
	TRY_NO,			/* no pass on the committed records */
	TRY_ANSWERED,		/* passed read-only: the slot is answered */
	TRY_PASS_WRITES,	/* a pass, but one the store must write */
};

/*
 * The backend's read-only fast path, taken only when it passes the
 * request (see db_peek.h for the hint behind TRY_PASS_WRITES).
 */
enum request_try request_try_pass(struct server *srv, struct slot *s);

/*
 * Decide the slot's job: by the fast path when fast and it can, else by
 * the store (the answer comes through request_job_done()).
 */
void request_decide(struct server *srv, struct slot *s, bool fast);

/*
 * Answer DUNNO now, the result counted, with the log line
 * "HEAD[, EXTRA], <the slot's fields>" (head NULL: no line).
 */
void request_answer_now(struct slot *s, enum metrics_result result,
			const char *head, const char *extra);

/* Backend events (arg is the server): a job decided, a new live list. */
void request_job_done(struct store_job *job, void *arg);
void request_live_whitelist(whitelist_t *wl, void *arg);

#endif
