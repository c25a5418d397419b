/*
 * record_view - records and keys as table rows, sentences and JSON, on
 * standard output (see record_view.c).
 */
#ifndef GREYHOLD_RECORD_VIEW_H
#define GREYHOLD_RECORD_VIEW_H

#include <stdbool.h>

#include "ctl.h"
#include "keys.h"
#include "record.h"

/* One record as a JSON object; a client record when p->sender is NULL. */
void print_record_json(const struct ctl *ctl, const struct key_parts *p,
		       const struct record *r);
/* Table rows, with the heading first when head. */
void print_triplet_row(const struct key_parts *p, const struct record *r,
		       bool head);
void print_client_row(const struct ctl *ctl, const struct key_parts *p,
		      const struct record *r, bool head);

/* "key:", "triplet:" and "client:" lines (show, check). */
void print_key_human(const struct ctl *ctl, const struct keyed *kd);
void print_triplet_human(const struct ctl *ctl, const struct record *r);
void print_client_human(const struct ctl *ctl, const char *client,
			const struct record *r);

/* Opens an object: {"key":{...},"hashed":B */
void print_key_json(const struct ctl *ctl, const struct keyed *kd);
/* A record under the plain (shown) key parts, or null. */
void print_plain_json(const struct ctl *ctl, const struct keyed *kd,
		      bool client, const struct record *r);

#endif
