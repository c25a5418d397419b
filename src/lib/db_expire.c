/*
 * db_expire - remove stale records in bounded slices (store thread), or
 * in one whole pass for greyholdctl expire.
 *
 * A slice examines at most a budget of records from where the last one
 * stopped, in one write transaction, so expiry never stalls the store;
 * the store thread sizes its slices from the tables' entry counts
 * (db_expire_entries(), sweep.h).
 * Deleting needs free pages too: on MDB_MAP_FULL a slice may grow the map
 * into a small reserve above the cap (db_grow_map_for_deletes()).
 */
#include "db_expire.h"

#include <errno.h>
#include <string.h>

#include "db_admin.h"
#include "db_int.h"

static MDB_dbi
sweep_dbi(db_t *db)
{
	return db->sweep_db == 0 ? db->triplets : db->clients;
}

static bool
is_expired(db_t *db, const MDB_val *v, int64_t now,
	   const struct engine_params *p)
{
	struct record r;

	if (record_decode(&r, v->mv_data, v->mv_size) < 0)
		return true;	/* corrupt: nothing can use it */
	return db->sweep_db == 0 ? engine_triplet_expired(&r, now, p)
				 : engine_client_expired(&r, now, p);
}

static int expire_slice_once(db_t *db, int64_t now,
			     const struct engine_params *p, size_t budget,
			     size_t *removed, bool *wrapped);

int
db_expire_slice(db_t *db, int64_t now, const struct engine_params *p,
		size_t budget, size_t *removed, bool *wrapped)
{
	int saved_db = db->sweep_db;
	size_t saved_len = db->sweep_key_len;
	char saved_key[sizeof(db->sweep_key)];
	int rc;

	memcpy(saved_key, db->sweep_key, saved_len);
	rc = expire_slice_once(db, now, p, budget, removed, wrapped);
	if (rc == -ENOSPC && db_grow_map_for_deletes(db) == 0) {
		/* Same slice again, from the same place, with room to delete. */
		db->sweep_db = saved_db;
		db->sweep_key_len = saved_len;
		memcpy(db->sweep_key, saved_key, saved_len);
		rc = expire_slice_once(db, now, p, budget, removed, wrapped);
	}
	return rc;
}

static int
expire_slice_once(db_t *db, int64_t now, const struct engine_params *p,
		  size_t budget, size_t *removed, bool *wrapped)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t examined = 0;
	int rc;

	*removed = 0;
	*wrapped = false;
	rc = db_txn_begin(db, true, &txn);
	if (rc != 0)
		return db_errno(rc);
	rc = mdb_cursor_open(txn, sweep_dbi(db), &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return db_errno(rc);
	}
	if (db->sweep_key_len > 0) {
		k.mv_size = db->sweep_key_len;
		k.mv_data = db->sweep_key;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	while (rc == 0 && examined < budget) {
		examined++;
		if (is_expired(db, &v, now, p)) {
			rc = mdb_cursor_del(cur, 0);
			if (rc != 0)
				break;
			(*removed)++;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc == 0) {
		/* Budget used up: resume at the next unexamined key. */
		db->sweep_key_len = k.mv_size <= sizeof(db->sweep_key) ? k.mv_size : 0;
		memcpy(db->sweep_key, k.mv_data, db->sweep_key_len);
	} else if (rc == MDB_NOTFOUND) {
		db->sweep_key_len = 0;
		db->sweep_db = (db->sweep_db + 1) % 2;
		*wrapped = db->sweep_db == 0;
		rc = 0;
	}
	mdb_cursor_close(cur);
	if (rc == 0 && *removed > 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (rc != 0)
		*removed = 0;
	return db_errno(rc);
}

int
db_expire_entries(db_t *db, uint64_t *out)
{
	MDB_dbi dbis[2] = {db->triplets, db->clients};
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	*out = 0;
	rc = db_txn_begin(db, false, &txn);
	if (rc != 0)
		return db_errno(rc);
	for (size_t i = 0; rc == 0 && i < 2; i++) {
		rc = mdb_stat(txn, dbis[i], &st);
		if (rc == 0)
			*out += st.ms_entries;
	}
	mdb_txn_abort(txn);
	return db_errno(rc);
}

struct expire_count {
	enum db_table table;
	int64_t now;
	const struct engine_params *p;
	size_t n;
};

static int
count_expired(const char *key, size_t key_len, const struct record *r,
	      void *arg)
{
	struct expire_count *c = arg;
	bool expired;

	(void)key;
	(void)key_len;
	if (r == NULL)
		expired = true;	/* the sweep removes what cannot be decoded */
	else if (c->table == DB_TRIPLETS)
		expired = engine_triplet_expired(r, c->now, c->p);
	else
		expired = engine_client_expired(r, c->now, c->p);
	if (expired)
		c->n++;
	return DB_WALK_KEEP;
}

static int
expire_dry_run(db_t *db, int64_t now, const struct engine_params *p,
	       struct db_expire_counts *out)
{
	struct expire_count t = {DB_TRIPLETS, now, p, 0};
	struct expire_count c = {DB_CLIENTS, now, p, 0};
	int rc = db_walk(db, DB_TRIPLETS, false, count_expired, &t);

	if (rc == 0)
		rc = db_walk(db, DB_CLIENTS, false, count_expired, &c);
	out->triplets = t.n;
	out->clients = c.n;
	return rc;
}

int
db_expire_all(db_t *db, int64_t now, const struct engine_params *p,
	      bool dry_run, struct db_expire_counts *out)
{
	bool wrapped = false;
	size_t removed;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (dry_run)
		return expire_dry_run(db, now, p, out);
	/* A whole pass from the start, whatever earlier slices did. */
	db->sweep_db = 0;
	db->sweep_key_len = 0;
	while (!wrapped && rc == 0) {
		bool clients = db->sweep_db != 0;

		rc = db_expire_slice(db, now, p, DB_CHUNK, &removed, &wrapped);
		if (clients)
			out->clients += removed;
		else
			out->triplets += removed;
	}
	return rc;
}

