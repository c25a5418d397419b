/*
 * log - syslog or stderr sink, escaping of untrusted text, rate limiting.
 *
 * The sink is process-wide, like the stderr and syslog connection it
 * writes to: log_open() chooses it before threads start, and the loop
 * thread alone changes verbosity (on reload) and buffering.  Both flags
 * are atomics because the store thread reads them while it logs; syslog(3)
 * and stdio lock internally, so lines from the two threads stay whole.
 * The stdio buffer handed to stderr is static because stderr keeps using
 * it until the process ends.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static atomic_bool log_to_syslog;
static atomic_bool log_verbose;

static bool
to_syslog(void)
{
	return atomic_load_explicit(&log_to_syslog, memory_order_relaxed);
}

void
log_open(const char *ident, bool use_syslog)
{
	atomic_store_explicit(&log_to_syslog, use_syslog, memory_order_relaxed);
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_verbose(bool verbose)
{
	atomic_store_explicit(&log_verbose, verbose, memory_order_relaxed);
}

void
log_set_buffered(bool buffered)
{
	static char buf[1 << 16];

	if (!to_syslog())
		setvbuf(stderr, buffered ? buf : NULL, buffered ? _IOFBF : _IONBF,
			buffered ? sizeof(buf) : 0);
}

void
log_flush(void)
{
	if (!to_syslog())
		fflush(stderr);
}

void
log_close(void)
{
	log_flush();
	if (to_syslog())
		closelog();
}

static int
syslog_priority(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERR:
		return LOG_ERR;
	case LOG_LEVEL_WARN:
		return LOG_WARNING;
	case LOG_LEVEL_INFO:
		return LOG_INFO;
	default:
		return LOG_DEBUG;
	}
}

static const char *
level_prefix(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERR:
		return "error: ";
	case LOG_LEVEL_WARN:
		return "warning: ";
	default:
		return "";
	}
}

static void
log_emit(enum log_level level, const char *text)
{
	if (level == LOG_LEVEL_DEBUG &&
	    !atomic_load_explicit(&log_verbose, memory_order_relaxed))
		return;
	if (to_syslog()) {
		syslog(syslog_priority(level), "%s%s", level_prefix(level), text);
		return;
	}
	/* stdio's lock keeps the line whole when two threads log. */
	flockfile(stderr);
	fputs("greyhold: ", stderr);
	fputs(level_prefix(level), stderr);
	fputs(text, stderr);
	fputc('\n', stderr);
	funlockfile(stderr);
}

void
log_text(enum log_level level, const char *text)
{
	log_emit(level, text);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_emit(level, buf);
}

void
log_errno(enum log_level level, int err, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n = strlen(buf);
	snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(err < 0 ? -err : err));
	log_emit(level, buf);
}

bool
log_ratelimit_allow(struct log_ratelimit *rl, time_t now, time_t interval)
{
	if (rl->last != 0 && now >= rl->last && now - rl->last < interval) {
		rl->suppressed++;
		return false;
	}
	rl->last = now;
	return true;
}

char *
log_escape(char *out, size_t outsz, const char *in, size_t inlen, size_t max_in)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	size_t i;
	bool cut = inlen > max_in;

	if (outsz == 0)
		return out;
	if (cut)
		inlen = max_in;
	for (i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		/* Leave room for the longest expansion, "...", and NUL. */
		if (o + 4 + 3 + 1 > outsz) {
			cut = true;
			break;
		}
		if (c == '\\') {
			out[o++] = '\\';
			out[o++] = '\\';
		} else if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	if (cut && o + 3 < outsz) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}
