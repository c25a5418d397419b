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
#include <stdint.h>
#include <time.h>

enum log_level { LOG_LEVEL_ERR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Choose the sink: syslog under ident (mail facility) or stderr. */
void log_open(const char *ident, bool use_syslog);
void log_set_verbose(bool verbose);

/*
 * The log writer thread: while it runs, every line (from any thread) is
 * queued and the writer formats and writes it, in queue order, so the
 * caller never waits for stderr's disk or for syslog.  The thread that
 * starts it (the event loop) wakes it with log_flush() once per loop turn,
 * so a burst of decisions costs one wake-up and one write; other threads'
 * lines wake it at once.  When the writer lags by more than a few MiB of
 * lines, new ones are dropped and counted (log_dropped()), and the writer
 * says how many once it has caught up.  log_writer_stop() (or log_close())
 * writes everything queued and joins the thread; lines after it are
 * written by their callers again.  Start returns 0 or a negative errno
 * (then lines keep being written by their callers).
 */
int log_writer_start(void);
void log_writer_stop(void);
/* Wake the writer for this turn's lines; without it, flush stderr. */
void log_flush(void);
/* Lines dropped because the writer lagged, since the process started. */
uint64_t log_dropped(void);
void log_close(void);

/*
 * A record the writer turns into a line: format() writes the line's text
 * (NUL-terminated, without level prefix or newline) into out and returns
 * its length.  It runs on the writer thread, or on the caller's when no
 * writer runs, so it must use nothing but rec.
 */
typedef size_t (*log_format_fn)(char *out, size_t outsz, const void *rec,
				size_t len);
/* Queue len bytes of rec (copied) to be formatted by format() later. */
void log_record(enum log_level level, log_format_fn format, const void *rec,
		size_t len);

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
