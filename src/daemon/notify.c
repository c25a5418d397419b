/*
 * notify - sd_notify and socket activation by hand (see sd_notify(3) and
 * sd_listen_fds(3) for the protocols; they are small and stable, so
 * greyhold needs no libsystemd).
 */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int
notify_send(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t len;
	size_t plen;
	int fd, rc = 0;

	if (path == NULL || path[0] == '\0')
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path))
		return -EINVAL;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, plen);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   len) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static bool
env_is_our_pid(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long pid;

	if (v == NULL)
		return true;	/* WATCHDOG_PID is optional */
	pid = strtol(v, &end, 10);
	return *end == '\0' && pid == (long)getpid();
}

uint64_t
notify_watchdog_usec(void)
{
	const char *v = getenv("WATCHDOG_USEC");
	char *end;
	unsigned long long usec;

	if (v == NULL || !env_is_our_pid("WATCHDOG_PID"))
		return 0;
	usec = strtoull(v, &end, 10);
	return *end == '\0' ? usec : 0;
}

int
notify_listen_fds(void)
{
	const char *pid = getenv("LISTEN_PID");
	const char *fds = getenv("LISTEN_FDS");
	char *end;
	long n;
	int i;

	if (pid == NULL || fds == NULL || !env_is_our_pid("LISTEN_PID"))
		return 0;
	n = strtol(fds, &end, 10);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (*end != '\0' || n <= 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		fcntl(NOTIFY_LISTEN_FDS_START + i, F_SETFD, FD_CLOEXEC);
	return (int)n;
}
