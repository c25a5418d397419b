/*
 * log - syslog or stderr sink, the log writer thread, escaping of
 * untrusted text, rate limiting.
 *
 * The sink is process-wide, like the stderr and syslog connection it
 * writes to: log_open() chooses it before threads start, and the loop
 * thread alone changes verbosity (on reload) and starts and stops the
 * writer.  Both flags are atomics because other threads read them while
 * they log; syslog(3) and stdio lock internally, so lines from several
 * threads stay whole.  The stdio buffer handed to stderr is static because
 * stderr keeps using it until the process ends.
 *
 * The writer (log_writer_start()) exists so that the event loop never
 * formats, escapes or writes a log line, and never waits for the disk or
 * syslog: every thread appends records to one shared queue (a copy of a
 * ready line, or the caller's record and the function that formats it),
 * and the writer thread formats and writes them in the order they were
 * queued.  The queue is bounded: when the writer falls behind, records are
 * dropped and counted rather than letting the loop wait, and the writer
 * says how many once it has caught up.  Mail is never held for a log
 * line.  The queue is file-scope state for the same reason as the sink:
 * there is one stderr and one syslog connection per process.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static atomic_bool log_to_syslog;
static atomic_bool log_verbose;

/* Bytes of queued records the writer may lag behind by. */
#define QUEUE_BYTES (4u << 20)
/* Longest line a formatter may produce (longer ones are cut). */
#define LINE_MAX_BYTES 4096

/* One queued record: this header, then len bytes, padded to 8. */
struct rec_head {
	uint32_t len;
	uint8_t level;
	log_format_fn format;	/* NULL: the bytes are the line's text */
};

struct log_queue {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool running;		/* the writer thread exists */
	bool stopping;
	bool woken;		/* a wake-up is pending: no need for another */
	char *buf;		/* records gathered for the writer */
	size_t len;
	char *spare;		/* the writer's, while it writes */
	uint64_t dropped;	/* records not queued: the writer lagged */
	uint64_t reported;	/* of those, already said in a warning */
};

static struct log_queue queue = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
};
static atomic_bool queue_on;
static atomic_uint_fast64_t queue_dropped;
/* Set on the thread that started the writer: it wakes the writer once per
 * loop turn (log_flush()) instead of once per record. */
static _Thread_local bool batching_thread;

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

/* Write one line to the sink now, on the calling thread. */
static void
emit_now(enum log_level level, const char *text)
{
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

static bool
wanted(enum log_level level)
{
	return level != LOG_LEVEL_DEBUG ||
	       atomic_load_explicit(&log_verbose, memory_order_relaxed);
}

/* The line a queued or direct record stands for, in out. */
static void
format_record(char *out, size_t outsz, log_format_fn format,
	      const void *data, size_t len)
{
	if (format != NULL) {
		format(out, outsz, data, len);
		return;
	}
	if (len >= outsz)
		len = outsz - 1;
	memcpy(out, data, len);
	out[len] = '\0';
}

/*
 * Queue a record for the writer.  Returns false when the writer is not
 * running (it stopped meanwhile): the caller writes the line itself.
 */
static bool
queue_append(enum log_level level, log_format_fn format, const void *data,
	     size_t len)
{
	struct rec_head h = {(uint32_t)len, (uint8_t)level, format};
	size_t need = (sizeof(h) + len + 7) & ~(size_t)7;
	bool wake = false;

	pthread_mutex_lock(&queue.lock);
	if (!queue.running) {
		pthread_mutex_unlock(&queue.lock);
		return false;
	}
	if (len > LINE_MAX_BYTES * 4 || queue.len + need > QUEUE_BYTES) {
		queue.dropped++;
		atomic_fetch_add_explicit(&queue_dropped, 1, memory_order_relaxed);
	} else {
		memcpy(queue.buf + queue.len, &h, sizeof(h));
		memcpy(queue.buf + queue.len + sizeof(h), data, len);
		queue.len += need;
		/* The loop thread wakes the writer once a turn (log_flush()). */
		if (!batching_thread && !queue.woken) {
			queue.woken = true;
			wake = true;
		}
	}
	pthread_mutex_unlock(&queue.lock);
	if (wake)
		pthread_cond_signal(&queue.wake);
	return true;
}

static void
log_emit(enum log_level level, const char *text)
{
	if (!wanted(level))
		return;
	if (atomic_load_explicit(&queue_on, memory_order_acquire) &&
	    queue_append(level, NULL, text, strlen(text)))
		return;
	emit_now(level, text);
}

void
log_record(enum log_level level, log_format_fn format, const void *rec,
	   size_t len)
{
	char line[LINE_MAX_BYTES];

	if (!wanted(level))
		return;
	if (atomic_load_explicit(&queue_on, memory_order_acquire) &&
	    queue_append(level, format, rec, len))
		return;
	format_record(line, sizeof(line), format, rec, len);
	emit_now(level, line);
}

/* Format and write one batch of records, in queue order. */
static void
write_batch(const char *batch, size_t n, char *line, size_t linesz)
{
	size_t off = 0;

	while (off < n) {
		struct rec_head h;

		memcpy(&h, batch + off, sizeof(h));
		format_record(line, linesz, h.format, batch + off + sizeof(h),
			      h.len);
		emit_now((enum log_level)h.level, line);
		off += (sizeof(h) + h.len + 7) & ~(size_t)7;
	}
}

static void *
writer_main(void *arg)
{
	static char line[LINE_MAX_BYTES];

	(void)arg;
	pthread_mutex_lock(&queue.lock);
	for (;;) {
		char *batch;
		size_t n;
		uint64_t dropped;

		while (queue.len == 0 && !queue.stopping &&
		       queue.dropped == queue.reported)
			pthread_cond_wait(&queue.wake, &queue.lock);
		if (queue.len == 0 && queue.dropped == queue.reported) {
			/* Stopping and drained: later records are written
			   by their callers (queue_append() sees this). */
			queue.running = false;
			break;
		}
		batch = queue.buf;
		n = queue.len;
		queue.buf = queue.spare;
		queue.spare = batch;
		queue.len = 0;
		queue.woken = false;
		dropped = queue.dropped - queue.reported;
		queue.reported = queue.dropped;
		pthread_mutex_unlock(&queue.lock);

		write_batch(batch, n, line, sizeof(line));
		if (dropped > 0) {
			snprintf(line, sizeof(line), "log writer fell behind "
				 "(the log's disk or syslog was slow): %llu "
				 "lines dropped", (unsigned long long)dropped);
			emit_now(LOG_LEVEL_WARN, line);
		}
		if (!to_syslog())
			fflush(stderr);
		pthread_mutex_lock(&queue.lock);
	}
	pthread_mutex_unlock(&queue.lock);
	return NULL;
}

int
log_writer_start(void)
{
	static char stdio_buf[1 << 16];
	int rc;

	if (atomic_load_explicit(&queue_on, memory_order_relaxed))
		return 0;
	queue.buf = malloc(QUEUE_BYTES);
	queue.spare = malloc(QUEUE_BYTES);
	if (queue.buf == NULL || queue.spare == NULL) {
		free(queue.buf);
		free(queue.spare);
		queue.buf = queue.spare = NULL;
		return -ENOMEM;
	}
	if (!to_syslog()) {
		fflush(stderr);
		/* Only the writer writes now: one write(2) per batch. */
		setvbuf(stderr, stdio_buf, _IOFBF, sizeof(stdio_buf));
	}
	queue.len = 0;
	queue.stopping = false;
	queue.woken = false;
	queue.running = true;
	rc = pthread_create(&queue.thread, NULL, writer_main, NULL);
	if (rc != 0) {
		queue.running = false;
		if (!to_syslog())
			setvbuf(stderr, NULL, _IONBF, 0);
		free(queue.buf);
		free(queue.spare);
		queue.buf = queue.spare = NULL;
		return -rc;
	}
	batching_thread = true;
	atomic_store_explicit(&queue_on, true, memory_order_release);
	return 0;
}

void
log_writer_stop(void)
{
	if (!atomic_load_explicit(&queue_on, memory_order_relaxed))
		return;
	pthread_mutex_lock(&queue.lock);
	queue.stopping = true;
	queue.woken = true;
	pthread_mutex_unlock(&queue.lock);
	pthread_cond_signal(&queue.wake);
	pthread_join(queue.thread, NULL);
	atomic_store_explicit(&queue_on, false, memory_order_release);
	batching_thread = false;
	free(queue.buf);
	free(queue.spare);
	queue.buf = queue.spare = NULL;
	if (!to_syslog()) {
		fflush(stderr);
		setvbuf(stderr, NULL, _IONBF, 0);
	}
}

void
log_flush(void)
{
	bool wake = false;

	if (!atomic_load_explicit(&queue_on, memory_order_relaxed)) {
		if (!to_syslog())
			fflush(stderr);
		return;
	}
	pthread_mutex_lock(&queue.lock);
	if (queue.len > 0 && !queue.woken) {
		queue.woken = true;
		wake = true;
	}
	pthread_mutex_unlock(&queue.lock);
	if (wake)
		pthread_cond_signal(&queue.wake);
}

void
log_close(void)
{
	log_writer_stop();
	log_flush();
	if (to_syslog())
		closelog();
}

uint64_t
log_dropped(void)
{
	return atomic_load_explicit(&queue_dropped, memory_order_relaxed);
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

/* Printable ASCII other than the backslash: copied as it is. */
static bool
plain_byte(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != '\\';
}

char *
log_escape(char *out, size_t outsz, const char *in, size_t inlen, size_t max_in)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	size_t i = 0;
	bool cut = inlen > max_in;

	if (outsz == 0)
		return out;
	if (cut)
		inlen = max_in;
	while (i < inlen) {
		unsigned char c = (unsigned char)in[i];
		size_t run = i, room;

		/*
		 * Every byte is written only while the longest expansion,
		 * "..." and the NUL still fit after it: o + 4 + 3 + 1 <= outsz.
		 * Runs of plain bytes are copied whole within that room.
		 */
		room = o + 8 <= outsz ? outsz - 8 - o + 1 : 0;
		while (run < inlen && plain_byte((unsigned char)in[run]))
			run++;
		if (run > i) {
			size_t k = run - i;

			if (k > room) {
				memcpy(out + o, in + i, room);
				o += room;
				cut = true;
				break;
			}
			memcpy(out + o, in + i, k);
			o += k;
			i = run;
			continue;
		}
		if (room == 0) {
			cut = true;
			break;
		}
		out[o++] = '\\';
		if (c == '\\') {
			out[o++] = '\\';
		} else {
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
		i++;
	}
	if (cut && o + 3 < outsz) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}
