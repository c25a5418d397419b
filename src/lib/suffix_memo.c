/*
 * suffix_memo - remembered public-suffix answers.  See suffix_memo.h.
 */
#include "suffix_memo.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Suffixes this long or longer are asked of libpsl every time. */
#define SLOT_NAME 62

struct slot {
	uint32_t hash;		/* 0: empty */
	uint8_t len;
	uint8_t is_public;
	char name[SLOT_NAME];
};

struct suffix_memo {
	const psl_ctx_t *psl;
	pthread_mutex_t lock;
	struct slot slots[SUFFIX_MEMO_SLOTS];
};

int
suffix_memo_new(suffix_memo_t **out, const psl_ctx_t *psl)
{
	suffix_memo_t *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (m == NULL)
		return -ENOMEM;
	m->psl = psl;
	pthread_mutex_init(&m->lock, NULL);
	*out = m;
	return 0;
}

void
suffix_memo_free(suffix_memo_t *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* FNV-1a; never 0, which marks an empty slot. */
static uint32_t
hash_of(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h != 0 ? h : 1;
}

static bool
is_public(suffix_memo_t *m, const char *suffix)
{
	size_t len = strlen(suffix);
	struct slot *slot;
	uint32_t h;
	bool known = false, answer = false;

	if (len >= SLOT_NAME)
		return psl_is_public_suffix(m->psl, suffix) != 0;
	h = hash_of(suffix, len);
	slot = &m->slots[h & (SUFFIX_MEMO_SLOTS - 1)];
	pthread_mutex_lock(&m->lock);
	if (slot->hash == h && slot->len == len &&
	    memcmp(slot->name, suffix, len) == 0) {
		known = true;
		answer = slot->is_public != 0;
	}
	pthread_mutex_unlock(&m->lock);
	if (known)
		return answer;

	answer = psl_is_public_suffix(m->psl, suffix) != 0;
	pthread_mutex_lock(&m->lock);
	slot->hash = h;
	slot->len = (uint8_t)len;
	slot->is_public = answer;
	memcpy(slot->name, suffix, len);
	pthread_mutex_unlock(&m->lock);
	return answer;
}

const char *
suffix_memo_registrable(suffix_memo_t *m, const char *name)
{
	const char *regdom = NULL;

	if (name[0] == '.')
		return NULL;
	/*
	 * From the left, as libpsl does: the first public suffix met is the
	 * longest, even when a shorter one is not public (a rule such as
	 * "forgot.his.name" under "name"); the registrable domain is the
	 * suffix one label longer.
	 */
	while (!is_public(m, name)) {
		const char *dot = strchr(name, '.');

		if (dot == NULL)
			break;
		regdom = name;
		name = dot + 1;
	}
	return regdom;
}
