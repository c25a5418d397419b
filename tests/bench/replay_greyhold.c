/*
 * replay_greyhold - the replay's decider for greyhold's decision as it
 * stands: the static whitelists (when files are given), then the triplet
 * of (client network, normalised sender, recipient) decided by the LMDB
 * store, one job per request with job->now set to the simulated time.
 *
 * The configuration is greyhold's defaults (config_load() with no file),
 * so the replay follows the daemon when a default changes; only the
 * delay can be overridden.  The LMDB environment lives in a fresh
 * temporary directory, opened relaxed (no fsync: durability is not what
 * is measured) and removed at close.
 */
#include "replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "db_batch.h"
#include "store.h"
#include "triplet.h"
#include "whitelist.h"

struct greyhold_decider {
	db_t *db;
	whitelist_t *wl;	/* NULL: no static whitelist */
	struct engine_params params;
	struct triplet_opts topts;
	char dir[512];
};

bool
replay_greyhold_listed(void *ctx, const struct replay_request *rq)
{
	struct greyhold_decider *g = ctx;

	return g->wl != NULL &&
	       (whitelist_match_client(g->wl, rq->client_address,
				       strlen(rq->client_address),
				       rq->client_name, strlen(rq->client_name)) ||
		whitelist_match_recipient(g->wl, rq->recipient,
					  strlen(rq->recipient)));
}

int
replay_greyhold_batch(void *ctx, struct store_job **jobs, size_t n)
{
	struct greyhold_decider *g = ctx;
	bool committed;
	uint64_t usec;

	return db_decide_batch(g->db, jobs, n, &g->params, &committed, &usec);
}

const struct triplet_opts *
replay_greyhold_topts(void *ctx)
{
	struct greyhold_decider *g = ctx;

	return &g->topts;
}

static int
gh_decide(void *ctx, const struct replay_request *rq, bool *pass)
{
	struct greyhold_decider *g = ctx;
	struct store_job job, *jp = &job;
	int rc;

	if (replay_greyhold_listed(g, rq)) {
		*pass = true;
		return 0;
	}
	memset(&job, 0, sizeof(job));
	triplet_build(&job.key, rq->client_address, strlen(rq->client_address),
		      rq->sender, strlen(rq->sender), rq->recipient,
		      strlen(rq->recipient), &g->topts);
	job.now = rq->time;
	rc = replay_greyhold_batch(g, &jp, 1);
	if (rc != 0)
		return rc;
	*pass = job.verdict.action == ENGINE_PASS;
	return 0;
}

static void
gh_close(void *ctx)
{
	struct greyhold_decider *g = ctx;
	char path[600];

	if (g == NULL)
		return;
	if (g->db != NULL)
		db_close(g->db);
	whitelist_free(g->wl);
	if (g->dir[0] != '\0') {
		snprintf(path, sizeof(path), "%s/data.mdb", g->dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/lock.mdb", g->dir);
		unlink(path);
		rmdir(g->dir);
	}
	free(g);
}

static int
load_whitelists(struct greyhold_decider *g, const struct replay_greyhold_opts *o,
		char *err, size_t errsz)
{
	int rc;

	if (o->whitelist_clients == NULL && o->whitelist_recipients == NULL)
		return 0;
	rc = whitelist_create(&g->wl);
	if (rc == 0 && o->whitelist_clients != NULL)
		rc = whitelist_load_file(g->wl, WHITELIST_CLIENTS,
					 o->whitelist_clients, err, errsz);
	if (rc == 0 && o->whitelist_recipients != NULL)
		rc = whitelist_load_file(g->wl, WHITELIST_RECIPIENTS,
					 o->whitelist_recipients, err, errsz);
	if (rc == 0)
		rc = whitelist_finish(g->wl);
	return rc;
}

static int
defaults(struct greyhold_decider *g, int64_t delay, char *err, size_t errsz)
{
	struct config *cfg;
	int rc = config_load(&cfg, NULL, false, NULL, 0, err, errsz);

	if (rc != 0)
		return rc;
	g->params.delay = delay > 0 ? delay : cfg->delay;
	g->params.retry_window = cfg->retry_window;
	g->params.max_age = cfg->max_age;
	g->params.awl_passes = cfg->auto_whitelist_clients;
	g->topts.by_host = cfg->lookup_by_host;
	g->topts.ipv4_prefix = cfg->ipv4_cidr;
	g->topts.ipv6_prefix = cfg->ipv6_cidr;
	config_free(cfg);
	return 0;
}

int
replay_greyhold_open(struct replay_decider *d, const char *label,
		     const struct replay_greyhold_opts *o, char *err,
		     size_t errsz)
{
	struct greyhold_decider *g = calloc(1, sizeof(*g));
	struct db_options dbo = {0};
	int rc;

	if (g == NULL)
		return -ENOMEM;
	rc = defaults(g, o->delay, err, errsz);
	if (rc == 0)
		rc = load_whitelists(g, o, err, errsz);
	if (rc == 0) {
		snprintf(g->dir, sizeof(g->dir), "%s/greyhold-replay.XXXXXX",
			 o->tmpdir != NULL ? o->tmpdir : "/tmp");
		if (mkdtemp(g->dir) == NULL) {
			rc = -errno;
			snprintf(err, errsz, "mkdtemp %s: %s", g->dir,
				 strerror(errno));
			g->dir[0] = '\0';
		}
	}
	if (rc == 0) {
		dbo.dir = g->dir;
		dbo.max_size = 1ULL << 30;
		dbo.relaxed = true;
		rc = db_open(&g->db, &dbo, err, errsz);
	}
	if (rc != 0) {
		gh_close(g);
		return rc;
	}
	d->label = label;
	d->ctx = g;
	d->decide = gh_decide;
	d->close = gh_close;
	return 0;
}
