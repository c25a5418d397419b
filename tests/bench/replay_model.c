/*
 * replay_model - the simulated senders of a day of mail, deterministic
 * from a seed.
 *
 * Legitimate mail (opts->legit messages a day):
 *   small MTAs (half): one fixed address each, a name of their own
 *     (mail.orgN.example), a hosting company's relay name, no verified name
 *     at all, or a hoster's generic name carrying the address; SPF passes
 *     for most.  Each retries on its software's schedule (below).  Most
 *     of their mail goes to a few regular correspondents, so later mail
 *     often meets a triplet that already passed;
 *   provider pools (the other half): Office 365, Gmail, SES, SendGrid and
 *     Mailchimp, with their real address blocks and naming schemes, SPF
 *     passing for the pool, retrying from another address of the pool,
 *     often in another /24.  Mailchimp's return path names the sending
 *     host, so its sender changes with every retry.
 * Senders that never retry (opts->bots messages a day): residential bots
 *   (no verified name, or the ISP's name for the address), bots forging
 *   big senders' domains (SPF fails or softfails), and snowshoe operators
 *   on rented ranges with verified names and sender domains of their own
 *   whose SPF passes, the name's domain never the sender's; their
 *   campaigns reach the same recipient more than once a day from other
 *   addresses of their ranges, and they move to new ranges and new
 *   sender domains every day.
 *
 * Retry schedules (first retry after the first attempt, then):
 *   Postfix   8-16 min, then backoff doubling from 10 min to 67 min
 *             (maximal_backoff_time 4000 s) plus up to a 5-min queue run
 *   Exim      15-45 min (retry rule F,2h,15m and the queue runner's
 *             interval), every 15-20 min for 2 h, then 1 h growing x1.5
 *   Sendmail  its queue interval (15-30 min, fixed per host) every time
 *   Exchange  8-15 min, then every 10-15 min
 *   Office365 8-20 min, then 15, 20, 30, 45, 60 min ...
 *   Gmail     8-15 min, then doubling from 15 min to 2 h
 *   SES       8-20 min, then doubling from 10 min to 1 h
 *   SendGrid  8-20 min, then doubling from 20 min to 2 h
 *   Mailchimp 10-30 min, then doubling from 30 min to 4 h
 * Every sender gives up after opts->horizon.
 *
 * Everything is generated at create time from one splitmix64 stream, so
 * a seed always gives the same day; the model allocates, the caller frees
 * it with replay_model_free().
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay_model_int.h"

struct rng {
	uint64_t s;
};

static uint64_t
rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double
rng_unit(struct rng *r)
{
	return (double)(rng_next(r) >> 11) / 9007199254740992.0;
}

static uint32_t
rng_below(struct rng *r, uint32_t n)
{
	return n == 0 ? 0 : (uint32_t)(rng_unit(r) * n);
}

static int64_t
rng_between(struct rng *r, int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rng_unit(r) * (double)(hi - lo + 1));
}

static bool
rng_chance(struct rng *r, double p)
{
	return rng_unit(r) < p;
}

/* Heavy-tailed index in [0, n): a few senders send most of the mail. */
static uint32_t
rng_popular(struct rng *r, uint32_t n)
{
	double u = rng_unit(r);

	return (uint32_t)(pow(u, 2.5) * n) % n;
}

/* Provider blocks: each pool's /24s are taken from these (host order). */
static const uint32_t o365_blocks[] = {0x286b0000, 0x34640000, 0x682f0000};	/* 40.107/16 52.100/14 104.47/17 */
static const uint32_t gmail_blocks[] = {0xd1558000, 0x4a7d0000};		/* 209.85.128/17 74.125/16 */
static const uint32_t ses_blocks[] = {0x36f00000, 0x17fbe000};		/* 54.240/18 23.251.224/19 */
static const uint32_t sendgrid_blocks[] = {0xa7590000, 0x95480000};		/* 167.89/17 149.72/16 */
static const uint32_t mailchimp_blocks[] = {0xc6028000, 0xcdc98000};		/* 198.2.128/18 205.201.128/20 */

bool
replay_class_legit(enum replay_class c)
{
	return c < REPLAY_BOT_DYNAMIC;
}

bool
replay_class_pool(enum replay_class c)
{
	return c >= REPLAY_O365 && c <= REPLAY_MAILCHIMP;
}

const char *
replay_class_name(enum replay_class c)
{
	static const char *const names[REPLAY_NCLASSES] = {
		"Postfix", "Exim", "Sendmail", "Exchange", "Office 365",
		"Gmail", "SES", "SendGrid", "Mailchimp", "bot, residential",
		"bot, forged big sender", "bot, snowshoe",
	};

	return c < REPLAY_NCLASSES ? names[c] : "?";
}

const char *
replay_spf_name(enum replay_spf s)
{
	static const char *const names[] = {"none", "pass", "fail", "softfail",
					    "neutral"};

	return s <= REPLAY_SPF_NEUTRAL ? names[s] : "?";
}

/* Small MTAs' addresses: first octets no provider or bot range uses. */
static uint32_t
random_server_addr(struct rng *r)
{
	static const uint8_t firsts[] = {
		5, 31, 37, 46, 62, 77, 78, 80, 81, 82, 84, 85, 87, 89, 92,
		94, 95, 109, 141, 145, 151, 176, 178, 185, 188, 193, 194, 195,
		212, 213, 217,
	};
	uint32_t a = firsts[rng_below(r, sizeof(firsts))];

	return a << 24 | (rng_below(r, 256) << 16) | (rng_below(r, 256) << 8) |
	       (1 + rng_below(r, 254));
}

static void
fill_contacts(struct rng *r, uint16_t *c, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		c[i] = (uint16_t)rng_below(r, OUR_USERS);
}

static void
make_mtas(replay_model_t *m, struct rng *r, size_t n)
{
	size_t i;

	m->nmtas = n;
	for (i = 0; i < n; i++) {
		struct mta *t = &m->mtas[i];
		double u = rng_unit(r), s = rng_unit(r);

		t->addr = random_server_addr(r);
		t->cls = u < 0.45 ? REPLAY_POSTFIX : u < 0.70 ? REPLAY_EXIM
			: u < 0.80 ? REPLAY_SENDMAIL : REPLAY_EXCHANGE;
		t->name_kind = s < 0.60 ? NAME_OWN : s < 0.75 ? NAME_HOSTED
			: s < 0.90 ? NAME_NONE : NAME_GENERIC;
		t->spf = rng_chance(r, t->name_kind == NAME_OWN ? 0.85 : 0.7)
			 ? REPLAY_SPF_PASS : REPLAY_SPF_NONE;
		t->queue_interval = (uint16_t)rng_between(r, 15 * MIN, 30 * MIN);
		t->ncontacts = (uint8_t)(1 + rng_below(r, MAX_CONTACTS));
		fill_contacts(r, t->contacts, t->ncontacts);
	}
}

static void
make_pool(replay_model_t *m, struct rng *r, enum replay_class c,
	  const uint32_t *blocks, size_t nblocks, double same_addr,
	  double same_net, unsigned naccounts, double contact_share)
{
	struct pool *p = &m->pools[c];
	size_t i;

	p->cls = c;
	p->nets = m->pool_nets[c];
	p->nnets = POOL_NETS;
	p->same_addr = same_addr;
	p->same_net = same_net;
	p->naccounts = naccounts;
	p->contact_share = contact_share;
	for (i = 0; i < POOL_NETS; i++) {
		uint32_t block = blocks[i % nblocks];

		/* a /24 within the first 32 /24s of the block */
		m->pool_nets[c][i] = block + ((uint32_t)((i / nblocks) % 32) << 8);
	}
	for (i = 0; i < naccounts; i++)
		fill_contacts(r, m->accounts[c][i].contacts, 2);
}

static void
make_snowshoe(replay_model_t *m, struct rng *r)
{
	size_t i, j;

	for (i = 0; i < SNOW_OPS; i++) {
		uint32_t base = (uint32_t)(45 + 100 * (i % 2)) << 24 |
				(rng_below(r, 256) << 16) | (rng_below(r, 250) << 8);

		for (j = 0; j < SNOW_NETS; j++)
			m->snow_nets[i][j] = base + ((uint32_t)j << 8);
	}
	for (i = 0; i < SNOW_OPS * SNOW_DOMAINS; i++)
		for (j = 0; j < m->o.snow_targets; j++)
			m->snow_targets[i * m->o.snow_targets + j] =
				(uint16_t)rng_below(r, OUR_USERS);
}

/* ---- schedules ---------------------------------------------------------- */

static unsigned
schedule(enum replay_class c, struct rng *r, uint16_t queue_interval,
	 int64_t horizon, uint32_t *off)
{
	int64_t t, step;
	unsigned n = 1;

	off[0] = 0;
	switch (c) {
	case REPLAY_POSTFIX:
		t = rng_between(r, 8 * MIN, 16 * MIN);
		step = 10 * MIN;
		break;
	case REPLAY_EXIM:
		t = rng_between(r, 15 * MIN, 45 * MIN);
		step = 15 * MIN;
		break;
	case REPLAY_SENDMAIL:
		t = queue_interval;
		step = queue_interval;
		break;
	case REPLAY_EXCHANGE:
	case REPLAY_GMAIL:
		t = rng_between(r, 8 * MIN, 15 * MIN);
		step = c == REPLAY_GMAIL ? 15 * MIN : 10 * MIN;
		break;
	case REPLAY_MAILCHIMP:
		t = rng_between(r, 10 * MIN, 30 * MIN);
		step = 30 * MIN;
		break;
	case REPLAY_O365:
	case REPLAY_SES:
	case REPLAY_SENDGRID:
		t = rng_between(r, 8 * MIN, 20 * MIN);
		step = c == REPLAY_O365 ? 15 * MIN : c == REPLAY_SES ? 10 * MIN
						    : 20 * MIN;
		break;
	default:
		return 1;	/* never retries */
	}
	while (t <= horizon && n < MAX_ATTEMPTS) {
		off[n++] = (uint32_t)t;
		switch (c) {
		case REPLAY_POSTFIX:
			t += step + rng_between(r, 0, 5 * MIN);
			step = step * 2 > 4000 ? 4000 : step * 2;
			break;
		case REPLAY_EXIM:
			if (t < 2 * 3600) {
				t += rng_between(r, 15 * MIN, 20 * MIN);
			} else {
				t += step;
				step = step < 3600 ? 3600 : step * 3 / 2;
			}
			break;
		case REPLAY_SENDMAIL:
			t += step + rng_between(r, 0, MIN);
			break;
		case REPLAY_EXCHANGE:
			t += rng_between(r, 10 * MIN, 15 * MIN);
			break;
		case REPLAY_O365:
			t += step;
			step = step < 20 * MIN ? 20 * MIN : step * 3 / 2;
			if (step > 2 * 3600)
				step = 2 * 3600;
			break;
		default:	/* doubling pools */
			t += step + rng_between(r, 0, MIN);
			step *= 2;
			if (c == REPLAY_SES && step > 3600)
				step = 3600;
			else if (c == REPLAY_MAILCHIMP && step > 4 * 3600)
				step = 4 * 3600;
			else if (step > 2 * 3600)
				step = 2 * 3600;
			break;
		}
	}
	return n;
}

/* Seconds into a day; legitimate mail follows office hours. */
static int64_t
time_of_day(struct rng *r, bool office)
{
	for (;;) {
		double h = rng_unit(r) * 24.0;
		double w = office ? 0.25 + 0.75 * exp(-pow((h - 13.0) / 4.5, 2))
				  : 0.7 + 0.3 * sin(h / 24.0 * 6.2831853);

		if (rng_unit(r) < w)
			return (int64_t)(h * 3600.0);
	}
}

/* ---- messages ----------------------------------------------------------- */

static int
grow(replay_model_t *m, unsigned natt)
{
	if (m->nmsgs == m->msgcap) {
		size_t cap = m->msgcap ? m->msgcap * 2 : 4096;
		struct message *p = realloc(m->msgs, cap * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		m->msgs = p;
		m->msgcap = cap;
	}
	if (m->natt + natt > m->attcap) {
		size_t cap = m->attcap ? m->attcap * 2 : 65536;
		uint32_t *o = realloc(m->offsets, cap * sizeof(*o));
		uint32_t *a;

		if (o == NULL)
			return -ENOMEM;
		m->offsets = o;
		a = realloc(m->addrs, cap * sizeof(*a));
		if (a == NULL)
			return -ENOMEM;
		m->addrs = a;
		m->attcap = cap;
	}
	return 0;
}

static uint32_t
pool_addr(const struct pool *p, struct rng *r, uint32_t prev, bool first)
{
	uint32_t net;

	if (!first && rng_chance(r, p->same_addr))
		return prev;
	if (!first && rng_chance(r, p->same_net))
		net = prev & 0xffffff00u;
	else
		net = p->nets[rng_below(r, (uint32_t)p->nnets)];
	return net | (1 + rng_below(r, 254));
}

static uint32_t
isp_addr(struct rng *r, size_t isp)
{
	uint32_t host = (uint32_t)(rng_next(r) & ((1ULL << (32 - replay_isps[isp].bits)) - 1));

	return replay_isps[isp].base | host | 1;
}

static int
add_message(replay_model_t *m, struct rng *r, enum replay_class c,
	    unsigned day)
{
	uint32_t off[MAX_ATTEMPTS], addr[MAX_ATTEMPTS];
	struct message *msg;
	const struct pool *p = &m->pools[c];
	unsigned n, k;
	struct mta *t = NULL;

	memset(addr, 0, sizeof(addr));
	off[0] = 0;
	if (grow(m, MAX_ATTEMPTS) != 0)
		return -ENOMEM;
	msg = &m->msgs[m->nmsgs];
	memset(msg, 0, sizeof(*msg));
	msg->cls = (uint8_t)c;
	msg->day = (uint16_t)day;
	msg->token = (uint32_t)rng_next(r);
	msg->t0 = m->o.start + (int64_t)day * DAY +
		  time_of_day(r, replay_class_legit(c));

	if (c <= REPLAY_EXCHANGE) {
		/* A small MTA of this software, picked by how much it sends. */
		do {
			msg->src = rng_popular(r, (uint32_t)m->nmtas);
			t = &m->mtas[msg->src];
		} while (t->cls != c);
		msg->who = rng_below(r, 3);
		msg->rcpt = rng_chance(r, 0.85)
			    ? t->contacts[rng_below(r, t->ncontacts)]
			    : rng_below(r, OUR_USERS);
		n = schedule(c, r, t->queue_interval, m->o.horizon, off);
		for (k = 0; k < n; k++)
			addr[k] = t->addr;
	} else if (replay_class_pool(c)) {
		msg->src = rng_popular(r, p->naccounts);
		msg->who = rng_below(r, 4);
		msg->rcpt = rng_chance(r, p->contact_share)
			    ? m->accounts[c][msg->src].contacts[rng_below(r, 2)]
			    : rng_below(r, OUR_USERS);
		n = schedule(c, r, 0, m->o.horizon, off);
		for (k = 0; k < n; k++)
			addr[k] = pool_addr(p, r, k ? addr[k - 1] : 0, k == 0);
	} else if (c == REPLAY_BOT_SNOWSHOE) {
		uint32_t op = rng_below(r, SNOW_OPS);
		uint32_t campaign = op * SNOW_DOMAINS + rng_below(r, SNOW_DOMAINS);

		uint32_t net = m->snow_nets[op][rng_below(r, SNOW_NETS)];

		msg->src = op;
		/* sender domains and ranges are burnt daily */
		msg->who = day * 1000 + campaign;
		msg->rcpt = m->snow_targets[campaign * m->o.snow_targets +
					    rng_below(r, m->o.snow_targets)];
		msg->spf = REPLAY_SPF_PASS;
		n = 1;
		net = (net & 0xff00ffffu) |
		      ((((net >> 16) + day * 37) & 255) << 16);
		addr[0] = net | (1 + rng_below(r, 254));
		/* a fifth send with no forward-confirmed name */
		msg->token = (msg->token & ~1u) | rng_chance(r, 0.2);
	} else {
		size_t isp = rng_below(r, replay_nisps);

		msg->src = (uint32_t)isp;
		msg->rcpt = rng_below(r, OUR_USERS);
		if (c == REPLAY_BOT_FORGED) {
			msg->who = rng_below(r, (uint32_t)replay_nforged);
			msg->spf = replay_forged[msg->who].spf;
		} else {
			double u = rng_unit(r);

			msg->who = rng_below(r, 2000);	/* campaign */
			msg->spf = u < 0.6 ? REPLAY_SPF_NONE : u < 0.8
				   ? REPLAY_SPF_SOFTFAIL : REPLAY_SPF_FAIL;
		}
		n = 1;
		addr[0] = isp_addr(r, isp);
		/* whether the ISP gives this address a name */
		msg->token = (msg->token & ~1u) |
			     (uint32_t)rng_chance(r, replay_isps[isp].named);
	}
	msg->nattempts = (uint8_t)n;
	msg->first = (uint32_t)m->natt;
	memcpy(m->offsets + m->natt, off, n * sizeof(off[0]));
	memcpy(m->addrs + m->natt, addr, n * sizeof(addr[0]));
	m->natt += n;
	m->nmsgs++;
	return 0;
}

/* Messages of each class per day, from the totals. */
static unsigned
class_count(const struct replay_model_opts *o, enum replay_class c)
{
	/* per mille of legitimate mail, then of bot mail */
	static const unsigned share[REPLAY_NCLASSES] = {
		225, 125, 50, 100,		/* small MTAs: 500 */
		180, 140, 70, 60, 50,		/* pools: 500 */
		530, 270, 200,			/* bots */
	};

	return (replay_class_legit(c) ? o->legit : o->bots) * share[c] / 1000;
}

static int
alloc_accounts(replay_model_t *m)
{
	static const unsigned n[REPLAY_NCLASSES] = {
		[REPLAY_O365] = 600, [REPLAY_GMAIL] = 2500, [REPLAY_SES] = 80,
		[REPLAY_SENDGRID] = 150, [REPLAY_MAILCHIMP] = 120,
	};
	int c;

	for (c = 0; c < REPLAY_NCLASSES; c++) {
		if (n[c] == 0)
			continue;
		m->accounts[c] = calloc(n[c], sizeof(struct account));
		if (m->accounts[c] == NULL)
			return -ENOMEM;
	}
	return 0;
}

int
replay_model_create(replay_model_t **out, const struct replay_model_opts *o)
{
	replay_model_t *m;
	struct rng r = {o->seed};
	unsigned day, i;
	int c, rc = -ENOMEM;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->o = *o;
	if (m->o.snow_targets == 0)
		m->o.snow_targets = 1;
	m->mtas = calloc(o->legit / 8 + 16, sizeof(*m->mtas));
	m->snow_targets = calloc((size_t)SNOW_OPS * SNOW_DOMAINS *
				 m->o.snow_targets, sizeof(*m->snow_targets));
	if (m->mtas == NULL || m->snow_targets == NULL || alloc_accounts(m) != 0)
		goto fail;
	make_mtas(m, &r, o->legit / 8 + 16);
	/*
	 * How a retry leaves the pool: from the same address, else from the
	 * same /24, else anywhere in the pool.  Mailchimp keeps a message on
	 * the host that took it more often than the others do, but its
	 * return path names that host, so only the same host meets the
	 * triplet again.
	 */
	make_pool(m, &r, REPLAY_O365, o365_blocks, 3, 0.0, 0.2, 600, 0.7);
	make_pool(m, &r, REPLAY_GMAIL, gmail_blocks, 2, 0.1, 0.3, 2500, 0.6);
	make_pool(m, &r, REPLAY_SES, ses_blocks, 2, 0.1, 0.3, 80, 0.3);
	make_pool(m, &r, REPLAY_SENDGRID, sendgrid_blocks, 2, 0.2, 0.4, 150, 0.5);
	make_pool(m, &r, REPLAY_MAILCHIMP, mailchimp_blocks, 2, 0.35, 0.1, 120, 0.9);
	make_snowshoe(m, &r);

	for (day = 0; day < o->days; day++) {
		for (c = 0; c < REPLAY_NCLASSES; c++) {
			unsigned n = class_count(o, (enum replay_class)c);

			for (i = 0; i < n; i++) {
				rc = add_message(m, &r, (enum replay_class)c, day);
				if (rc != 0)
					goto fail;
			}
		}
	}
	*out = m;
	return 0;
fail:
	replay_model_free(m);
	return rc;
}

void
replay_model_free(replay_model_t *m)
{
	int c;

	if (m == NULL)
		return;
	for (c = 0; c < REPLAY_NCLASSES; c++)
		free(m->accounts[c]);
	free(m->mtas);
	free(m->snow_targets);
	free(m->msgs);
	free(m->offsets);
	free(m->addrs);
	free(m);
}

size_t
replay_model_messages(const replay_model_t *m)
{
	return m->nmsgs;
}

enum replay_class
replay_model_class(const replay_model_t *m, size_t msg)
{
	return (enum replay_class)m->msgs[msg].cls;
}

unsigned
replay_model_day(const replay_model_t *m, size_t msg)
{
	return m->msgs[msg].day;
}

unsigned
replay_model_attempts(const replay_model_t *m, size_t msg)
{
	return m->msgs[msg].nattempts;
}

int64_t
replay_model_time(const replay_model_t *m, size_t msg, unsigned k)
{
	const struct message *g = &m->msgs[msg];

	return g->t0 + m->offsets[g->first + k];
}

void
replay_model_request(const replay_model_t *m, size_t msg, unsigned k,
		     struct replay_fields *f, struct replay_request *rq)
{
	const struct message *g = &m->msgs[msg];
	uint32_t a = m->addrs[g->first + k];

	snprintf(f->client_address, sizeof(f->client_address), "%u.%u.%u.%u",
		 a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
	snprintf(f->recipient, sizeof(f->recipient), "%s%u@dest.example",
		 replay_first_names[g->rcpt % replay_nfirst],
		 (unsigned)(g->rcpt / replay_nfirst));
	rq->time = replay_model_time(m, msg, k);
	rq->cls = (enum replay_class)g->cls;
	rq->spf = REPLAY_SPF_NONE;
	f->spf_authorised_by[0] = '\0';
	if (g->cls <= REPLAY_EXCHANGE)
		replay_names_mta(m, g, a, f, rq);
	else if (replay_class_pool((enum replay_class)g->cls))
		replay_names_pool(m, g, a, f, rq);
	else
		replay_names_bot(m, g, a, f, rq);
	rq->client_address = f->client_address;
	rq->client_name = f->client_name;
	rq->helo = f->helo;
	rq->sender = f->sender;
	rq->recipient = f->recipient;
	/* A pass the model gives no provider for: the sender's own record. */
	if (rq->spf == REPLAY_SPF_PASS && f->spf_authorised_by[0] == '\0') {
		const char *at = strrchr(f->sender, '@');

		snprintf(f->spf_authorised_by, sizeof(f->spf_authorised_by), "%s",
			 at != NULL ? at + 1 : f->helo);
	}
	rq->spf_authorised_by = f->spf_authorised_by;
}
