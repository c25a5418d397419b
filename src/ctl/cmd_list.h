/*
 * cmd_list - list: triplets or auto-whitelist records, filtered
 * (see cmd_list.c).  Commands as described in ctl.h.
 */
#ifndef GREYHOLD_CMD_LIST_H
#define GREYHOLD_CMD_LIST_H

#include "ctl.h"

int cmd_list(struct ctl *ctl, int argc, char **argv);

#endif
