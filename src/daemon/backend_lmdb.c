/*
 * backend_lmdb - the LMDB store (store.h) wired to the event loop.
 *
 * The store thread wakes the loop with uv_async_send(); the async callback
 * collects decided jobs and any rebuilt live whitelist.  Closing stops the
 * store thread (it commits what it holds) before the async handle closes,
 * so the thread never signals a closed handle.
 */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>

struct backend_lmdb {
	struct backend base;
	store_t *store;
	uv_async_t async;
};

static void
on_job(struct store_job *job, void *arg)
{
	struct backend_lmdb *b = arg;

	b->base.ev.job_done(job, b->base.ev.arg);
}

static void
on_async(uv_async_t *a)
{
	struct backend_lmdb *b = a->data;
	whitelist_t *wl;

	if (b->store == NULL)
		return;
	store_collect(b->store, on_job, b);
	wl = store_take_live_whitelist(b->store);
	if (wl != NULL)
		b->base.ev.live_whitelist(wl, b->base.ev.arg);
}

static void
wakeup(void *arg)
{
	uv_async_send(arg);
}

static void
lmdb_submit(struct backend *base, struct store_job *job)
{
	store_submit(((struct backend_lmdb *)base)->store, job);
}

static bool
lmdb_try_decide(struct backend *base, struct store_job *job)
{
	return store_try_decide(((struct backend_lmdb *)base)->store, job);
}

static void
lmdb_flush(struct backend *base)
{
	store_flush(((struct backend_lmdb *)base)->store);
}

static void
lmdb_set_params(struct backend *base, const struct engine_params *p)
{
	store_set_params(((struct backend_lmdb *)base)->store, p);
}

static void
lmdb_get_stats(struct backend *base, struct store_stats *out)
{
	store_get_stats(((struct backend_lmdb *)base)->store, out);
}

static void
on_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
lmdb_close(struct backend *base)
{
	struct backend_lmdb *b = (struct backend_lmdb *)base;

	store_close(b->store);
	b->store = NULL;
	uv_close((uv_handle_t *)&b->async, on_closed);
}

static const struct backend_ops lmdb_ops = {
	.name = "lmdb",
	.try_decide = lmdb_try_decide,
	.submit = lmdb_submit,
	.flush = lmdb_flush,
	.set_params = lmdb_set_params,
	.get_stats = lmdb_get_stats,
	.close = lmdb_close,
};

int
backend_lmdb_open(struct backend **out, uv_loop_t *loop,
		  const struct config *cfg, const struct engine_params *p,
		  const struct backend_events *ev, char *err, size_t errsz)
{
	struct backend_lmdb *b = calloc(1, sizeof(*b));
	struct store_options so = {
		.dbdir = cfg->dbdir,
		.max_size = cfg->db_max_size,
		.relaxed = cfg->durability == DURABILITY_RELAXED,
		.params = *p,
		.wakeup = wakeup,
	};
	whitelist_t *wl;
	int rc;

	*out = NULL;
	if (b == NULL)
		return -ENOMEM;
	b->base.ops = &lmdb_ops;
	b->base.ev = *ev;
	uv_async_init(loop, &b->async, on_async);
	b->async.data = b;
	so.wakeup_arg = &b->async;
	rc = store_open(&b->store, &so, err, errsz);
	if (rc < 0) {
		uv_close((uv_handle_t *)&b->async, on_closed);
		return rc;
	}
	/* The first live whitelist is ready now: apply it before serving. */
	wl = store_take_live_whitelist(b->store);
	if (wl != NULL)
		ev->live_whitelist(wl, ev->arg);
	*out = &b->base;
	return 0;
}
