/*
 * greyhold - greylisting policy daemon for Postfix.
 *
 * Start-up order matters: read the config (fatal if bad), bind the
 * listeners while still root, daemonize if asked, write the pid file
 * (still root, never through a link), drop privileges, then open the
 * database as the unprivileged user and serve.  At exit the pid file is
 * removed with the unprivileged user's rights.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "whitelist.h"

#define MAX_OVERRIDES 128

struct options {
	const char *config_path;
	bool config_given;
	bool check_only;
	bool daemonize;
	bool use_syslog;
	struct config_override ov[MAX_OVERRIDES];
	size_t nov;
	/* Storage for values we rewrite (postgrey's day-based durations). */
	char rewritten[MAX_OVERRIDES][64];
};

enum long_only {
	OPT_DELAY = 256,
	OPT_MAX_AGE,
	OPT_RETRY_WINDOW,
	OPT_GREYLIST_ACTION,
	OPT_GREYLIST_TEXT,
	OPT_LOOKUP_BY_SUBNET,
	OPT_LOOKUP_BY_HOST,
	OPT_IPV4CIDR,
	OPT_IPV6CIDR,
	OPT_DBDIR,
	OPT_USER,
	OPT_PIDFILE,
	OPT_AWL,
	OPT_WL_CLIENTS,
	OPT_WL_RECIPIENTS,
	OPT_XHEADER,
	OPT_SOCKETMODE,
	OPT_HOSTNAME,
	OPT_SYSLOG,
};

static const struct option long_options[] = {
	{"config", required_argument, NULL, 'c'},
	{"check-config", no_argument, NULL, 'n'},
	{"foreground", no_argument, NULL, 'f'},
	{"daemonize", no_argument, NULL, 'd'},
	{"verbose", no_argument, NULL, 'v'},
	{"set", required_argument, NULL, 'o'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"syslog", no_argument, NULL, OPT_SYSLOG},
	/* postgrey's names, same meaning */
	{"inet", required_argument, NULL, 'i'},
	{"unix", required_argument, NULL, 'u'},
	{"delay", required_argument, NULL, OPT_DELAY},
	{"max-age", required_argument, NULL, OPT_MAX_AGE},
	{"retry-window", required_argument, NULL, OPT_RETRY_WINDOW},
	{"greylist-action", required_argument, NULL, OPT_GREYLIST_ACTION},
	{"greylist-text", required_argument, NULL, OPT_GREYLIST_TEXT},
	{"lookup-by-subnet", no_argument, NULL, OPT_LOOKUP_BY_SUBNET},
	{"lookup-by-host", no_argument, NULL, OPT_LOOKUP_BY_HOST},
	{"ipv4cidr", required_argument, NULL, OPT_IPV4CIDR},
	{"ipv6cidr", required_argument, NULL, OPT_IPV6CIDR},
	{"dbdir", required_argument, NULL, OPT_DBDIR},
	{"user", required_argument, NULL, OPT_USER},
	{"pidfile", required_argument, NULL, OPT_PIDFILE},
	{"auto-whitelist-clients", optional_argument, NULL, OPT_AWL},
	{"whitelist-clients", required_argument, NULL, OPT_WL_CLIENTS},
	{"whitelist-recipients", required_argument, NULL, OPT_WL_RECIPIENTS},
	{"x-greylist-header", optional_argument, NULL, OPT_XHEADER},
	{"socketmode", required_argument, NULL, OPT_SOCKETMODE},
	{"hostname", required_argument, NULL, OPT_HOSTNAME},
	{NULL, 0, NULL, 0},
};

static void
usage(FILE *out)
{
	fprintf(out,
"usage: greyhold [options]\n"
"  -c, --config FILE        configuration file (default " CONFIG_DEFAULT_PATH ")\n"
"  -n, --check-config       check the configuration and exit\n"
"  -f, --foreground         stay in the foreground, log to stderr (default)\n"
"  -d, --daemonize          detach and log to syslog (mail facility)\n"
"      --syslog             log to syslog even in the foreground\n"
"  -o, --set KEY=VALUE      set any greyhold.conf key\n"
"  -v, --verbose            log debugging detail\n"
"  -h, --help | -V, --version\n"
"postgrey-compatible options:\n"
"  -i, --inet=[HOST:]PORT  -u, --unix=PATH  --socketmode=MODE  --dbdir=DIR\n"
"  --user=USER  --pidfile=FILE  --hostname=NAME\n"
"  --delay=SECONDS  --max-age=DAYS  --retry-window=DAYS|Nh\n"
"  --greylist-action=ACTION  --greylist-text=TEXT\n"
"  --lookup-by-subnet  --lookup-by-host  --ipv4cidr=N  --ipv6cidr=N\n"
"  --auto-whitelist-clients[=N]  --whitelist-clients=FILE\n"
"  --whitelist-recipients=FILE  --x-greylist-header[=TEXT]\n"
"See greyhold(8) and greyhold.conf(5).\n");
}

static int
add_override(struct options *o, const char *key, const char *value)
{
	if (o->nov >= MAX_OVERRIDES) {
		fprintf(stderr, "greyhold: too many command-line settings\n");
		return -1;
	}
	o->ov[o->nov].key = key;
	o->ov[o->nov].value = value;
	o->nov++;
	return 0;
}

/*
 * postgrey's --max-age and --retry-window count days when no unit is
 * given (--retry-window also takes "Nh"); greyhold's config counts
 * seconds.  Add the unit so both mean what postgrey users expect.
 */
static int
add_days(struct options *o, const char *key, const char *value)
{
	char *buf = o->rewritten[o->nov < MAX_OVERRIDES ? o->nov : 0];
	size_t n = strlen(value);

	if (n > 0 && n < 60 && strspn(value, "0123456789") == n) {
		snprintf(buf, 64, "%sd", value);
		value = buf;
	}
	return add_override(o, key, value);
}

/* "-o key=value": split in place. */
static int
add_set(struct options *o, char *arg)
{
	char *eq = strchr(arg, '=');

	if (eq == NULL) {
		fprintf(stderr, "greyhold: -o expects KEY=VALUE, got '%s'\n", arg);
		return -1;
	}
	*eq = '\0';
	if (!config_key_exists(arg)) {
		fprintf(stderr, "greyhold: -o %s: unknown key (see greyhold.conf(5))\n",
			arg);
		return -1;
	}
	return add_override(o, arg, eq + 1);
}

/*
 * List flags (--inet, --unix, --whitelist-*) may repeat; their values are
 * joined and set once, so the command line replaces the file's list.
 */
struct joined {
	char *inet;
	char *unix_sockets;
	char *wl_clients;
	char *wl_recipients;
};

static int
add_to_list(char **joined, const char *value)
{
	size_t old = *joined != NULL ? strlen(*joined) : 0;
	char *grown = realloc(*joined, old + strlen(value) + 2);

	if (grown == NULL)
		return -1;
	if (old == 0)
		strcpy(grown, value);
	else
		sprintf(grown + old, ",%s", value);
	*joined = grown;
	return 0;
}

static int
parse_args(struct options *o, int argc, char **argv, struct joined *l)
{
	int ch;
	int rc = 0;

	while (rc == 0 &&
	       (ch = getopt_long(argc, argv, "c:nfdvo:hVi:u:", long_options, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config_path = optarg;
			o->config_given = true;
			break;
		case 'n':
			o->check_only = true;
			break;
		case 'f':
			o->daemonize = false;
			break;
		case 'd':
			o->daemonize = true;
			o->use_syslog = true;
			break;
		case OPT_SYSLOG:
			o->use_syslog = true;
			break;
		case 'v':
			rc = add_override(o, "verbose", "yes");
			break;
		case 'o':
			rc = add_set(o, optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("greyhold %s\n", PACKAGE_VERSION);
			exit(0);
		case 'i':
			rc = add_to_list(&l->inet, optarg);
			break;
		case 'u':
			rc = add_to_list(&l->unix_sockets, optarg);
			break;
		case OPT_DELAY:
			rc = add_override(o, "delay", optarg);
			break;
		case OPT_MAX_AGE:
			rc = add_days(o, "max_age", optarg);
			break;
		case OPT_RETRY_WINDOW:
			rc = add_days(o, "retry_window", optarg);
			break;
		case OPT_GREYLIST_ACTION:
			rc = add_override(o, "greylist_action", optarg);
			break;
		case OPT_GREYLIST_TEXT:
			rc = add_override(o, "greylist_text", optarg);
			break;
		case OPT_LOOKUP_BY_SUBNET:
			rc = add_override(o, "lookup_by_host", "no");
			break;
		case OPT_LOOKUP_BY_HOST:
			rc = add_override(o, "lookup_by_host", "yes");
			break;
		case OPT_IPV4CIDR:
			rc = add_override(o, "ipv4_cidr", optarg);
			break;
		case OPT_IPV6CIDR:
			rc = add_override(o, "ipv6_cidr", optarg);
			break;
		case OPT_DBDIR:
			rc = add_override(o, "dbdir", optarg);
			break;
		case OPT_USER:
			rc = add_override(o, "user", optarg);
			break;
		case OPT_PIDFILE:
			rc = add_override(o, "pidfile", optarg);
			break;
		case OPT_AWL:
			rc = add_override(o, "auto_whitelist_clients",
					  optarg != NULL ? optarg : "5");
			break;
		case OPT_WL_CLIENTS:
			rc = add_to_list(&l->wl_clients, optarg);
			break;
		case OPT_WL_RECIPIENTS:
			rc = add_to_list(&l->wl_recipients, optarg);
			break;
		case OPT_XHEADER:
			rc = add_override(o, "x_greylist_header", "yes");
			if (rc == 0 && optarg != NULL)
				rc = add_override(o, "x_greylist_header_text", optarg);
			break;
		case OPT_SOCKETMODE:
			rc = add_override(o, "unix_mode", optarg);
			break;
		case OPT_HOSTNAME:
			rc = add_override(o, "hostname", optarg);
			break;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (rc == 0 && optind < argc) {
		fprintf(stderr, "greyhold: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (rc == 0 && l->inet != NULL)
		rc = add_override(o, "inet", l->inet);
	if (rc == 0 && l->unix_sockets != NULL)
		rc = add_override(o, "unix", l->unix_sockets);
	if (rc == 0 && l->wl_clients != NULL)
		rc = add_override(o, "whitelist_clients", l->wl_clients);
	if (rc == 0 && l->wl_recipients != NULL)
		rc = add_override(o, "whitelist_recipients", l->wl_recipients);
	return rc;
}

/* Create dbdir if missing; when root, hand it to the user we become. */
static int
prepare_dbdir(const struct config *cfg, const struct passwd *pw)
{
	if (mkdir(cfg->dbdir, 0700) < 0 && errno != EEXIST) {
		log_errno(LOG_LEVEL_ERR, errno, "cannot create dbdir %s", cfg->dbdir);
		return -1;
	}
	if (pw != NULL && chown(cfg->dbdir, pw->pw_uid, pw->pw_gid) < 0) {
		log_errno(LOG_LEVEL_ERR, errno, "cannot give dbdir %s to user %s",
			  cfg->dbdir, pw->pw_name);
		return -1;
	}
	return 0;
}

static int
drop_privileges(const struct passwd *pw)
{
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		log_errno(LOG_LEVEL_ERR, errno, "cannot switch to user %s",
			  pw->pw_name);
		return -1;
	}
	if (setuid(0) == 0) {
		log_msg(LOG_LEVEL_ERR, "privileges could be regained after "
			"dropping them; refusing to run");
		return -1;
	}
	return 0;
}

static int
daemonize(struct server *srv)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0) {
		log_errno(LOG_LEVEL_ERR, errno, "fork failed");
		return -1;
	}
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	if (server_after_fork(srv) < 0) {
		log_msg(LOG_LEVEL_ERR, "cannot reinitialise the event loop after fork");
		return -1;
	}
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return chdir("/");
}

/*
 * The pid file is written as root, maybe into a directory others may
 * write to: never follow a symlink, never write into anything but a
 * regular file with one link (a planted hard link would have root
 * truncate the file it names), and truncate only after those checks.
 */
static int
pidfile_open(const char *path)
{
	struct stat st;
	int fd;

	/* O_NONBLOCK: a planted FIFO must fail, not block the start. */
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
		  0644);
	if (fd < 0) {
		if (errno == ELOOP)
			log_msg(LOG_LEVEL_ERR, "pidfile %s is a symbolic link; "
				"refusing to follow it", path);
		else
			log_errno(LOG_LEVEL_ERR, errno, "cannot write pidfile %s",
				  path);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		log_msg(LOG_LEVEL_ERR, "pidfile %s is not a regular file with a "
			"single link; refusing to write to it", path);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Whether pw may remove files from the directory holding path, judged by
 * the directory's mode (after the drop only pw's primary group counts).
 */
static bool
pidfile_dir_writable(const char *path, const struct passwd *pw)
{
	const char *slash = strrchr(path, '/');
	char dir[1024];
	struct stat st;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (stat(dir, &st) < 0)
		return false;
	if (st.st_uid == pw->pw_uid)
		return (st.st_mode & S_IWUSR) != 0;
	if (st.st_gid == pw->pw_gid)
		return (st.st_mode & S_IWGRP) != 0;
	return (st.st_mode & S_IWOTH) != 0;
}

/*
 * Write our pid.  With a user to become (pw), the file is handed to that
 * user only when it may remove it anyway (its directory is writable by
 * it, as /run/greyhold from the unit's RuntimeDirectory=), so that the
 * unprivileged daemon can remove it at exit, also in a sticky directory.
 * In a directory only root may write to, the file stays root's (the user
 * must not be able to put another pid in a file root's scripts signal)
 * and cannot be removed at exit: say so now.
 */
static int
write_pidfile(const char *path, const struct passwd *pw)
{
	char buf[32];
	bool removable;
	int fd, n;

	if (path[0] == '\0')
		return 0;
	fd = pidfile_open(path);
	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || write(fd, buf, (size_t)n) != n ||
	    fchmod(fd, 0644) < 0) {
		log_errno(LOG_LEVEL_ERR, errno, "cannot write pidfile %s", path);
		close(fd);
		return -1;
	}
	removable = pw == NULL || pidfile_dir_writable(path, pw);
	if (pw != NULL && removable && fchown(fd, pw->pw_uid, pw->pw_gid) < 0) {
		log_errno(LOG_LEVEL_ERR, errno, "cannot give pidfile %s to user %s",
			  path, pw->pw_name);
		close(fd);
		return -1;
	}
	if (!removable)
		log_msg(LOG_LEVEL_WARN, "pidfile %s: user %s cannot remove it from "
			"its directory at exit; put it in a directory that %s owns, "
			"such as /run/greyhold", path, pw->pw_name, pw->pw_name);
	close(fd);
	return 0;
}

static void
remove_pidfile(const char *path)
{
	if (path[0] == '\0')
		return;
	if (unlink(path) < 0 && errno != ENOENT)
		log_errno(LOG_LEVEL_WARN, errno, "cannot remove pidfile %s", path);
}

/*
 * Everything between a loaded configuration and serving: the run user,
 * the database directory, the listeners (server_create(), which takes
 * cfg and wl), the fork, the pidfile and the privilege drop.  0 when the
 * server is ready to run.  On failure -1, and *srv is the server if one
 * was made: the caller frees it either way.  *pid_written says whether
 * the pidfile is ours to remove at exit.
 */
static int
start(struct server **srv, struct config *cfg, whitelist_t *wl,
      const struct server_reload *reload, const struct options *o,
      char *pidfile, size_t pidsz, bool *pid_written)
{
	struct passwd *pw = NULL;

	*srv = NULL;
	*pid_written = false;
	if (cfg->user[0] != '\0' && getuid() == 0) {
		pw = getpwnam(cfg->user);
		if (pw == NULL) {
			log_msg(LOG_LEVEL_ERR, "user '%s' does not exist (set 'user' in "
				"greyhold.conf or create it)", cfg->user);
			goto fail_unowned;
		}
	} else if (getuid() == 0) {
		log_msg(LOG_LEVEL_WARN, "running as root: set 'user' so that "
			"greyhold drops privileges after binding");
	}
	if (prepare_dbdir(cfg, pw) < 0)
		goto fail_unowned;
	snprintf(pidfile, pidsz, "%s", cfg->pidfile);
	if (server_create(srv, cfg, wl, reload) < 0)
		return -1;
	/* The pid is final after the fork; root may write under /run. */
	if (o->daemonize && daemonize(*srv) < 0)
		return -1;
	if (write_pidfile(pidfile, pw) < 0)
		return -1;
	*pid_written = true;
	if (pw != NULL && drop_privileges(pw) < 0)
		return -1;
	return 0;

fail_unowned:
	whitelist_free(wl);
	config_free(cfg);
	return -1;
}

int
main(int argc, char **argv)
{
	struct options o = {.config_path = CONFIG_DEFAULT_PATH};
	struct server_reload reload;
	struct server *srv = NULL;
	struct config *cfg;
	whitelist_t *wl;
	struct joined lists = {NULL, NULL, NULL, NULL};
	char pidfile[1024];
	bool pid_written = false;
	char err[1024];
	int rc;

	if (parse_args(&o, argc, argv, &lists) < 0)
		return 2;
	/* The default file may be absent; a file named with -c may not. */
	rc = config_load(&cfg, o.config_path, !o.config_given, o.ov, o.nov, err,
			 sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "greyhold: %s\n", err);
		return 1;
	}
	/* A client that hangs up must cost an EPIPE, not the process. */
	signal(SIGPIPE, SIG_IGN);
	log_open("greyhold", o.use_syslog && !o.check_only);
	rc = whitelist_load_config(&wl, cfg, err, sizeof(err));
	if (rc < 0) {
		log_msg(LOG_LEVEL_ERR, "%s", err);
		config_free(cfg);
		return 1;
	}
	if (o.check_only) {
		printf("greyhold: configuration OK (%zu whitelist entries)\n",
		       whitelist_size(wl));
		whitelist_free(wl);
		config_free(cfg);
		return 0;
	}
	log_set_verbose(cfg->verbose);
	reload.config_path = o.config_path;
	reload.missing_ok = !o.config_given;
	reload.overrides = o.ov;
	reload.noverrides = o.nov;
	rc = start(&srv, cfg, wl, &reload, &o, pidfile, sizeof(pidfile),
		   &pid_written);
	if (rc == 0)
		rc = server_run(srv);
	server_free(srv);
	if (pid_written)
		remove_pidfile(pidfile);
	free(lists.inet);
	free(lists.unix_sockets);
	free(lists.wl_clients);
	free(lists.wl_recipients);
	log_close();
	return rc < 0 ? 1 : 0;
}
