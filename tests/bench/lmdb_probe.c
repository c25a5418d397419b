/*
 * lmdb_probe - the raw LMDB group-commit ceiling on this disk.
 *
 * What greyhold's store thread does for a batch of never-seen triplets,
 * minus everything else: one write transaction puts B new keys shaped like
 * greyhold's triplet keys (client network, NUL, sender, NUL, recipient;
 * 60-80 bytes) with 24-byte values, then commits.  The environment is
 * fresh and pre-filled (200k entries by default) so the B-tree has
 * greyhold's depth, and every mode gets its own environment under --dir.
 *
 *   lmdb_probe [--dir DIR] [--batch B] [--prefill N] [--seconds S]
 *              [--mode sync|nometasync|nosync|all]
 *
 * "all" (the default) measures, each for --seconds:
 *   sync        B per commit, default durability (fdatasync per commit)
 *   nometasync  B per commit, MDB_NOMETASYNC (meta page not synced)
 *   nosync      B per commit, MDB_NOSYNC (the relaxed target's regime)
 *   sync B=1    one insert per synced commit (postgrey's regime)
 * and prints one human line and one machine line per mode:
 *   PROBE mode=sync batch=64 inserts_per_s=.. ms_per_commit=.. ...
 * ms_per_commit is the mean time of mdb_txn_commit alone; inserts/s counts
 * the whole loop (begin, puts, commit).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_MIN 60
#define KEY_MAX 80
#define VALUE_SIZE 24
/* --shape dense: the client network as 5 bytes, 16-byte values. */
#define DENSE_CLIENT 5
#define DENSE_VALUE_SIZE 16
#define PREFILL_TXN 10000

struct options {
	const char *dir;
	unsigned batch;
	unsigned long prefill;
	double seconds;
	const char *mode;
};

/* Set from the options: what one entry looks like. */
static bool dense_shape;
static size_t value_size = VALUE_SIZE;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
rng_next(uint64_t *state)
{
	uint64_t x;

	*state += 0x9e3779b97f4a7c15ULL;
	x = *state;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * A random key with the shape and size of a greyhold triplet key; with
 * --shape dense, the same sender and recipient bytes behind a binary
 * client network (family, prefix length, the prefix's 3 bytes) instead
 * of its text: what a denser key layout would store.
 */
static size_t
make_key(char *out, uint64_t *rng)
{
	uint64_t h = rng_next(rng);
	size_t len = KEY_MIN + (size_t)(h % (KEY_MAX - KEY_MIN + 1));
	unsigned b = (unsigned)(64 + ((h >> 8) & 63));
	unsigned c = (unsigned)((h >> 16) & 255);
	int n = snprintf(out, KEY_MAX + 1, "100.%u.%u.0/24", b, c);
	size_t o = (size_t)n;
	size_t at1 = o + 1 + (len - o) / 2;	/* where the sender ends */

	if (dense_shape) {
		size_t text_client = o + 1;

		out[0] = 4;
		out[1] = 24;
		out[2] = 100;
		out[3] = (char)b;
		out[4] = (char)c;
		o = DENSE_CLIENT;
		len -= text_client - DENSE_CLIENT;
		at1 -= text_client - DENSE_CLIENT;
		h = rng_next(rng);
	} else {
		out[o++] = '\0';
	}
	while (o < len) {
		if (o == at1) {
			out[o++] = '\0';
			continue;
		}
		if ((o & 7) == 0)
			h = rng_next(rng);
		out[o++] = (char)('a' + (h & 0xff) % 26);
		h >>= 8;
	}
	return len;
}

static int
fail(const char *what, int rc)
{
	fprintf(stderr, "lmdb_probe: %s: %s\n", what, mdb_strerror(rc));
	return -1;
}

static int
open_env(MDB_env **env, MDB_dbi *dbi, const char *dir, unsigned flags)
{
	MDB_txn *txn;
	int rc;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "lmdb_probe: cannot create %s: %s\n", dir,
			strerror(errno));
		return -1;
	}
	if ((rc = mdb_env_create(env)) != 0)
		return fail("mdb_env_create", rc);
	mdb_env_set_maxdbs(*env, 8);
	mdb_env_set_mapsize(*env, (size_t)1 << 32);
	if ((rc = mdb_env_open(*env, dir, flags | MDB_NOTLS, 0600)) != 0) {
		mdb_env_close(*env);
		return fail("mdb_env_open", rc);
	}
	if ((rc = mdb_txn_begin(*env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "triplets", MDB_CREATE, dbi)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0) {
		mdb_env_close(*env);
		return fail("opening the database", rc);
	}
	return 0;
}

/* Insert n random entries, committing every PREFILL_TXN, unsynced. */
static int
prefill(MDB_env *env, MDB_dbi dbi, unsigned long n, uint64_t *rng)
{
	char key[KEY_MAX + 1];
	uint8_t value[VALUE_SIZE];
	unsigned long done = 0;
	unsigned flags = 0;
	int rc;

	memset(value, 0x11, sizeof(value));
	value[0] = 1;
	mdb_env_get_flags(env, &flags);
	mdb_env_set_flags(env, MDB_NOSYNC, 1);
	while (done < n) {
		MDB_txn *txn;

		if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
			return fail("prefill begin", rc);
		for (unsigned i = 0; i < PREFILL_TXN && done < n; i++, done++) {
			MDB_val k = {make_key(key, rng), key};
			MDB_val v = {value_size, value};

			if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0) {
				mdb_txn_abort(txn);
				return fail("prefill put", rc);
			}
		}
		if ((rc = mdb_txn_commit(txn)) != 0)
			return fail("prefill commit", rc);
	}
	if ((flags & MDB_NOSYNC) == 0)
		mdb_env_set_flags(env, MDB_NOSYNC, 0);
	if ((rc = mdb_env_sync(env, 1)) != 0)
		return fail("prefill sync", rc);
	return 0;
}

struct result {
	uint64_t inserts;
	uint64_t commits;
	double seconds;
	double commit_seconds;
	size_t key_min, key_max;	/* of the keys measured */
};

static int
measure(MDB_env *env, MDB_dbi dbi, unsigned batch, double seconds,
	uint64_t *rng, struct result *res)
{
	char key[KEY_MAX + 1];
	uint8_t value[VALUE_SIZE];
	double start = now_s();
	double end = start + seconds;
	double t;
	int rc;

	memset(res, 0, sizeof(*res));
	res->key_min = SIZE_MAX;
	memset(value, 0x22, sizeof(value));
	value[0] = 1;
	do {
		MDB_txn *txn;
		double c0;

		if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
			return fail("begin", rc);
		for (unsigned i = 0; i < batch; i++) {
			MDB_val k = {make_key(key, rng), key};
			MDB_val v = {value_size, value};

			if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0) {
				mdb_txn_abort(txn);
				return fail("put", rc);
			}
			if (k.mv_size < res->key_min)
				res->key_min = k.mv_size;
			if (k.mv_size > res->key_max)
				res->key_max = k.mv_size;
		}
		c0 = now_s();
		if ((rc = mdb_txn_commit(txn)) != 0)
			return fail("commit", rc);
		t = now_s();
		res->commit_seconds += t - c0;
		res->commits++;
		res->inserts += batch;
	} while (t < end);
	res->seconds = t - start;
	return 0;
}

/* The environments are scratch: remove each once measured. */
static void
remove_env(const char *dir)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	unlink(path);
	rmdir(dir);
}

static int
probe(const struct options *o, const char *mode, unsigned batch)
{
	char dir[4096];
	unsigned flags = 0;
	uint64_t rng = 0x70726f6265ULL + batch;
	struct result res;
	MDB_env *env;
	MDB_dbi dbi;
	int rc;

	if (strcmp(mode, "nometasync") == 0)
		flags = MDB_NOMETASYNC;
	else if (strcmp(mode, "nosync") == 0)
		flags = MDB_NOSYNC;
	snprintf(dir, sizeof(dir), "%s/%s-%u", o->dir, mode, batch);
	if (open_env(&env, &dbi, dir, flags) < 0)
		return -1;
	rc = prefill(env, dbi, o->prefill, &rng);
	if (rc == 0)
		rc = measure(env, dbi, batch, o->seconds, &rng, &res);
	mdb_env_close(env);
	remove_env(dir);
	if (rc < 0)
		return -1;
	printf("lmdb_probe: %-10s batch %3u: %8.0f inserts/s, %6.3f ms per commit "
	       "(%" PRIu64 " commits in %.1f s, %lu entries before)\n", mode, batch,
	       (double)res.inserts / res.seconds,
	       res.commit_seconds * 1000.0 / (double)res.commits, res.commits,
	       res.seconds, o->prefill);
	printf("PROBE mode=%s batch=%u inserts_per_s=%.0f ms_per_commit=%.3f "
	       "commits=%" PRIu64 " seconds=%.2f prefill=%lu key_bytes=%zu-%zu "
	       "value_bytes=%zu shape=%s\n", mode, batch,
	       (double)res.inserts / res.seconds,
	       res.commit_seconds * 1000.0 / (double)res.commits, res.commits,
	       res.seconds, o->prefill, res.key_min, res.key_max, value_size,
	       dense_shape ? "dense" : "text");
	fflush(stdout);
	return 0;
}

static void
usage(FILE *out)
{
	fprintf(out,
"usage: lmdb_probe [--dir DIR] [--batch B] [--prefill N] [--seconds S]\n"
"                  [--mode sync|nometasync|nosync|all]\n"
"  --dir DIR      where the environments go (a new directory under $TMPDIR)\n"
"  --batch B      inserts per write transaction (64)\n"
"  --prefill N    entries before measuring (200000)\n"
"  --seconds S    measured seconds per mode (3)\n"
"  --mode M       one mode, or all: sync, nometasync, nosync, and sync with\n"
"                 batch 1 (default all)\n"
"  --shape S      text: greyhold's keys and values (default); dense: the\n"
"                 client network as 5 binary bytes and 16-byte values\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"dir", required_argument, NULL, 'D'},
		{"batch", required_argument, NULL, 'b'},
		{"prefill", required_argument, NULL, 'p'},
		{"seconds", required_argument, NULL, 's'},
		{"mode", required_argument, NULL, 'm'},
		{"shape", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct options o = {NULL, 64, 200000, 3.0, "all"};
	char tmpl[4096];
	char *end;
	int ch, rc = 0;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'D':
			o.dir = optarg;
			break;
		case 'b':
			o.batch = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || o.batch < 1 || o.batch > 100000) {
				usage(stderr);
				return 2;
			}
			break;
		case 'p':
			o.prefill = strtoul(optarg, &end, 10);
			if (*end != '\0' || o.prefill > 100000000) {
				usage(stderr);
				return 2;
			}
			break;
		case 's':
			o.seconds = strtod(optarg, &end);
			if (*end != '\0' || !(o.seconds > 0 && o.seconds <= 3600)) {
				usage(stderr);
				return 2;
			}
			break;
		case 'm':
			o.mode = optarg;
			break;
		case 'S':
			if (strcmp(optarg, "text") != 0 &&
			    strcmp(optarg, "dense") != 0) {
				usage(stderr);
				return 2;
			}
			dense_shape = strcmp(optarg, "dense") == 0;
			value_size = dense_shape ? DENSE_VALUE_SIZE : VALUE_SIZE;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (o.dir == NULL) {
		const char *tmp = getenv("TMPDIR");

		snprintf(tmpl, sizeof(tmpl), "%s/lmdb_probe.XXXXXX",
			 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
		if (mkdtemp(tmpl) == NULL) {
			fprintf(stderr, "lmdb_probe: mkdtemp %s: %s\n", tmpl,
				strerror(errno));
			return 1;
		}
		o.dir = tmpl;
	}
	if (strcmp(o.mode, "all") == 0) {
		rc |= probe(&o, "sync", o.batch);
		rc |= probe(&o, "nometasync", o.batch);
		rc |= probe(&o, "nosync", o.batch);
		if (o.batch != 1)
			rc |= probe(&o, "sync", 1);
	} else if (strcmp(o.mode, "sync") == 0 || strcmp(o.mode, "nometasync") == 0 ||
		   strcmp(o.mode, "nosync") == 0) {
		rc = probe(&o, o.mode, o.batch);
	} else {
		usage(stderr);
		rc = 2;
	}
	if (o.dir == tmpl)
		rmdir(tmpl);
	return rc == 2 ? 2 : rc < 0 ? 1 : 0;
}
