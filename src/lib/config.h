/*
 * config - greyhold.conf and command-line settings.
 *
 * Table-driven: every key has a type, a default and bounds (config.c).
 * A config is built whole (defaults, then the file, then command-line
 * overrides), validated, and then never changed: a reload builds a new
 * one and swaps it in, so a bad file leaves the running config untouched.
 *
 * File syntax: "name = value" lines, '#' starts a comment line, blank
 * lines ignored, a later line for the same key wins.  Durations take a
 * unit (s, m, h, d, w; bare numbers are seconds), sizes k, M, G, T.
 */
#ifndef GREYHOLD_CONFIG_H
#define GREYHOLD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/greyhold/greyhold.conf"

struct engine_params;
struct triplet_opts;

enum config_durability { DURABILITY_FULL, DURABILITY_RELAXED };

struct config_list {
	char **items;
	size_t n;
};

/* DNS allow- and blocklists consulted per request, at most. */
#define CONFIG_MAX_DNS_LISTS 8

struct config {
	struct config_list inet;	/* "[host]:port" or "host:port" */
	struct config_list unix_sockets;
	unsigned unix_mode;
	char *unix_group;
	char *dbdir;
	char *user;
	char *pidfile;

	int64_t delay;
	int64_t retry_window;
	int64_t max_age;
	unsigned auto_whitelist_clients;
	bool lookup_by_host;
	unsigned ipv4_cidr;
	unsigned ipv6_cidr;
	bool greylist_authenticated;

	char *greylist_action;
	char *greylist_text;
	char *failure_action;

	int64_t idle_timeout;
	unsigned max_connections;
	unsigned durability;	/* enum config_durability */
	uint64_t db_max_size;

	struct config_list whitelist_clients;	/* files */
	struct config_list whitelist_recipients;
	bool x_greylist_header;
	char *x_greylist_header_text;	/* %t delay, %v version, %h host, %d date */
	char *hostname;		/* for X-Greylist; "" = gethostname() */
	char *metrics_listen;	/* Prometheus HTTP listener; "" = off */
	char *store;		/* "lmdb", "redis://host:port/db", "unix:///path" */
	char *redis_user;
	char *redis_password;
	/* For the sentinels of a sentinel:// store, apart from the data nodes'. */
	char *redis_sentinel_user;
	char *redis_sentinel_password;
	char *redis_prefix;	/* namespace for every Redis key */
	bool privacy;		/* store keyed hashes, not addresses */
	char *privacy_key_file;	/* "" = DBDIR/privacy.key */
	bool verbose;

	/* DNS (src/daemon/dns.c): SPF, verified names, DNS lists. */
	struct config_list resolver;	/* nameservers; empty = resolv.conf */
	int64_t dns_timeout;		/* one lookup, seconds */
	int64_t dns_budget;		/* all lookups for one request */
	unsigned dns_cache_size;	/* answers cached; 0 = none */
	unsigned dns_max_outstanding;	/* queries in flight at most */

	/* Smart greylisting (smart.h). */
	bool name_identity;		/* verified names group pools */
	bool spf_identity;		/* SPF-proven domains group senders */
	bool trust_spf_aligned;		/* a domain's own server skips */
	struct config_list dnswl;	/* "ZONE" or "ZONE:MIN" */
	struct config_list dnsbl;	/* "ZONE" */
	int64_t dnsbl_delay;		/* delay for a listed client */
	char *psl_file;			/* "" = the system's list */
};

/* One command-line setting, applied after the file. */
struct config_override {
	const char *key;
	const char *value;
};

/*
 * Build a config: defaults, then path (NULL: none; missing_ok: a missing
 * file is not an error), then overrides in order.  On error returns a
 * negative errno and writes "FILE:LINE: what is wrong" into err.
 */
int config_load(struct config **out, const char *path, bool missing_ok,
		const struct config_override *ov, size_t nov, char *err,
		size_t errsz);
void config_free(struct config *cfg);

/* Whether key names a config key (for the command line). */
bool config_key_exists(const char *key);
/* The i-th key name, or NULL past the end (documentation tests). */
const char *config_key_name(size_t i);

/* Parse "[v6]:port", "v4:port", "localhost:port" or "port". */
int config_parse_inet(const char *text, char *host, size_t hostsz,
		      unsigned *port);

/*
 * The one place where settings become the engine's parameters and the
 * key builder's options: the daemon and greyholdctl must decide and build
 * keys alike, so both take them from here.
 */
void config_engine_params(const struct config *cfg, struct engine_params *out);
void config_triplet_opts(const struct config *cfg, struct triplet_opts *out);

/*
 * Parse a nameserver: "192.0.2.1", "192.0.2.1:5353", "2001:db8::1",
 * "[2001:db8::1]" or "[::1]:5353" (numeric only; port 53 if none).
 */
int config_parse_nameserver(const char *text, char *host, size_t hostsz,
			    unsigned *port);

/* Parse "300", "300s", "5m", "2h", "35d", "1w" into seconds. */
int config_parse_duration(const char *text, int64_t *out);

#endif
