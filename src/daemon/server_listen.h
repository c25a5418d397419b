/*
 * server_listen - the listening sockets: bind the configured inet and
 * unix addresses (as root, before privileges are dropped), or adopt the
 * sockets systemd passed; close them on stop; unlink the unix socket
 * files at exit.  Errors are negative libuv/errno codes, logged here.
 */
#ifndef GREYHOLD_SERVER_LISTEN_H
#define GREYHOLD_SERVER_LISTEN_H

struct server;

int listen_bind_all(struct server *srv);
void listen_close_all(struct server *srv);
void listen_unlink_all(struct server *srv);

#endif
