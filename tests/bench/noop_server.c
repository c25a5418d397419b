/*
 * noop_server - the policy protocol's floor on this machine.
 *
 * A libuv server that frames Postfix policy requests exactly as a policy
 * daemon must (attribute lines until an empty line) and answers every one
 * with "action=DUNNO\n\n".  No parsing of attributes, no storage, no
 * logging: whatever a real policy server costs beyond this is its own.
 *
 *   noop_server [--listen SPEC] [--pidfile FILE]
 *
 * SPEC is HOST:PORT, [IPV6]:PORT, unix:PATH or an absolute socket path;
 * only loopback addresses are accepted (this is a benchmark tool).  It
 * serves until SIGTERM or SIGINT.
 *
 * Per connection: one fixed read buffer; answers for every request that
 * one read completed go out in one write (uv_try_write, else uv_write with
 * a copy); reading stops while a write is pending so memory stays bounded.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define READ_BUF 65536
/* A request longer than this is not a policy request: close. */
#define MAX_REQUEST 65536
#define OUT_MAX 65536

static const char reply[] = "action=DUNNO\n\n";
#define REPLY_LEN (sizeof(reply) - 1)

union stream {
	uv_handle_t handle;
	uv_stream_t stream;
	uv_tcp_t tcp;
	uv_pipe_t pipe;
};

struct conn {
	union stream h;
	uv_write_t wreq;
	bool at_line_start;	/* the last byte seen ended a line */
	bool writing;
	bool reading;
	size_t request_len;	/* bytes of the request being read */
	size_t pending;		/* answers owed, not yet handed to the kernel */
	char rbuf[READ_BUF];
	char wbuf[OUT_MAX];	/* owned by the write in flight */
};

static uv_loop_t *loop;
static union stream listener;
static bool listener_is_unix;
static char unix_path[108];
static uv_signal_t sig_term, sig_int;
static unsigned long long served;

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void
on_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
conn_close(struct conn *c)
{
	if (!uv_is_closing(&c->h.handle))
		uv_close(&c->h.handle, on_closed);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void flush(struct conn *c);

static void
start_reading(struct conn *c)
{
	if (c->reading || uv_is_closing(&c->h.handle))
		return;
	if (uv_read_start(&c->h.stream, on_alloc, on_read) < 0)
		conn_close(c);
	else
		c->reading = true;
}

static void
on_write(uv_write_t *req, int status)
{
	struct conn *c = req->data;

	c->writing = false;
	if (status < 0) {
		conn_close(c);
		return;
	}
	flush(c);
	if (!c->writing)
		start_reading(c);
}

/*
 * Hand the owed answers to the kernel; what it does not take waits in a
 * write request, and reading stops until that write is done.
 */
static void
flush(struct conn *c)
{
	char out[OUT_MAX];
	uv_buf_t buf;
	int rc;

	while (!c->writing && c->pending > 0) {
		size_t n = 0;

		while (c->pending > 0 && n + REPLY_LEN <= sizeof(out)) {
			memcpy(out + n, reply, REPLY_LEN);
			n += REPLY_LEN;
			c->pending--;
		}
		buf = uv_buf_init(out, (unsigned)n);
		rc = uv_try_write(&c->h.stream, &buf, 1);
		if (rc == (int)n)
			continue;
		if (rc < 0 && rc != UV_EAGAIN) {
			conn_close(c);
			return;
		}
		if (rc < 0)
			rc = 0;
		memcpy(c->wbuf, out + rc, n - (size_t)rc);
		buf = uv_buf_init(c->wbuf, (unsigned)(n - (size_t)rc));
		if (c->reading) {
			uv_read_stop(&c->h.stream);
			c->reading = false;
		}
		c->writing = true;
		c->wreq.data = c;
		if (uv_write(&c->wreq, &c->h.stream, &buf, 1, on_write) < 0) {
			c->writing = false;
			conn_close(c);
			return;
		}
	}
}

/* Count requests ended in data; false if the input is not a request. */
static bool
frame(struct conn *c, const char *data, size_t len)
{
	const char *p = data;
	const char *end = data + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL) {
			c->request_len += (size_t)(end - p);
			c->at_line_start = false;
			break;
		}
		if (nl == p && c->at_line_start) {
			/* An empty line ends the request. */
			if (c->request_len > 0) {
				c->pending++;
				served++;
			}
			c->request_len = 0;
		} else {
			c->request_len += (size_t)(nl - p) + 1;
		}
		c->at_line_start = true;
		p = nl + 1;
	}
	return c->request_len <= MAX_REQUEST;
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	if (nread == 0)
		return;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (!frame(c, buf->base, (size_t)nread)) {
		conn_close(c);
		return;
	}
	flush(c);
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct conn *c;
	int rc;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->at_line_start = true;
	if (listener_is_unix)
		rc = uv_pipe_init(loop, &c->h.pipe, 0);
	else
		rc = uv_tcp_init(loop, &c->h.tcp);
	if (rc < 0) {
		free(c);
		return;
	}
	c->h.handle.data = c;
	if (uv_accept(server, &c->h.stream) < 0) {
		conn_close(c);
		return;
	}
	if (!listener_is_unix)
		uv_tcp_nodelay(&c->h.tcp, 1);
	start_reading(c);
}

static void
close_any(uv_handle_t *h, void *arg)
{
	if (h->data != NULL && h->type != UV_SIGNAL && h != &listener.handle) {
		conn_close(h->data);
		return;
	}
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
on_stop(uv_signal_t *sig, int signum)
{
	uv_walk(loop, close_any, NULL);
}

static bool
is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
		return IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
	}
	return false;
}

static int
listen_inet(const char *spec)
{
	struct sockaddr_storage ss;
	char host[64];
	const char *colon = strrchr(spec, ':');
	const char *h = spec;
	size_t hlen;
	long port;
	char *end;
	int rc;

	if (colon == NULL)
		return UV_EINVAL;
	hlen = (size_t)(colon - spec);
	if (hlen >= 2 && spec[0] == '[' && spec[hlen - 1] == ']') {
		h = spec + 1;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return UV_EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port < 1 || port > 65535)
		return UV_EINVAL;
	if (strchr(host, ':') != NULL)
		rc = uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss);
	else
		rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss);
	if (rc < 0)
		return rc;
	if (!is_loopback((struct sockaddr *)&ss)) {
		fprintf(stderr, "noop_server: %s is not a loopback address\n", host);
		return UV_EINVAL;
	}
	rc = uv_tcp_init(loop, &listener.tcp);
	if (rc < 0)
		return rc;
	return uv_tcp_bind(&listener.tcp, (struct sockaddr *)&ss, 0);
}

static int
listen_unix(const char *path)
{
	struct stat st;
	int rc;

	if (strlen(path) >= sizeof(unix_path))
		return UV_ENAMETOOLONG;
	snprintf(unix_path, sizeof(unix_path), "%s", path);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	rc = uv_pipe_init(loop, &listener.pipe, 0);
	if (rc < 0)
		return rc;
	listener_is_unix = true;
	return uv_pipe_bind(&listener.pipe, path);
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: noop_server [--listen HOST:PORT|[V6]:PORT|unix:PATH|/PATH]"
		" [--pidfile FILE]\n"
		"Answers every Postfix policy request with action=DUNNO.\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"pidfile", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *spec = "127.0.0.1:10024";
	const char *pidfile = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "l:p:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			spec = optarg;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	loop = uv_default_loop();
	if (strncmp(spec, "unix:", 5) == 0)
		rc = listen_unix(spec + 5);
	else if (spec[0] == '/')
		rc = listen_unix(spec);
	else
		rc = listen_inet(spec);
	listener.handle.data = NULL;
	if (rc == 0)
		rc = uv_listen(&listener.stream, SOMAXCONN, on_connection);
	if (rc < 0) {
		fprintf(stderr, "noop_server: cannot listen on %s: %s\n", spec,
			uv_strerror(rc));
		return 1;
	}
	if (pidfile != NULL) {
		FILE *fp = fopen(pidfile, "w");

		if (fp == NULL) {
			fprintf(stderr, "noop_server: cannot write %s: %s\n", pidfile,
				strerror(errno));
			return 1;
		}
		fprintf(fp, "%ld\n", (long)getpid());
		fclose(fp);
	}
	uv_signal_init(loop, &sig_term);
	uv_signal_init(loop, &sig_int);
	uv_signal_start(&sig_term, on_stop, SIGTERM);
	uv_signal_start(&sig_int, on_stop, SIGINT);
	fprintf(stderr, "noop_server: listening on %s\n", spec);

	uv_run(loop, UV_RUN_DEFAULT);

	if (listener_is_unix)
		unlink(unix_path);
	if (pidfile != NULL)
		unlink(pidfile);
	fprintf(stderr, "noop_server: stopped after %llu requests\n", served);
	uv_loop_close(loop);
	return 0;
}
