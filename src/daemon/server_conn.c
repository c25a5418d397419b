/*
 * server_conn - connection I/O and backpressure.
 *
 * Per connection: a fixed read buffer, a FIFO of requests in arrival
 * order (answers leave in that order even though store answers arrive
 * later than immediate ones), and two output buffers (one being written,
 * one filling).  Backpressure: at SERVER_MAX_INFLIGHT unanswered
 * requests, or when the client does not read its answers, the connection
 * stops reading until it drains, so no input makes memory grow.
 *
 * One timer per connection, repeating every idle_timeout, restarted by
 * progress (a read while no answer is waiting to go out, a completed
 * write).  When it fires: nothing asked and nothing owed -> idle, close;
 * requests waiting for the store -> not idleness, keep waiting; an answer
 * written out for idle_timeout without the client taking it -> the
 * client stalled, close (else a client that pipelines and never reads
 * would hold its connection slot for ever).
 *
 * Ownership: see server_int.h; only conn_release() frees a conn.
 */
#include "server_conn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server_int.h"
#include "server_request.h"
#include "server_signal.h"

/* ---- lifetime ------------------------------------------------------------ */

void
conn_release(struct conn *c)
{
	struct server *srv = c->srv;
	struct slot *s, *next;

	if (c->open_handles > 0 || c->in_store > 0)
		return;
	for (s = c->head; s != NULL; s = next) {
		next = s->next;
		free(s);
	}
	for (s = c->free_slots; s != NULL; s = next) {
		next = s->next;
		free(s);
	}
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	srv->nconns--;
	srv->m.connections_open = srv->nconns;
	free(c);
	signal_maybe_finish_stop(srv);
}

static void
on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	c->open_handles--;
	conn_release(c);
}

void
conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	server_close_handle(&c->h.handle, on_conn_handle_closed);
	uv_timer_stop(&c->idle);
	server_close_handle((uv_handle_t *)&c->idle, on_conn_handle_closed);
}

/* ---- output ---------------------------------------------------------------- */

static void
on_write(uv_write_t *req, int status)
{
	struct conn *c = req->data;

	c->writing = false;
	c->out_len[!c->out_fill] = 0;
	if (status < 0) {
		log_msg(LOG_LEVEL_DEBUG, "%s: write failed: %s", c->peer,
			uv_strerror(status));
		conn_close(c);
		return;
	}
	/* The client took an answer: progress, whatever it sends. */
	uv_timer_again(&c->idle);
	conn_flush(c);
}

/*
 * Move answered requests from the FIFO head into the filling buffer.
 * Stops at the first unanswered request, so answers keep the order of
 * the requests.  Returns whether a slot was freed.
 */
static bool
conn_take_answers(struct conn *c)
{
	bool freed = false;

	while (c->head != NULL && c->head->done) {
		struct slot *s = c->head;
		size_t *len = &c->out_len[c->out_fill];

		if (*len + s->reply_len > SERVER_OUT_MAX)
			break;	/* the client is not reading: wait */
		memcpy(c->out[c->out_fill] + *len, s->reply, s->reply_len);
		*len += s->reply_len;
		c->head = s->next;
		if (c->head == NULL)
			c->tail = NULL;
		s->next = c->free_slots;
		c->free_slots = s;
		c->inflight--;
		freed = true;
	}
	return freed;
}

/*
 * Write the filling buffer.  Returns 1 when it all went out at once (the
 * buffer is free again), 0 when a write request now owns it, or -1 after
 * closing the connection on an error.
 */
static int
conn_write_out(struct conn *c)
{
	int i = c->out_fill;
	uv_buf_t buf = uv_buf_init(c->out[i], (unsigned)c->out_len[i]);
	size_t sent;
	int rc;

	/* Most answers fit the socket buffer: skip the write request. */
	rc = uv_try_write(&c->h.stream, &buf, 1);
	if (rc == (int)buf.len) {
		c->out_len[i] = 0;
		return 1;
	}
	if (rc < 0 && rc != UV_EAGAIN) {
		conn_close(c);
		return -1;
	}
	sent = rc > 0 ? (size_t)rc : 0;
	buf.base += sent;
	buf.len -= sent;
	c->writing = true;
	c->write_since = uv_now(&c->srv->loop);
	c->out_fill = !i;
	c->wreq.data = c;
	if (uv_write(&c->wreq, &c->h.stream, &buf, 1, on_write) < 0) {
		c->writing = false;
		conn_close(c);
		return -1;
	}
	return 0;
}

void
conn_flush(struct conn *c)
{
	bool freed = false;

	if (c->closing)
		return;
	for (;;) {
		if (conn_take_answers(c))
			freed = true;
		if (c->writing || c->out_len[c->out_fill] == 0)
			break;
		/* Written at once: more answers may wait for the free buffer. */
		int rc = conn_write_out(c);
		if (rc < 0)
			return;
		if (rc == 0)
			break;
	}
	/* Stopping: reading has stopped, so a half-read request never ends. */
	if (c->head == NULL && !c->writing && (c->eof || c->srv->stopping)) {
		conn_close(c);
		return;
	}
	if (freed && !c->reading && !c->eof && !c->srv->stopping)
		request_process_input(c);
}

/* ---- input ------------------------------------------------------------------ */

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	(void)suggested;
	/* Reading is on only while every earlier byte has been parsed. */
	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void
on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;

	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		uv_read_stop(stream);
		c->reading = false;
		if (nread != UV_EOF) {
			conn_close(c);
			return;
		}
		/* Half-closed: answer what was asked, then close. */
		c->eof = true;
		if (policy_in_request(&c->parser))
			request_protocol_error(c, "connection closed inside a "
					       "request");
		conn_flush(c);
		return;
	}
	/* Input is no progress while our answers wait for the client. */
	if (!c->writing)
		uv_timer_again(&c->idle);
	c->rlen = (size_t)nread;
	c->roff = 0;
	request_process_input(c);
}

void
conn_set_reading(struct conn *c, bool on)
{
	if (!on) {
		if (c->reading)
			uv_read_stop(&c->h.stream);
		c->reading = false;
		return;
	}
	if (c->reading || c->eof || c->srv->stopping)
		return;
	c->roff = c->rlen = 0;
	c->reading = uv_read_start(&c->h.stream, on_alloc, on_read) == 0;
}

/* ---- the idle and stall timer ---------------------------------------------- */

/* Close a connection whose client has not taken an answer for long. */
static void
conn_stalled(struct conn *c, uint64_t waited_ms)
{
	c->srv->m.stalled_closed++;
	log_msg(LOG_LEVEL_WARN, "%s: the client took no answer for %" PRIu64
		"s (%u request(s) unanswered), closing the connection", c->peer,
		waited_ms / 1000, c->inflight);
	conn_close(c);
}

static void
on_idle(uv_timer_t *t)
{
	struct conn *c = t->data;
	uint64_t timeout = uv_timer_get_repeat(t);

	if (c->writing) {
		uint64_t waited = uv_now(&c->srv->loop) - c->write_since;

		if (waited >= timeout) {
			conn_stalled(c, waited);
			return;
		}
		/* The write began after the last progress: check at its due time. */
		uv_timer_start(t, on_idle, timeout - waited, timeout);
		return;
	}
	/* Waiting for our answers is not idleness: the timer repeats. */
	if (c->inflight > 0)
		return;
	c->srv->m.idle_closed++;
	log_msg(LOG_LEVEL_DEBUG, "%s: idle for %" PRIu64 "s, closing", c->peer,
		timeout / 1000);
	conn_close(c);
}

/* ---- accepting --------------------------------------------------------------- */

static void
describe_peer(struct conn *c, const struct listener *l)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	if (l->is_unix ||
	    uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) != 0) {
		snprintf(c->peer, sizeof(c->peer), "%s", l->is_unix ? "unix" : "?");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		uv_ip6_name(a, host, sizeof(host));
		snprintf(c->peer, sizeof(c->peer), "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		uv_ip4_name(a, host, sizeof(host));
		snprintf(c->peer, sizeof(c->peer), "%s:%u", host, ntohs(a->sin_port));
	}
}

void
conn_on_connection(uv_stream_t *server_stream, int status)
{
	struct listener *l = server_stream->data;
	struct server *srv = l->srv;
	struct conn *c;
	int rc;

	if (status < 0) {
		log_msg(LOG_LEVEL_WARN, "%s: accept failed: %s", l->name,
			uv_strerror(status));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		log_msg(LOG_LEVEL_ERR, "%s: out of memory for a connection", l->name);
		return;
	}
	c->srv = srv;
	policy_init(&c->parser);
	if (l->is_unix)
		rc = uv_pipe_init(&srv->loop, &c->h.pipe, 0);
	else
		rc = uv_tcp_init(&srv->loop, &c->h.tcp);
	if (rc < 0) {
		free(c);
		return;
	}
	uv_timer_init(&srv->loop, &c->idle);
	c->h.handle.data = c;
	c->idle.data = c;
	c->open_handles = 2;
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	srv->m.connections_open = srv->nconns;

	if (uv_accept(server_stream, &c->h.stream) < 0) {
		conn_close(c);
		return;
	}
	if (srv->nconns > srv->cfg->max_connections || srv->stopping) {
		srv->m.connections_refused++;
		if (log_ratelimit_allow(&srv->conn_limit_log, time(NULL), 1))
			log_msg(LOG_LEVEL_WARN, "%s: connection limit (%u) reached, "
				"closing new connections (max_connections)",
				l->name, srv->cfg->max_connections);
		conn_close(c);
		return;
	}
	srv->m.connections_accepted++;
	describe_peer(c, l);
	if (!l->is_unix)
		uv_tcp_nodelay(&c->h.tcp, 1);
	uv_timer_start(&c->idle, on_idle, (uint64_t)srv->cfg->idle_timeout * 1000,
		       (uint64_t)srv->cfg->idle_timeout * 1000);
	c->reading = uv_read_start(&c->h.stream, on_alloc, on_read) == 0;
	if (!c->reading)
		conn_close(c);
}
