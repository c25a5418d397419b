/*
 * db_wl - the live whitelist in the LMDB environment.
 *
 * Entries greyholdctl adds or removes, kept in the "whitelist" database:
 * key "c:ENTRY" (clients) or "r:ENTRY" (recipients), value version 1:
 *   0 u8 version (1), 1..3 reserved, 4 u64 added, 12 u64 expires (0:
 *   never), 20.. comment (at most DB_WL_COMMENT_MAX bytes).
 * Every change bumps the generation counter in "meta", which the daemon's
 * store thread polls once a second to rebuild its matcher.
 */
#include "db_wl.h"

#include <errno.h>
#include <string.h>

#include "db_int.h"
#include "le.h"
#include "log.h"
#include "wl_entry.h"

#define WL_VALUE_HEAD 20	/* version, 3 reserved, added, expires */
static const char wl_generation_key[] = "wl_generation";

static int
bump_generation(db_t *db, MDB_txn *txn)
{
	MDB_val k = {sizeof(wl_generation_key) - 1, (void *)wl_generation_key};
	MDB_val v;
	uint8_t buf[8];
	uint64_t gen = 0;
	int rc = mdb_get(txn, db->meta, &k, &v);

	if (rc == 0 && v.mv_size == 8)
		gen = le64_get(v.mv_data);
	else if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	le64_put(buf, gen + 1);
	v.mv_size = sizeof(buf);
	v.mv_data = buf;
	return mdb_put(txn, db->meta, &k, &v, 0);
}

static int
wl_put_txn(db_t *db, MDB_txn *txn, const void *arg)
{
	const struct db_wl_entry *e = arg;
	char key[WL_ENTRY_NAME_MAX];
	uint8_t val[WL_VALUE_HEAD + DB_WL_COMMENT_MAX];
	size_t clen = strnlen(e->comment, DB_WL_COMMENT_MAX);
	int len = wl_entry_name(key, e->kind, e->entry);
	MDB_val k, v;
	int rc;

	if (len < 0)
		return MDB_BAD_VALSIZE;	/* db_wl_put() checked the length */
	k.mv_size = (size_t)len;
	k.mv_data = key;
	memset(val, 0, WL_VALUE_HEAD);
	val[0] = 1;
	le64_put(val + 4, (uint64_t)e->added);
	le64_put(val + 12, (uint64_t)e->expires);
	memcpy(val + WL_VALUE_HEAD, e->comment, clen);
	v.mv_size = WL_VALUE_HEAD + clen;
	v.mv_data = val;
	rc = mdb_put(txn, db->whitelist, &k, &v, 0);
	return rc != 0 ? rc : bump_generation(db, txn);
}

int
db_wl_put(db_t *db, const struct db_wl_entry *e)
{
	if (strlen(e->entry) >= WHITELIST_MAX_ENTRY)
		return -E2BIG;
	return db_write_txn(db, wl_put_txn, e);
}

struct wl_del_arg {
	enum whitelist_kind kind;
	const char *entry;
};

static int
wl_del_txn(db_t *db, MDB_txn *txn, const void *arg)
{
	const struct wl_del_arg *a = arg;
	char key[WL_ENTRY_NAME_MAX];
	int len = wl_entry_name(key, a->kind, a->entry);
	MDB_val k;
	int rc;

	if (len < 0)
		return MDB_NOTFOUND;	/* db_wl_del() checked the length */
	k.mv_size = (size_t)len;
	k.mv_data = key;
	rc = mdb_del(txn, db->whitelist, &k, NULL);
	return rc != 0 ? rc : bump_generation(db, txn);
}

int
db_wl_del(db_t *db, enum whitelist_kind kind, const char *entry)
{
	struct wl_del_arg a = {kind, entry};

	if (strlen(entry) >= WHITELIST_MAX_ENTRY)
		return -ENOENT;
	return db_write_txn(db, wl_del_txn, &a);
}

int
db_wl_generation(db_t *db, uint64_t *out)
{
	MDB_txn *txn;
	MDB_val k = {sizeof(wl_generation_key) - 1, (void *)wl_generation_key};
	MDB_val v;
	int rc = db_txn_begin(db, false, &txn);

	*out = 0;
	if (rc != 0)
		return db_errno(rc);
	rc = mdb_get(txn, db->meta, &k, &v);
	if (rc == 0 && v.mv_size == 8)
		*out = le64_get(v.mv_data);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND ? 0 : db_errno(rc);
}

static bool
wl_decode(const MDB_val *k, const MDB_val *v, struct db_wl_entry *e)
{
	const uint8_t *p = v->mv_data;
	const char *key = k->mv_data;
	size_t clen;

	if (v->mv_size < WL_VALUE_HEAD || p[0] != 1 ||
	    v->mv_size > WL_VALUE_HEAD + DB_WL_COMMENT_MAX ||
	    !wl_entry_name_decode(key, k->mv_size, e))
		return false;
	e->added = (int64_t)le64_get(p + 4);
	e->expires = (int64_t)le64_get(p + 12);
	clen = v->mv_size - WL_VALUE_HEAD;
	memcpy(e->comment, p + WL_VALUE_HEAD, clen);
	e->comment[clen] = '\0';
	return true;
}

int
db_wl_foreach(db_t *db, int (*fn)(const struct db_wl_entry *, void *),
	      void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	struct db_wl_entry e;
	int rc = db_txn_begin(db, false, &txn);
	int stop = 0;

	if (rc != 0)
		return db_errno(rc);
	rc = mdb_cursor_open(txn, db->whitelist, &cur);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return db_errno(rc);
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && stop == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (!wl_decode(&k, &v, &e)) {
			log_msg(LOG_LEVEL_WARN, "skipping a malformed live whitelist "
				"record (%zu bytes)", v.mv_size);
			continue;
		}
		stop = fn(&e, arg);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	return rc != 0 ? db_errno(rc) : stop;
}

