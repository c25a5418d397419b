/*
 * output - how greyholdctl prints values: JSON strings, times, ages,
 * sizes, and key parts that may be untrusted text or keyed hashes.
 *
 * Text that came from mail (addresses, client names) is escaped before it
 * reaches a terminal (log_escape()) or JSON (every byte outside printable
 * ASCII as \u00XX).  Callers own the output buffers; functions that
 * return a string return one of them or a constant.
 */
#include "output.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "privacy.h"

/* JSON string of len bytes: escapes quotes, backslashes, control bytes. */
void
json_mem(FILE *out, const char *s, size_t len)
{
	size_t i;

	fputc('"', out);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

void
json_string(FILE *out, const char *s)
{
	json_mem(out, s, strlen(s));
}

void
format_time(char *out, size_t outsz, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t == 0) {
		snprintf(out, outsz, "never");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "3d 4h", "12m 5s", "40s" */
void
format_age(char *out, size_t outsz, int64_t secs)
{
	const char *sign = secs < 0 ? "-" : "";

	if (secs < 0)
		secs = -secs;
	if (secs >= 86400)
		snprintf(out, outsz, "%s%" PRId64 "d %" PRId64 "h", sign,
			 secs / 86400, secs % 86400 / 3600);
	else if (secs >= 3600)
		snprintf(out, outsz, "%s%" PRId64 "h %" PRId64 "m", sign,
			 secs / 3600, secs % 3600 / 60);
	else if (secs >= 60)
		snprintf(out, outsz, "%s%" PRId64 "m %" PRId64 "s", sign,
			 secs / 60, secs % 60);
	else
		snprintf(out, outsz, "%s%" PRId64 "s", sign, secs);
}

void
format_bytes(char *out, size_t outsz, uint64_t n)
{
	if (n >= (1ULL << 30))
		snprintf(out, outsz, "%.1f GiB", (double)n / (1ULL << 30));
	else if (n >= (1ULL << 20))
		snprintf(out, outsz, "%.1f MiB", (double)n / (1ULL << 20));
	else if (n >= 1024)
		snprintf(out, outsz, "%.1f KiB", (double)n / 1024);
	else
		snprintf(out, outsz, "%" PRIu64 " B", n);
}

/* A keyed hash (privacy) as text: "h:" and its bytes in hex. */
static const char *
hash_text(char *out, size_t outsz, const char *s, size_t len)
{
	size_t o = (size_t)snprintf(out, outsz, "h:");

	for (size_t i = 0; i < len && o + 3 <= outsz; i++)
		o += (size_t)snprintf(out + o, outsz - o, "%02x",
				      (unsigned char)s[i]);
	return out;
}

/*
 * A key part for a terminal: untrusted text escaped, the null sender as
 * "<>", a hash as hash_text().
 */
const char *
shown(char *out, size_t outsz, const char *s, size_t len, bool hashed)
{
	if (hashed)
		return hash_text(out, outsz, s, len);
	if (len == 0)
		return "<>";
	return log_escape(out, outsz, s, len, TRIPLET_MAX_ADDR);
}

void
json_part(FILE *out, const char *s, size_t len, bool hashed)
{
	char hex[2 * PRIVACY_HASH_BYTES + 8];

	if (hashed)
		json_string(out, hash_text(hex, sizeof(hex), s, len));
	else
		json_mem(out, s, len);
}
