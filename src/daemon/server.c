/*
 * server - greyhold's I/O on one libuv loop thread, split by concern:
 *
 *   server.c          create, run, free; settings derived from the config,
 *                     a new config applied on reload
 *   server_listen.c   listeners: bind, adopt (systemd), close
 *   server_conn.c     connection I/O, backpressure, idle/stall timer, close
 *   server_request.c  parse -> early answers/whitelists -> store -> answer
 *   server_signal.c   SIGHUP reload, SIGTERM/SIGINT drain and stop
 *   server_status.c   metrics rendering, systemd status and watchdog
 *
 * The shared state (struct server, struct conn, ...) is in server_int.h.
 * Ownership: the server owns cfg, the whitelists, the listeners, the
 * connections and the backend; server_free() releases what is left after
 * server_run() returned.
 */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "notify.h"
#include "server_int.h"
#include "server_listen.h"
#include "server_request.h"
#include "server_signal.h"
#include "server_smart.h"
#include "server_status.h"

static void
derive_settings(struct server *srv)
{
	const struct config *cfg = srv->cfg;

	if (cfg->hostname[0] != '\0')
		snprintf(srv->hostname, sizeof(srv->hostname), "%s", cfg->hostname);
	else if (gethostname(srv->hostname, sizeof(srv->hostname)) < 0)
		snprintf(srv->hostname, sizeof(srv->hostname), "localhost");
	srv->hostname[sizeof(srv->hostname) - 1] = '\0';
	config_triplet_opts(cfg, &srv->topts);
	config_engine_params(cfg, &srv->params);
	srv->rules.name_identity = cfg->name_identity;
	srv->rules.spf_identity = cfg->spf_identity;
	srv->rules.trust_spf_aligned = cfg->trust_spf_aligned;
}

static bool
lists_differ(const struct config_list *a, const struct config_list *b)
{
	if (a->n != b->n)
		return true;
	for (size_t i = 0; i < a->n; i++) {
		if (strcmp(a->items[i], b->items[i]) != 0)
			return true;
	}
	return false;
}

/* Append name to the comma-separated list in names when changed. */
static void
note_change(char *names, size_t size, bool changed, const char *name)
{
	size_t n = strlen(names);

	if (changed)
		snprintf(names + n, size - n, "%s%s", n > 0 ? ", " : "", name);
}

/*
 * Say which changed settings a reload cannot apply: those that need new
 * sockets, another user, another store or another key.
 */
static void
warn_restart_only(const struct config *old, const struct config *next)
{
	char names[300] = "";
	size_t sz = sizeof(names);

	note_change(names, sz, lists_differ(&old->inet, &next->inet), "inet");
	note_change(names, sz, lists_differ(&old->unix_sockets,
					    &next->unix_sockets), "unix");
	note_change(names, sz, old->unix_mode != next->unix_mode, "unix_mode");
	note_change(names, sz, strcmp(old->unix_group, next->unix_group) != 0,
		    "unix_group");
	note_change(names, sz, strcmp(old->dbdir, next->dbdir) != 0, "dbdir");
	note_change(names, sz, strcmp(old->user, next->user) != 0, "user");
	note_change(names, sz, strcmp(old->pidfile, next->pidfile) != 0,
		    "pidfile");
	note_change(names, sz, old->durability != next->durability,
		    "durability");
	note_change(names, sz, old->db_max_size != next->db_max_size,
		    "db_max_size");
	note_change(names, sz, strcmp(old->metrics_listen,
				      next->metrics_listen) != 0,
		    "metrics_listen");
	note_change(names, sz, strcmp(old->store, next->store) != 0, "store");
	note_change(names, sz, strcmp(old->redis_user, next->redis_user) != 0 ||
		    strcmp(old->redis_password, next->redis_password) != 0,
		    "redis_user/redis_password");
	note_change(names, sz, strcmp(old->redis_sentinel_user,
				      next->redis_sentinel_user) != 0 ||
		    strcmp(old->redis_sentinel_password,
			   next->redis_sentinel_password) != 0,
		    "redis_sentinel_user/redis_sentinel_password");
	note_change(names, sz, strcmp(old->redis_prefix, next->redis_prefix) != 0,
		    "redis_prefix");
	note_change(names, sz, old->privacy != next->privacy ||
		    strcmp(old->privacy_key_file, next->privacy_key_file) != 0,
		    "privacy");
	note_change(names, sz, lists_differ(&old->resolver, &next->resolver) ||
		    old->dns_timeout != next->dns_timeout ||
		    old->dns_cache_size != next->dns_cache_size ||
		    old->dns_max_outstanding != next->dns_max_outstanding,
		    "resolver/dns_*");
	note_change(names, sz, strcmp(old->psl_file, next->psl_file) != 0,
		    "psl_file");
	note_change(names, sz, smart_dns_wanted(old) != smart_dns_wanted(next),
		    "smart greylisting on/off");
	if (names[0] != '\0')
		log_msg(LOG_LEVEL_WARN, "reload: changes to %s take effect at the "
			"next restart", names);
}

void
server_apply_config(struct server *srv, struct config *next, whitelist_t *wl)
{
	whitelist_free(srv->wl);
	srv->wl = wl;
	warn_restart_only(srv->cfg, next);
	config_free(srv->cfg);
	srv->cfg = next;
	derive_settings(srv);
	srv->be->ops->set_params(srv->be, &srv->params);
	log_set_verbose(srv->cfg->verbose);
	srv->m.static_whitelist_entries = whitelist_size(wl);
}

void
server_close_handle(uv_handle_t *h, uv_close_cb cb)
{
	if (!uv_is_closing(h))
		uv_close(h, cb);
}

int
server_create(struct server **out, struct config *cfg, whitelist_t *wl,
	      const struct server_reload *reload)
{
	struct server *srv = calloc(1, sizeof(*srv));
	int rc;

	*out = NULL;
	if (srv == NULL) {
		config_free(cfg);
		whitelist_free(wl);
		return -ENOMEM;
	}
	srv->cfg = cfg;
	srv->wl = wl;
	srv->reload = *reload;
	derive_settings(srv);
	rc = uv_loop_init(&srv->loop);
	if (rc < 0) {
		config_free(cfg);
		whitelist_free(wl);
		free(srv);
		return rc;
	}
	rc = listen_bind_all(srv);
	if (rc < 0) {
		server_free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

int
server_after_fork(struct server *srv)
{
	return uv_loop_fork(&srv->loop);
}

/* With privacy = yes, load (or create) the secret key for the keys. */
static int
load_privacy(struct server *srv)
{
	char err[512];
	char path[1100];
	int rc;

	if (!srv->cfg->privacy)
		return 0;
	privacy_key_path(srv->cfg, path, sizeof(path));
	rc = privacy_load_key(&srv->privacy, path, true, err, sizeof(err));
	if (rc < 0) {
		log_msg(LOG_LEVEL_ERR, "%s", err);
		return rc;
	}
	srv->privacy_on = true;
	log_msg(LOG_LEVEL_INFO, "privacy: storing keyed hashes (key %s)", path);
	return 0;
}

int
server_run(struct server *srv)
{
	struct backend_events ev = {
		.job_done = request_job_done,
		.live_whitelist = request_live_whitelist,
		.arg = srv,
	};
	char err[512];
	int rc;

	rc = load_privacy(srv);
	if (rc < 0)
		return rc;
	rc = smart_open(srv, err, sizeof(err));
	if (rc < 0) {
		log_msg(LOG_LEVEL_ERR, "%s", err);
		return rc;
	}
	rc = backend_open(&srv->be, &srv->loop, srv->cfg, &srv->params, &ev, err,
			  sizeof(err));
	if (rc < 0) {
		/* Without a store there is nothing to serve: stop, loudly. */
		log_msg(LOG_LEVEL_ERR, "%s", err);
		return rc;
	}
	srv->m.static_whitelist_entries = whitelist_size(srv->wl);
	status_start(srv);
	signal_start(srv);

	log_msg(LOG_LEVEL_INFO, "greyhold %s ready: delay %" PRId64 "s, retry "
		"window %" PRId64 "s, max age %" PRId64 "s, %s store",
		PACKAGE_VERSION, srv->cfg->delay, srv->cfg->retry_window,
		srv->cfg->max_age, srv->be->ops->name);
	notify_send("READY=1\nSTATUS=ready");
	uv_run(&srv->loop, UV_RUN_DEFAULT);

	log_msg(LOG_LEVEL_INFO, "stopped");
	log_writer_stop();
	return 0;
}

void
server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	/* A start that failed after the resolver opened: close it too. */
	smart_stop(srv);
	listen_close_all(srv);
	uv_run(&srv->loop, UV_RUN_NOWAIT);
	listen_unlink_all(srv);
	uv_loop_close(&srv->loop);
	free(srv->listeners);
	whitelist_free(srv->wl);
	whitelist_free(srv->live_wl);
	smart_free(srv);
	config_free(srv->cfg);
	free(srv);
}
