/*
 * metrics_http - a minimal HTTP/1.0 endpoint serving GET /metrics.
 *
 * For Prometheus scrapers on loopback.  Each connection reads one request
 * (at most METRICS_HTTP_MAX_REQUEST bytes, within a few seconds), gets one
 * response and is closed; nothing here can hold up the policy path beyond
 * formatting the counters.
 */
#ifndef GREYHOLD_METRICS_HTTP_H
#define GREYHOLD_METRICS_HTTP_H

#include <stddef.h>
#include <uv.h>

#define METRICS_HTTP_MAX_REQUEST 4096

struct metrics_http;

/* render() returns a malloc'ed body and its length (NULL on failure). */
typedef char *(*metrics_render_fn)(void *arg, size_t *len);

int metrics_http_start(struct metrics_http **out, uv_loop_t *loop,
		       const char *listen_spec, metrics_render_fn render,
		       void *arg);
/* Close the listener and every scrape connection; frees when all closed. */
void metrics_http_stop(struct metrics_http *mh);

#endif
