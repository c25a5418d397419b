/*
 * db_admin - record access for greyholdctl: chunked walks, single record
 * get/delete/update, merges (load, import) and statistics.
 *
 * Every write transaction here is short (at most DB_CHUNK records), so a
 * running daemon's store thread never waits long for LMDB's write lock.
 * Used from one thread; it may change the map size (db_int.h).
 */
#include "db_admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db_int.h"

/* Where a chunked walk resumes: after key (none yet when !started). */
struct walk_pos {
	bool started;
	size_t len;
	char key[512];
};

static void
walk_remember(struct walk_pos *pos, const MDB_val *k)
{
	pos->started = true;
	pos->len = k->mv_size < sizeof(pos->key) ? k->mv_size : sizeof(pos->key);
	memcpy(pos->key, k->mv_data, pos->len);
}

/* Position the cursor on the first key after pos. */
static int
walk_seek(MDB_cursor *cur, const struct walk_pos *pos, MDB_val *k, MDB_val *v)
{
	int rc;

	if (!pos->started)
		return mdb_cursor_get(cur, k, v, MDB_FIRST);
	k->mv_size = pos->len;
	k->mv_data = (void *)pos->key;
	rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
	if (rc == 0 && k->mv_size == pos->len &&
	    memcmp(k->mv_data, pos->key, pos->len) == 0)
		rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
	return rc;
}

struct walk {
	db_t *db;
	MDB_dbi dbi;
	bool writable;
	db_walk_fn fn;
	void *arg;
	struct walk_pos pos;
	bool done;
	int err;		/* a callback's negative errno */
};

/* Hand one record to the callback; returns an LMDB code. */
static int
walk_one(struct walk *w, MDB_cursor *cur, const MDB_val *k, const MDB_val *v,
	 bool *deleted)
{
	struct record r;
	bool ok = record_decode(&r, v->mv_data, v->mv_size) == 0;
	int act = w->fn(k->mv_data, k->mv_size, ok ? &r : NULL, w->arg);

	walk_remember(&w->pos, k);
	if (act < 0) {
		w->err = act;
		w->done = true;
		return 0;
	}
	if (act == DB_WALK_STOP)
		w->done = true;
	if (act != DB_WALK_DELETE)
		return 0;
	if (!w->writable) {
		w->err = -EINVAL;
		w->done = true;
		return 0;
	}
	*deleted = true;
	return mdb_cursor_del(cur, 0);
}

static int
walk_chunk(struct walk *w)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	bool deleted = false;
	size_t n;
	int rc = db_txn_begin(w->db, w->writable, &txn);

	if (rc != 0)
		return rc;
	rc = mdb_cursor_open(txn, w->dbi, &cur);
	if (rc != 0)
		goto out;
	rc = walk_seek(cur, &w->pos, &k, &v);
	for (n = 0; rc == 0 && n < DB_CHUNK && !w->done; n++) {
		rc = walk_one(w, cur, &k, &v, &deleted);
		if (rc == 0 && !w->done)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND) {
		w->done = true;
		rc = 0;
	}
	mdb_cursor_close(cur);
out:
	if (rc == 0 && deleted)
		return mdb_txn_commit(txn);
	mdb_txn_abort(txn);
	return rc;
}

int
db_walk(db_t *db, enum db_table table, bool writable, db_walk_fn fn,
	void *arg)
{
	struct walk *w = calloc(1, sizeof(*w));
	int rc = 0;

	if (w == NULL)
		return -ENOMEM;
	w->db = db;
	w->dbi = db_table_dbi(db, table);
	w->writable = writable;
	w->fn = fn;
	w->arg = arg;
	while (!w->done && rc == 0)
		rc = walk_chunk(w);
	rc = rc != 0 ? db_errno(rc) : w->err;
	free(w);
	return rc;
}

int
db_record_get(db_t *db, enum db_table table, const char *key, size_t key_len,
	      struct record *out)
{
	return db_get_one(db, db_table_dbi(db, table), key, key_len, out);
}

struct del_arg {
	MDB_dbi dbi;
	MDB_val key;
};

static int
record_del_txn(db_t *db, MDB_txn *txn, const void *arg)
{
	const struct del_arg *a = arg;
	MDB_val k = a->key;

	(void)db;
	return mdb_del(txn, a->dbi, &k, NULL);
}

int
db_record_del(db_t *db, enum db_table table, const char *key, size_t key_len)
{
	struct del_arg a = {db_table_dbi(db, table), {key_len, (void *)key}};

	return db_write_txn(db, record_del_txn, &a);
}

struct update_arg {
	MDB_dbi dbi;
	const char *key;
	size_t key_len;
	bool (*fn)(const struct record *cur, struct record *out, void *arg);
	void *arg;
};

static int
record_update_txn(db_t *db, MDB_txn *txn, const void *arg)
{
	const struct update_arg *a = arg;
	struct record cur, next;
	MDB_val k = {a->key_len, (void *)a->key};
	MDB_val v;
	bool have;
	int rc = mdb_get(txn, a->dbi, &k, &v);

	(void)db;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	have = rc == 0 && record_decode(&cur, v.mv_data, v.mv_size) == 0;
	if (!a->fn(have ? &cur : NULL, &next, a->arg))
		return 0;
	return db_write_record(txn, a->dbi, a->key, a->key_len, &next);
}

int
db_record_update(db_t *db, enum db_table table, const char *key,
		 size_t key_len,
		 bool (*fn)(const struct record *cur, struct record *out,
			    void *arg),
		 void *arg)
{
	struct update_arg a = {db_table_dbi(db, table), key, key_len, fn, arg};

	return db_write_txn(db, record_update_txn, &a);
}

struct merge_arg {
	const struct db_item *items;
	size_t n;
	size_t added;
	size_t changed;
};

static void
merge_into(struct record *cur, const struct record *in)
{
	if (in->first_seen < cur->first_seen)
		cur->first_seen = in->first_seen;
	if (in->last_seen > cur->last_seen)
		cur->last_seen = in->last_seen;
	if (in->passes > cur->passes)
		cur->passes = in->passes;
}

/* Merge one item; returns an LMDB code. */
static int
merge_one(db_t *db, MDB_txn *txn, const struct db_item *it,
	  struct merge_arg *a)
{
	MDB_dbi dbi = db_table_dbi(db, it->table);
	MDB_val k = {it->key_len, (void *)it->key};
	MDB_val v;
	struct record cur, next;
	int rc = mdb_get(txn, dbi, &k, &v);

	if (rc == MDB_NOTFOUND ||
	    (rc == 0 && record_decode(&cur, v.mv_data, v.mv_size) < 0)) {
		a->added++;
		return db_write_record(txn, dbi, it->key, it->key_len, &it->rec);
	}
	if (rc != 0)
		return rc;
	next = cur;
	merge_into(&next, &it->rec);
	if (memcmp(&next, &cur, sizeof(cur)) == 0)
		return 0;
	a->changed++;
	return db_write_record(txn, dbi, it->key, it->key_len, &next);
}

static int
merge_txn(db_t *db, MDB_txn *txn, const void *arg)
{
	struct merge_arg *a = (struct merge_arg *)arg;
	size_t i;
	int rc = 0;

	/* A replay after map growth starts the counts again. */
	a->added = 0;
	a->changed = 0;
	for (i = 0; i < a->n && rc == 0; i++)
		rc = merge_one(db, txn, &a->items[i], a);
	return rc;
}

int
db_merge(db_t *db, const struct db_item *items, size_t n, size_t *added,
	 size_t *changed)
{
	struct merge_arg a = {items, n, 0, 0};
	int rc;

	if (n == 0)
		return 0;
	rc = db_write_txn(db, merge_txn, &a);
	if (rc == 0) {
		*added += a.added;
		*changed += a.changed;
	}
	return rc;
}

static int
stat_entries(MDB_txn *txn, MDB_dbi dbi, uint64_t *out)
{
	MDB_stat st;
	int rc = mdb_stat(txn, dbi, &st);

	if (rc == 0)
		*out = st.ms_entries;
	return rc;
}

static void
stat_env(db_t *db, struct db_stats *out)
{
	MDB_envinfo info;
	MDB_stat st;
	const char *dir = NULL;
	char path[4096];
	struct stat fst;

	/* The size the environment records (its writers' map), not ours. */
	db_adopt_map_size(db);
	mdb_env_info(db->env, &info);
	mdb_env_stat(db->env, &st);
	out->page_size = st.ms_psize;
	out->map_size = info.me_mapsize;
	out->map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	out->max_size = db->max_size;
	out->readers = info.me_numreaders;
	out->max_readers = info.me_maxreaders;
	out->file_size = 0;
	if (mdb_env_get_path(db->env, &dir) == 0 && dir != NULL &&
	    (size_t)snprintf(path, sizeof(path), "%s/data.mdb", dir) <
	    sizeof(path) && stat(path, &fst) == 0)
		out->file_size = (uint64_t)fst.st_size;
}

int
db_read_all(db_t *db)
{
	/* 0 and 1 are LMDB's own free-page and main databases (mdb_stat -f
	   opens a cursor on 0 the same way): writers read the first, every
	   named database hangs off the second. */
	MDB_dbi dbis[6] = {0, 1, db->meta, db->triplets, db->clients,
			   db->whitelist};
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = db_txn_begin(db, false, &txn);

	if (rc != 0)
		return db_errno(rc);
	for (size_t i = 0; rc == 0 && i < 6; i++) {
		rc = mdb_cursor_open(txn, dbis[i], &cur);
		if (rc != 0)
			break;
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			;
		if (rc == MDB_NOTFOUND)
			rc = 0;
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	return db_errno(rc);
}

int
db_stats(db_t *db, struct db_stats *out)
{
	MDB_txn *txn;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = db_txn_begin(db, false, &txn);
	if (rc != 0)
		return db_errno(rc);
	rc = stat_entries(txn, db->triplets, &out->triplets);
	if (rc == 0)
		rc = stat_entries(txn, db->clients, &out->clients);
	if (rc == 0)
		rc = stat_entries(txn, db->whitelist, &out->whitelist);
	mdb_txn_abort(txn);
	if (rc == 0)
		stat_env(db, out);
	return db_errno(rc);
}

