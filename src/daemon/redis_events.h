/*
 * redis_events - a hiredis async context driven by a uv_poll handle on the
 * daemon's loop.
 *
 * Ours, not <hiredis/adapters/libuv.h>: hiredis 0.14's adapter ignores a
 * poll error (libuv reports POLLERR, e.g. a refused connect or a reset, as
 * status < 0 with no events and stops the handle), so a refused connect
 * never completes and the context hangs forever.  Here hiredis gets to
 * look at the socket on such an error, as hiredis >= 1.0 does, and the
 * owner hears of an error hiredis cannot see.
 *
 * Ownership: the owner embeds struct redis_events and keeps the context
 * in ac until hiredis lets go of it (ac then reads NULL).  The poll handle
 * is closed when hiredis frees the context; on_closed runs after that and
 * is where the owner may free the memory holding the struct.  Loop thread
 * only.
 */
#ifndef GREYHOLD_REDIS_EVENTS_H
#define GREYHOLD_REDIS_EVENTS_H

#include <uv.h>
#include <hiredis/async.h>

struct redis_events {
	uv_poll_t poll;
	int events;			/* what hiredis asked to watch */
	int armed;			/* what the poll handle watches */
	redisAsyncContext *ac;		/* NULL once hiredis has let go */
	void *data;			/* the owner's */
	/* A socket error the context survived: the owner must give it up. */
	void (*on_error)(struct redis_events *ev, int status);
	/* The poll handle is closed: the owner may free ev. */
	void (*on_closed)(struct redis_events *ev);
};

/*
 * Attach ac to a new poll handle on loop (ev->data, on_error and on_closed
 * set by the caller first).  0, or a negative errno (libuv's) and nothing
 * attached: the caller still owns ac.
 */
int redis_events_attach(struct redis_events *ev, uv_loop_t *loop,
			redisAsyncContext *ac);

#endif
