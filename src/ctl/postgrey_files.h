/*
 * postgrey_files - postgrey's Berkeley DB files as db_dump text, copied
 * and recovered in a private directory (see postgrey_files.c).
 */
#ifndef GREYHOLD_POSTGREY_FILES_H
#define GREYHOLD_POSTGREY_FILES_H

#include <stdio.h>

/* db_dump's text of each database; unlinked, read after the switch. */
struct pg_source {
	FILE *triplets;
	FILE *clients;		/* NULL when postgrey kept none */
};

/* Copy, recover and dump the databases in dir: 0, or -1 (said why). */
int pg_prepare(const char *dir, struct pg_source *src);
/* Close what pg_prepare() opened. */
void pg_close(struct pg_source *src);

#endif
