/*
 * fuzz_config - greyhold.conf parsing and validation.
 *
 * Input: the bytes of a config file.  They are written to one temp file
 * (created on the first input, rewritten for each) and loaded with
 * config_load().  The first line is also tried as a command-line override
 * "key=value" over the defaults, and as a duration and a listener.
 *
 * Invariants (abort() when broken):
 *   - a failed load says why in err and hands out no config;
 *   - a loaded config has every key within its table bounds and the
 *     cross-key order 1 <= delay < retry_window <= max_age; its texts are
 *     printable and at most 400 bytes; its actions only defer (or are
 *     DUNNO, for failure_action); it has at least one listener, every
 *     inet listener (and metrics_listen) parses and every unix one is an
 *     absolute path;
 *   - a reply or X-Greylist header built from a loaded config is one line
 *     and the empty line, however long its texts expand.
 */
#include "fuzz.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "answer.h"
#include "config.h"
#include "engine.h"
#include "triplet.h"

#define DAY 86400

static char tmp_path[PATH_MAX];
static int tmp_fd = -1;

static void
check(bool ok)
{
	if (!ok)
		abort();
}

static void
remove_tmp(void)
{
	if (tmp_fd >= 0)
		close(tmp_fd);
	unlink(tmp_path);
}

static void
setup(void)
{
	const char *dir = getenv("TMPDIR");

	if (dir == NULL || dir[0] == '\0')
		dir = "/tmp";
	snprintf(tmp_path, sizeof(tmp_path), "%s/fuzz_config.XXXXXX", dir);
	tmp_fd = mkstemp(tmp_path);
	if (tmp_fd < 0) {
		perror("fuzz_config: mkstemp");
		abort();
	}
	atexit(remove_tmp);
}

static void
write_tmp(const uint8_t *data, size_t size)
{
	size_t off = 0;

	check(ftruncate(tmp_fd, 0) == 0);
	while (off < size) {
		ssize_t n = pwrite(tmp_fd, data + off, size - off, (off_t)off);

		check(n > 0);
		off += (size_t)n;
	}
}

/* ---- invariants of a loaded config ------------------------------------- */

static void
check_printable(const char *s, size_t max)
{
	size_t n;

	check(s != NULL);
	n = strlen(s);
	check(n <= max);
	for (size_t i = 0; i < n; i++)
		check((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f);
}

/* Whether s starts with word followed by the end or a space. */
static bool
starts_with_word(const char *s, const char *word)
{
	size_t n = strlen(word);

	return strncmp(s, word, n) == 0 && (s[n] == '\0' || s[n] == ' ');
}

/* Only actions that defer (or DUNNO on failure): never reject or accept. */
static void
check_action(const char *s, bool failure)
{
	check_printable(s, 400);
	if (failure && strcmp(s, "DUNNO") == 0)
		return;
	check(starts_with_word(s, "DEFER_IF_PERMIT") ||
	      starts_with_word(s, "DEFER_IF_REJECT") ||
	      starts_with_word(s, "DEFER") ||
	      (s[0] == '4' && isdigit((unsigned char)s[1]) &&
	       isdigit((unsigned char)s[2]) && (s[3] == '\0' || s[3] == ' ')));
}

static void
check_text(const char *s)
{
	check_printable(s, 400);
	for (; *s != '\0'; s++) {
		if (*s != '%')
			continue;
		s++;
		check(*s == 's' || *s == 'r' || *s == '%');
	}
}

/* "Name:" then printable text with only %t %v %h %d %%. */
static void
check_header(const char *s)
{
	size_t name = strcspn(s, ":");

	check_printable(s, 400);
	check(name > 0 && s[name] == ':' && memchr(s, ' ', name) == NULL);
	for (; *s != '\0'; s++) {
		if (*s != '%')
			continue;
		s++;
		check(*s != '\0' && strchr("tvhd%", *s) != NULL);
	}
}

static void
check_list(const struct config_list *l)
{
	check(l->n == 0 || l->items != NULL);
	for (size_t i = 0; i < l->n; i++) {
		const char *item = l->items[i];

		check(item != NULL && item[0] != '\0');
		check(!isspace((unsigned char)item[0]));
		check(strpbrk(item, ", \t") == NULL);
	}
}

static void
check_listeners(const struct config *cfg)
{
	char host[64];
	unsigned port;

	check(cfg->inet.n + cfg->unix_sockets.n >= 1);
	for (size_t i = 0; i < cfg->inet.n; i++) {
		check(config_parse_inet(cfg->inet.items[i], host, sizeof(host),
					&port) == 0);
		check(port >= 1 && port <= 65535);
	}
	for (size_t i = 0; i < cfg->unix_sockets.n; i++)
		check(cfg->unix_sockets.items[i][0] == '/');
	check_printable(cfg->metrics_listen, SIZE_MAX);
	if (cfg->metrics_listen[0] != '\0')
		check(config_parse_inet(cfg->metrics_listen, host, sizeof(host),
					&port) == 0);
}

/* The longest reply this config can produce still has the right shape. */
static void
check_reply(const struct config *cfg)
{
	struct engine_verdict v = {ENGINE_DEFER, ENGINE_NEW, cfg->delay, 0};
	char domain[TRIPLET_MAX_ADDR + 1];
	char reply[ANSWER_REPLY_MAX];
	size_t n;

	n = answer_prepend_text(reply, sizeof(reply), cfg->x_greylist_header_text,
				cfg->max_age, cfg->hostname, INT64_C(1) << 34);
	check(n >= 9 && n < sizeof(reply) && strlen(reply) == n);
	check(memcmp(reply, "action=PREPEND ", 15) == 0);
	check(reply[n - 1] == '\n' && reply[n - 2] == '\n');
	check(memchr(reply, '\n', n - 2) == NULL);
	memset(domain, 'd', sizeof(domain) - 1);
	domain[sizeof(domain) - 1] = '\0';
	for (int err = 0; err >= -EIO; err -= EIO) {
		n = answer_reply(reply, sizeof(reply), cfg, &v, err, domain);
		check(n >= 9 && n < sizeof(reply) && strlen(reply) == n);
		check(memcmp(reply, "action=", 7) == 0);
		check(reply[n - 1] == '\n' && reply[n - 2] == '\n');
		check(memchr(reply, '\n', n - 2) == NULL);
	}
}

static void
check_config(const struct config *cfg)
{
	check(cfg->delay >= 1 && cfg->delay <= 7 * DAY);
	check(cfg->retry_window > cfg->delay && cfg->retry_window <= 60 * DAY);
	check(cfg->max_age >= cfg->retry_window && cfg->max_age <= 3650 * DAY);
	check(cfg->auto_whitelist_clients <= 1000000);
	check(cfg->ipv4_cidr >= 1 && cfg->ipv4_cidr <= 32);
	check(cfg->ipv6_cidr >= 1 && cfg->ipv6_cidr <= 128);
	check(cfg->idle_timeout >= 1 && cfg->idle_timeout <= DAY);
	check(cfg->max_connections >= 1 && cfg->max_connections <= 100000);
	check(cfg->unix_mode <= 0777);
	check(cfg->durability == DURABILITY_FULL ||
	      cfg->durability == DURABILITY_RELAXED);
	check(cfg->db_max_size >= (1ULL << 20) && cfg->db_max_size <= (1ULL << 40));
	check_printable(cfg->dbdir, SIZE_MAX);
	check(cfg->dbdir[0] != '\0');
	check_printable(cfg->unix_group, SIZE_MAX);
	check_printable(cfg->user, SIZE_MAX);
	check_printable(cfg->pidfile, SIZE_MAX);
	check_printable(cfg->hostname, SIZE_MAX);
	check_action(cfg->greylist_action, false);
	check_action(cfg->failure_action, true);
	check_text(cfg->greylist_text);
	check_header(cfg->x_greylist_header_text);
	check(strcmp(cfg->store, "lmdb") == 0 ||
	      strncmp(cfg->store, "redis://", 8) == 0 ||
	      strncmp(cfg->store, "unix://", 7) == 0);
	check_printable(cfg->store, SIZE_MAX);
	check_printable(cfg->privacy_key_file, SIZE_MAX);
	check_printable(cfg->redis_user, SIZE_MAX);
	check_printable(cfg->redis_password, SIZE_MAX);
	check_printable(cfg->redis_prefix, SIZE_MAX);
	check_list(&cfg->inet);
	check_list(&cfg->unix_sockets);
	check_list(&cfg->whitelist_clients);
	check_list(&cfg->whitelist_recipients);
	check_listeners(cfg);
	check_reply(cfg);
}

/* ---- one input ------------------------------------------------------------ */

static void
load_and_check(const char *path, const struct config_override *ov,
	       size_t nov)
{
	static struct config sentinel;
	struct config *cfg = &sentinel;		/* config_load must reset it */
	char err[1024];
	int rc;

	err[0] = '\0';
	rc = config_load(&cfg, path, false, ov, nov, err, sizeof(err));
	if (rc < 0) {
		check(cfg == NULL);
		check(err[0] != '\0' && strnlen(err, sizeof(err)) < sizeof(err));
		return;
	}
	check(rc == 0 && cfg != NULL);
	check_config(cfg);
	config_free(cfg);
}

/* The first line as "key=value", a duration and a listener. */
static void
try_first_line(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t len = nl != NULL ? (size_t)(nl - data) : size;
	char *line = malloc(len + 1);
	char host[64];
	unsigned port;
	int64_t d;
	char *eq;

	check(line != NULL);
	memcpy(line, data, len);
	line[len] = '\0';
	if (config_parse_duration(line, &d) == 0)
		check(d >= 0 && d <= INT64_MAX / 2);
	if (config_parse_inet(line, host, sizeof(host), &port) == 0) {
		check(port >= 1 && port <= 65535);
		check(strnlen(host, sizeof(host)) < sizeof(host));
	}
	eq = strchr(line, '=');
	if (eq != NULL) {
		struct config_override ov = {line, eq + 1};

		*eq = '\0';
		load_and_check(NULL, &ov, 1);
	}
	free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (tmp_fd < 0)
		setup();
	write_tmp(data, size);
	load_and_check(tmp_path, NULL, 0);
	try_first_line(data, size);
	return 0;
}
