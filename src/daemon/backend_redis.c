/* Placeholder while the Redis backend is written; not committed. */
#include "backend.h"

#include <errno.h>
#include <stdio.h>

int
backend_redis_open(struct backend **out, uv_loop_t *loop,
		   const struct config *cfg, const struct engine_params *p,
		   const struct backend_events *ev, char *err, size_t errsz)
{
	*out = NULL;
	snprintf(err, errsz, "the Redis backend is not written yet");
	return -ENOTSUP;
}
