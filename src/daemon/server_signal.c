/*
 * server_signal - SIGHUP reload, SIGTERM/SIGINT drain and stop.
 *
 * A reload builds a whole new config and whitelist first and swaps them
 * in (server_apply_config) only when both are good.
 */
#include "server_signal.h"

#include <signal.h>
#include <stdio.h>

#include "notify.h"
#include "server_conn.h"
#include "server_int.h"
#include "server_smart.h"
#include "server_listen.h"
#include "server_status.h"

/* Seconds SIGTERM waits for in-flight answers before giving up. */
#define DRAIN_TIMEOUT_MS 10000

/* ---- reload ---------------------------------------------------------------- */

static void
on_sighup(uv_signal_t *sig, int signum)
{
	struct server *srv = sig->data;
	const struct server_reload *r = &srv->reload;
	struct config *next;
	whitelist_t *wl;
	char err[512];

	(void)signum;
	notify_send("RELOADING=1");
	if (config_load(&next, r->config_path, r->missing_ok, r->overrides,
			r->noverrides, err, sizeof(err)) < 0) {
		log_msg(LOG_LEVEL_ERR, "reload failed, keeping the running "
			"configuration: %s", err);
		srv->m.reload_failures++;
		notify_send("READY=1\nSTATUS=reload failed, see the log");
		return;
	}
	if (whitelist_load_config(&wl, next, err, sizeof(err)) < 0) {
		log_msg(LOG_LEVEL_ERR, "reload failed, keeping the running "
			"configuration and whitelists: %s", err);
		config_free(next);
		srv->m.reload_failures++;
		notify_send("READY=1\nSTATUS=reload failed, see the log");
		return;
	}
	server_apply_config(srv, next, wl);
	srv->m.reloads++;
	log_msg(LOG_LEVEL_INFO, "configuration reloaded from %s, %zu whitelist "
		"entries (listeners change only at restart)", r->config_path != NULL ?
		r->config_path : "the command line", whitelist_size(wl));
	notify_send("READY=1\nSTATUS=configuration reloaded");
}

/* ---- stop ------------------------------------------------------------------ */

static void
on_drain_timeout(uv_timer_t *t)
{
	struct server *srv = t->data;
	struct conn *c;

	log_msg(LOG_LEVEL_WARN, "stop: %u connection(s) still busy after %ds, "
		"closing them", srv->nconns, DRAIN_TIMEOUT_MS / 1000);
	for (c = srv->conns; c != NULL; c = c->next)
		conn_close(c);
}

/*
 * The last step of stopping, from a timer so that it runs outside any
 * store callback: commit and stop the store (which may wake the loop
 * until it has stopped), then close the server's own handles so that
 * uv_run() returns.
 */
static void
on_finish_stop(uv_timer_t *t)
{
	struct server *srv = t->data;

	/* Lookups still out answer now, before the store they feed closes. */
	smart_stop(srv);
	srv->be->ops->close(srv->be);
	srv->be = NULL;
	status_stop(srv);
	server_close_handle((uv_handle_t *)&srv->drain_timer, NULL);
	server_close_handle((uv_handle_t *)&srv->sig_hup, NULL);
	server_close_handle((uv_handle_t *)&srv->sig_term, NULL);
	server_close_handle((uv_handle_t *)&srv->sig_int, NULL);
}

void
signal_maybe_finish_stop(struct server *srv)
{
	if (!srv->stopping || srv->nconns > 0)
		return;
	uv_timer_start(&srv->drain_timer, on_finish_stop, 0, 0);
}

static void
on_stop_signal(uv_signal_t *sig, int signum)
{
	struct server *srv = sig->data;
	struct conn *c, *next;

	if (srv->stopping)
		return;
	srv->stopping = true;
	notify_send("STOPPING=1");
	log_msg(LOG_LEVEL_INFO, "received %s, answering requests in flight and "
		"stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	listen_close_all(srv);
	uv_timer_start(&srv->drain_timer, on_drain_timeout, DRAIN_TIMEOUT_MS, 0);
	/* Idle connections close now; busy ones once answered. */
	for (c = srv->conns; c != NULL; c = next) {
		next = c->next;
		conn_set_reading(c, false);
		conn_flush(c);
	}
	signal_maybe_finish_stop(srv);
}

void
signal_start(struct server *srv)
{
	uv_timer_init(&srv->loop, &srv->drain_timer);
	srv->drain_timer.data = srv;
	uv_signal_init(&srv->loop, &srv->sig_hup);
	uv_signal_init(&srv->loop, &srv->sig_term);
	uv_signal_init(&srv->loop, &srv->sig_int);
	srv->sig_hup.data = srv->sig_term.data = srv->sig_int.data = srv;
	uv_signal_start(&srv->sig_hup, on_sighup, SIGHUP);
	uv_signal_start(&srv->sig_term, on_stop_signal, SIGTERM);
	uv_signal_start(&srv->sig_int, on_stop_signal, SIGINT);
}
