/*
 * cmd_triplet - show, delete and pass: one triplet or client network
 * (see cmd_triplet.c).  Commands as described in ctl.h.
 */
#ifndef GREYHOLD_CMD_TRIPLET_H
#define GREYHOLD_CMD_TRIPLET_H

#include "ctl.h"

int cmd_show(struct ctl *ctl, int argc, char **argv);
int cmd_delete(struct ctl *ctl, int argc, char **argv);
int cmd_pass(struct ctl *ctl, int argc, char **argv);

#endif
