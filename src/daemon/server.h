/*
 * server - greyhold's I/O: listeners, connections, signals, and the glue
 * between the policy parser, the store and the replies.  The only part of
 * greyhold that includes <uv.h>.
 *
 * Lifecycle: server_bind() (as root, before privileges are dropped),
 * server_run() until SIGTERM/SIGINT, server_free().
 */
#ifndef GREYHOLD_SERVER_H
#define GREYHOLD_SERVER_H

#include <stddef.h>

#include "config.h"
#include "store.h"
#include "whitelist.h"

struct server;

/* What the server needs to reload its config on SIGHUP. */
struct server_reload {
	const char *config_path;	/* NULL: no file */
	bool missing_ok;
	const struct config_override *overrides;
	size_t noverrides;
};

/*
 * Create the loop and bind every listener in cfg.  Ownership of cfg and
 * wl (the static whitelist built from cfg) passes to the server.
 */
int server_create(struct server **out, struct config *cfg, whitelist_t *wl,
		  const struct server_reload *reload);

/* Rebuild the loop's kernel state in a child after fork(). */
int server_after_fork(struct server *srv);

/* Open the store and serve until stopped; returns 0 on a clean stop. */
int server_run(struct server *srv);

void server_free(struct server *srv);

#endif
