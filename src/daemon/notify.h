/*
 * notify - the systemd service manager protocols, without libsystemd.
 *
 * sd_notify: datagrams such as "READY=1" to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a leading '@' means the abstract namespace).  Socket
 * activation: $LISTEN_PID/$LISTEN_FDS hand us already-bound listening
 * sockets from fd 3 on.  Both are no-ops when not started by systemd.
 */
#ifndef GREYHOLD_NOTIFY_H
#define GREYHOLD_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#define NOTIFY_LISTEN_FDS_START 3

/* Send one message; 0, or a negative errno; 0 too when not under systemd. */
int notify_send(const char *msg);

/*
 * The watchdog interval in microseconds from $WATCHDOG_USEC (and
 * $WATCHDOG_PID when set), or 0 when the watchdog is off.
 */
uint64_t notify_watchdog_usec(void);

/*
 * Sockets passed by systemd for this process: returns how many (fds
 * NOTIFY_LISTEN_FDS_START ...), 0 when none, and clears the variables so
 * children do not inherit them.  The fds are made close-on-exec.
 */
int notify_listen_fds(void);

#endif
