/*
 * cmd_whitelist - whitelist add, del and list: the live whitelist
 * (see cmd_whitelist.c).  Commands as described in ctl.h.
 */
#ifndef GREYHOLD_CMD_WHITELIST_H
#define GREYHOLD_CMD_WHITELIST_H

#include "ctl.h"

int cmd_whitelist_add(struct ctl *ctl, int argc, char **argv);
int cmd_whitelist_del(struct ctl *ctl, int argc, char **argv);
int cmd_whitelist_list(struct ctl *ctl, int argc, char **argv);

#endif
