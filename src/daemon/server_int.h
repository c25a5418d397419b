/*
 * server_int - the state the server's files share: the server, its
 * listeners, its connections and their request slots.  Internal to
 * src/daemon/server*.c; nothing else includes it.
 *
 * Ownership: the server owns its listeners, its connections and its own
 * handles; a conn owns its two handles, its slots and its buffers, and
 * only conn_release() (server_conn.c) frees it, after both handles are
 * closed and the store has handed back every job of the conn.  Everything
 * here is touched by the loop thread only.
 */
#ifndef GREYHOLD_SERVER_INT_H
#define GREYHOLD_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "answer.h"
#include "backend.h"
#include "config.h"
#include "declog.h"
#include "dns.h"
#include "dnslist.h"
#include "engine.h"
#include "ident.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "privacy.h"
#include "server.h"
#include "smart.h"
#include "spf.h"
#include "store.h"
#include "triplet.h"
#include "whitelist.h"

#define SERVER_READ_BUF 4096
/* Unanswered requests per connection before it stops reading. */
#define SERVER_MAX_INFLIGHT 16
/* Room for several answers; one that does not fit waits for the next. */
#define SERVER_OUT_MAX (4 * ANSWER_REPLY_MAX)

struct conn;
struct metrics_http;

/* One request of a connection, from parsing until its answer is sent. */
/*
 * The request fields smart greylisting reads after the parser has moved
 * on (server_smart.c), cut to what a valid value can be.
 */
struct slot_request {
	char client_address[64];
	char client_name[IDENT_MAX_NAME + 2];
	char helo[IDENT_MAX_NAME + 2];
	char sender[SPF_SENDER_MAX + 1];
	char recipient[TRIPLET_MAX_ADDR + 1];
};

struct slot {
	struct store_job job;		/* job.owner points back here */
	struct conn *conn;
	struct slot *next;		/* FIFO or free list */
	bool done;
	struct declog_fields lf;	/* what its log line shows */
	char rcpt_domain[TRIPLET_MAX_ADDR + 1];
	char instance[64];		/* Postfix's message instance */
	char reply[ANSWER_REPLY_MAX];
	size_t reply_len;
	uint64_t started;		/* uv_hrtime() when the request was complete */
	struct slot_request req;
	/* What smart_assess() found before the DNS evidence (its name and
	   sender domain are reused once the evidence is in). */
	struct smart_outcome first;
	/* "name:ORG" / "spf:ORG" of job.more[i], for the log line */
	char ident[JOB_MAX_MORE][IDENT_MAX_NAME + 6];
	char dnsbl[DNSLIST_ZONE_MAX + 1];	/* the list that listed it, or "" */
};

union stream {
	uv_handle_t handle;
	uv_stream_t stream;
	uv_tcp_t tcp;
	uv_pipe_t pipe;
};

struct conn {
	union stream h;
	uv_timer_t idle;		/* idle and stall timer */
	uv_write_t wreq;
	struct server *srv;
	struct conn *prev, *next;

	struct slot *head, *tail;	/* unanswered requests, in order */
	struct slot *free_slots;
	unsigned inflight;		/* slots in the FIFO */
	unsigned in_store;		/* jobs the store has not handed back */
	int open_handles;
	bool closing;
	bool reading;
	bool eof;			/* client shut its side: close when done */

	size_t rlen, roff;		/* unparsed input in rbuf[roff..rlen) */
	char out[2][SERVER_OUT_MAX];
	size_t out_len[2];
	int out_fill;			/* buffer collecting answers */
	bool writing;
	uint64_t write_since;		/* uv_now() when the pending write began */

	char peer[80];
	char prepended[64];		/* instance that got an X-Greylist */
	struct policy_parser parser;
	char rbuf[SERVER_READ_BUF];
};

struct listener {
	union stream h;
	struct server *srv;
	char name[128];
	char path[108];		/* unix socket path, to unlink at exit */
	bool is_unix;
};

struct server {
	uv_loop_t loop;
	struct config *cfg;
	whitelist_t *wl;		/* from the files; swapped with cfg */
	whitelist_t *live_wl;		/* from the database, via the store */
	struct server_reload reload;
	struct backend *be;
	char hostname[256];

	uv_signal_t sig_hup, sig_term, sig_int;
	uv_timer_t drain_timer;
	uv_timer_t tick;		/* watchdog and STATUS= for systemd */
	uv_check_t turn_end;		/* per loop turn: store hand-off, log */
	uint64_t watchdog_usec;
	uint64_t last_watchdog;
	unsigned ticks;
	struct metrics_http *metrics_http;
	struct metrics m;

	struct listener *listeners;
	size_t nlisteners;
	struct conn *conns;
	unsigned nconns;
	bool stopping;

	struct triplet_opts topts;
	/* Smart greylisting (server_smart.c): NULL when every rule is off. */
	ident_t *ident;
	struct dns_resolver *dns;	/* NULL: decide without DNS */
	struct metrics_dns m_dns;
	struct smart_rules rules;
	struct privacy privacy;
	bool privacy_on;
	struct engine_params params;
	struct log_ratelimit conn_limit_log;
	struct log_ratelimit proto_log;
};

/* Close h unless it is closing already (every close path may repeat). */
void server_close_handle(uv_handle_t *h, uv_close_cb cb);

/*
 * Reload: take next and wl (ownership passes to the server), free the
 * old ones, apply what can change while running and warn about what
 * needs a restart.
 */
void server_apply_config(struct server *srv, struct config *next,
			 whitelist_t *wl);

#endif
