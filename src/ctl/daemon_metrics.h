/*
 * daemon_metrics - the running daemon's counters from metrics_listen
 * (see daemon_metrics.c).
 */
#ifndef GREYHOLD_DAEMON_METRICS_H
#define GREYHOLD_DAEMON_METRICS_H

#include <stdbool.h>

#include "config.h"

/* The daemon's metrics, fetched from metrics_listen. */
struct daemon_metrics {
	bool configured;
	bool reachable;
	char url[128];
	char why[256];		/* when not reachable */
	char *body;		/* Prometheus text, owned */
};

/* Fill m (zeroed by the caller); the caller frees m->body. */
void fetch_metrics(const struct config *cfg, struct daemon_metrics *m);

/*
 * Call fn(name, value) for each sample line ("name{labels} value"),
 * skipping comments and histogram buckets.  Cuts body up.
 */
void each_sample(char *body, void (*fn)(const char *name, const char *value,
					bool first));

#endif
