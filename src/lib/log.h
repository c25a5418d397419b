/*
 * log - the daemon's logging: syslog (mail facility) or stderr.
 *
 * One process-wide sink chosen at start.  Untrusted text must go through
 * log_escape() before it is formatted into a line.
 */
#ifndef GREYHOLD_LOG_H
#define GREYHOLD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum log_level { LOG_LEVEL_ERR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Choose the sink: syslog under ident (mail facility) or stderr. */
void log_open(const char *ident, bool use_syslog);
void log_set_verbose(bool verbose);
/*
 * With buffered on, stderr lines collect in a stdio buffer until
 * log_flush(): the daemon flushes once per event-loop turn, so a burst of
 * decisions costs one write instead of one per line.
 */
void log_set_buffered(bool buffered);
void log_flush(void);
void log_close(void);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A ready line, without formatting (the decision log's hot path). */
void log_text(enum log_level level, const char *text);
/* Like log_msg() at LOG_LEVEL_ERR/WARN with ": strerror(-err)" appended. */
void log_errno(enum log_level level, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Rate limiter for repeated errors: true at most once per interval seconds.
 * *last holds the time of the last message allowed; *suppressed counts the
 * ones dropped since, so the next allowed message can say how many.
 */
struct log_ratelimit {
	time_t last;
	unsigned long suppressed;
};
bool log_ratelimit_allow(struct log_ratelimit *rl, time_t now, time_t interval);

/*
 * Copy untrusted text into out (size outsz, always NUL-terminated): bytes
 * outside printable ASCII become \xHH, backslash becomes \\, and the result
 * is cut at max_in input bytes with "..." appended when cut.
 * Returns out.
 */
char *log_escape(char *out, size_t outsz, const char *in, size_t inlen,
		 size_t max_in);

#endif
