/*
 * test_config - greyhold.conf parsing, bounds, errors and documentation.
 *
 * Fixture files live in tests/unit/fixtures/config/{good,bad}; files that
 * depend on one key's bounds are written into a mkdtemp() directory so
 * that every numeric key is checked at min, max, min-1 and max+1 without
 * a fixture per value.  Each bad fixture and each numeric key is its own
 * test case, so a failure names the file or key it is about.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#define FIXTURES TEST_SRCDIR "/unit/fixtures/config"
#define MAN_PAGE TEST_SRCDIR "/../man/greyhold.conf.5"

#define DAY 86400
#define ERRSZ 1024

static char tmpdir[] = "/tmp/greyhold-test-config-XXXXXX";

/* ---- helpers ------------------------------------------------------------ */

static void
fixture(char *out, size_t outsz, const char *name)
{
	snprintf(out, outsz, "%s/%s", FIXTURES, name);
}

static struct config *
load_ok(const char *path, const struct config_override *ov, size_t nov)
{
	struct config *cfg = NULL;
	char err[ERRSZ] = "";
	int rc = config_load(&cfg, path, false, ov, nov, err, sizeof(err));

	if (rc != 0)
		fail_msg("config_load(%s) failed (%d): %s",
			 path != NULL ? path : "(no file)", rc, err);
	assert_non_null(cfg);
	return cfg;
}

/* Load what must fail; returns the error text in err. */
static void
load_bad(const char *path, const struct config_override *ov, size_t nov,
	 char *err, size_t errsz)
{
	static struct config sentinel;
	struct config *cfg = &sentinel;	/* must become NULL */
	int rc;

	err[0] = '\0';
	rc = config_load(&cfg, path, false, ov, nov, err, errsz);
	if (rc >= 0) {
		config_free(cfg);
		fail_msg("config_load(%s) accepted what it must reject",
			 path != NULL ? path : "(no file)");
	}
	assert_null(cfg);
	if (err[0] == '\0')
		fail_msg("config_load(%s) failed (%d) without a message",
			 path != NULL ? path : "(no file)", rc);
}

static bool
is_word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

/* Whether word occurs in text with no word character on either side. */
static bool
has_word(const char *text, const char *word)
{
	size_t n = strlen(word);
	const char *p = text;

	while ((p = strstr(p, word)) != NULL) {
		bool left = p == text || !is_word_char(p[-1]);
		bool right = !is_word_char(p[n]);

		if (left && right)
			return true;
		p++;
	}
	return false;
}

/* Assert that err holds "where:" and names key after it. */
static void
assert_error_names(const char *err, const char *where, const char *key)
{
	const char *at = strstr(err, where);
	const char *rest;

	if (at == NULL)
		fail_msg("error \"%s\" does not say where (\"%s\")", err, where);
	rest = at + strlen(where);
	if (*rest != ':')
		fail_msg("error \"%s\": location \"%s\" not followed by ':'", err,
			 where);
	/* Look for the key after the location: file names may contain it. */
	if (key != NULL && !has_word(rest, key))
		fail_msg("error \"%s\" does not name the key '%s'", err, key);
}

/* Like assert_error_names() for "FILE:LINE", LINE being line or alt. */
static void
assert_error_at_line(const char *err, const char *path, unsigned line,
		     unsigned alt, const char *key)
{
	char where[700];
	char where_alt[700];

	snprintf(where, sizeof(where), "%s:%u", path, line);
	snprintf(where_alt, sizeof(where_alt), "%s:%u", path, alt);
	if (alt != 0 && strstr(err, where) == NULL &&
	    strstr(err, where_alt) != NULL)
		assert_error_names(err, where_alt, key);
	else
		assert_error_names(err, where, key);
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL)
		fail_msg("cannot create %s", path);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void
assert_list(const struct config_list *l, const char *const *want, size_t n)
{
	size_t i;

	assert_int_equal(l->n, n);
	for (i = 0; i < n; i++)
		assert_string_equal(l->items[i], want[i]);
}

/* ---- defaults ------------------------------------------------------------ */

static void
assert_defaults(const struct config *cfg)
{
	static const char *const listener[] = {"127.0.0.1:10023"};
	static const char *const wl_clients[] = {
		SYSCONFDIR "/greyhold/whitelist_clients"};
	static const char *const wl_recipients[] = {
		SYSCONFDIR "/greyhold/whitelist_recipients"};

	assert_list(&cfg->inet, listener, 1);
	assert_int_equal(cfg->unix_sockets.n, 0);
	assert_int_equal(cfg->unix_mode, 0660);
	assert_string_equal(cfg->unix_group, "");
	assert_string_equal(cfg->dbdir, LOCALSTATEDIR "/lib/greyhold");
	assert_string_equal(cfg->user, "");
	assert_string_equal(cfg->pidfile, "");
	assert_int_equal(cfg->delay, 300);
	assert_int_equal(cfg->retry_window, 2 * DAY);
	assert_int_equal(cfg->max_age, 35 * DAY);
	assert_int_equal(cfg->auto_whitelist_clients, 5);
	assert_false(cfg->lookup_by_host);
	assert_int_equal(cfg->ipv4_cidr, 24);
	assert_int_equal(cfg->ipv6_cidr, 64);
	assert_false(cfg->greylist_authenticated);
	assert_string_equal(cfg->greylist_action, "DEFER_IF_PERMIT");
	assert_string_equal(cfg->greylist_text,
			    "Greylisted, please try again in %s seconds");
	assert_string_equal(cfg->failure_action, "DUNNO");
	assert_int_equal(cfg->idle_timeout, 600);
	assert_int_equal(cfg->max_connections, 1000);
	assert_int_equal(cfg->durability, DURABILITY_FULL);
	assert_int_equal(cfg->db_max_size, 4ULL << 30);
	assert_list(&cfg->whitelist_clients, wl_clients, 1);
	assert_list(&cfg->whitelist_recipients, wl_recipients, 1);
	assert_false(cfg->x_greylist_header);
	assert_string_equal(cfg->hostname, "");
	assert_string_equal(cfg->metrics_listen, "");
	assert_false(cfg->verbose);
}

static void
test_defaults_without_file(void **state)
{
	struct config *cfg = load_ok(NULL, NULL, 0);

	(void)state;
	assert_defaults(cfg);
	config_free(cfg);
}

static void
test_comment_only_file_keeps_defaults(void **state)
{
	char path[512];
	struct config *cfg;

	(void)state;
	fixture(path, sizeof(path), "good/comments-only.conf");
	cfg = load_ok(path, NULL, 0);
	assert_defaults(cfg);
	config_free(cfg);
}

static void
test_missing_file_ok_when_allowed(void **state)
{
	struct config *cfg = NULL;
	char err[ERRSZ] = "";
	char path[600];

	(void)state;
	snprintf(path, sizeof(path), "%s/no-such.conf", tmpdir);
	assert_int_equal(config_load(&cfg, path, true, NULL, 0, err,
				     sizeof(err)), 0);
	assert_non_null(cfg);
	assert_defaults(cfg);
	config_free(cfg);
}

static void
test_missing_file_error_when_required(void **state)
{
	struct config *cfg = NULL;
	char err[ERRSZ] = "";
	char path[600];

	(void)state;
	snprintf(path, sizeof(path), "%s/no-such.conf", tmpdir);
	assert_int_equal(config_load(&cfg, path, false, NULL, 0, err,
				     sizeof(err)), -ENOENT);
	assert_null(cfg);
	if (strstr(err, path) == NULL)
		fail_msg("error \"%s\" does not name the file", err);
}

/* ---- good files ---------------------------------------------------------- */

static void
test_full_file_sets_every_key(void **state)
{
	static const char *const inet[] = {"127.0.0.1:10023", "[::1]:10024",
					   "*:10025"};
	static const char *const unix_sockets[] = {
		"/run/greyhold/policy.sock",
		"/var/spool/postfix/private/greyhold"};
	static const char *const wl_clients[] = {"/etc/greyhold/clients.a",
						 "/etc/greyhold/clients.b"};
	static const char *const wl_recipients[] = {"/etc/greyhold/recipients"};
	static const char *const resolvers[] = {"127.0.0.1:5353", "[::1]:53",
						"192.0.2.53"};
	static const char *const dnswl[] = {"list.dnswl.org:2",
					    "allow.example.org"};
	static const char *const dnsbl[] = {"zen.spamhaus.org"};
	char path[512];
	struct config *cfg;

	(void)state;
	fixture(path, sizeof(path), "good/full.conf");
	cfg = load_ok(path, NULL, 0);
	assert_list(&cfg->inet, inet, 3);
	assert_list(&cfg->unix_sockets, unix_sockets, 2);
	assert_int_equal(cfg->unix_mode, 0640);
	assert_string_equal(cfg->unix_group, "postfix");
	assert_string_equal(cfg->dbdir, "/srv/greyhold/db");
	assert_string_equal(cfg->user, "greyhold");
	assert_string_equal(cfg->pidfile, "/run/greyhold/greyhold.pid");
	assert_int_equal(cfg->delay, 600);			/* bare seconds */
	assert_int_equal(cfg->retry_window, 3 * 3600);		/* h */
	assert_int_equal(cfg->max_age, 5 * 7 * DAY);		/* w */
	assert_int_equal(cfg->auto_whitelist_clients, 10);
	assert_true(cfg->lookup_by_host);			/* yes */
	assert_int_equal(cfg->ipv4_cidr, 32);
	assert_int_equal(cfg->ipv6_cidr, 48);
	assert_true(cfg->greylist_authenticated);		/* true */
	assert_string_equal(cfg->greylist_action,
			    "450 4.7.1 Greylisted, come back later");
	assert_string_equal(cfg->greylist_text,
			    "Greylisted for %s seconds at %r, 100%% sure");
	assert_string_equal(cfg->failure_action, "DUNNO");
	assert_int_equal(cfg->idle_timeout, 120);		/* m */
	assert_int_equal(cfg->max_connections, 50);
	assert_int_equal(cfg->durability, DURABILITY_RELAXED);
	assert_int_equal(cfg->db_max_size, 512ULL << 20);	/* M */
	assert_list(&cfg->whitelist_clients, wl_clients, 2);
	assert_list(&cfg->whitelist_recipients, wl_recipients, 1);
	assert_true(cfg->x_greylist_header);
	assert_string_equal(cfg->x_greylist_header_text,
			    "X-Greylisted: %t s by %h (greyhold %v), 100%% on %d");
	assert_string_equal(cfg->hostname, "mx1.example.org");
	assert_string_equal(cfg->metrics_listen, "127.0.0.1:9464");
	assert_string_equal(cfg->store, "lmdb");
	assert_string_equal(cfg->redis_user, "greyhold");
	assert_string_equal(cfg->redis_password, "s3cret");
	assert_string_equal(cfg->redis_sentinel_user, "watcher");
	assert_string_equal(cfg->redis_sentinel_password, "s3ntinel");
	assert_string_equal(cfg->redis_prefix, "gh:mx:");
	assert_false(cfg->privacy);
	assert_string_equal(cfg->privacy_key_file, "/var/lib/greyhold/secret.key");
	assert_true(cfg->verbose);				/* on */
	assert_list(&cfg->resolver, resolvers, 3);
	assert_int_equal(cfg->dns_timeout, 4);
	assert_int_equal(cfg->dns_budget, 60);
	assert_int_equal(cfg->dns_cache_size, 2500);
	assert_int_equal(cfg->dns_max_outstanding, 64);
	assert_false(cfg->name_identity);
	assert_true(cfg->spf_identity);
	assert_false(cfg->trust_spf_aligned);
	assert_list(&cfg->dnswl, dnswl, 2);
	assert_list(&cfg->dnsbl, dnsbl, 1);
	assert_int_equal(cfg->dnsbl_delay, 2 * 3600);
	assert_string_equal(cfg->psl_file, "/usr/share/publicsuffix/public_suffix_list.dat");
	config_free(cfg);
}

/* full.conf must keep up with the key table: one line per key. */
static void
test_full_file_names_every_key(void **state)
{
	char path[512];
	char line[512];
	char missing[1024] = "";
	FILE *fp;
	size_t i;

	(void)state;
	fixture(path, sizeof(path), "good/full.conf");
	for (i = 0; config_key_name(i) != NULL; i++) {
		const char *key = config_key_name(i);
		size_t n = strlen(key);
		bool found = false;

		fp = fopen(path, "r");
		assert_non_null(fp);
		while (!found && fgets(line, sizeof(line), fp) != NULL)
			found = strncmp(line, key, n) == 0 &&
				(line[n] == ' ' || line[n] == '=');
		fclose(fp);
		if (!found) {
			strncat(missing, " ", sizeof(missing) - strlen(missing) - 1);
			strncat(missing, key, sizeof(missing) - strlen(missing) - 1);
		}
	}
	if (missing[0] != '\0')
		fail_msg("%s does not set:%s", path, missing);
}

static void
test_other_units_and_spellings(void **state)
{
	char path[512];
	struct config *cfg;

	(void)state;
	fixture(path, sizeof(path), "good/units.conf");
	cfg = load_ok(path, NULL, 0);
	assert_int_equal(cfg->delay, 45);			/* s */
	assert_int_equal(cfg->retry_window, DAY);		/* d */
	assert_int_equal(cfg->max_age, 2 * 7 * DAY);		/* w */
	assert_int_equal(cfg->idle_timeout, 3600);		/* h */
	assert_int_equal(cfg->db_max_size, 2048ULL << 10);	/* k */
	assert_false(cfg->lookup_by_host);			/* false */
	assert_false(cfg->greylist_authenticated);		/* off */
	assert_false(cfg->verbose);				/* 0 */
	assert_int_equal(cfg->durability, DURABILITY_FULL);
	assert_string_equal(cfg->greylist_action, "DEFER_IF_PERMIT");
	assert_string_equal(cfg->failure_action, "DEFER_IF_PERMIT");
	config_free(cfg);
}

static void
test_terabytes_last_booleans_unix_only(void **state)
{
	static const char *const unix_sockets[] = {"/run/greyhold.sock"};
	char path[512];
	struct config *cfg;

	(void)state;
	fixture(path, sizeof(path), "good/numbers.conf");
	cfg = load_ok(path, NULL, 0);
	assert_int_equal(cfg->db_max_size, 1ULL << 40);		/* T */
	assert_true(cfg->lookup_by_host);			/* 1 */
	assert_false(cfg->greylist_authenticated);		/* no */
	assert_true(cfg->verbose);				/* yes */
	assert_list(&cfg->unix_sockets, unix_sockets, 1);
	/* A unix socket alone: no default TCP listener is added. */
	assert_int_equal(cfg->inet.n, 0);
	config_free(cfg);
}

static void
test_syntax_comments_spaces_later_line_wins(void **state)
{
	static const char *const inet[] = {"127.0.0.1:2", "127.0.0.1:3"};
	char path[512];
	struct config *cfg;

	(void)state;
	fixture(path, sizeof(path), "good/syntax.conf");
	cfg = load_ok(path, NULL, 0);
	assert_int_equal(cfg->delay, 300);	/* 1m, 2m, then 5m */
	assert_int_equal(cfg->max_connections, 77);
	assert_int_equal(cfg->ipv4_cidr, 20);	/* tabs around it */
	assert_string_equal(cfg->greylist_text, "Wait %s more seconds");
	assert_int_equal(cfg->db_max_size, 3ULL << 30);	/* G, the later */
	assert_list(&cfg->inet, inet, 2);	/* the later list replaces */
	config_free(cfg);
}

static void
test_booleans_every_spelling(void **state)
{
	static const char *const keys[] = {"lookup_by_host",
					   "greylist_authenticated",
					   "x_greylist_header", "verbose"};
	static const struct {
		const char *text;
		bool value;
	} spellings[] = {
		{"yes", true}, {"no", false}, {"true", true}, {"false", false},
		{"on", true}, {"off", false}, {"1", true}, {"0", false},
	};
	size_t k, s;

	(void)state;
	for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		for (s = 0; s < sizeof(spellings) / sizeof(spellings[0]); s++) {
			struct config_override ov = {keys[k], spellings[s].text};
			struct config *cfg = load_ok(NULL, &ov, 1);
			bool got = k == 0 ? cfg->lookup_by_host :
				   k == 1 ? cfg->greylist_authenticated :
				   k == 2 ? cfg->x_greylist_header :
					    cfg->verbose;

			if (got != spellings[s].value)
				fail_msg("%s = %s read back as %d", keys[k],
					 spellings[s].text, got);
			config_free(cfg);
		}
	}
}

static void
test_sizes_every_unit(void **state)
{
	static const struct {
		const char *text;
		uint64_t value;
	} sizes[] = {
		{"1048576", 1ULL << 20}, {"4096k", 4ULL << 20},
		{"512M", 512ULL << 20}, {"3G", 3ULL << 30}, {"1T", 1ULL << 40},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct config_override ov = {"db_max_size", sizes[i].text};
		struct config *cfg = load_ok(NULL, &ov, 1);

		assert_int_equal(cfg->db_max_size, sizes[i].value);
		config_free(cfg);
	}
}

static void
test_actions_and_text_accepted(void **state)
{
	static const struct config_override good[] = {
		{"greylist_action", "DEFER_IF_PERMIT"},
		{"greylist_action", "DEFER_IF_PERMIT Greylisted, retry in %s s"},
		{"greylist_action", "450 4.7.1 Greylisted"},
		{"greylist_action", "451"},
		{"failure_action", "DUNNO"},
		{"failure_action", "451 4.3.0 Try again later"},
		{"greylist_text", "%s %r %%"},
		{"greylist_text", ""},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct config *cfg = load_ok(NULL, &good[i], 1);
		const char *got = strcmp(good[i].key, "greylist_action") == 0 ?
				  cfg->greylist_action :
				  strcmp(good[i].key, "failure_action") == 0 ?
				  cfg->failure_action : cfg->greylist_text;

		assert_string_equal(got, good[i].value);
		config_free(cfg);
	}
}

/* The example shipped in etc/ must load as it is. */
static void
test_shipped_example_loads(void **state)
{
	const char *path = TEST_SRCDIR "/../etc/greyhold.conf";
	struct config *cfg;

	(void)state;
	if (access(path, R_OK) != 0)
		fail_msg("%s is missing", path);
	cfg = load_ok(path, NULL, 0);
	config_free(cfg);
}

/* ---- bad files ----------------------------------------------------------- */

struct bad_file {
	const char *name;	/* under bad/ */
	unsigned line;		/* where the error is */
	unsigned alt_line;	/* cross-key errors: the other key's line */
	const char *key;	/* the key the message must name, if any */
};

static const struct bad_file bad_files[] = {
	{"unknown-key.conf", 3, 0, "greylist_delay"},
	{"missing-equals.conf", 3, 0, NULL},
	{"bad-duration-unit.conf", 3, 0, "delay"},
	{"negative-number.conf", 3, 0, "max_connections"},
	{"negative-duration.conf", 3, 0, "idle_timeout"},
	{"garbage-boolean.conf", 3, 0, "verbose"},
	{"text-percent-x.conf", 3, 0, "greylist_text"},
	{"text-trailing-percent.conf", 3, 0, "greylist_text"},
	{"text-too-long.conf", 3, 0, "greylist_text"},
	{"action-lowercase.conf", 3, 0, "greylist_action"},
	{"control-char.conf", 3, 0, "unix_group"},
	{"control-char-text.conf", 3, 0, "greylist_text"},
	{"long-line.conf", 3, 0, NULL},
	{"comment-after-value.conf", 3, 0, "delay"},	/* '#' only starts lines */
	{"durability-bad.conf", 3, 0, "durability"},
	{"mode-bad.conf", 3, 0, "unix_mode"},
	{"size-bad-unit.conf", 3, 0, "db_max_size"},
	{"empty-value.conf", 3, 0, "max_connections"},
	{"trailing-garbage.conf", 3, 0, "max_connections"},
	{"unix-relative.conf", 3, 0, "unix"},
	{"inet-foo.conf", 3, 0, "inet"},
	{"inet-port-zero.conf", 3, 0, "inet"},
	{"inet-port-big.conf", 3, 0, "inet"},
	{"dbdir-empty.conf", 3, 0, "dbdir"},
	{"metrics-listen-bad.conf", 3, 0, "metrics_listen"},
	{"redis-prefix-braces.conf", 3, 0, "redis_prefix"},
	{"redis-user-no-password.conf", 3, 0, "redis_user"},
	{"redis-sentinel-user-no-password.conf", 3, 0, "redis_sentinel_user"},
	{"store-sentinel-no-master.conf", 3, 0, "store"},
	{"store-credentials-in-url.conf", 3, 0, "redis_password"},
	{"retry-window-le-delay.conf", 3, 2, "retry_window"},
	{"max-age-lt-retry-window.conf", 3, 2, "max_age"},
	{"resolver-name.conf", 3, 0, "resolver"},
	{"resolver-port-zero.conf", 3, 0, "resolver"},
	{"dns-timeout-gt-budget.conf", 3, 2, "dns_timeout"},
	{"dnswl-not-a-zone.conf", 3, 0, "dnswl"},
	{"dnswl-bad-minimum.conf", 3, 0, "dnswl"},
	{"dnsbl-with-minimum.conf", 3, 0, "dnsbl"},
	{"dns-lists-too-many.conf", 4, 0, "dnsbl"},
	{"retry-window-le-dnsbl-delay.conf", 4, 3, "retry_window"},
};

static void
test_bad_file(void **state)
{
	const struct bad_file *b = *state;
	char path[512];
	char err[ERRSZ];

	snprintf(path, sizeof(path), "%s/bad/%s", FIXTURES, b->name);
	if (access(path, R_OK) != 0)
		fail_msg("fixture %s is missing", path);
	load_bad(path, NULL, 0, err, sizeof(err));
	assert_error_at_line(err, path, b->line, b->alt_line, b->key);
}

/* ---- overrides ----------------------------------------------------------- */

static void
test_overrides_apply_after_file_in_order(void **state)
{
	static const char *const inet[] = {"127.0.0.1:9"};
	static const struct config_override ov[] = {
		{"delay", "10m"},
		{"inet", "127.0.0.1:9"},
		{"verbose", "off"},
		{"delay", "20m"},	/* a later override wins */
	};
	char path[512];
	struct config *cfg;

	(void)state;
	fixture(path, sizeof(path), "good/full.conf");
	cfg = load_ok(path, ov, sizeof(ov) / sizeof(ov[0]));
	assert_int_equal(cfg->delay, 1200);
	assert_list(&cfg->inet, inet, 1);
	assert_false(cfg->verbose);
	/* Keys not overridden keep the file's values. */
	assert_int_equal(cfg->max_connections, 50);
	assert_string_equal(cfg->unix_group, "postfix");
	config_free(cfg);
}

static void
test_override_errors_name_command_line(void **state)
{
	static const struct config_override bad[] = {
		{"no_such_key", "1"},
		{"delay", "5x"},
		{"delay", "8d"},
		{"verbose", "perhaps"},
		{"greylist_text", "%d seconds"},
		{"greylist_action", "defer"},
		{"unix_group", "a\tb"},
		{"inet", "foo:25"},
		{"inet", "1.2.3.4:0"},
		{"unix", "relative.sock"},
		{"metrics_listen", "localhost:http"},
		{"retry_window", "300"},	/* not longer than delay */
		{"max_age", "1d"},		/* shorter than retry_window */
	};
	char path[512];
	size_t i;
	int with_file;

	(void)state;
	fixture(path, sizeof(path), "good/comments-only.conf");
	/* Without a file, and after a good file: blame the command line. */
	for (with_file = 0; with_file < 2; with_file++) {
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char err[ERRSZ];

			load_bad(with_file ? path : NULL, &bad[i], 1, err,
				 sizeof(err));
			assert_error_names(err, "command line", bad[i].key);
		}
	}
}

static void
test_override_fixes_bad_cross_key_file_value(void **state)
{
	/* The file alone is invalid; the command line makes it valid. */
	static const struct config_override ov[] = {{"retry_window", "2h"}};
	char path[512];
	struct config *cfg;

	(void)state;
	fixture(path, sizeof(path), "bad/retry-window-le-delay.conf");
	cfg = load_ok(path, ov, 1);
	assert_int_equal(cfg->delay, 3600);
	assert_int_equal(cfg->retry_window, 7200);
	config_free(cfg);
}

/* ---- numeric bounds, every key --------------------------------------------- */

struct bound {
	const char *key;
	const char *min;	/* smallest accepted, as text */
	const char *max;	/* largest accepted */
	const char *below;	/* min - 1 */
	const char *above;	/* max + 1 */
	uint64_t min_v;
	uint64_t max_v;
	/* Settings that keep min and max valid across keys. */
	struct config_override with[2];
};

/*
 * retry_window must be longer than delay (at least 1s) and max_age at
 * least retry_window, so both are accepted from 2s up.
 */
static const struct bound bounds[] = {
	{"unix_mode", "0", "0777", "-1", "01000", 0, 0777, {{NULL, NULL}}},
	{"delay", "1s", "7d", "0", "604801", 1, 7 * DAY,
	 {{"retry_window", "60d"}, {"max_age", "3650d"}}},
	{"retry_window", "2s", "60d", "1s", "5184001", 2, 60 * DAY,
	 {{"delay", "1s"}, {"max_age", "3650d"}}},
	{"max_age", "2s", "3650d", "1s", "315360001", 2, 3650ULL * DAY,
	 {{"delay", "1s"}, {"retry_window", "2s"}}},
	{"auto_whitelist_clients", "0", "1000000", "-1", "1000001", 0, 1000000,
	 {{NULL, NULL}}},
	{"ipv4_cidr", "1", "32", "0", "33", 1, 32, {{NULL, NULL}}},
	{"ipv6_cidr", "1", "128", "0", "129", 1, 128, {{NULL, NULL}}},
	{"idle_timeout", "1", "1d", "0s", "86401", 1, DAY, {{NULL, NULL}}},
	{"max_connections", "1", "100000", "0", "100001", 1, 100000,
	 {{NULL, NULL}}},
	{"db_max_size", "1M", "1T", "1048575", "1099511627777", 1ULL << 20,
	 1ULL << 40, {{NULL, NULL}}},
	{"dns_timeout", "1s", "30s", "0", "31", 1, 30, {{"dns_budget", "60s"}}},
	{"dns_budget", "1s", "60s", "0", "61", 1, 60, {{"dns_timeout", "1s"}}},
	{"dns_cache_size", "0", "1000000", "-1", "1000001", 0, 1000000,
	 {{NULL, NULL}}},
	{"dns_max_outstanding", "1", "100000", "0", "100001", 1, 100000,
	 {{NULL, NULL}}},
	{"dnsbl_delay", "1s", "7d", "0", "604801", 1, 7 * 86400, {{NULL, NULL}}},
};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

/* Keys that take no number; every other key must be in bounds[]. */
static const char *const non_numeric_keys[] = {
	"inet", "unix", "unix_group", "dbdir", "user", "pidfile",
	"lookup_by_host", "greylist_authenticated", "greylist_action",
	"greylist_text", "failure_action", "durability", "whitelist_clients",
	"whitelist_recipients", "x_greylist_header", "x_greylist_header_text",
	"hostname", "metrics_listen", "store", "redis_user", "redis_password",
	"redis_sentinel_user", "redis_sentinel_password",
	"redis_prefix", "privacy", "privacy_key_file", "verbose", "resolver",
	"name_identity", "spf_identity", "trust_spf_aligned", "dnswl", "dnsbl",
	"psl_file",
};

static uint64_t
numeric_value(const struct config *cfg, const char *key)
{
	if (strcmp(key, "unix_mode") == 0)
		return cfg->unix_mode;
	if (strcmp(key, "delay") == 0)
		return (uint64_t)cfg->delay;
	if (strcmp(key, "retry_window") == 0)
		return (uint64_t)cfg->retry_window;
	if (strcmp(key, "max_age") == 0)
		return (uint64_t)cfg->max_age;
	if (strcmp(key, "auto_whitelist_clients") == 0)
		return cfg->auto_whitelist_clients;
	if (strcmp(key, "ipv4_cidr") == 0)
		return cfg->ipv4_cidr;
	if (strcmp(key, "ipv6_cidr") == 0)
		return cfg->ipv6_cidr;
	if (strcmp(key, "idle_timeout") == 0)
		return (uint64_t)cfg->idle_timeout;
	if (strcmp(key, "max_connections") == 0)
		return cfg->max_connections;
	if (strcmp(key, "db_max_size") == 0)
		return cfg->db_max_size;
	if (strcmp(key, "dns_timeout") == 0)
		return (uint64_t)cfg->dns_timeout;
	if (strcmp(key, "dns_budget") == 0)
		return (uint64_t)cfg->dns_budget;
	if (strcmp(key, "dns_cache_size") == 0)
		return cfg->dns_cache_size;
	if (strcmp(key, "dns_max_outstanding") == 0)
		return cfg->dns_max_outstanding;
	if (strcmp(key, "dnsbl_delay") == 0)
		return (uint64_t)cfg->dnsbl_delay;
	fail_msg("no reader for numeric key %s", key);
	return 0;
}

static size_t
bound_overrides(const struct bound *b, const char *value,
		struct config_override *ov)
{
	size_t n = 0;
	size_t i;

	for (i = 0; i < 2 && b->with[i].key != NULL; i++)
		ov[n++] = b->with[i];
	ov[n].key = b->key;
	ov[n].value = value;
	return n + 1;
}

/* Write the companions and then "key = value"; returns value's line. */
static unsigned
write_bound_file(const char *path, const struct bound *b, const char *value)
{
	char text[512];
	size_t o;
	unsigned line = 1;
	size_t i;

	o = (size_t)snprintf(text, sizeof(text), "# bounds of %s\n", b->key);
	for (i = 0; i < 2 && b->with[i].key != NULL; i++) {
		o += (size_t)snprintf(text + o, sizeof(text) - o, "%s = %s\n",
				      b->with[i].key, b->with[i].value);
		line++;
	}
	snprintf(text + o, sizeof(text) - o, "%s = %s\n", b->key, value);
	write_file(path, text);
	return line + 1;
}

static void
check_bound_accepted(const struct bound *b, const char *value, uint64_t want)
{
	struct config_override ov[3];
	size_t nov = bound_overrides(b, value, ov);
	char path[600];
	struct config *cfg;

	cfg = load_ok(NULL, ov, nov);
	if (numeric_value(cfg, b->key) != want)
		fail_msg("command line %s = %s read back as %" PRIu64
			 ", want %" PRIu64, b->key, value,
			 numeric_value(cfg, b->key), want);
	config_free(cfg);

	snprintf(path, sizeof(path), "%s/%s.conf", tmpdir, b->key);
	write_bound_file(path, b, value);
	cfg = load_ok(path, NULL, 0);
	if (numeric_value(cfg, b->key) != want)
		fail_msg("%s: %s = %s read back as %" PRIu64 ", want %" PRIu64,
			 path, b->key, value, numeric_value(cfg, b->key), want);
	config_free(cfg);
	unlink(path);
}

static void
check_bound_rejected(const struct bound *b, const char *value)
{
	struct config_override ov[3];
	size_t nov = bound_overrides(b, value, ov);
	char path[600];
	char err[ERRSZ];
	unsigned line;

	load_bad(NULL, ov, nov, err, sizeof(err));
	assert_error_names(err, "command line", b->key);

	snprintf(path, sizeof(path), "%s/%s.conf", tmpdir, b->key);
	line = write_bound_file(path, b, value);
	load_bad(path, NULL, 0, err, sizeof(err));
	unlink(path);
	assert_error_at_line(err, path, line, 0, b->key);
}

static void
test_numeric_bounds(void **state)
{
	const struct bound *b = *state;

	check_bound_accepted(b, b->min, b->min_v);
	check_bound_accepted(b, b->max, b->max_v);
	check_bound_rejected(b, b->below);
	check_bound_rejected(b, b->above);
}

static void
test_unclassified_key(void **state)
{
	fail_msg("config key '%s' is neither in this test's bounds table nor "
		 "in its list of non-numeric keys: add it",
		 (const char *)*state);
}

static const struct bound *
find_bound(const char *key)
{
	size_t i;

	for (i = 0; i < NBOUNDS; i++) {
		if (strcmp(bounds[i].key, key) == 0)
			return &bounds[i];
	}
	return NULL;
}

static bool
is_non_numeric(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(non_numeric_keys) / sizeof(non_numeric_keys[0]);
	     i++) {
		if (strcmp(non_numeric_keys[i], key) == 0)
			return true;
	}
	return false;
}

/* The bound fixtures hold every numeric key at once, at min and at max. */
static void
test_bound_fixtures_hold_every_numeric_key(void **state)
{
	char path[512];
	struct config *cfg;
	size_t i;

	(void)state;
	fixture(path, sizeof(path), "good/bounds-min.conf");
	cfg = load_ok(path, NULL, 0);
	for (i = 0; i < NBOUNDS; i++)
		assert_int_equal(numeric_value(cfg, bounds[i].key),
				 bounds[i].min_v);
	config_free(cfg);

	fixture(path, sizeof(path), "good/bounds-max.conf");
	cfg = load_ok(path, NULL, 0);
	for (i = 0; i < NBOUNDS; i++)
		assert_int_equal(numeric_value(cfg, bounds[i].key),
				 bounds[i].max_v);
	config_free(cfg);
}

/* ---- keys, listeners, inet and duration syntax ------------------------------ */

static void
test_key_names_and_existence(void **state)
{
	size_t i;

	(void)state;
	assert_true(config_key_exists("delay"));
	assert_true(config_key_exists("db_max_size"));
	assert_false(config_key_exists("no_such_key"));
	assert_false(config_key_exists(""));
	assert_false(config_key_exists("Delay"));
	for (i = 0; config_key_name(i) != NULL; i++)
		assert_true(config_key_exists(config_key_name(i)));
	assert_int_equal(i, NBOUNDS + sizeof(non_numeric_keys) /
				      sizeof(non_numeric_keys[0]));
	assert_null(config_key_name(i + 1));
}

static void
test_default_listener_only_without_inet_and_unix(void **state)
{
	static const char *const dflt[] = {"127.0.0.1:10023"};
	static const char *const mine[] = {"[::1]:10025"};
	struct config_override ov[2];
	struct config *cfg;

	(void)state;
	cfg = load_ok(NULL, NULL, 0);
	assert_list(&cfg->inet, dflt, 1);
	assert_int_equal(cfg->unix_sockets.n, 0);
	config_free(cfg);

	ov[0] = (struct config_override){"unix", "/run/g.sock"};
	cfg = load_ok(NULL, ov, 1);
	assert_int_equal(cfg->inet.n, 0);
	assert_int_equal(cfg->unix_sockets.n, 1);
	config_free(cfg);

	ov[0] = (struct config_override){"inet", "[::1]:10025"};
	cfg = load_ok(NULL, ov, 1);
	assert_list(&cfg->inet, mine, 1);
	config_free(cfg);

	ov[1] = (struct config_override){"unix", "/run/g.sock"};
	cfg = load_ok(NULL, ov, 2);
	assert_list(&cfg->inet, mine, 1);
	assert_int_equal(cfg->unix_sockets.n, 1);
	config_free(cfg);

	/* Emptying both again brings the default back. */
	ov[0] = (struct config_override){"inet", ""};
	ov[1] = (struct config_override){"unix", ""};
	cfg = load_ok(NULL, ov, 2);
	assert_list(&cfg->inet, dflt, 1);
	config_free(cfg);
}

static void
test_parse_inet(void **state)
{
	static const struct {
		const char *text;
		const char *host;
		unsigned port;
	} good[] = {
		{"10023", "127.0.0.1", 10023},
		{"127.0.0.1:10023", "127.0.0.1", 10023},
		{"[::1]:10023", "::1", 10023},
		{"localhost:10023", "127.0.0.1", 10023},
		{"*:10023", "0.0.0.0", 10023},
		{"192.0.2.1:1", "192.0.2.1", 1},
		{"[2001:db8::25]:65535", "2001:db8::25", 65535},
	};
	static const char *const bad[] = {
		"foo:25", "1.2.3.4:0", "1.2.3.4:70000", "0", "65536", "",
		":25", "1.2.3.4:", "1.2.3.4:25x", "1.2.3.4:-25", "[::1]",
		"example.org:25", "1.2.3:25",
	};
	char host[64];
	unsigned port;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		host[0] = '\0';
		port = 0;
		if (config_parse_inet(good[i].text, host, sizeof(host), &port) != 0)
			fail_msg("config_parse_inet(\"%s\") rejected it",
				 good[i].text);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_inet(bad[i], host, sizeof(host), &port) >= 0)
			fail_msg("config_parse_inet(\"%s\") accepted it", bad[i]);
	}
}

static void
test_parse_nameserver(void **state)
{
	static const struct {
		const char *text;
		const char *host;
		unsigned port;
	} good[] = {
		{"192.0.2.1", "192.0.2.1", 53},
		{"127.0.0.1:5353", "127.0.0.1", 5353},
		{"2001:db8::1", "2001:db8::1", 53},
		{"::1", "::1", 53},
		{"[::1]", "::1", 53},
		{"[::1]:5353", "::1", 5353},
		{"[2001:db8::53]:65535", "2001:db8::53", 65535},
	};
	static const char *const bad[] = {
		"", "ns.example.org", "ns.example.org:53", "192.0.2.1:0",
		"192.0.2.1:65536", "192.0.2.1:", "[::1", "[::1]x", "[::1]:",
		"::1:53x", "1.2.3:53", "localhost", "192.0.2.1:53:53",
	};
	char host[64];
	unsigned port;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		host[0] = '\0';
		port = 0;
		if (config_parse_nameserver(good[i].text, host, sizeof(host),
					    &port) != 0)
			fail_msg("config_parse_nameserver(\"%s\") rejected it",
				 good[i].text);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_nameserver(bad[i], host, sizeof(host),
					    &port) >= 0)
			fail_msg("config_parse_nameserver(\"%s\") accepted it",
				 bad[i]);
	}
}

static void
test_parse_duration(void **state)
{
	static const struct {
		const char *text;
		int64_t value;
	} good[] = {
		{"300", 300}, {"300s", 300}, {"5m", 300}, {"2h", 7200},
		{"35d", 35 * DAY}, {"1w", 7 * DAY}, {"0", 0}, {"0s", 0},
	};
	static const char *const bad[] = {
		"", "s", "5x", "5 m", "5mm", "-1", "+1", " 5", "5 ", "1.5h",
		"5M", "99999999999999999999", "0x10",
	};
	int64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = -1;
		if (config_parse_duration(good[i].text, &v) != 0)
			fail_msg("config_parse_duration(\"%s\") rejected it",
				 good[i].text);
		assert_int_equal(v, good[i].value);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_duration(bad[i], &v) >= 0)
			fail_msg("config_parse_duration(\"%s\") accepted it",
				 bad[i]);
	}
}

/* ---- documentation --------------------------------------------------------- */

static char *
read_whole(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *text;
	long len;

	if (fp == NULL)
		return NULL;
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	assert_true(len >= 0);
	rewind(fp);
	text = malloc((size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)len, fp), (size_t)len);
	text[len] = '\0';
	fclose(fp);
	return text;
}

/* Strip roff font escapes (\fB, \fR, \f(CW, \f[B]) and "\-" to '-'. */
static void
strip_roff(char *line)
{
	char *in = line;
	char *out = line;

	while (*in != '\0') {
		if (in[0] == '\\' && in[1] == 'f' && in[2] == '(' && in[3] != '\0' &&
		    in[4] != '\0') {
			in += 5;
		} else if (in[0] == '\\' && in[1] == 'f' && in[2] == '[') {
			char *close = strchr(in, ']');
			in = close != NULL ? close + 1 : in + 3;
		} else if (in[0] == '\\' && in[1] == 'f' && in[2] != '\0') {
			in += 3;
		} else if (in[0] == '\\' && in[1] == '-') {
			*out++ = '-';
			in += 2;
		} else if (in[0] == '\\' && in[1] == '&') {
			in += 2;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
}

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * Whether key heads an entry: the line after .TP, or an .IP, .It, .SS or
 * .TP line itself (man(7) and mdoc(7) list styles) names it as a word.
 */
static bool
man_documents(const char *man, const char *key)
{
	char *copy = strdup(man);
	char *save = NULL;
	char *line;
	bool after_tp = false;
	bool found = false;

	assert_non_null(copy);
	for (line = strtok_r(copy, "\n", &save); line != NULL && !found;
	     line = strtok_r(NULL, "\n", &save)) {
		bool heading = after_tp || starts_with(line, ".IP") ||
			       starts_with(line, ".It") ||
			       starts_with(line, ".SS") ||
			       starts_with(line, ".TP ");

		after_tp = strcmp(line, ".TP") == 0 || starts_with(line, ".TP ");
		if (!heading)
			continue;
		strip_roff(line);
		found = has_word(line, key);
	}
	free(copy);
	return found;
}

static void
test_every_key_documented(void **state)
{
	char missing[2048] = "";
	char *man;
	size_t i;

	(void)state;
	man = read_whole(MAN_PAGE);
	if (man == NULL)
		fail_msg("%s does not exist: greyhold.conf(5) must document every "
			 "config key (the man page is not written yet?)", MAN_PAGE);
	for (i = 0; config_key_name(i) != NULL; i++) {
		const char *key = config_key_name(i);

		if (!man_documents(man, key)) {
			strncat(missing, " ", sizeof(missing) - strlen(missing) - 1);
			strncat(missing, key, sizeof(missing) - strlen(missing) - 1);
		}
	}
	free(man);
	if (missing[0] != '\0')
		fail_msg("keys without an entry (.TP/.IP/.It heading) in %s:%s",
			 MAN_PAGE, missing);
}

/* ---- runner ------------------------------------------------------------------ */

static int
group_setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

/* Remove tmpdir and what a failed test may have left in it. */
static int
group_teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;

	(void)state;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char path[600];

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(tmpdir);
}

#define MAX_TESTS 128

static struct CMUnitTest tests[MAX_TESTS];
static char test_names[MAX_TESTS][96];
static size_t ntests;

static void
add_test(const char *name, const char *detail, CMUnitTestFunction fn,
	 const void *arg)
{
	if (ntests == MAX_TESTS) {
		fprintf(stderr, "test_config: raise MAX_TESTS\n");
		exit(1);
	}
	if (detail != NULL)
		snprintf(test_names[ntests], sizeof(test_names[ntests]), "%s(%s)",
			 name, detail);
	else
		snprintf(test_names[ntests], sizeof(test_names[ntests]), "%s",
			 name);
	tests[ntests].name = test_names[ntests];
	tests[ntests].test_func = fn;
	tests[ntests].setup_func = NULL;
	tests[ntests].teardown_func = NULL;
	tests[ntests].initial_state = (void *)(uintptr_t)arg;
	ntests++;
}

#define ADD(fn) add_test(#fn, NULL, fn, NULL)

int
main(void)
{
	size_t i;

	ADD(test_defaults_without_file);
	ADD(test_comment_only_file_keeps_defaults);
	ADD(test_missing_file_ok_when_allowed);
	ADD(test_missing_file_error_when_required);
	ADD(test_full_file_sets_every_key);
	ADD(test_full_file_names_every_key);
	ADD(test_other_units_and_spellings);
	ADD(test_terabytes_last_booleans_unix_only);
	ADD(test_syntax_comments_spaces_later_line_wins);
	ADD(test_booleans_every_spelling);
	ADD(test_sizes_every_unit);
	ADD(test_actions_and_text_accepted);
	ADD(test_shipped_example_loads);
	for (i = 0; i < sizeof(bad_files) / sizeof(bad_files[0]); i++)
		add_test("test_bad_file", bad_files[i].name, test_bad_file,
			 &bad_files[i]);
	ADD(test_overrides_apply_after_file_in_order);
	ADD(test_override_errors_name_command_line);
	ADD(test_override_fixes_bad_cross_key_file_value);
	/* Every key, in the library's own order: none may be skipped. */
	for (i = 0; config_key_name(i) != NULL; i++) {
		const char *key = config_key_name(i);
		const struct bound *b = find_bound(key);

		if (b != NULL)
			add_test("test_numeric_bounds", key, test_numeric_bounds, b);
		else if (!is_non_numeric(key))
			add_test("test_unclassified_key", key,
				 test_unclassified_key, key);
	}
	ADD(test_bound_fixtures_hold_every_numeric_key);
	ADD(test_key_names_and_existence);
	ADD(test_default_listener_only_without_inet_and_unix);
	ADD(test_parse_inet);
	ADD(test_parse_nameserver);
	ADD(test_parse_duration);
	ADD(test_every_key_documented);

	return _cmocka_run_group_tests("config", tests, ntests, group_setup,
				       group_teardown);
}
