/*
 * dns_channel - one c-ares channel driven by a libuv loop.
 *
 * c-ares's socket state callback opens, changes and closes one uv_poll
 * per socket; readiness goes to ares_process_fd(); a uv_timer fires when
 * ares_timeout() says retries or timeouts are due.  The resolver (dns.c)
 * embeds one and sends its queries through it.
 *
 * Owner: the loop thread.  The struct is the caller's (embedded); after
 * dns_channel_close() it must stay alive until `closed` is called, once
 * every handle here has been closed.
 */
#ifndef GREYHOLD_DNS_CHANNEL_H
#define GREYHOLD_DNS_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ares.h>
#include <uv.h>

struct dns_sock;

struct dns_channel {
	uv_loop_t *loop;
	ares_channel ares;	/* NULL once closed */
	uv_timer_t timer;	/* ares_timeout() */
	struct dns_sock *socks;	/* open polls; closing ones are unlinked */
	unsigned handles;	/* initialised, close callback not yet run */
	void (*closed)(void *arg);
	void *closed_arg;
};

/*
 * Open on loop, asking servers (config_parse_nameserver() syntax; none:
 * /etc/resolv.conf) with timeout_ms for the whole of one query's tries.
 * On error returns a negative errno, writes why into err, and leaves
 * nothing to close.
 */
int dns_channel_open(struct dns_channel *c, uv_loop_t *loop,
		     char *const *servers, size_t nservers,
		     uint32_t timeout_ms, char *err, size_t errsz);

/* ares_query() for class IN; cb may run before this returns. */
void dns_channel_query(struct dns_channel *c, const char *name, int type,
		       ares_callback cb, void *arg);

/*
 * Destroy the channel: c-ares calls every pending query's callback with
 * ARES_EDESTRUCTION before this returns.  closed(arg) runs from the loop
 * once the handles are closed.
 */
void dns_channel_close(struct dns_channel *c, void (*closed)(void *arg),
		       void *arg);

#endif
