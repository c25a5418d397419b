/*
 * daemon_metrics - the running daemon's counters, fetched from its
 * metrics_listen endpoint for stats.
 *
 * One plain HTTP/1.0 GET of /metrics over loopback (a wildcard listener
 * is reached on 127.0.0.1 or ::1), with a 1 s connect and a 2 s read
 * timeout and a 1 MiB cap, so stats never hangs on a stopped daemon.
 * Failing to reach the daemon is not an error: the reason is kept for
 * display.  The body is owned by the caller once fetched (free it).
 */
#include "daemon_metrics.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Wait for a non-blocking connect; returns 0 or an errno. */
static int
connect_wait(int fd, int timeout_ms)
{
	struct pollfd pfd = {fd, POLLOUT, 0};
	socklen_t len = sizeof(int);
	int soerr = 0;

	if (poll(&pfd, 1, timeout_ms) != 1)
		return ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		return errno;
	return soerr;
}

static int
connect_with_timeout(const char *host, unsigned port, int timeout_ms,
		     char *why, size_t whysz)
{
	struct addrinfo hints, *ai = NULL;
	char portstr[8];
	int fd, err = 0, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(host, portstr, &hints, &ai);
	if (rc != 0) {
		snprintf(why, whysz, "%s", gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		err = errno;
	else if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		err = errno == EINPROGRESS ? connect_wait(fd, timeout_ms) : errno;
	freeaddrinfo(ai);
	if (err != 0) {
		snprintf(why, whysz, "%s", strerror(err));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Read until EOF, at most cap bytes, for at most timeout_ms. */
static char *
read_all(int fd, size_t cap, int timeout_ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	char *buf = malloc(cap + 1);
	size_t n = 0;
	ssize_t got;

	if (buf == NULL)
		return NULL;
	while (n < cap && poll(&pfd, 1, timeout_ms) == 1) {
		got = read(fd, buf + n, cap - n);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
	return buf;
}

void
fetch_metrics(const struct config *cfg, struct daemon_metrics *m)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n"
				  "User-Agent: greyholdctl\r\n\r\n";
	char host[64];
	unsigned port;
	char *resp, *body;
	int fd;

	m->configured = cfg->metrics_listen[0] != '\0';
	if (!m->configured ||
	    config_parse_inet(cfg->metrics_listen, host, sizeof(host), &port) < 0)
		return;
	/* A wildcard listener is reached on loopback. */
	if (strcmp(host, "0.0.0.0") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	else if (strcmp(host, "::") == 0)
		snprintf(host, sizeof(host), "::1");
	snprintf(m->url, sizeof(m->url), strchr(host, ':') ?
		 "http://[%s]:%u/metrics" : "http://%s:%u/metrics", host, port);
	fd = connect_with_timeout(host, port, 1000, m->why, sizeof(m->why));
	if (fd < 0)
		return;
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
		snprintf(m->why, sizeof(m->why), "%s", strerror(errno));
		close(fd);
		return;
	}
	resp = read_all(fd, 1 << 20, 2000);
	close(fd);
	body = resp != NULL ? strstr(resp, "\r\n\r\n") : NULL;
	if (body == NULL || strncmp(resp, "HTTP/1.", 7) != 0 ||
	    strncmp(resp + 8, " 200", 4) != 0) {
		snprintf(m->why, sizeof(m->why), "no valid HTTP answer");
		free(resp);
		return;
	}
	memmove(resp, body + 4, strlen(body + 4) + 1);
	m->body = resp;
	m->reachable = true;
}

/*
 * Call fn(name, value) for each sample line ("name{labels} value"),
 * skipping comments and histogram buckets.
 */
void
each_sample(char *body, void (*fn)(const char *name, const char *value,
				   bool first))
{
	bool first = true;
	char *save = NULL;

	for (char *line = strtok_r(body, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *sp = strrchr(line, ' ');

		if (line[0] == '#' || sp == NULL || strstr(line, "_bucket{"))
			continue;
		*sp = '\0';
		fn(line, sp + 1, first);
		first = false;
	}
}
