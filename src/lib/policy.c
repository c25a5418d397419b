/*
 * policy - the policy delegation protocol parser.
 *
 * Bytes of the current request are copied into p->buf so that attribute
 * values stay addressable after the read buffer they came from is reused;
 * the request hands out (pointer, length) views into p->buf.
 */
#include "policy.h"

#include <errno.h>
#include <string.h>

/*
 * The attributes greyhold keeps, by name length: at most two share a
 * length, so finding a name's slot is one table lookup and at most two
 * memcmp()s, not a comparison with every name.  Postfix sends ~31
 * attributes per request, most of them unknown here.
 */
struct known_attr {
	const char *name;	/* NULL: no (other) known name of this length */
	size_t offset;
};

#define KNOWN_MAX_LEN 19
#define ATTR(field) {#field, offsetof(struct policy_request, field)}
static const struct known_attr known_by_len[KNOWN_MAX_LEN + 1][2] = {
	[6] = {ATTR(sender)},
	[7] = {ATTR(request)},
	[8] = {ATTR(instance), ATTR(queue_id)},
	[9] = {ATTR(helo_name), ATTR(recipient)},
	[11] = {ATTR(client_name)},
	[13] = {ATTR(sasl_username)},
	[14] = {ATTR(protocol_state), ATTR(client_address)},
	[19] = {ATTR(reverse_client_name)},
};
#undef ATTR

/* Ready for the next request: nothing of the last one is kept. */
static void
start_request(struct policy_parser *p)
{
	memset(&p->req, 0, sizeof(p->req));
	p->len = 0;
	p->line_start = 0;
	p->line_nul = false;
	p->complete = false;
}

void
policy_init(struct policy_parser *p)
{
	start_request(p);
	p->failed = false;
	p->error = NULL;
}

bool
policy_str_eq(struct policy_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.ptr != NULL && s.len == n && memcmp(s.ptr, lit, n) == 0;
}

void
policy_str_copy(char *out, size_t outsz, struct policy_str s)
{
	size_t n = s.ptr != NULL ? s.len : 0;

	if (n >= outsz)
		n = outsz - 1;
	if (n > 0)
		memcpy(out, s.ptr, n);
	out[n] = '\0';
}

bool
policy_in_request(const struct policy_parser *p)
{
	return !p->complete && p->len > 0;
}

static int
fail(struct policy_parser *p, int err, const char *why)
{
	p->failed = true;
	p->error = why;
	return err;
}

/* The slot of a known attribute called name, or NULL for any other name. */
static struct policy_str *
known_slot(struct policy_request *req, const char *name, size_t len)
{
	const struct known_attr *cand;

	if (len > KNOWN_MAX_LEN)
		return NULL;
	cand = known_by_len[len];
	/* Most names are unknown ones: the first byte turns them away. */
	for (int i = 0; i < 2 && cand[i].name != NULL; i++) {
		if (name[0] == cand[i].name[0] &&
		    memcmp(name, cand[i].name, len) == 0)
			return (struct policy_str *)((char *)req + cand[i].offset);
	}
	return NULL;
}

/* One complete line (without LF) at buf[start..end). */
static int
take_line(struct policy_parser *p, size_t start, size_t end)
{
	const char *line = p->buf + start;
	size_t len = end - start;
	size_t name_len = 0;
	struct policy_str *slot;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (p->line_nul)
		return fail(p, -EBADMSG, "NUL byte in request");
	/*
	 * The name ends at the first '=': names are short, so a byte loop
	 * beats a memchr() call there (measured with tests/bench/parse_bench).
	 */
	while (name_len < len && line[name_len] != '=')
		name_len++;
	if (name_len == len)
		return fail(p, -EBADMSG, "line without '='");
	if (name_len == 0)
		return fail(p, -EBADMSG, "attribute with an empty name");
	if (++p->req.nattrs > POLICY_MAX_ATTRS)
		return fail(p, -E2BIG, "too many attributes in request");

	slot = known_slot(&p->req, line, name_len);
	if (slot == NULL)
		return 0;
	if (slot->ptr != NULL)
		return fail(p, -EBADMSG, "attribute repeated in request");
	slot->ptr = line + name_len + 1;
	slot->len = len - name_len - 1;
	return 0;
}

/* Input looked at for NUL bytes by one memchr() call (nul_between()). */
#define NUL_BLOCK 1024

/*
 * Whether data[from..to) holds a NUL byte.  NULs are looked for a block
 * at a time ahead of the lines, one memchr() call for several of them
 * rather than one per line: *scanned is how much of data was looked at,
 * *nul where the first NUL is (len while none was found).
 */
static bool
nul_between(const char *data, size_t len, size_t from, size_t to,
	    size_t *scanned, size_t *nul)
{
	while (*nul == len && *scanned < to) {
		size_t n = len - *scanned < NUL_BLOCK ? len - *scanned : NUL_BLOCK;
		const char *z = memchr(data + *scanned, '\0', n);

		if (z != NULL)
			*nul = (size_t)(z - data);
		*scanned += n;
	}
	return *nul >= from && *nul < to;
}

int
policy_feed(struct policy_parser *p, const char *data, size_t len,
	    size_t *used, const struct policy_request **out)
{
	size_t pos = 0, scanned = 0, nul = len;

	*used = 0;
	*out = NULL;
	if (p->failed)
		return -EBADMSG;
	if (p->complete)
		start_request(p);

	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t chunk = nl != NULL ? (size_t)(nl - (data + pos)) : len - pos;
		size_t line_len = p->len - p->line_start + chunk;
		int rc;

		if (line_len > POLICY_MAX_LINE)
			return fail(p, -EMSGSIZE, "line too long");
		if (p->len + chunk > sizeof(p->buf))
			return fail(p, -EMSGSIZE, "request too large");
		if (nul_between(data, len, pos, pos + chunk, &scanned, &nul))
			p->line_nul = true;	/* the line fails once read */
		memcpy(p->buf + p->len, data + pos, chunk);
		p->len += chunk;
		pos += chunk;
		if (nl == NULL)
			break;
		pos++;	/* the LF */

		if (p->len == p->line_start ||
		    (p->len == p->line_start + 1 && p->buf[p->line_start] == '\r')) {
			/* Empty line: the request ends here. */
			*used = pos;
			if (p->req.nattrs == 0)
				return fail(p, -EBADMSG, "empty request");
			if (p->req.request.ptr == NULL)
				return fail(p, -EBADMSG, "request without request= attribute");
			p->complete = true;
			*out = &p->req;
			return POLICY_REQUEST;
		}
		rc = take_line(p, p->line_start, p->len);
		if (rc < 0) {
			*used = pos;
			return rc;
		}
		p->line_start = p->len;
		p->line_nul = false;
	}
	*used = pos;
	return POLICY_NEED_MORE;
}
