/*
 * server_status - what the server tells the outside while it runs: the
 * Prometheus exposition (metrics_listen), systemd's STATUS= and watchdog
 * pings, and the end-of-turn hand-off (store batch, buffered log lines).
 */
#ifndef GREYHOLD_SERVER_STATUS_H
#define GREYHOLD_SERVER_STATUS_H

struct server;

/* Start the metrics endpoint (if configured), the tick and the turn hook. */
void status_start(struct server *srv);

/* Stop all of them (the last step of stopping). */
void status_stop(struct server *srv);

#endif
