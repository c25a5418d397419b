/*
 * backend_lmdb - the LMDB store (store.h) wired to the event loop.
 *
 * The store thread wakes the loop with uv_async_send(); the async callback
 * collects decided jobs and any rebuilt live whitelist.  Closing stops the
 * store thread (it commits what it holds) before the async handle closes,
 * so the thread never signals a closed handle.
 */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db_admin.h"

struct backend_lmdb {
	struct backend base;
	store_t *store;
	uv_async_t async;
};

static void
on_job(struct store_job *job, void *arg)
{
	struct backend_lmdb *b = arg;

	b->base.ev.job_done(job, b->base.ev.arg);
}

static void
on_async(uv_async_t *a)
{
	struct backend_lmdb *b = a->data;
	whitelist_t *wl;

	if (b->store == NULL)
		return;
	store_collect(b->store, on_job, b);
	wl = store_take_live_whitelist(b->store);
	if (wl != NULL)
		b->base.ev.live_whitelist(wl, b->base.ev.arg);
}

static void
wakeup(void *arg)
{
	uv_async_send(arg);
}

static void
lmdb_submit(struct backend *base, struct store_job *job)
{
	store_submit(((struct backend_lmdb *)base)->store, job);
}

static bool
lmdb_try_decide(struct backend *base, struct store_job *job)
{
	return store_try_decide(((struct backend_lmdb *)base)->store, job);
}

static void
lmdb_flush(struct backend *base)
{
	store_flush(((struct backend_lmdb *)base)->store);
}

static void
lmdb_set_params(struct backend *base, const struct engine_params *p)
{
	store_set_params(((struct backend_lmdb *)base)->store, p);
}

static void
lmdb_get_stats(struct backend *base, struct store_stats *out)
{
	store_get_stats(((struct backend_lmdb *)base)->store, out);
}

static void
on_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
lmdb_close(struct backend *base)
{
	struct backend_lmdb *b = (struct backend_lmdb *)base;

	store_close(b->store);
	b->store = NULL;
	uv_close((uv_handle_t *)&b->async, on_closed);
}

static const struct backend_ops lmdb_ops = {
	.name = "lmdb",
	.try_decide = lmdb_try_decide,
	.submit = lmdb_submit,
	.flush = lmdb_flush,
	.set_params = lmdb_set_params,
	.get_stats = lmdb_get_stats,
	.close = lmdb_close,
};

/*
 * LMDB keeps no checksums: in a data.mdb whose pages were overwritten, the
 * first reads may fault (SIGBUS past the end of the file, SIGSEGV) rather
 * than fail.  Before any thread starts, a child opens the environment
 * read-only and reads all of it (db_read_all()); if that fails, its error
 * is ours, and if the child does not come back at all, the file is
 * damaged: either way greyhold refuses to start with a message saying
 * so, instead of dying on the first request or write.  The child's
 * stderr goes nowhere: a checker's report there is about the damage.
 * A directory without a data.mdb (a first start) has nothing to probe.
 */
static int
probe_in_child(const struct config *cfg, char *err, size_t errsz)
{
	struct db_options o = {cfg->dbdir, cfg->db_max_size, false, true};
	char path[1024], why[1536];
	struct stat st;
	int status, fd, pipefd[2];
	ssize_t n;
	pid_t pid;

	if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", cfg->dbdir) >=
	    sizeof(path) || stat(path, &st) < 0 || st.st_size == 0)
		return 0;
	if (pipe(pipefd) < 0)
		return 0;	/* cannot probe: the real open goes on */
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return 0;
	}
	if (pid == 0) {
		db_t *db;
		int rc;

		close(pipefd[0]);
		fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		rc = db_open(&db, &o, why, sizeof(why));
		if (rc == 0) {
			rc = db_read_all(db);
			if (rc < 0)
				snprintf(why, sizeof(why), "cannot read %s: %s "
					 "(a damaged data.mdb: restore it from a "
					 "backup, or move it away to start with an "
					 "empty database)", path, strerror(-rc));
			db_close(db);
		}
		if (rc < 0 && write(pipefd[1], why, strlen(why)) < 0)
			_exit(3);
		_exit(rc < 0 ? 2 : 0);
	}
	close(pipefd[1]);
	n = read(pipefd[0], why, sizeof(why) - 1);
	why[n > 0 ? n : 0] = '\0';
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2 && why[0] != '\0') {
		snprintf(err, errsz, "%s", why);
		return -EBADMSG;
	}
	snprintf(err, errsz, "%s is damaged: reading it %s %d instead of "
		 "failing; restore it from a backup, or move it away to start "
		 "with an empty database", path,
		 WIFSIGNALED(status) ? "faulted with signal" : "ended a probe with "
		 "status", WIFSIGNALED(status) ? WTERMSIG(status)
					       : WEXITSTATUS(status));
	return -EBADMSG;
}

int
backend_lmdb_open(struct backend **out, uv_loop_t *loop,
		  const struct config *cfg, const struct engine_params *p,
		  const struct backend_events *ev, char *err, size_t errsz)
{
	struct backend_lmdb *b = calloc(1, sizeof(*b));
	struct store_options so = {
		.dbdir = cfg->dbdir,
		.max_size = cfg->db_max_size,
		.relaxed = cfg->durability == DURABILITY_RELAXED,
		.params = *p,
		.wakeup = wakeup,
	};
	whitelist_t *wl;
	int rc;

	*out = NULL;
	if (b == NULL)
		return -ENOMEM;
	rc = probe_in_child(cfg, err, errsz);
	if (rc < 0) {
		free(b);
		return rc;
	}
	b->base.ops = &lmdb_ops;
	b->base.ev = *ev;
	uv_async_init(loop, &b->async, on_async);
	b->async.data = b;
	so.wakeup_arg = &b->async;
	rc = store_open(&b->store, &so, err, errsz);
	if (rc < 0) {
		uv_close((uv_handle_t *)&b->async, on_closed);
		return rc;
	}
	/* The first live whitelist is ready now: apply it before serving. */
	wl = store_take_live_whitelist(b->store);
	if (wl != NULL)
		ev->live_whitelist(wl, ev->arg);
	*out = &b->base;
	return 0;
}
