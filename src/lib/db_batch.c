/*
 * db_batch - decide a batch of jobs in one write transaction (store thread).
 *
 * For each job, in order: read its records, decide() (decide.h), write
 * what decide() says.  Jobs for one triplet in a batch see each other's
 * writes.  On MDB_MAP_FULL the transaction is aborted, the map grown and
 * the whole batch replayed, so a verdict is only ever handed back for
 * what is committed.
 */
#include "db_batch.h"

#include <stdbool.h>

#include "db_int.h"
#include "decide.h"

/* The records of one job, read in the batch's transaction. */
struct job_records {
	struct record client, triplet;
	bool have_client, have_triplet;
};

static int
read_job(db_t *db, MDB_txn *txn, const struct store_job *job, bool awl,
	 struct job_records *r, bool *wrote)
{
	int rc = 0;

	r->have_client = false;
	if (awl)
		rc = db_read_record(txn, db->clients, job->key.client,
				    job->key.client_len, &r->client,
				    &r->have_client, wrote, "client");
	if (rc == 0)
		rc = db_read_record(txn, db->triplets, job->key.key,
				    job->key.key_len, &r->triplet,
				    &r->have_triplet, wrote, "triplet");
	return rc;
}

static int
write_job(db_t *db, MDB_txn *txn, const struct store_job *job,
	  const struct decide_id_out *o)
{
	int rc = 0;

	if (o->put_triplet)
		rc = db_write_record(txn, db->triplets, job->key.key,
				     job->key.key_len, &o->triplet);
	if (rc == 0 && o->put_client)
		rc = db_write_record(txn, db->clients, job->key.client,
				     job->key.client_len, &o->client);
	return rc;
}

static int
decide_one(db_t *db, MDB_txn *txn, struct store_job *job,
	   const struct engine_params *p, bool *wrote)
{
	struct job_records r;
	struct decide_in in;
	struct decide_out out;
	int rc;

	in.n = 1;
	in.id[0].awl = p->awl_passes > 0 && job->key.client_is_net;
	rc = read_job(db, txn, job, in.id[0].awl, &r, wrote);
	if (rc != 0)
		return rc;
	in.id[0].client = r.have_client ? &r.client : NULL;
	in.id[0].triplet = r.have_triplet ? &r.triplet : NULL;
	if (decide(&in, job->now, p, &out)) {
		*wrote = true;
		rc = write_job(db, txn, job, &out.id[0]);
	}
	job->verdict = out.verdict;
	return rc;
}

int
db_decide_batch(db_t *db, struct store_job **jobs, size_t n,
		const struct engine_params *p, bool *committed,
		uint64_t *commit_usec)
{
	MDB_txn *txn;
	struct timespec start;
	bool wrote;
	size_t i;
	int rc;

	*committed = false;
	*commit_usec = 0;
	for (;;) {
		wrote = false;
		rc = db_txn_begin(db, true, &txn);
		if (rc != 0)
			break;
		for (i = 0; i < n && rc == 0; i++)
			rc = decide_one(db, txn, jobs[i], p, &wrote);
		if (rc != 0 || !wrote) {
			mdb_txn_abort(txn);
		} else {
			clock_gettime(CLOCK_MONOTONIC, &start);
			rc = mdb_txn_commit(txn);
			*commit_usec = db_usec_since(&start);
			*committed = rc == 0;
		}
		if (rc == MDB_MAP_FULL && db_grow_map(db) == 0)
			continue;	/* replay the whole batch */
		break;
	}
	rc = db_errno(rc);
	for (i = 0; i < n; i++)
		jobs[i]->err = rc;
	return rc;
}
