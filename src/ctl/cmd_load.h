/*
 * cmd_load - load: merge a dump into the database
 * (see cmd_load.c).  Commands as described in ctl.h.
 */
#ifndef GREYHOLD_CMD_LOAD_H
#define GREYHOLD_CMD_LOAD_H

#include "ctl.h"

int cmd_load(struct ctl *ctl, int argc, char **argv);

#endif
