/*
 * server_conn - one client connection's I/O: accepting it, reading into
 * its fixed buffer, writing answers in request order through two output
 * buffers, backpressure, the idle and stall timer, and the one close path.
 *
 * Parsing and answering belong to server_request.c; this file moves bytes
 * and decides when a connection lives and dies.
 */
#ifndef GREYHOLD_SERVER_CONN_H
#define GREYHOLD_SERVER_CONN_H

#include <stdbool.h>
#include <uv.h>

struct conn;

/* uv_listen() callback: accept one client on a listener. */
void conn_on_connection(uv_stream_t *server_stream, int status);

/* Start closing c (idempotent); it is freed once nothing refers to it. */
void conn_close(struct conn *c);

/* Free c if its handles are closed and the store holds none of its jobs. */
void conn_release(struct conn *c);

/*
 * Send every answer that is due, in request order; close when nothing is
 * left and the client or the server is done; resume reading when answers
 * made room.
 */
void conn_flush(struct conn *c);

/* Read from the client or stop reading (backpressure, stopping). */
void conn_set_reading(struct conn *c, bool on);

#endif
