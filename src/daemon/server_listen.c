/*
 * server_listen - binding, adopting and closing listeners.
 *
 * Ownership: srv->listeners is an array owned by the server (freed by
 * server_free()); each listener's handle is closed by listen_close_all().
 */
#include "server_listen.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "notify.h"
#include "server_conn.h"
#include "server_int.h"

static int
bind_inet(struct server *srv, struct listener *l, const char *spec)
{
	char host[64];
	unsigned port;
	struct sockaddr_storage ss;
	unsigned flags = 0;
	int rc;

	if (config_parse_inet(spec, host, sizeof(host), &port) < 0)
		return UV_EINVAL;
	if (strchr(host, ':') != NULL) {
		rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss);
		flags = UV_TCP_IPV6ONLY;
	} else {
		rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss);
	}
	if (rc < 0)
		return rc;
	rc = uv_tcp_init(&srv->loop, &l->h.tcp);
	if (rc < 0)
		return rc;
	l->h.handle.data = l;
	return uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, flags);
}

static int
bind_unix(struct server *srv, struct listener *l, const char *path)
{
	const struct config *cfg = srv->cfg;
	struct stat st;
	mode_t old_umask;
	int rc;

	/* A socket file left by a previous run would make bind fail. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	rc = uv_pipe_init(&srv->loop, &l->h.pipe, 0);
	if (rc < 0)
		return rc;
	l->h.handle.data = l;
	old_umask = umask(0177);
	rc = uv_pipe_bind(&l->h.pipe, path);
	umask(old_umask);
	if (rc < 0)
		return rc;
	if (cfg->unix_group[0] != '\0') {
		struct group *gr = getgrnam(cfg->unix_group);

		if (gr == NULL) {
			log_msg(LOG_LEVEL_ERR, "unix_group '%s' does not exist",
				cfg->unix_group);
			return UV_EINVAL;
		}
		if (chown(path, (uid_t)-1, gr->gr_gid) < 0)
			return -errno;
	}
	if (chmod(path, cfg->unix_mode) < 0)
		return -errno;
	return 0;
}

/* Take the listening sockets systemd passed (socket activation). */
static int
adopt_listeners(struct server *srv, int nfds)
{
	int i;

	srv->listeners = calloc((size_t)nfds, sizeof(*srv->listeners));
	if (srv->listeners == NULL)
		return UV_ENOMEM;
	for (i = 0; i < nfds; i++) {
		struct listener *l = &srv->listeners[i];
		int fd = NOTIFY_LISTEN_FDS_START + i;
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int rc;

		l->srv = srv;
		if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			return -errno;
		l->is_unix = ss.ss_family == AF_UNIX;
		snprintf(l->name, sizeof(l->name), "systemd socket fd %d (%s)", fd,
			 l->is_unix ? "unix" : "inet");
		if (l->is_unix) {
			rc = uv_pipe_init(&srv->loop, &l->h.pipe, 0);
			if (rc == 0)
				rc = uv_pipe_open(&l->h.pipe, fd);
		} else {
			rc = uv_tcp_init(&srv->loop, &l->h.tcp);
			if (rc == 0)
				rc = uv_tcp_open(&l->h.tcp, fd);
		}
		srv->nlisteners = (size_t)i + 1;
		l->h.handle.data = l;
		if (rc == 0)
			rc = uv_listen(&l->h.stream, SOMAXCONN, conn_on_connection);
		if (rc < 0) {
			log_msg(LOG_LEVEL_ERR, "cannot use %s: %s", l->name,
				uv_strerror(rc));
			return rc;
		}
		log_msg(LOG_LEVEL_INFO, "listening on %s", l->name);
	}
	return 0;
}

int
listen_bind_all(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	size_t n = cfg->inet.n + cfg->unix_sockets.n;
	int nfds = notify_listen_fds();
	size_t i;

	if (nfds > 0) {
		log_msg(LOG_LEVEL_INFO, "socket activation: using %d socket(s) from "
			"systemd instead of inet/unix settings", nfds);
		return adopt_listeners(srv, nfds);
	}

	srv->listeners = calloc(n, sizeof(*srv->listeners));
	if (srv->listeners == NULL)
		return UV_ENOMEM;
	for (i = 0; i < n; i++) {
		struct listener *l = &srv->listeners[i];
		bool is_unix = i >= cfg->inet.n;
		const char *spec = is_unix ? cfg->unix_sockets.items[i - cfg->inet.n]
					   : cfg->inet.items[i];
		int rc;

		l->srv = srv;
		l->is_unix = is_unix;
		if (is_unix)
			snprintf(l->path, sizeof(l->path), "%s", spec);
		snprintf(l->name, sizeof(l->name), "%s:%s",
			 is_unix ? "unix" : "inet", spec);
		rc = is_unix ? bind_unix(srv, l, spec) : bind_inet(srv, l, spec);
		srv->nlisteners = i + 1;
		if (rc == 0)
			rc = uv_listen(&l->h.stream, SOMAXCONN, conn_on_connection);
		if (rc < 0) {
			log_msg(LOG_LEVEL_ERR, "cannot listen on %s: %s", l->name,
				uv_strerror(rc));
			return rc;
		}
		log_msg(LOG_LEVEL_INFO, "listening on %s", l->name);
	}
	return 0;
}

void
listen_close_all(struct server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlisteners; i++)
		server_close_handle(&srv->listeners[i].h.handle, NULL);
}

void
listen_unlink_all(struct server *srv)
{
	size_t i;

	for (i = 0; i < srv->nlisteners; i++) {
		if (srv->listeners[i].is_unix)
			unlink(srv->listeners[i].path);
	}
}
