/*
 * triplet - key construction and sender normalisation.
 *
 * Normalisation exists so that one sender that varies its envelope address
 * per message (mailing-list VERP, BATV signing, SRS forwarding, +tags) keys
 * to one triplet and passes after one delay instead of every time.  Each
 * rule folds only the varying part and keeps the rest, so two different
 * senders never collapse into one.
 */
#include "triplet.h"

#include <ctype.h>
#include <string.h>

/* Enough to hold any address we keep, plus room for what we strip. */
#define WORK_MAX 512

static size_t
lower_copy(char *out, const char *in, size_t len, size_t max)
{
	size_t i;

	if (len > max)
		len = max;
	/*
	 * ASCII only, as tolower() in the C locale the daemon runs in, so
	 * that a key never depends on a locale, and without its table call.
	 */
	for (i = 0; i < len; i++) {
		char c = in[i];

		out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	return len;
}

static bool
starts_with(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);
	return len >= n && memcmp(s, prefix, n) == 0;
}

/* Index of the first c in s[from..len), or len. */
static size_t
find_char(const char *s, size_t from, size_t len, char c)
{
	while (from < len && s[from] != c)
		from++;
	return from < len ? from : len;
}

/*
 * BATV: "prvs=TAG=local", "msprvs1=TAG=local", "btv1==TAG==local".
 * Returns the offset where the real local part starts (0 if not BATV).
 */
static size_t
batv_skip(const char *local, size_t len)
{
	static const char *const prefixes[] = {"prvs=", "msprvs1=", "btv1="};
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t pos = strlen(prefixes[i]);

		if (!starts_with(local, len, prefixes[i]))
			continue;
		while (pos < len && local[pos] == '=')
			pos++;
		pos = find_char(local, pos, len, '=');
		while (pos < len && local[pos] == '=')
			pos++;
		return pos < len ? pos : 0;
	}
	return 0;
}

/* Append s[from..to) to out at *o, bounded by WORK_MAX. */
static void
append(char *out, size_t *o, const char *s, size_t from, size_t to)
{
	size_t n = to > from ? to - from : 0;

	if (*o + n > WORK_MAX)
		n = WORK_MAX - *o;
	memcpy(out + *o, s + from, n);
	*o += n;
}

/*
 * Replace the hash and timestamp fields of an SRS0 tail "HASH=TT=rest"
 * starting at s[pos] with "#=#=rest".
 */
static void
fold_srs0_tail(char *out, size_t *o, const char *s, size_t pos, size_t len)
{
	size_t end_hash = find_char(s, pos, len, '=');
	size_t end_time = find_char(s, end_hash + 1, len, '=');

	if (end_time >= len) {	/* not the shape we know: keep it */
		append(out, o, s, pos, len);
		return;
	}
	append(out, o, "#=#=", 0, 4);
	append(out, o, s, end_time + 1, len);
}

/*
 * SRS0=HASH=TT=domain=local and SRS1=HASH=forwarder==HASH=TT=domain=local
 * (separator '=', '+' or '-' after SRS0/SRS1).  Returns true if handled.
 */
static bool
fold_srs(char *out, size_t *o, const char *local, size_t len)
{
	if (len < 5 || local[0] != 's' || local[1] != 'r' || local[2] != 's' ||
	    (local[4] != '=' && local[4] != '+' && local[4] != '-'))
		return false;
	if (local[3] == '0') {
		append(out, o, local, 0, 5);
		fold_srs0_tail(out, o, local, 5, len);
		return true;
	}
	if (local[3] == '1') {
		size_t end_hash = find_char(local, 5, len, '=');
		const char *dd = NULL;
		size_t fwd_end;

		if (end_hash + 1 < len)
			dd = memmem(local + end_hash + 1, len - end_hash - 1, "==", 2);
		if (dd == NULL)
			return false;
		fwd_end = (size_t)(dd - local);
		append(out, o, local, 0, 5);
		append(out, o, "#=", 0, 2);
		append(out, o, local, end_hash + 1, fwd_end + 2);
		fold_srs0_tail(out, o, local, fwd_end + 2, len);
		return true;
	}
	return false;
}

static bool
is_word(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/*
 * Replace every all-digit word in s[0..*len) with '#', in place.  A local
 * part that is one all-digit word is an address of its own (numeric
 * mailboxes are common at some providers), not a VERP token: kept.
 */
static void
fold_digit_words(char *s, size_t *len)
{
	size_t in = 0;
	size_t o = 0;

	while (in < *len && isdigit((unsigned char)s[in]))
		in++;
	if (in == *len)
		return;
	in = 0;

	while (in < *len) {
		size_t start = in;
		bool digits = true;

		if (!is_word(s[in])) {
			s[o++] = s[in++];
			continue;
		}
		while (in < *len && is_word(s[in])) {
			if (!isdigit((unsigned char)s[in]))
				digits = false;
			in++;
		}
		if (digits) {
			s[o++] = '#';
		} else {
			memmove(s + o, s + start, in - start);
			o += in - start;
		}
	}
	*len = o;
}

size_t
triplet_normalise_sender(char *out, const char *sender, size_t len)
{
	char work[WORK_MAX];
	char local[WORK_MAX];
	size_t n = lower_copy(work, sender, len, WORK_MAX);
	const char *at = NULL;
	size_t local_len;
	size_t dom_start;
	size_t skip;
	size_t o = 0;
	size_t i;

	for (i = n; i > 0; i--) {
		if (work[i - 1] == '@') {
			at = work + i - 1;
			break;
		}
	}
	local_len = at != NULL ? (size_t)(at - work) : n;
	dom_start = local_len;

	skip = batv_skip(work, local_len);
	if (!fold_srs(local, &o, work + skip, local_len - skip)) {
		size_t plus;

		append(local, &o, work, skip, local_len);
		/* "+ext" only when something precedes the '+'. */
		plus = find_char(local, 1, o, '+');
		if (plus < o)
			o = plus;
	}
	fold_digit_words(local, &o);

	if (o > TRIPLET_MAX_ADDR)
		o = TRIPLET_MAX_ADDR;
	memcpy(out, local, o);
	n = n - dom_start;	/* "@domain" */
	if (o + n > TRIPLET_MAX_ADDR)
		n = TRIPLET_MAX_ADDR - o;
	memcpy(out + o, work + dom_start, n);
	return o + n;
}

size_t
triplet_normalise_recipient(char *out, const char *rcpt, size_t len)
{
	return lower_copy(out, rcpt, len, TRIPLET_MAX_ADDR);
}

bool
triplet_client_addr(char *out, size_t outsz, size_t *outlen,
		    const struct addr *client, const char *text,
		    size_t text_len, const struct triplet_opts *opts)
{
	if (client->family != ADDR_NONE) {
		struct addr net = *client;
		unsigned prefix = addr_bits(&net);

		if (!opts->by_host)
			prefix = net.family == ADDR_V4 ? opts->ipv4_prefix
						       : opts->ipv6_prefix;
		addr_mask(&net, prefix);
		*outlen = addr_format_net(out, outsz, &net, prefix);
		return true;
	}
	*outlen = lower_copy(out, text, text_len, outsz - 1);
	/* Keep the separator byte out of the client part. */
	for (size_t i = 0; i < *outlen; i++) {
		if (out[i] == '\0')
			out[i] = '?';
	}
	out[*outlen] = '\0';
	return false;
}

bool
triplet_client(char *out, size_t outsz, size_t *outlen, const char *addr,
	       size_t addr_len, const struct triplet_opts *opts)
{
	struct addr a;

	(void)addr_parse(&a, addr, addr_len);	/* ADDR_NONE if not */
	return triplet_client_addr(out, outsz, outlen, &a, addr, addr_len, opts);
}

/* The triplet key from the client part already in out. */
static void
finish_key(struct triplet_key *out, const char *sender, size_t sender_len,
	   const char *rcpt, size_t rcpt_len)
{
	size_t o;

	memcpy(out->key, out->client, out->client_len);
	o = out->client_len;
	out->key[o++] = '\0';
	o += triplet_normalise_sender(out->key + o, sender, sender_len);
	out->key[o++] = '\0';
	o += triplet_normalise_recipient(out->key + o, rcpt, rcpt_len);
	out->key_len = o;
}

void
triplet_build_addr(struct triplet_key *out, const struct addr *client,
		   const char *client_text, size_t client_len,
		   const char *sender, size_t sender_len, const char *rcpt,
		   size_t rcpt_len, const struct triplet_opts *opts)
{
	out->client_is_net = triplet_client_addr(out->client,
						 sizeof(out->client),
						 &out->client_len, client,
						 client_text, client_len, opts);
	finish_key(out, sender, sender_len, rcpt, rcpt_len);
}

void
triplet_build(struct triplet_key *out, const char *client_addr,
	      size_t client_len, const char *sender, size_t sender_len,
	      const char *rcpt, size_t rcpt_len, const struct triplet_opts *opts)
{
	struct addr a;

	(void)addr_parse(&a, client_addr, client_len);	/* ADDR_NONE if not */
	triplet_build_addr(out, &a, client_addr, client_len, sender, sender_len,
			   rcpt, rcpt_len, opts);
}

bool
triplet_build_ident(struct triplet_key *out, char tag, const char *domain,
		    size_t domain_len, const char *sender, size_t sender_len,
		    const char *rcpt, size_t rcpt_len)
{
	/* "t:" + domain + NUL must fit the client buffer, uncut. */
	if (domain_len == 0 || domain_len + 3 > sizeof(out->client) ||
	    memchr(domain, '\0', domain_len) != NULL)
		return false;
	out->client[0] = tag;
	out->client[1] = ':';
	memcpy(out->client + 2, domain, domain_len);
	out->client_len = domain_len + 2;
	out->client[out->client_len] = '\0';
	out->client_is_net = false;
	finish_key(out, sender, sender_len, rcpt, rcpt_len);
	return true;
}
