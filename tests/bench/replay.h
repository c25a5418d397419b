/*
 * replay - a simulated day of mail through greyhold's decision, to measure
 * what greylisting costs legitimate senders and what it stops.
 *
 * Three parts, kept apart so each can change alone:
 *   the traffic model (replay_model.c): who sends, from where, under which
 *     name, with which SPF result, and when each sender retries; a pure
 *     function of its options and seed;
 *   a decider (replay_greyhold.c, and whatever else is plugged in): "does
 *     this request pass now?", given one request at its simulated time;
 *   the replay itself (replay.c): feeds every attempt in time order to a
 *     decider, schedules the next attempt of a deferred message, and
 *     reports delays and what was stopped, per class of sender.
 *
 * A decider sees only what Postfix and the DNS would tell greyhold: the
 * request's fields and the SPF result the modelled DNS gives.  The class
 * of the sender is the model's truth, for the report only.
 */
#ifndef GREYHOLD_REPLAY_H
#define GREYHOLD_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Who really sends: the report's rows. */
enum replay_class {
	/* small MTAs: one fixed address each */
	REPLAY_POSTFIX,
	REPLAY_EXIM,
	REPLAY_SENDMAIL,
	REPLAY_EXCHANGE,
	/* provider pools: retries from other addresses */
	REPLAY_O365,
	REPLAY_GMAIL,
	REPLAY_SES,
	REPLAY_SENDGRID,
	REPLAY_MAILCHIMP,
	/* senders that never retry */
	REPLAY_BOT_DYNAMIC,	/* residential addresses, no name or an ISP's */
	REPLAY_BOT_FORGED,	/* big senders' domains forged: SPF fails */
	REPLAY_BOT_SNOWSHOE,	/* rented ranges, own domains, SPF passes */
	REPLAY_NCLASSES
};

bool replay_class_legit(enum replay_class c);
bool replay_class_pool(enum replay_class c);
const char *replay_class_name(enum replay_class c);

/* The SPF result of the sender for the client, as the modelled DNS says. */
enum replay_spf {
	REPLAY_SPF_NONE,
	REPLAY_SPF_PASS,
	REPLAY_SPF_FAIL,
	REPLAY_SPF_SOFTFAIL,
	REPLAY_SPF_NEUTRAL,
};

const char *replay_spf_name(enum replay_spf s);

/* One policy request (protocol_state=RCPT) at simulated time. */
struct replay_request {
	int64_t time;			/* seconds, simulated Unix time */
	const char *client_address;
	const char *client_name;	/* forward-confirmed, or "unknown" */
	const char *helo;
	const char *sender;		/* envelope sender as sent; "" is <> */
	const char *recipient;
	enum replay_spf spf;
	/* With a pass: the domain whose record authorised the client (the
	   sender's own, or a provider's it includes); "" otherwise. */
	const char *spf_authorised_by;
	enum replay_class cls;		/* the truth: deciders must not look */
};

/*
 * A decider: decide() answers one request, 0 with *pass set, or a
 * negative errno, which stops the replay.  close() frees ctx.  A decider
 * is opened fresh for each run, so every run starts from an empty store.
 */
struct replay_decider {
	const char *label;		/* column heading, e.g. "rules off" */
	void *ctx;
	int (*decide)(void *ctx, const struct replay_request *rq, bool *pass);
	void (*close)(void *ctx);
};

/* ---- the traffic model ------------------------------------------------ */

struct replay_model_opts {
	uint64_t seed;
	unsigned legit;		/* legitimate messages per day */
	unsigned bots;		/* non-retrying messages per day */
	unsigned days;		/* simulated days; the last one is measured */
	int64_t start;		/* simulated time of day 0, 00:00 */
	int64_t horizon;	/* seconds a sender keeps retrying */
	/*
	 * Users of ours a snowshoe campaign aims at: fewer means more of its
	 * messages reach a recipient it already reached that day.
	 */
	unsigned snow_targets;
};

typedef struct replay_model replay_model_t;

/* Longest text of any request field the model writes, NUL included. */
#define REPLAY_FIELD_MAX 256

/* Buffers a request's strings live in (the caller's). */
struct replay_fields {
	char client_address[64];
	char client_name[REPLAY_FIELD_MAX];
	char helo[REPLAY_FIELD_MAX];
	char sender[REPLAY_FIELD_MAX];
	char recipient[REPLAY_FIELD_MAX];
	char spf_authorised_by[REPLAY_FIELD_MAX];
};

/* Build the population and every message's attempts: 0 or -ENOMEM. */
int replay_model_create(replay_model_t **out,
			const struct replay_model_opts *opts);
void replay_model_free(replay_model_t *m);

size_t replay_model_messages(const replay_model_t *m);
enum replay_class replay_model_class(const replay_model_t *m, size_t msg);
/* Day the message was first sent on (0-based). */
unsigned replay_model_day(const replay_model_t *m, size_t msg);
/* Number of attempts the sender makes if every one is deferred. */
unsigned replay_model_attempts(const replay_model_t *m, size_t msg);
/* Simulated time of attempt k. */
int64_t replay_model_time(const replay_model_t *m, size_t msg, unsigned k);

/* The request of attempt k of a message; its strings live in f. */
void replay_model_request(const replay_model_t *m, size_t msg, unsigned k,
			  struct replay_fields *f, struct replay_request *rq);

/* ---- deciders ------------------------------------------------------------ */

struct replay_greyhold_opts {
	int64_t delay;			/* 0: greyhold's default */
	const char *whitelist_clients;	/* NULL: none */
	const char *whitelist_recipients;
	const char *tmpdir;		/* parent of the temporary LMDB directory */
};

/*
 * greyhold's decision as it stands: keys from triplet_build(), the static
 * whitelists when files are given, and the LMDB store (db_decide_batch on
 * a temporary directory, removed at close) with simulated time.
 */
int replay_greyhold_open(struct replay_decider *d, const char *label,
			 const struct replay_greyhold_opts *o, char *err,
			 size_t errsz);

/*
 * Parts of that decider other deciders build on (ctx is its ctx): whether
 * a static whitelist lets the request through; decide n store jobs in one
 * batch (0 or a negative errno); the triplet options of the defaults.
 */
struct store_job;
struct triplet_opts;
bool replay_greyhold_listed(void *ctx, const struct replay_request *rq);
int replay_greyhold_batch(void *ctx, struct store_job **jobs, size_t n);
const struct triplet_opts *replay_greyhold_topts(void *ctx);

/*
 * greyhold's smart greylisting (replay_identities.c, smart.h): the name
 * identity alone; the defaults (name identity, trusted-sender skip); the
 * defaults with the opt-in SPF identity.
 */
int replay_identities_open(struct replay_decider *d, const char *label,
			   const struct replay_greyhold_opts *o, char *err,
			   size_t errsz);
int replay_identities_trusted_open(struct replay_decider *d, const char *label,
				   const struct replay_greyhold_opts *o,
				   char *err, size_t errsz);
int replay_identities_spf_open(struct replay_decider *d, const char *label,
			       const struct replay_greyhold_opts *o, char *err,
			       size_t errsz);

#endif
