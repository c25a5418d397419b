/*
 * server_signal - reload and stop.  SIGHUP reloads the configuration and
 * the whitelist files (the running ones stay if the new ones are bad);
 * SIGTERM/SIGINT stop: close the listeners, answer what was read, close
 * the connections (all of them after a drain timeout), then close the
 * store and the server's handles so that the loop ends.
 */
#ifndef GREYHOLD_SERVER_SIGNAL_H
#define GREYHOLD_SERVER_SIGNAL_H

struct server;

/* Install the signal handlers and the drain timer on the loop. */
void signal_start(struct server *srv);

/* When stopping and no connection is left, finish stopping. */
void signal_maybe_finish_stop(struct server *srv);

#endif
