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

struct known_attr {
	const char *name;
	size_t offset;
};

#define ATTR(field) {#field, offsetof(struct policy_request, field)}
static const struct known_attr known_attrs[] = {
	ATTR(request),
	ATTR(protocol_state),
	ATTR(client_address),
	ATTR(client_name),
	ATTR(reverse_client_name),
	ATTR(helo_name),
	ATTR(sender),
	ATTR(recipient),
	ATTR(sasl_username),
	ATTR(instance),
	ATTR(queue_id),
};
#undef ATTR

void
policy_init(struct policy_parser *p)
{
	memset(&p->req, 0, sizeof(p->req));
	p->len = 0;
	p->line_start = 0;
	p->complete = false;
	p->failed = false;
	p->error = NULL;
}

bool
policy_str_eq(struct policy_str s, const char *lit)
{
	size_t n = strlen(lit);
	return s.ptr != NULL && s.len == n && memcmp(s.ptr, lit, n) == 0;
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

/* One complete line (without LF) at buf[start..end). */
static int
take_line(struct policy_parser *p, size_t start, size_t end)
{
	const char *line = p->buf + start;
	size_t len = end - start;
	const char *eq;
	size_t i;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\0', len) != NULL)
		return fail(p, -EBADMSG, "NUL byte in request");
	eq = memchr(line, '=', len);
	if (eq == NULL)
		return fail(p, -EBADMSG, "line without '='");
	if (eq == line)
		return fail(p, -EBADMSG, "attribute with an empty name");
	if (++p->req.nattrs > POLICY_MAX_ATTRS)
		return fail(p, -E2BIG, "too many attributes in request");

	for (i = 0; i < sizeof(known_attrs) / sizeof(known_attrs[0]); i++) {
		struct policy_str name = {line, (size_t)(eq - line)};
		struct policy_str *slot;

		if (!policy_str_eq(name, known_attrs[i].name))
			continue;
		slot = (struct policy_str *)((char *)&p->req + known_attrs[i].offset);
		if (slot->ptr != NULL)
			return fail(p, -EBADMSG, "attribute repeated in request");
		slot->ptr = eq + 1;
		slot->len = len - (size_t)(eq + 1 - line);
		break;
	}
	return 0;
}

int
policy_feed(struct policy_parser *p, const char *data, size_t len,
	    size_t *used, const struct policy_request **out)
{
	size_t pos = 0;

	*used = 0;
	*out = NULL;
	if (p->failed)
		return -EBADMSG;
	if (p->complete) {
		memset(&p->req, 0, sizeof(p->req));
		p->len = 0;
		p->line_start = 0;
		p->complete = false;
	}

	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t chunk = nl != NULL ? (size_t)(nl - (data + pos)) : len - pos;
		size_t line_len = p->len - p->line_start + chunk;
		int rc;

		if (line_len > POLICY_MAX_LINE)
			return fail(p, -EMSGSIZE, "line too long");
		if (p->len + chunk > sizeof(p->buf))
			return fail(p, -EMSGSIZE, "request too large");
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
	}
	*used = pos;
	return POLICY_NEED_MORE;
}
