/*
 * cmd_stats - stats and expire: the database's contents, an expiry pass
 * (see cmd_stats.c).  Commands as described in ctl.h.
 */
#ifndef GREYHOLD_CMD_STATS_H
#define GREYHOLD_CMD_STATS_H

#include "ctl.h"

int cmd_stats(struct ctl *ctl, int argc, char **argv);
int cmd_expire(struct ctl *ctl, int argc, char **argv);

#endif
