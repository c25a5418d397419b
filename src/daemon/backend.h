/*
 * backend - where the daemon's decisions are made and stored.
 *
 * The server submits store jobs and gets each back, decided, through the
 * job_done event on the loop thread; a backend never blocks the loop.
 * Two implementations: LMDB (the embedded default: a store thread with
 * group commit, see store.h) and Redis (several MX hosts sharing state,
 * the engine run atomically by a server-side script).
 *
 * Ownership: a submitted job belongs to the backend until job_done; a
 * whitelist handed to live_whitelist belongs to the server from then on.
 * backend_close() may be called only when every job has come back.
 */
#ifndef GREYHOLD_BACKEND_H
#define GREYHOLD_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "store.h"
#include "whitelist.h"

struct backend_events {
	void (*job_done)(struct store_job *job, void *arg);
	/* A rebuilt live whitelist (at start, and within ~1 s of a change). */
	void (*live_whitelist)(whitelist_t *wl, void *arg);
	void *arg;
};

struct backend;

struct backend_ops {
	const char *name;
	/*
	 * Decide at once without I/O if the backend can (NULL: never);
	 * true when job->verdict is final and the job was not taken.
	 */
	bool (*try_decide)(struct backend *b, struct store_job *job);
	void (*submit)(struct backend *b, struct store_job *job);
	/* End of a loop turn: send what submit() gathered (NULL: nothing). */
	void (*flush)(struct backend *b);
	void (*set_params)(struct backend *b, const struct engine_params *p);
	void (*get_stats)(struct backend *b, struct store_stats *out);
	/* Release everything; handles close on the loop's next turns. */
	void (*close)(struct backend *b);
};

struct backend {
	const struct backend_ops *ops;
	struct backend_events ev;
};

/* The backend cfg->store names, opened on loop; err says why not. */
int backend_open(struct backend **out, uv_loop_t *loop,
		 const struct config *cfg, const struct engine_params *p,
		 const struct backend_events *ev, char *err, size_t errsz);

int backend_lmdb_open(struct backend **out, uv_loop_t *loop,
		      const struct config *cfg, const struct engine_params *p,
		      const struct backend_events *ev, char *err, size_t errsz);

#ifdef HAVE_HIREDIS
int backend_redis_open(struct backend **out, uv_loop_t *loop,
		       const struct config *cfg, const struct engine_params *p,
		       const struct backend_events *ev, char *err, size_t errsz);
#endif

#endif
