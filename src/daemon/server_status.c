/*
 * server_status - metrics rendering, systemd status and watchdog, and the
 * per-turn hand-off to the store and the log.
 *
 * The metrics are rendered on the loop thread from counters only that
 * thread writes, plus the backend's own figures (get_stats).
 */
#include "server_status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "metrics_http.h"
#include "notify.h"
#include "server_int.h"

static char *
render_metrics(void *arg, size_t *len)
{
	struct server *srv = arg;
	struct store_stats ss = {0};
	size_t need;
	char *body;

	if (srv->be != NULL)
		srv->be->ops->get_stats(srv->be, &ss);
	srv->m.log_dropped = log_dropped();
	need = metrics_format(NULL, 0, &srv->m, &ss) + 1;
	if (srv->ident != NULL)
		need += metrics_format_dns(NULL, 0, &srv->m_dns);
	body = malloc(need);
	if (body == NULL)
		return NULL;
	*len = metrics_format(body, need, &srv->m, &ss);
	if (srv->ident != NULL)
		*len += metrics_format_dns(body + *len, need - *len, &srv->m_dns);
	return body;
}

static void
send_status(struct server *srv)
{
	const struct metrics *m = &srv->m;
	char status[300];
	uint64_t greylisted = m->results[RESULT_GREYLIST_NEW] +
			      m->results[RESULT_GREYLIST_RESTART] +
			      m->results[RESULT_GREYLIST_EARLY];

	snprintf(status, sizeof(status), "STATUS=%" PRIu64 " requests, %" PRIu64
		 " greylisted, %" PRIu64 " store failures, %u connections",
		 metrics_total_requests(m), greylisted,
		 m->results[RESULT_STORE_FAILURE], srv->nconns);
	notify_send(status);
}

/*
 * End of every loop turn: hand the turn's jobs to the backend at once
 * (one wake-up for the store thread, bigger batches), and the turn's
 * log lines to the log writer (one wake-up, one write).
 */
static void
on_turn_end(uv_check_t *c)
{
	struct server *srv = c->data;

	if (srv->be != NULL && srv->be->ops->flush != NULL)
		srv->be->ops->flush(srv->be);
	log_flush();
}

/* Once a second: the watchdog ping when due, STATUS= every 10 s. */
static void
on_tick(uv_timer_t *t)
{
	struct server *srv = t->data;
	uint64_t now = uv_hrtime() / 1000;

	if (srv->watchdog_usec > 0 &&
	    now - srv->last_watchdog >= srv->watchdog_usec / 2) {
		notify_send("WATCHDOG=1");
		srv->last_watchdog = now;
	}
	if (++srv->ticks % 10 == 0)
		send_status(srv);
}

void
status_start(struct server *srv)
{
	int rc;

	if (srv->cfg->metrics_listen[0] != '\0') {
		rc = metrics_http_start(&srv->metrics_http, &srv->loop,
					srv->cfg->metrics_listen, render_metrics,
					srv);
		if (rc < 0)
			log_msg(LOG_LEVEL_ERR, "cannot serve metrics on %s: %s; "
				"continuing without them", srv->cfg->metrics_listen,
				uv_strerror(rc));
	}
	uv_check_init(&srv->loop, &srv->turn_end);
	srv->turn_end.data = srv;
	uv_check_start(&srv->turn_end, on_turn_end);
	rc = log_writer_start();
	if (rc < 0)
		log_errno(LOG_LEVEL_WARN, rc, "cannot start the log writer thread; "
			  "the event loop writes its log lines itself");
	srv->watchdog_usec = notify_watchdog_usec();
	uv_timer_init(&srv->loop, &srv->tick);
	srv->tick.data = srv;
	uv_timer_start(&srv->tick, on_tick, 1000, 1000);
	if (srv->watchdog_usec > 0 && srv->watchdog_usec / 2 < 1000000)
		log_msg(LOG_LEVEL_WARN, "WatchdogSec below 2s: pings come once a "
			"second and may be late");
}

void
status_stop(struct server *srv)
{
	metrics_http_stop(srv->metrics_http);
	srv->metrics_http = NULL;
	server_close_handle((uv_handle_t *)&srv->tick, NULL);
	server_close_handle((uv_handle_t *)&srv->turn_end, NULL);
}
