/*
 * cmd_dump - dump: every record as text, in the dump format (see
 * cmd_dump.c and greyholdctl(8)).  A command as described in ctl.h.
 */
#ifndef GREYHOLD_CMD_DUMP_H
#define GREYHOLD_CMD_DUMP_H

#include "ctl.h"

/* The first line of a dump: DUMP_MAGIC, a space, DUMP_VERSION. */
#define DUMP_MAGIC "greyhold-dump"
#define DUMP_VERSION 1

int cmd_dump(struct ctl *ctl, int argc, char **argv);

#endif
