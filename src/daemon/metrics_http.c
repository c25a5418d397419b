/*
 * metrics_http - GET /metrics over HTTP/1.0 for Prometheus.
 *
 * Ownership: the endpoint owns its listener and its scrape connections;
 * metrics_http_stop() closes all of them and the endpoint frees itself
 * when the last handle's close callback has run.
 */
#include "metrics_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

#define SCRAPE_TIMEOUT_MS 5000

struct scrape {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wreq;
	struct metrics_http *mh;
	struct scrape *next, *prev;
	int open_handles;
	bool closing;
	size_t len;
	char *response;
	char buf[METRICS_HTTP_MAX_REQUEST];
};

struct metrics_http {
	uv_tcp_t listener;
	metrics_render_fn render;
	void *arg;
	struct scrape *scrapes;
	int open_handles;	/* the listener and every scrape */
	bool stopping;
};

static void
maybe_free_endpoint(struct metrics_http *mh)
{
	if (mh->stopping && mh->open_handles == 0)
		free(mh);
}

static void
on_scrape_closed(uv_handle_t *h)
{
	struct scrape *s = h->data;
	struct metrics_http *mh = s->mh;

	if (--s->open_handles > 0)
		return;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		mh->scrapes = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s->response);
	free(s);
	mh->open_handles--;
	maybe_free_endpoint(mh);
}

static void
scrape_close(struct scrape *s)
{
	if (s->closing)
		return;
	s->closing = true;
	uv_close((uv_handle_t *)&s->tcp, on_scrape_closed);
	uv_close((uv_handle_t *)&s->timer, on_scrape_closed);
}

static void
on_written(uv_write_t *req, int status)
{
	scrape_close(req->data);
}

static void
respond(struct scrape *s, const char *status, const char *body, size_t blen)
{
	char head[256];
	int hlen = snprintf(head, sizeof(head),
			    "HTTP/1.0 %s\r\nContent-Type: text/plain; "
			    "version=0.0.4\r\nContent-Length: %zu\r\n"
			    "Connection: close\r\n\r\n", status, blen);
	uv_buf_t buf;

	s->response = malloc((size_t)hlen + blen);
	if (s->response == NULL) {
		scrape_close(s);
		return;
	}
	memcpy(s->response, head, (size_t)hlen);
	memcpy(s->response + hlen, body, blen);
	buf = uv_buf_init(s->response, (unsigned)((size_t)hlen + blen));
	s->wreq.data = s;
	if (uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &buf, 1, on_written) < 0)
		scrape_close(s);
}

static void
handle_request(struct scrape *s)
{
	size_t blen;
	char *body;

	uv_read_stop((uv_stream_t *)&s->tcp);
	if (strncmp(s->buf, "GET /metrics ", 13) != 0 &&
	    strncmp(s->buf, "GET /metrics\r", 13) != 0) {
		static const char msg[] = "only GET /metrics is served here\n";
		respond(s, "404 Not Found", msg, sizeof(msg) - 1);
		return;
	}
	body = s->mh->render(s->mh->arg, &blen);
	if (body == NULL) {
		static const char msg[] = "out of memory\n";
		respond(s, "500 Internal Server Error", msg, sizeof(msg) - 1);
		return;
	}
	respond(s, "200 OK", body, blen);
	free(body);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct scrape *s = h->data;

	/* Keep one byte for the terminating NUL. */
	*buf = uv_buf_init(s->buf + s->len, (unsigned)(sizeof(s->buf) - 1 - s->len));
}

static void
on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct scrape *s = stream->data;

	if (nread < 0) {
		scrape_close(s);
		return;
	}
	s->len += (size_t)nread;
	s->buf[s->len] = '\0';
	if (strstr(s->buf, "\r\n\r\n") != NULL || strstr(s->buf, "\n\n") != NULL) {
		handle_request(s);
		return;
	}
	if (s->len >= sizeof(s->buf) - 1)
		scrape_close(s);	/* oversized request */
}

static void
on_timeout(uv_timer_t *t)
{
	scrape_close(t->data);
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct metrics_http *mh = server->data;
	struct scrape *s;

	if (status < 0 || mh->stopping)
		return;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return;
	s->mh = mh;
	uv_tcp_init(server->loop, &s->tcp);
	uv_timer_init(server->loop, &s->timer);
	s->tcp.data = s;
	s->timer.data = s;
	s->open_handles = 2;
	mh->open_handles++;
	s->next = mh->scrapes;
	if (mh->scrapes != NULL)
		mh->scrapes->prev = s;
	mh->scrapes = s;
	if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0 ||
	    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) < 0) {
		scrape_close(s);
		return;
	}
	uv_timer_start(&s->timer, on_timeout, SCRAPE_TIMEOUT_MS, 0);
}

static void
on_listener_closed(uv_handle_t *h)
{
	struct metrics_http *mh = h->data;

	mh->open_handles--;
	maybe_free_endpoint(mh);
}

int
metrics_http_start(struct metrics_http **out, uv_loop_t *loop,
		   const char *spec, metrics_render_fn render, void *arg)
{
	struct metrics_http *mh;
	struct sockaddr_storage ss;
	char host[64];
	unsigned port;
	int rc;

	*out = NULL;
	if (config_parse_inet(spec, host, sizeof(host), &port) < 0)
		return UV_EINVAL;
	bool v6 = strchr(host, ':') != NULL;

	if (v6)
		rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss);
	else
		rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss);
	if (rc < 0)
		return rc;
	mh = calloc(1, sizeof(*mh));
	if (mh == NULL)
		return UV_ENOMEM;
	mh->render = render;
	mh->arg = arg;
	uv_tcp_init(loop, &mh->listener);
	mh->listener.data = mh;
	mh->open_handles = 1;
	rc = uv_tcp_bind(&mh->listener, (struct sockaddr *)&ss,
			 v6 ? UV_TCP_IPV6ONLY : 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&mh->listener, 16, on_connection);
	if (rc < 0) {
		mh->stopping = true;
		uv_close((uv_handle_t *)&mh->listener, on_listener_closed);
		return rc;
	}
	log_msg(LOG_LEVEL_INFO, "metrics on http://%s%s%s:%u/metrics",
		v6 ? "[" : "", host, v6 ? "]" : "", port);
	*out = mh;
	return 0;
}

void
metrics_http_stop(struct metrics_http *mh)
{
	struct scrape *s, *next;

	if (mh == NULL || mh->stopping)
		return;
	mh->stopping = true;
	for (s = mh->scrapes; s != NULL; s = next) {
		next = s->next;
		scrape_close(s);
	}
	uv_close((uv_handle_t *)&mh->listener, on_listener_closed);
}
