/*
 * replay_model_int - the traffic model's own types and tables, shared by
 * its two files: replay_model.c (population, schedules, messages) and
 * replay_names.c (the names, senders and SPF results of a request).
 * Nothing outside the model includes this.
 */
#ifndef GREYHOLD_REPLAY_MODEL_INT_H
#define GREYHOLD_REPLAY_MODEL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "replay.h"

#define DAY 86400
#define MIN 60
#define MAX_ATTEMPTS 64
#define OUR_USERS 3000
#define MAX_CONTACTS 6
#define POOL_NETS 64

enum name_kind {
	NAME_OWN,	/* mail.orgN.example, forward-confirmed */
	NAME_HOSTED,	/* a hosting company's relay: mxN.hostingK.example */
	NAME_NONE,	/* no forward-confirmed name: "unknown" */
	NAME_GENERIC,	/* the hoster's name for the address */
};

struct mta {
	uint32_t addr;
	uint8_t cls;
	uint8_t name_kind;
	uint8_t spf;
	uint8_t ncontacts;
	uint16_t queue_interval;	/* Sendmail: seconds */
	uint16_t contacts[MAX_CONTACTS];
};

/* A customer of a pool, or a pool's sending user: who writes to whom. */
struct account {
	uint16_t contacts[2];
};

struct pool {
	enum replay_class cls;
	const uint32_t *nets;		/* /24 networks, host order */
	size_t nnets;
	double same_addr;		/* a retry comes from the same address */
	double same_net;		/* else it stays in the /24 */
	unsigned naccounts;
	double contact_share;		/* mail to a regular correspondent */
};

struct isp {
	uint32_t base;		/* network, host order */
	unsigned bits;		/* prefix length */
	double named;		/* share with a PTR name */
	int style;		/* name format, see isp_name() */
	const char *domain;
};

/* Residential ranges bots send from (replay_names.c). */
extern const struct isp replay_isps[];
extern const size_t replay_nisps;

/* Big senders' domains bots forge, with what their SPF says then. */
struct forged_domain {
	const char *domain;
	enum replay_spf spf;
};
extern const struct forged_domain replay_forged[];
extern const size_t replay_nforged;

extern const char *const replay_first_names[];
extern const size_t replay_nfirst;

#define SNOW_OPS 8
#define SNOW_NETS 3
#define SNOW_DOMAINS 12

struct message {
	int64_t t0;
	uint32_t first;		/* index of attempt 0 in the attempt arrays */
	uint32_t src;		/* MTA, account, ISP or operator index */
	uint32_t who;		/* sender index within src */
	uint32_t rcpt;		/* our user */
	uint32_t token;		/* per message: message ids, campaign numbers */
	uint16_t day;
	uint8_t cls;
	uint8_t nattempts;
	uint8_t spf;		/* bots: the SPF result */
};

struct replay_model {
	struct replay_model_opts o;
	struct mta *mtas;
	size_t nmtas;
	struct pool pools[REPLAY_NCLASSES];
	uint32_t pool_nets[REPLAY_NCLASSES][POOL_NETS];
	struct account *accounts[REPLAY_NCLASSES];
	uint32_t snow_nets[SNOW_OPS][SNOW_NETS];
	uint16_t *snow_targets;	/* per campaign, o.snow_targets users */

	struct message *msgs;
	size_t nmsgs, msgcap;
	uint32_t *offsets;	/* seconds after t0, per attempt */
	uint32_t *addrs;	/* client address per attempt */
	size_t natt, attcap;
};

void replay_names_mta(const replay_model_t *m, const struct message *g,
		      uint32_t a, struct replay_fields *f,
		      struct replay_request *rq);
void replay_names_pool(const replay_model_t *m, const struct message *g,
		       uint32_t a, struct replay_fields *f,
		       struct replay_request *rq);
void replay_names_bot(const replay_model_t *m, const struct message *g,
		      uint32_t a, struct replay_fields *f,
		      struct replay_request *rq);

#endif
