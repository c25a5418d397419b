/*
 * db_batch - decide a batch of jobs in one write transaction (store thread).
 *
 * For each job, in order: read its records, decide_request() (decide.h), write
 * what decide_request() says.  Jobs for one triplet in a batch see each other's
 * writes.  On MDB_MAP_FULL the transaction is aborted, the map grown and
 * the whole batch replayed, so a verdict is only ever handed back for
 * what is committed.
 */
#include "db_batch.h"

#include <stdbool.h>

#include "db_int.h"
#include "decide.h"

/* The records of one job's identities, read in the batch's transaction. */
struct job_records {
	struct record client[DECIDE_MAX_IDS], triplet[DECIDE_MAX_IDS];
	bool have_client[DECIDE_MAX_IDS], have_triplet[DECIDE_MAX_IDS];
};

static int
read_ident(db_t *db, MDB_txn *txn, const struct triplet_key *k, bool awl,
	   struct job_records *r, size_t i, bool *wrote)
{
	int rc = 0;

	r->have_client[i] = false;
	r->have_triplet[i] = false;
	if (awl)
		rc = db_read_record(txn, db->clients, k->client, k->client_len,
				    &r->client[i], &r->have_client[i], wrote,
				    "client");
	if (rc == 0)
		rc = db_read_record(txn, db->triplets, k->key, k->key_len,
				    &r->triplet[i], &r->have_triplet[i], wrote,
				    "triplet");
	return rc;
}

static int
write_ident(db_t *db, MDB_txn *txn, const struct triplet_key *k,
	    const struct decide_id_out *o)
{
	int rc = 0;

	if (o->put_triplet)
		rc = db_write_record(txn, db->triplets, k->key, k->key_len,
				     &o->triplet);
	if (rc == 0 && o->put_client)
		rc = db_write_record(txn, db->clients, k->client, k->client_len,
				     &o->client);
	return rc;
}

static int
decide_one(db_t *db, MDB_txn *txn, struct store_job *job,
	   const struct engine_params *cfg, bool *wrote)
{
	struct engine_params p = job_params(job, cfg);
	struct job_records r;
	struct decide_in in;
	struct decide_out out;
	int rc = 0;

	in.n = job_ids(job);
	for (size_t i = 0; i < in.n && rc == 0; i++) {
		in.id[i].awl = job_id_awl(job, i, &p);
		rc = read_ident(db, txn, job_id_key(job, i), in.id[i].awl, &r, i,
				wrote);
		in.id[i].client = r.have_client[i] ? &r.client[i] : NULL;
		in.id[i].triplet = r.have_triplet[i] ? &r.triplet[i] : NULL;
	}
	if (rc != 0)
		return rc;
	if (decide_request(&in, job->now, &p, &out)) {
		*wrote = true;
		for (size_t i = 0; i < in.n && rc == 0; i++)
			rc = write_ident(db, txn, job_id_key(job, i), &out.id[i]);
	}
	job->verdict = out.verdict;
	job->matched = out.matched;
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
