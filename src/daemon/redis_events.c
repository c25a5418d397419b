/*
 * redis_events - hiredis's event hooks on a uv_poll handle.  The contract
 * is in redis_events.h.
 */
#include "redis_events.h"

#include <hiredis/hiredis.h>

static void on_poll(uv_poll_t *h, int status, int events);

/*
 * Tell libuv only about changes: hiredis asks for writes on every command,
 * and each uv_poll_start() re-registers the descriptor with epoll.
 */
static void
poll_update(struct redis_events *ev)
{
	if (ev->events == ev->armed || uv_is_closing((uv_handle_t *)&ev->poll))
		return;
	if (ev->events != 0)
		uv_poll_start(&ev->poll, ev->events, on_poll);
	else
		uv_poll_stop(&ev->poll);
	ev->armed = ev->events;
}

static void
add_read(void *privdata)
{
	struct redis_events *ev = privdata;

	ev->events |= UV_READABLE;
	poll_update(ev);
}

static void
del_read(void *privdata)
{
	struct redis_events *ev = privdata;

	ev->events &= ~UV_READABLE;
	poll_update(ev);
}

static void
add_write(void *privdata)
{
	struct redis_events *ev = privdata;

	ev->events |= UV_WRITABLE;
	poll_update(ev);
}

static void
del_write(void *privdata)
{
	struct redis_events *ev = privdata;

	ev->events &= ~UV_WRITABLE;
	poll_update(ev);
}

static void
on_poll_closed(uv_handle_t *h)
{
	struct redis_events *ev = h->data;

	ev->on_closed(ev);
}

/* hiredis is about to free the context (and close its socket). */
static void
cleanup(void *privdata)
{
	struct redis_events *ev = privdata;

	ev->ac = NULL;
	ev->events = 0;
	uv_close((uv_handle_t *)&ev->poll, on_poll_closed);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct redis_events *ev = h->data;

	if (status < 0) {
		ev->armed = 0;
		/*
		 * A socket error; libuv has stopped the handle.  Let hiredis
		 * find out what it is: while connecting it reads SO_ERROR,
		 * afterwards the read fails.  Either way it gives up the
		 * context and fails what is pending.
		 */
		if (ev->ac != NULL && !(ev->ac->c.flags & REDIS_CONNECTED))
			redisAsyncHandleWrite(ev->ac);
		else if (ev->ac != NULL)
			redisAsyncHandleRead(ev->ac);
		/* Still there: an error hiredis cannot see.  Do not spin. */
		if (ev->ac != NULL)
			ev->on_error(ev, status);
		return;
	}
	if ((events & UV_READABLE) && ev->ac != NULL)
		redisAsyncHandleRead(ev->ac);
	if ((events & UV_WRITABLE) && ev->ac != NULL)
		redisAsyncHandleWrite(ev->ac);
}

int
redis_events_attach(struct redis_events *ev, uv_loop_t *loop,
		    redisAsyncContext *ac)
{
	int err = uv_poll_init(loop, &ev->poll, ac->c.fd);

	if (err < 0)
		return err;
	ev->poll.data = ev;
	ev->events = ev->armed = 0;
	ev->ac = ac;
	ac->ev.data = ev;
	ac->ev.addRead = add_read;
	ac->ev.delRead = del_read;
	ac->ev.addWrite = add_write;
	ac->ev.delWrite = del_write;
	ac->ev.cleanup = cleanup;
	return 0;
}
