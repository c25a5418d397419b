/*
 * spf_eval - the state of one SPF evaluation, shared by the files that
 * make up the evaluator: spf.c (the interface and the step loop),
 * spf_eval.c (records, frames, terms) and spf_mech.c (the answers to the
 * questions of a, mx, ptr and exists).  Private: nothing outside
 * src/lib/spf*.c includes it.
 *
 * State: a fixed stack of frames, one per record being evaluated (the
 * top record, then one per open include; a redirect replaces its frame,
 * as its result is the frame's result).  Each frame owns a copy of its
 * record text (at most SPF_RECORD_MAX bytes) and a cursor into it; the
 * evaluation owns the frames and the MX/PTR name list of the mechanism
 * being evaluated.  s->wait says which answer is expected next;
 * SPF_W_RUN means "evaluate the next term", which spf_step() does in a
 * loop until a question or a result comes up.  Every iteration consumes
 * a term, an answer or a frame, so the loop ends.
 *
 * Every text written into s->why comes from checked sources (the query,
 * validated names, syntax-checked terms), so it is printable ASCII.
 */
#ifndef GREYHOLD_SPF_EVAL_H
#define GREYHOLD_SPF_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns_result.h"
#include "spf.h"
#include "spf_parse.h"

#define SPF_WHY_MAX 256
/* Longest macro expansion before it is cut to a name (RFC 7208 4.8). */
#define SPF_EXPAND_MAX 2048
/* How much of a term an explanation quotes. */
#define SPF_QUOTE_MAX 80

enum spf_wait {
	SPF_W_START,		/* nothing asked yet */
	SPF_W_RUN,		/* no question pending: evaluate the next term */
	SPF_W_TXT,		/* the top frame's record */
	SPF_W_A,		/* "a": addresses of the target */
	SPF_W_MX,		/* "mx": the target's exchanges */
	SPF_W_MX_ADDR,		/* "mx": addresses of names[name_i] */
	SPF_W_PTR,		/* "ptr": names of the client address */
	SPF_W_PTR_ADDR,		/* "ptr": addresses of names[name_i] */
	SPF_W_EXISTS,		/* "exists": A records of the target */
	SPF_W_DONE,
};

struct spf_frame {
	char domain[DNS_NAME_MAX + 1];	/* %{d} */
	char *rec;		/* record text, NUL-terminated; NULL until read */
	size_t len;
	size_t pos;		/* where the next term starts looking */
	struct spf_record_info info;
	struct spf_term cur;	/* the term being evaluated */
	bool redirected;	/* reached through redirect= */
};

struct spf {
	struct addr client;
	char sender[SPF_SENDER_MAX + 16];	/* room for "postmaster@" */
	size_t local_len;
	char helo[DNS_NAME_MAX + 2];
	char receiver[DNS_NAME_MAX + 2];
	int64_t now;

	struct spf_frame frames[SPF_MAX_DEPTH];
	unsigned depth;
	enum spf_wait wait;
	enum dns_type qtype;
	char qname[DNS_NAME_MAX + 1];
	unsigned lookups;
	unsigned voids;

	char target[DNS_NAME_MAX + 1];	/* the current mechanism's domain */
	char names[SPF_MAX_NAMES][DNS_NAME_MAX + 1];
	unsigned nnames;
	unsigned name_i;

	enum spf_result result;
	char matched[DNS_NAME_MAX + 1];	/* domain of the matching record */
	bool broad;		/* the matching term covers a huge range */
	char why[SPF_WHY_MAX];
	char expand[SPF_EXPAND_MAX];
};

/* What an answer amounts to; an unknown status is an error. */
enum spf_answer { SPF_ANS_RECORDS, SPF_ANS_VOID, SPF_ANS_ERROR };

enum spf_answer spf_eval_classify(const struct dns_result *a);

/* The frame being evaluated (s->depth >= 1). */
struct spf_frame *spf_eval_top(spf_t *s);

/* Set s->why, printf-style. */
void spf_eval_why(spf_t *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* End the evaluation with r; the caller has set s->why. */
void spf_eval_finish(spf_t *s, enum spf_result r);

/* End with r and "WHAT at 'term' in domain" for the current term. */
void spf_eval_fail_term(spf_t *s, enum spf_result r, const char *what);

/* Ask the caller for (type, name); the answer goes to handler w. */
void spf_eval_ask(spf_t *s, enum spf_wait w, enum dns_type type,
		  const char *name);

/* A or AAAA, by the client's family. */
enum dns_type spf_eval_addr_type(const spf_t *s);

/* The current term matched / did not match. */
void spf_eval_matched(spf_t *s);
void spf_eval_no_match(spf_t *s);

/* The current term's query came back void; false when that ended it. */
bool spf_eval_count_void(spf_t *s);

/* The first question: the sender domain's TXT records (or "none"). */
void spf_eval_start(spf_t *s);

/* The answer to a record's TXT question. */
void spf_eval_on_txt(spf_t *s, const struct dns_result *a);

/* Evaluate the top frame's next term (s->wait == SPF_W_RUN). */
void spf_eval_next_term(spf_t *s);

#endif
