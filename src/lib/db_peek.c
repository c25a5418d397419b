/*
 * db_peek - the loop thread's read snapshot and read-only decisions.
 * See db_peek.h for the contract and db_int.h for the map-size rule.
 */
#include "db_peek.h"

#include "db_int.h"
#include "decide.h"

/*
 * Open (or renew) the snapshot.  Holds resize_lock for reading while it
 * is open, so the store thread cannot change the map size under it.
 * Returns an LMDB code; on MDB_MAP_RESIZED the caller declines and the
 * store thread, the map's owner, adopts the new size.
 */
static int
snapshot_begin(db_t *db)
{
	int rc;

	if (db->snapshot_open)
		return 0;
	pthread_rwlock_rdlock(&db->resize_lock);
	if (db->snapshot == NULL)
		rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &db->snapshot);
	else
		rc = mdb_txn_renew(db->snapshot);
	if (rc == 0) {
		db->snapshot_open = true;
		return 0;
	}
	/* A failed renew leaves the handle unusable: start afresh next time. */
	if (db->snapshot != NULL) {
		mdb_txn_abort(db->snapshot);
		db->snapshot = NULL;
	}
	pthread_rwlock_unlock(&db->resize_lock);
	return rc;
}

void
db_snapshot_end(db_t *db)
{
	if (!db->snapshot_open)
		return;
	mdb_txn_reset(db->snapshot);
	db->snapshot_open = false;
	pthread_rwlock_unlock(&db->resize_lock);
}

/* Read a record from the snapshot; corrupt ones count as "cannot decide". */
static int
peek_record(db_t *db, MDB_dbi dbi, const void *key, size_t key_len,
	    struct record *out, bool *found)
{
	MDB_val k = {key_len, (void *)key};
	MDB_val v;
	int rc = mdb_get(db->snapshot, dbi, &k, &v);

	*found = false;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (record_decode(out, v.mv_data, v.mv_size) < 0)
		return MDB_CORRUPTED;
	*found = true;
	return 0;
}

bool
db_peek(db_t *db, struct store_job *job, const struct engine_params *cfg)
{
	struct engine_params p = job_params(job, cfg);
	struct record crec[DECIDE_MAX_IDS], rec[DECIDE_MAX_IDS];
	bool have_client, have_rec;
	struct decide_in in;
	struct decide_out out;

	if (snapshot_begin(db) != 0)
		return false;
	in.n = job_ids(job);
	for (size_t i = 0; i < in.n; i++) {
		const struct triplet_key *k = job_id_key(job, i);

		have_client = false;
		in.id[i].awl = job_id_awl(job, i, &p);
		if (in.id[i].awl &&
		    peek_record(db, db->clients, k->client, k->client_len,
				&crec[i], &have_client) != 0)
			return false;
		if (peek_record(db, db->triplets, k->key, k->key_len, &rec[i],
				&have_rec) != 0)
			return false;
		in.id[i].client = have_client ? &crec[i] : NULL;
		in.id[i].triplet = have_rec ? &rec[i] : NULL;
	}
	if (decide_request(&in, job->now, &p, &out)) {
		/* Something to write: the store thread's job.  What the
		   committed records say is left as a hint (db_peek.h). */
		job->verdict = out.verdict;
		return false;
	}
	job->verdict = out.verdict;
	job->matched = out.matched;
	job->err = 0;
	return true;
}
