/*
 * postgrey_files - postgrey's Berkeley DB files turned into db_dump text,
 * safely, for import-postgrey.
 *
 * postgrey writes through a transactional environment: what it did last
 * may be only in its log files (always, if it was killed).  So the files
 * are copied to a private directory (mkdtemp under TMPDIR or /tmp),
 * recovered there with db_recover, and dumped to text files there with
 * db_dump -p, all before this process gives up root; the directory is
 * removed and the open text files read afterwards.  postgrey's own files
 * are only read.  The Berkeley DB tools are found as Debian names them,
 * "db_NAME" or "db5.3_NAME".
 *
 * Errors are said on stderr; functions return -1.  The caller owns the
 * streams in struct pg_source and closes them with pg_close().
 */
#include "postgrey_files.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Run a Berkeley DB tool (Debian names it both "db_NAME" and
 * "db5.3_NAME") and wait for it.  Returns 0, or -1 after saying why.
 */
static int
run_db_tool(const char *name, const char *const args[])
{
	char cmd[32], alt[32];
	char *argv[8];
	pid_t pid;
	int status = 0, i;

	snprintf(cmd, sizeof(cmd), "db_%s", name);
	snprintf(alt, sizeof(alt), "db5.3_%s", name);
	argv[0] = cmd;
	for (i = 0; i < 6 && args[i] != NULL; i++)
		argv[i + 1] = (char *)args[i];	/* exec's classic signature */
	argv[i + 1] = NULL;
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "greyholdctl: cannot run %s: %s\n", cmd,
			strerror(errno));
		return -1;
	}
	if (pid == 0) {
		execvp(cmd, argv);
		argv[0] = alt;
		execvp(alt, argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		fprintf(stderr, "greyholdctl: %s not found: install Berkeley DB's "
			"utilities (Debian: apt-get install db-util)\n", cmd);
	else
		fprintf(stderr, "greyholdctl: %s failed\n", cmd);
	return -1;
}

/* Copy a file into dir; 0, -ENOENT when there is none, or -1 (said why). */
static int
copy_into(const char *dir, const char *from_dir, const char *name)
{
	char from[PATH_MAX], to[PATH_MAX], buf[65536];
	ssize_t n = 0;
	int in, out, rc = 0;

	snprintf(from, sizeof(from), "%s/%s", from_dir, name);
	snprintf(to, sizeof(to), "%s/%s", dir, name);
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0 && errno == ENOENT)
		return -ENOENT;
	out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
				 0600);
	while (out >= 0 && (n = read(in, buf, sizeof(buf))) > 0 && rc == 0)
		rc = write(out, buf, (size_t)n) == n ? 0 : -1;
	if (in < 0 || out < 0 || n < 0 || rc < 0) {
		fprintf(stderr, "greyholdctl: cannot copy %s: %s\n", from,
			strerror(errno));
		rc = -1;
	}
	if (out >= 0 && close(out) < 0)
		rc = -1;
	if (in >= 0)
		close(in);
	return rc;
}

static bool
is_log_file(const char *name)
{
	if (strncmp(name, "log.", 4) != 0 || name[4] == '\0')
		return false;
	for (name += 4; *name != '\0'; name++) {
		if (!isdigit((unsigned char)*name))
			return false;
	}
	return true;
}

/* Copy postgrey's log files; returns how many, or -1. */
static int
copy_logs(const char *tmp, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (d == NULL) {
		fprintf(stderr, "greyholdctl: cannot read %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	while (n >= 0 && (e = readdir(d)) != NULL) {
		if (is_log_file(e->d_name))
			n = copy_into(tmp, dir, e->d_name) == 0 ? n + 1 : -1;
	}
	closedir(d);
	return n;
}

/* Remove the private directory and everything in it. */
static void
remove_tmp(const char *tmp)
{
	char path[PATH_MAX];
	DIR *d = opendir(tmp);
	struct dirent *e;

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", tmp,
				     e->d_name) < sizeof(path))
			unlink(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(tmp);
}

/* db_dump one copied database into a text file there, and open it. */
static FILE *
dump_copy(const char *tmp, const char *db, const char *txt)
{
	char dbpath[PATH_MAX], txtpath[PATH_MAX];
	const char *const args[] = {"-p", "-f", txtpath, dbpath, NULL};
	FILE *f;

	snprintf(dbpath, sizeof(dbpath), "%s/%s", tmp, db);
	snprintf(txtpath, sizeof(txtpath), "%s/%s", tmp, txt);
	if (run_db_tool("dump", args) < 0)
		return NULL;
	f = fopen(txtpath, "re");
	if (f == NULL)
		fprintf(stderr, "greyholdctl: cannot read %s: %s\n", txtpath,
			strerror(errno));
	return f;
}

/* Copy, recover and dump postgrey's databases in the private dir tmp. */
static int
pg_dump_in(const char *tmp, const char *dir, struct pg_source *src)
{
	const char *const recover[] = {"-h", tmp, NULL};
	int rc = copy_into(tmp, dir, "postgrey.db");
	int clients, logs;

	if (rc == -ENOENT)
		fprintf(stderr, "greyholdctl: no postgrey.db in %s\n", dir);
	if (rc != 0)
		return -1;
	clients = copy_into(tmp, dir, "postgrey_clients.db");
	if (clients == -1)
		return -1;
	logs = copy_logs(tmp, dir);
	if (logs < 0 || (logs > 0 && run_db_tool("recover", recover) < 0))
		return -1;
	src->triplets = dump_copy(tmp, "postgrey.db", "triplets.txt");
	if (src->triplets == NULL)
		return -1;
	if (clients == 0) {
		src->clients = dump_copy(tmp, "postgrey_clients.db",
					 "clients.txt");
		if (src->clients == NULL)
			return -1;
	}
	return 0;
}

int
pg_prepare(const char *dir, struct pg_source *src)
{
	const char *base = getenv("TMPDIR");
	char tmp[PATH_MAX];
	int rc;

	if (base == NULL || base[0] != '/')
		base = "/tmp";
	snprintf(tmp, sizeof(tmp), "%s/greyholdctl-postgrey.XXXXXX", base);
	if (mkdtemp(tmp) == NULL) {
		fprintf(stderr, "greyholdctl: cannot create a directory in %s: "
			"%s\n", base, strerror(errno));
		return -1;
	}
	rc = pg_dump_in(tmp, dir, src);
	remove_tmp(tmp);
	return rc;
}

void
pg_close(struct pg_source *src)
{
	if (src->triplets != NULL)
		fclose(src->triplets);
	if (src->clients != NULL)
		fclose(src->clients);
}
