/*
 * replay_names - what a request of the model says: the client's name and
 * HELO, the envelope sender and the SPF result, each sender in its real
 * naming scheme (replay_model.c says who the senders are).  Names are
 * forward-confirmed by construction: a sender with no confirmed name is
 * "unknown", as Postfix says.
 */
#include <stdio.h>

#include "replay_model_int.h"

const struct isp replay_isps[] = {
	{0x49000000, 8, 0.95, 0, "hsd1.ca.comcast.net"},		/* 73/8 */
	{0x5dc00000, 10, 0.9, 1, "dip0.t-ipconnect.de"},		/* 93.192/10 */
	{0x47600000, 11, 0.9, 2, "nycmny.fios.verizon.net"},		/* 71.96/11 */
	{0x58000000, 11, 0.8, 3, "dynamicip.rima-tde.net"},		/* 88/11 */
	{0x71a00000, 11, 0.1, 4, "vnpt.example.vn"},			/* 113.160/11 */
	{0x75c00000, 10, 0.2, 4, "broadband.example.in"},		/* 117.192/10 */
	{0xb1000000, 8, 0.3, 4, "static.desktop.example-telecom.br"},	/* 177/8 */
	{0x5b000000, 10, 0.7, 5, "subs.proxad.net"},			/* 91/10 */
};
const size_t replay_nisps = sizeof(replay_isps) / sizeof(replay_isps[0]);

const struct forged_domain replay_forged[] = {
	{"gmail.com", REPLAY_SPF_SOFTFAIL}, {"outlook.com", REPLAY_SPF_SOFTFAIL},
	{"paypal.com", REPLAY_SPF_FAIL}, {"amazon.com", REPLAY_SPF_SOFTFAIL},
	{"apple.com", REPLAY_SPF_SOFTFAIL}, {"microsoft.com", REPLAY_SPF_SOFTFAIL},
	{"dhl.com", REPLAY_SPF_FAIL}, {"yahoo.com", REPLAY_SPF_NEUTRAL},
	{"netflix.com", REPLAY_SPF_SOFTFAIL}, {"ups.com", REPLAY_SPF_FAIL},
};
const size_t replay_nforged = sizeof(replay_forged) / sizeof(replay_forged[0]);

const char *const replay_first_names[] = {
	"anna", "ben", "carla", "david", "eva", "frank", "gina", "hugo",
	"ines", "jan", "kim", "lena", "mark", "nina", "olaf", "paula",
	"quinn", "rosa", "sam", "tina", "uwe", "vera", "will", "xenia",
};
const size_t replay_nfirst =
	sizeof(replay_first_names) / sizeof(replay_first_names[0]);

#define O1(a) ((a) >> 24)
#define O2(a) (((a) >> 16) & 255)
#define O3(a) (((a) >> 8) & 255)
#define O4(a) ((a) & 255)

static const char *
user(uint32_t i)
{
	return replay_first_names[i % replay_nfirst];
}

void
replay_names_mta(const replay_model_t *m, const struct message *g, uint32_t a,
		 struct replay_fields *f, struct replay_request *rq)
{
	const struct mta *t = &m->mtas[g->src];

	snprintf(f->sender, sizeof(f->sender), "%s@org%u.example",
		 user(g->src * 5 + g->who), g->src);
	snprintf(f->helo, sizeof(f->helo), "mail.org%u.example", g->src);
	switch (t->name_kind) {
	case NAME_OWN:
		snprintf(f->client_name, sizeof(f->client_name), "%s", f->helo);
		break;
	case NAME_HOSTED:
		/* a hosting company's relay: many customers' domains, one name */
		snprintf(f->client_name, sizeof(f->client_name),
			 "mx%u.hosting%u.example", O4(a), g->src % 20);
		snprintf(f->helo, sizeof(f->helo), "%s", f->client_name);
		/* customers' records include the host's */
		snprintf(f->spf_authorised_by, sizeof(f->spf_authorised_by),
			 "spf.hosting%u.example", g->src % 20);
		break;
	case NAME_GENERIC:
		snprintf(f->client_name, sizeof(f->client_name),
			 "static.%u.%u.%u.%u.clients.hoster%u.example", O4(a),
			 O3(a), O2(a), O1(a), g->src % 7);
		break;
	default:
		snprintf(f->client_name, sizeof(f->client_name), "unknown");
		break;
	}
	rq->spf = (enum replay_spf)t->spf;
}

/* Office 365's names: data centre, region, pool number. */
static void
o365_name(char *out, size_t outsz, uint32_t a)
{
	static const char *const dcs[] = {"dm6", "bn8", "co1", "mw2", "sn1",
					  "am6", "db5", "he1"};
	unsigned dc = O3(a) % 8;

	snprintf(out, outsz, "mail-%s%s%02uon%04u.outbound.protection.outlook.com",
		 dcs[dc], dc < 5 ? "nam" : "eur", 10 + (O3(a) & 3),
		 2000 + O4(a) * 3);
}

void
replay_names_pool(const replay_model_t *m, const struct message *g,
		  uint32_t a, struct replay_fields *f, struct replay_request *rq)
{
	static const char *const sites[] = {"atl", "suw", "sea"};

	switch (g->cls) {
	case REPLAY_O365:
		snprintf(f->sender, sizeof(f->sender), "%s@cust%u.example",
			 user(g->src * 3 + g->who), g->src);
		o365_name(f->client_name, sizeof(f->client_name), a);
		snprintf(f->spf_authorised_by, sizeof(f->spf_authorised_by),
			 "spf.protection.outlook.com");
		break;
	case REPLAY_GMAIL:
		if (g->src % 5 == 0)	/* Google Workspace customers */
			snprintf(f->sender, sizeof(f->sender), "%s@ws%u.example",
				 user(g->who), g->src);
		else
			snprintf(f->sender, sizeof(f->sender), "%s.%u@gmail.com",
				 user(g->src), g->src);
		snprintf(f->client_name, sizeof(f->client_name),
			 "mail-%c%c%u-f%u.google.com", 'a' + O3(a) % 26,
			 'a' + (O3(a) / 26) % 26, 1 + O2(a) % 2, O4(a));
		snprintf(f->spf_authorised_by, sizeof(f->spf_authorised_by),
			 "_spf.google.com");
		break;
	case REPLAY_SES:
		/* one return path per message: a message id */
		snprintf(f->sender, sizeof(f->sender),
			 "0100018c%08x-%04x%04x-0000-000000@amazonses.com",
			 g->token, g->src, g->who);
		snprintf(f->client_name, sizeof(f->client_name),
			 "a%u-%u.smtp-out.amazonses.com", O3(a), O4(a));
		break;
	case REPLAY_SENDGRID:
		snprintf(f->sender, sizeof(f->sender),
			 "bounces+%u-%04x-%s=dest.example@em%u.sgcust%u.example",
			 1000000 + g->src * 10, g->token & 0xffff,
			 user(g->rcpt), 1000 + g->src, g->src);
		snprintf(f->client_name, sizeof(f->client_name),
			 "o%u.ptr%u.sendgrid.net", 1 + O4(a) % 4,
			 1000 + (O3(a) * 13 + O4(a)) % 9000);
		snprintf(f->spf_authorised_by, sizeof(f->spf_authorised_by),
			 "sendgrid.net");
		break;
	default:	/* Mailchimp: the return path names the sending host */
		snprintf(f->client_name, sizeof(f->client_name),
			 "mail%u.%s%u.mcsv.net", O4(a), sites[O3(a) % 3],
			 10 + O3(a) % 32);
		snprintf(f->sender, sizeof(f->sender),
			 "bounce-mc.us%u_%u.%u-%08x@%.60s", 1 + g->src % 20,
			 10000000 + g->src, 1000000 + g->token % 100000,
			 (g->rcpt * 2654435761u) ^ g->src, f->client_name);
		break;
	}
	snprintf(f->helo, sizeof(f->helo), "%s", f->client_name);
	rq->spf = REPLAY_SPF_PASS;
}

/* An ISP's name for a customer's address. */
static void
isp_name(char *out, size_t outsz, const struct isp *isp, uint32_t a)
{
	switch (isp->style) {
	case 0:
		snprintf(out, outsz, "c-%u-%u-%u-%u.%s", O1(a), O2(a), O3(a),
			 O4(a), isp->domain);
		break;
	case 1:
		snprintf(out, outsz, "p%08X.%s", a, isp->domain);
		break;
	case 2:
		snprintf(out, outsz, "pool-%u-%u-%u-%u.%s", O1(a), O2(a), O3(a),
			 O4(a), isp->domain);
		break;
	case 3:
		snprintf(out, outsz, "%u.red-%u-%u-%u.%s", O4(a), O1(a), O2(a),
			 O3(a), isp->domain);
		break;
	default:
		snprintf(out, outsz, "%u-%u-%u-%u.%s", O1(a), O2(a), O3(a),
			 O4(a), isp->domain);
		break;
	}
}

void
replay_names_bot(const replay_model_t *m, const struct message *g,
		 uint32_t a, struct replay_fields *f, struct replay_request *rq)
{
	static const char *const roles[] = {"service", "security", "no-reply",
					    "billing", "support"};

	if (g->cls == REPLAY_BOT_SNOWSHOE) {
		/* verified names in the operator's domain, senders in others */
		snprintf(f->helo, sizeof(f->helo), "mta%u.op%u-mailer.example",
			 O4(a), g->src);
		/* bit 0: this send has no forward-confirmed name */
		snprintf(f->client_name, sizeof(f->client_name), "%s",
			 g->token & 1 ? "unknown" : f->helo);
		snprintf(f->sender, sizeof(f->sender), "news@deals%u.example",
			 g->who);
		rq->spf = REPLAY_SPF_PASS;
		return;
	}
	if (g->token & 1)	/* the ISP names this address */
		isp_name(f->client_name, sizeof(f->client_name),
			 &replay_isps[g->src], a);
	else
		snprintf(f->client_name, sizeof(f->client_name), "unknown");
	snprintf(f->helo, sizeof(f->helo), "%s",
		 g->token & 2 ? "localhost" : "DESKTOP-4F2K9Q");
	if (g->cls == REPLAY_BOT_FORGED)
		snprintf(f->sender, sizeof(f->sender), "%s@%s",
			 roles[(g->token >> 2) % 5], replay_forged[g->who].domain);
	else
		snprintf(f->sender, sizeof(f->sender), "%s%u@promo%u.example",
			 user(g->who), g->who % 97, g->who % 700);
	rq->spf = (enum replay_spf)g->spf;
}
