/*
 * cmd_forget - forget: every record about an address or a host
 * (see cmd_forget.c).  Commands as described in ctl.h.
 */
#ifndef GREYHOLD_CMD_FORGET_H
#define GREYHOLD_CMD_FORGET_H

#include "ctl.h"

int cmd_forget(struct ctl *ctl, int argc, char **argv);

#endif
