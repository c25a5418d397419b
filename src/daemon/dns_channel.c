/*
 * dns_channel - c-ares sockets and timeouts on the libuv loop.
 *
 * A socket c-ares closes is first reported (readable and writable both
 * 0), then closed by c-ares, so its poll is unlinked and closed at once;
 * its memory goes in the close callback, as libuv requires.  The same fd
 * number may come back for a new socket before then: the new one gets a
 * new poll, since lookups only search the linked (open) ones.
 */
#include "dns_channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

struct dns_sock {
	uv_poll_t poll;
	struct dns_channel *c;
	struct dns_sock *next;
	ares_socket_t fd;
};

static void on_timer(uv_timer_t *h);

static void
arm_timer(struct dns_channel *c)
{
	struct timeval tv;
	uint64_t ms;

	if (c->ares == NULL || ares_timeout(c->ares, NULL, &tv) == NULL) {
		uv_timer_stop(&c->timer);
		return;
	}
	ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
	uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void
on_timer(uv_timer_t *h)
{
	struct dns_channel *c = h->data;

	if (c->ares == NULL)
		return;
	ares_process_fd(c->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(c);
}

static void
handle_gone(struct dns_channel *c)
{
	if (--c->handles == 0 && c->closed != NULL)
		c->closed(c->closed_arg);
}

static void
on_timer_closed(uv_handle_t *h)
{
	handle_gone(h->data);
}

static void
on_sock_closed(uv_handle_t *h)
{
	struct dns_sock *s = h->data;
	struct dns_channel *c = s->c;

	free(s);
	handle_gone(c);
}

static void
sock_close(struct dns_channel *c, struct dns_sock *s)
{
	struct dns_sock **pp = &c->socks;

	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct dns_sock *s = h->data;
	struct dns_channel *c = s->c;
	ares_socket_t fd = s->fd;

	if (c->ares == NULL)
		return;
	/* On an error let c-ares try both ways: it notices and drops the
	   socket (and may have this poll closed meanwhile). */
	if (status < 0)
		ares_process_fd(c->ares, fd, fd);
	else
		ares_process_fd(c->ares,
				(events & UV_READABLE) ? fd : ARES_SOCKET_BAD,
				(events & UV_WRITABLE) ? fd : ARES_SOCKET_BAD);
	arm_timer(c);
}

static void
sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_channel *c = data;
	struct dns_sock *s;

	for (s = c->socks; s != NULL && s->fd != fd; s = s->next)
		;
	if (!readable && !writable) {
		if (s != NULL)
			sock_close(c, s);
		return;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return;	/* its queries time out; nothing better to do */
		if (uv_poll_init_socket(c->loop, &s->poll, fd) < 0) {
			free(s);
			return;
		}
		s->poll.data = s;
		s->c = c;
		s->fd = fd;
		s->next = c->socks;
		c->socks = s;
		c->handles++;
	}
	uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) |
		      (writable ? UV_WRITABLE : 0), on_poll);
}

/* "a:p,[v6]:p,..." for ares_set_servers_ports_csv(). */
static int
servers_csv(char *const *servers, size_t n, char *csv, size_t size,
	    char *err, size_t errsz)
{
	size_t len = 0;
	size_t i;

	csv[0] = '\0';
	for (i = 0; i < n; i++) {
		char host[64];
		unsigned port;
		int w;

		if (config_parse_nameserver(servers[i], host, sizeof(host),
					    &port) < 0) {
			snprintf(err, errsz, "resolver: bad nameserver '%s'",
				 servers[i]);
			return -EINVAL;
		}
		w = snprintf(csv + len, size - len,
			     strchr(host, ':') ? "%s[%s]:%u" : "%s%s:%u",
			     i > 0 ? "," : "", host, port);
		if (w < 0 || (size_t)w >= size - len) {
			snprintf(err, errsz, "resolver: too many nameservers");
			return -E2BIG;
		}
		len += (size_t)w;
	}
	return 0;
}

int
dns_channel_open(struct dns_channel *c, uv_loop_t *loop,
		 char *const *servers, size_t nservers, uint32_t timeout_ms,
		 char *err, size_t errsz)
{
	struct ares_options ao;
	char csv[2048];
	int rc;

	memset(c, 0, sizeof(*c));
	c->loop = loop;
	rc = servers_csv(servers, nservers, csv, sizeof(csv), err, errsz);
	if (rc < 0)
		return rc;
	memset(&ao, 0, sizeof(ao));
	/* Two tries, and c-ares doubles the wait for the second: with one
	   server the tries end at about timeout_ms (the resolver's own
	   deadline per lookup is the hard limit either way). */
	ao.timeout = (int)(timeout_ms / 3 > 100 ? timeout_ms / 3 : 100);
	ao.tries = 2;
	ao.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	ao.sock_state_cb = sock_state;
	ao.sock_state_cb_data = c;
	ares_library_init(ARES_LIB_INIT_ALL);
	rc = ares_init_options(&c->ares, &ao, ARES_OPT_TIMEOUTMS |
			       ARES_OPT_TRIES | ARES_OPT_FLAGS |
			       ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errsz, "c-ares: %s", ares_strerror(rc));
		ares_library_cleanup();
		return -EIO;
	}
	if (csv[0] != '\0' &&
	    (rc = ares_set_servers_ports_csv(c->ares, csv)) != ARES_SUCCESS) {
		snprintf(err, errsz, "c-ares: nameservers '%s': %s", csv,
			 ares_strerror(rc));
		ares_destroy(c->ares);
		ares_library_cleanup();
		return -EINVAL;
	}
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	c->handles = 1;
	return 0;
}

void
dns_channel_query(struct dns_channel *c, const char *name, int type,
		  ares_callback cb, void *arg)
{
	ares_query(c->ares, name, 1 /* C_IN */, type, cb, arg);
	arm_timer(c);
}

void
dns_channel_close(struct dns_channel *c, void (*closed)(void *arg), void *arg)
{
	if (c->ares == NULL)
		return;
	ares_destroy(c->ares);
	c->ares = NULL;
	ares_library_cleanup();
	/* Whatever c-ares did not report closed is closed here. */
	while (c->socks != NULL)
		sock_close(c, c->socks);
	c->closed = closed;
	c->closed_arg = arg;
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
