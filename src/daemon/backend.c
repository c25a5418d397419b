/*
 * backend - choose the backend the config's store setting names.
 */
#include "backend.h"

#include <string.h>

int
backend_open(struct backend **out, uv_loop_t *loop, const struct config *cfg,
	     const struct engine_params *p, const struct backend_events *ev,
	     char *err, size_t errsz)
{
#ifdef HAVE_HIREDIS
	if (strcmp(cfg->store, "lmdb") != 0)
		return backend_redis_open(out, loop, cfg, p, ev, err, errsz);
#endif
	return backend_lmdb_open(out, loop, cfg, p, ev, err, errsz);
}
