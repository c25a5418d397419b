/*
 * dns_cache - bounded (type, name) -> dns_result cache with TTLs and LRU.
 *
 * A chained hash table finds entries; a doubly linked list keeps them in
 * order of use, most recent at the head, so eviction takes the tail.
 * Each entry is one allocation: the header, the name, the record array
 * and the record bytes, so a deep copy is one malloc and one free, and
 * the byte bound counts exactly what the entry costs.
 *
 * The bucket array is sized once from max_entries (a power of two,
 * capped) and never grows: the entry bound keeps chains short.
 */
#include "dns_cache.h"

#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BUCKETS ((size_t)1 << 20)

struct entry {
	struct entry *hnext;	/* hash chain */
	struct entry *prev;	/* LRU: towards the head (more recent) */
	struct entry *next;	/* LRU: towards the tail */
	uint64_t expires;	/* ms, on the caller's clock */
	uint64_t hash;
	size_t size;		/* bytes of this allocation */
	size_t n;
	struct dns_rr *rr;	/* inside this allocation */
	enum dns_status status;
	uint16_t type;
	char name[];		/* NUL-terminated, lower case */
};

struct dns_cache {
	struct dns_cache_options o;
	struct entry **buckets;
	size_t nbuckets;	/* a power of two */
	struct entry *head;	/* most recently used */
	struct entry *tail;	/* next to evict */
	size_t entries;
	size_t bytes;
	uint64_t evictions;
};

void
dns_cache_default_options(struct dns_cache_options *o)
{
	memset(o, 0, sizeof(*o));
	o->max_entries = 10000;
	o->max_bytes = 10000 * 1024;
	o->min_ttl = 0;
	o->max_ttl = 86400;
	o->neg_ttl = 300;
	o->neg_max_ttl = 3600;	/* RFC 2308 5: 1 to 3 hours is the norm */
	o->fail_ttl = 2;
}

static size_t
align_up(size_t n, size_t a)
{
	return (n + a - 1) / a * a;
}

int
dns_cache_normalize(const char *name, char *buf)
{
	size_t len = strnlen(name, DNS_NAME_MAX + 2);
	size_t i;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		/* ASCII only: DNS compares names byte-wise apart from A-Z. */
		buf[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
	}
	buf[len] = '\0';
	return 0;
}

/* FNV-1a from a seeded basis, then a 64-bit finaliser to spread it. */
static uint64_t
hash_key(uint64_t seed, uint16_t type, const char *name)
{
	uint64_t h = 14695981039346656037ULL ^ seed;
	const unsigned char *p = (const unsigned char *)name;

	h = (h ^ (type & 0xff)) * 1099511628211ULL;
	h = (h ^ (type >> 8)) * 1099511628211ULL;
	for (; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

int
dns_cache_new(struct dns_cache **out, const struct dns_cache_options *o)
{
	struct dns_cache *c = calloc(1, sizeof(*c));
	size_t nb = 16;

	*out = NULL;
	if (c == NULL)
		return -ENOMEM;
	c->o = *o;
	if (c->o.fail_ttl > DNS_CACHE_FAIL_TTL_MAX)
		c->o.fail_ttl = DNS_CACHE_FAIL_TTL_MAX;
	while (nb < o->max_entries && nb < MAX_BUCKETS)
		nb *= 2;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (c->buckets == NULL) {
		free(c);
		return -ENOMEM;
	}
	c->nbuckets = nb;
	*out = c;
	return 0;
}

void
dns_cache_free(struct dns_cache *c)
{
	struct entry *e;
	struct entry *next;

	if (c == NULL)
		return;
	for (e = c->head; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	free(c->buckets);
	free(c);
}

static uint32_t
clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
	if (v < lo)
		v = lo;
	return v > hi ? hi : v;
}

uint32_t
dns_cache_ttl_for(const struct dns_cache_options *o,
		  const struct dns_result *res, int64_t soa_ttl)
{
	uint32_t fail = o->fail_ttl;

	switch (res->status) {
	case DNS_OK:
		return clamp(res->ttl, o->min_ttl, o->max_ttl);
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		if (soa_ttl >= 0)
			return clamp(soa_ttl > UINT32_MAX ? UINT32_MAX :
				     (uint32_t)soa_ttl, o->min_ttl,
				     o->neg_max_ttl);
		return clamp(o->neg_ttl, o->min_ttl, o->neg_max_ttl);
	case DNS_TEMPFAIL:
	case DNS_PERMFAIL:
		break;
	}
	return fail > DNS_CACHE_FAIL_TTL_MAX ? DNS_CACHE_FAIL_TTL_MAX : fail;
}

/* Bytes of the record array and of the record data; -EOVERFLOW if huge. */
static int
records_size(const struct dns_result *res, size_t *rr_bytes,
	     size_t *data_bytes)
{
	size_t i;
	size_t d = 0;

	if (res->n > SIZE_MAX / 2 / sizeof(struct dns_rr))
		return -EOVERFLOW;
	for (i = 0; i < res->n; i++) {
		if (res->rr[i].len > SIZE_MAX / 4 - d)
			return -EOVERFLOW;
		d += res->rr[i].len;
	}
	*rr_bytes = res->n * sizeof(struct dns_rr);
	*data_bytes = d;
	return 0;
}

static void
copy_records(const struct dns_result *src, struct dns_rr *rr, uint8_t *data)
{
	size_t i;

	for (i = 0; i < src->n; i++) {
		rr[i].len = src->rr[i].len;
		rr[i].pref = src->rr[i].pref;
		rr[i].data = data;
		if (src->rr[i].len > 0)
			memcpy(data, src->rr[i].data, src->rr[i].len);
		data += src->rr[i].len;
	}
}

int
dns_cache_clone(const struct dns_result *res, struct dns_result **out)
{
	size_t head = align_up(sizeof(struct dns_result), alignof(struct dns_rr));
	size_t rr_bytes;
	size_t data_bytes;
	struct dns_result *copy;
	struct dns_rr *rr;
	int rc;

	*out = NULL;
	rc = records_size(res, &rr_bytes, &data_bytes);
	if (rc < 0)
		return rc;
	copy = malloc(head + rr_bytes + data_bytes);
	if (copy == NULL)
		return -ENOMEM;
	rr = (struct dns_rr *)((char *)copy + head);
	copy_records(res, rr, (uint8_t *)rr + rr_bytes);
	copy->status = res->status;
	copy->ttl = res->ttl;
	copy->n = res->n;
	copy->rr = res->n > 0 ? rr : NULL;
	*out = copy;
	return 0;
}

static struct entry **
bucket_of(struct dns_cache *c, uint64_t hash)
{
	return &c->buckets[hash & (c->nbuckets - 1)];
}

static struct entry *
find(struct dns_cache *c, uint64_t hash, uint16_t type, const char *name)
{
	struct entry *e;

	for (e = *bucket_of(c, hash); e != NULL; e = e->hnext) {
		if (e->hash == hash && e->type == type &&
		    strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

static void
lru_unlink(struct dns_cache *c, struct entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
lru_push_head(struct dns_cache *c, struct entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head != NULL)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

static void
remove_entry(struct dns_cache *c, struct entry *e)
{
	struct entry **pp = bucket_of(c, e->hash);

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(c, e);
	c->entries--;
	c->bytes -= e->size;
	free(e);
}

int
dns_cache_get(struct dns_cache *c, enum dns_type type, const char *name,
	      uint64_t now, struct dns_result *out)
{
	char key[DNS_NAME_MAX + 1];
	uint64_t hash;
	struct entry *e;

	if (dns_cache_normalize(name, key) < 0)
		return -ENOENT;
	hash = hash_key(c->o.seed, (uint16_t)type, key);
	e = find(c, hash, (uint16_t)type, key);
	if (e == NULL)
		return -ENOENT;
	if (now >= e->expires) {
		remove_entry(c, e);
		return -ENOENT;
	}
	lru_unlink(c, e);
	lru_push_head(c, e);
	out->status = e->status;
	out->ttl = (uint32_t)((e->expires - now) / 1000);
	out->n = e->n;
	out->rr = e->rr;
	return 0;
}

int
dns_cache_put(struct dns_cache *c, enum dns_type type, const char *name,
	      const struct dns_result *res, int64_t soa_ttl, uint64_t now)
{
	char key[DNS_NAME_MAX + 1];
	size_t namelen;
	size_t head;
	size_t rr_bytes;
	size_t data_bytes;
	size_t size;
	uint64_t hash;
	uint32_t ttl;
	struct entry *e;
	int rc;

	if (dns_cache_normalize(name, key) < 0)
		return -EINVAL;
	hash = hash_key(c->o.seed, (uint16_t)type, key);
	/* A newer answer replaces the old one, even one we will not keep. */
	e = find(c, hash, (uint16_t)type, key);
	if (e != NULL)
		remove_entry(c, e);
	ttl = dns_cache_ttl_for(&c->o, res, soa_ttl);
	if (ttl == 0 || c->o.max_entries == 0)
		return 0;
	rc = records_size(res, &rr_bytes, &data_bytes);
	if (rc < 0)
		return -EFBIG;
	namelen = strlen(key);
	head = align_up(sizeof(struct entry) + namelen + 1,
			alignof(struct dns_rr));
	size = head + rr_bytes + data_bytes;
	if (size > c->o.max_bytes)
		return -EFBIG;
	while (c->tail != NULL && (c->entries + 1 > c->o.max_entries ||
				   c->bytes + size > c->o.max_bytes)) {
		remove_entry(c, c->tail);
		c->evictions++;
	}
	e = malloc(size);
	if (e == NULL)
		return -ENOMEM;
	memset(e, 0, sizeof(*e));
	memcpy(e->name, key, namelen + 1);
	e->rr = (struct dns_rr *)((char *)e + head);
	copy_records(res, e->rr, (uint8_t *)e->rr + rr_bytes);
	e->n = res->n;
	e->status = res->status;
	e->type = (uint16_t)type;
	e->hash = hash;
	e->size = size;
	e->expires = now + (uint64_t)ttl * 1000;
	e->hnext = *bucket_of(c, hash);
	*bucket_of(c, hash) = e;
	lru_push_head(c, e);
	c->entries++;
	c->bytes += size;
	return 0;
}

void
dns_cache_stats(const struct dns_cache *c, struct dns_cache_stats *out)
{
	out->entries = c->entries;
	out->bytes = c->bytes;
	out->evictions = c->evictions;
}
