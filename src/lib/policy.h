/*
 * policy - incremental parser for the Postfix policy delegation protocol.
 *
 * A request is a sequence of "name=value\n" lines ended by an empty line.
 * The parser is fed whatever bytes a read returned; it consumes up to the
 * end of one request at a time, so pipelined requests come out one by one
 * and a request split across reads is reassembled.  Pure: no I/O, no
 * allocation (the parser is one fixed block the caller embeds).
 *
 * Limits (hostile input): a line longer than POLICY_MAX_LINE bytes, more
 * than POLICY_MAX_ATTRS lines, or more than POLICY_MAX_REQUEST bytes in
 * one request is an error, as are NUL bytes, lines without '=', an empty
 * name, a repeated known attribute and a request without "request=".
 * Unknown attributes are counted against the limits and otherwise ignored.
 * After an error the parser is unusable; the caller closes the connection.
 */
#ifndef GREYHOLD_POLICY_H
#define GREYHOLD_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#define POLICY_MAX_LINE 2048
#define POLICY_MAX_ATTRS 100
#define POLICY_MAX_REQUEST 16384

struct policy_str {
	const char *ptr;	/* not NUL-terminated; NULL when absent */
	size_t len;
};

/* The attributes greyhold uses; everything else is skipped. */
struct policy_request {
	struct policy_str request;
	struct policy_str protocol_state;
	struct policy_str client_address;
	struct policy_str client_name;
	struct policy_str reverse_client_name;
	struct policy_str helo_name;
	struct policy_str sender;
	struct policy_str recipient;
	struct policy_str sasl_username;
	struct policy_str instance;
	struct policy_str queue_id;
	unsigned nattrs;
};

struct policy_parser {
	struct policy_request req;
	size_t len;		/* bytes of buf holding the current request */
	size_t line_start;	/* where the line being read starts in buf */
	bool line_nul;		/* that line holds a NUL byte */
	bool complete;		/* req was handed out; reset on next feed */
	bool failed;
	const char *error;	/* static text describing the failure */
	char buf[POLICY_MAX_REQUEST];
};

enum policy_result {
	POLICY_NEED_MORE = 0,	/* all input consumed, no request yet */
	POLICY_REQUEST = 1,	/* *out is a complete request */
};

void policy_init(struct policy_parser *p);

/*
 * Feed len bytes.  Sets *used to the bytes consumed.  Returns
 * POLICY_REQUEST with *out valid until the next policy_feed() call (feed
 * the remaining len - *used bytes then), POLICY_NEED_MORE, or a negative
 * errno on malformed input (-EBADMSG, -EMSGSIZE, -E2BIG); p->error then
 * says why.
 */
int policy_feed(struct policy_parser *p, const char *data, size_t len,
		size_t *used, const struct policy_request **out);

/* Whether s equals the NUL-terminated literal lit. */
bool policy_str_eq(struct policy_str s, const char *lit);

/*
 * s as a NUL-terminated string in out (outsz > 0), cut to outsz - 1
 * bytes; empty when absent.
 */
void policy_str_copy(char *out, size_t outsz, struct policy_str s);

/* Whether the parser holds part of an unfinished request. */
bool policy_in_request(const struct policy_parser *p);

#endif
