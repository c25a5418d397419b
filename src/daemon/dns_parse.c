/*
 * dns_parse - c-ares answers into dns_result blocks.
 *
 * Records are gathered in a growing builder (data by offset, since the
 * byte buffer moves as it grows) and then copied into one block by
 * dns_cache_clone(), the same deep copy the cache uses.  Names (MX, PTR)
 * are stored in lower case without a trailing dot; a TXT record's
 * character-strings are joined (RFC 7208 3.3).
 */
#include "dns_parse.h"

#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ares.h>

#include "dns_cache.h"
#include "dns_wire.h"

struct builder {
	struct dns_rr *rr;
	size_t *off;		/* where each record's data starts in bytes */
	size_t n;
	size_t cap;
	uint8_t *bytes;
	size_t len;
	size_t bcap;
	bool oom;
};

static void
builder_free(struct builder *b)
{
	free(b->rr);
	free(b->off);
	free(b->bytes);
}

static void
builder_record(struct builder *b, uint16_t pref)
{
	if (b->oom)
		return;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		struct dns_rr *rr = realloc(b->rr, cap * sizeof(*rr));
		size_t *off;

		if (rr == NULL) {
			b->oom = true;
			return;
		}
		b->rr = rr;
		off = realloc(b->off, cap * sizeof(*off));
		if (off == NULL) {
			b->oom = true;
			return;
		}
		b->off = off;
		b->cap = cap;
	}
	b->rr[b->n] = (struct dns_rr){NULL, 0, pref};
	b->off[b->n] = b->len;
	b->n++;
}

/* Append to the last record; names are lowered, as the cache compares. */
static void
builder_append(struct builder *b, const void *data, size_t len, bool lower)
{
	size_t i;

	if (b->oom || b->n == 0)
		return;
	if (len > b->bcap - b->len) {
		size_t cap = b->bcap ? b->bcap : 256;
		uint8_t *bytes;

		while (cap - b->len < len)
			cap *= 2;
		bytes = realloc(b->bytes, cap);
		if (bytes == NULL) {
			b->oom = true;
			return;
		}
		b->bytes = bytes;
		b->bcap = cap;
	}
	memcpy(b->bytes + b->len, data, len);
	if (lower) {
		for (i = b->len; i < b->len + len; i++) {
			if (b->bytes[i] >= 'A' && b->bytes[i] <= 'Z')
				b->bytes[i] += 32;
		}
	}
	b->len += len;
	b->rr[b->n - 1].len += len;
}

static void
builder_name(struct builder *b, const char *name, uint16_t pref)
{
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	builder_record(b, pref);
	builder_append(b, name, len, true);
}

static int
from_hostent(struct builder *b, const struct hostent *h, size_t addrlen)
{
	size_t i;

	for (i = 0; h->h_addr_list != NULL && h->h_addr_list[i] != NULL; i++) {
		builder_record(b, 0);
		builder_append(b, h->h_addr_list[i], addrlen, false);
	}
	return 0;
}

static bool
already_named(const struct builder *b, const char *name)
{
	size_t len = strlen(name);
	size_t i;

	if (len > 0 && name[len - 1] == '.')
		len--;
	for (i = 0; i < b->n; i++) {
		if (b->rr[i].len == len &&
		    strncasecmp((const char *)b->bytes + b->off[i], name, len) == 0)
			return true;
	}
	return false;
}

/* c-ares puts the first PTR target in h_name and all of them in aliases. */
static int
parse_ptr(struct builder *b, const unsigned char *abuf, int alen)
{
	static const unsigned char any[4];
	struct hostent *h = NULL;
	size_t i;
	int rc = ares_parse_ptr_reply(abuf, alen, any, sizeof(any), AF_INET, &h);

	if (rc != ARES_SUCCESS)
		return rc;
	if (h->h_name != NULL)
		builder_name(b, h->h_name, 0);
	for (i = 0; h->h_aliases != NULL && h->h_aliases[i] != NULL; i++) {
		if (!already_named(b, h->h_aliases[i]))
			builder_name(b, h->h_aliases[i], 0);
	}
	ares_free_hostent(h);
	return ARES_SUCCESS;
}

static int
parse_records(enum dns_type type, const unsigned char *abuf, int alen,
	      struct builder *b)
{
	struct hostent *h = NULL;
	struct ares_mx_reply *mx = NULL;
	struct ares_mx_reply *m;
	struct ares_txt_ext *txt = NULL;
	struct ares_txt_ext *t;
	int rc = ARES_EBADQUERY;

	switch (type) {
	case DNS_T_A:
		rc = ares_parse_a_reply(abuf, alen, &h, NULL, NULL);
		if (rc == ARES_SUCCESS)
			from_hostent(b, h, 4);
		break;
	case DNS_T_AAAA:
		rc = ares_parse_aaaa_reply(abuf, alen, &h, NULL, NULL);
		if (rc == ARES_SUCCESS)
			from_hostent(b, h, 16);
		break;
	case DNS_T_MX:
		rc = ares_parse_mx_reply(abuf, alen, &mx);
		for (m = rc == ARES_SUCCESS ? mx : NULL; m != NULL; m = m->next)
			builder_name(b, m->host, m->priority);
		break;
	case DNS_T_TXT:
		rc = ares_parse_txt_reply_ext(abuf, alen, &txt);
		for (t = rc == ARES_SUCCESS ? txt : NULL; t != NULL; t = t->next) {
			if (t->record_start || b->n == 0)
				builder_record(b, 0);
			builder_append(b, t->txt, t->length, false);
		}
		break;
	case DNS_T_PTR:
		rc = parse_ptr(b, abuf, alen);
		break;
	}
	if (h != NULL)
		ares_free_hostent(h);
	if (mx != NULL)
		ares_free_data(mx);
	if (txt != NULL)
		ares_free_data(txt);
	return rc;
}

/* The status a c-ares error stands for, and whether it is about the name. */
static enum dns_status
map_error(int status, struct dns_parsed *out)
{
	out->cacheable = true;
	switch (status) {
	case ARES_ENOTFOUND:
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_ETIMEOUT:
		out->timeout = true;
		return DNS_TEMPFAIL;
	case ARES_ESERVFAIL:
	case ARES_ECONNREFUSED:
	case ARES_EOF:
		return DNS_TEMPFAIL;
	case ARES_EREFUSED:
	case ARES_EFORMERR:
	case ARES_ENOTIMP:
	case ARES_EBADRESP:
	case ARES_EBADNAME:
	case ARES_EBADQUERY:
		return DNS_PERMFAIL;
	default:
		/* Out of memory, cancelled, destroyed: our trouble, not the
		   name's, so nothing to remember about it. */
		out->cacheable = false;
		return DNS_TEMPFAIL;
	}
}

int
dns_parse_answer(enum dns_type type, int status, const unsigned char *abuf,
		 int alen, struct dns_parsed *out)
{
	struct builder b = {0};
	struct dns_wire_ttls ttls = {UINT32_MAX, -1};
	struct dns_result res = {DNS_TEMPFAIL, 0, 0, NULL};
	size_t i;
	int rc;

	out->res = NULL;
	out->soa_ttl = -1;
	out->timeout = false;
	out->cacheable = false;
	if (abuf != NULL && alen > 0 &&
	    dns_wire_ttls(abuf, (size_t)alen, &ttls) < 0 &&
	    status == ARES_SUCCESS)
		status = ARES_EBADRESP;
	if (status == ARES_SUCCESS) {
		rc = parse_records(type, abuf, alen, &b);
		if (rc == ARES_SUCCESS && b.n == 0)
			rc = ARES_ENODATA;
		status = rc;
	}
	if (b.oom) {
		builder_free(&b);
		return -ENOMEM;
	}
	if (status == ARES_SUCCESS) {
		res.status = DNS_OK;
		out->cacheable = true;
		res.ttl = ttls.answer_ttl == UINT32_MAX ? 0 : ttls.answer_ttl;
		for (i = 0; i < b.n; i++)
			b.rr[i].data = b.bytes + b.off[i];
		res.n = b.n;
		res.rr = b.rr;
	} else {
		res.status = map_error(status, out);
		if (res.status == DNS_NXDOMAIN || res.status == DNS_NODATA)
			out->soa_ttl = ttls.soa_ttl;
	}
	rc = dns_cache_clone(&res, &out->res);
	builder_free(&b);
	return rc;
}
