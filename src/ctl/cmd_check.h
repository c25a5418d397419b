/*
 * cmd_check - check: what the daemon would answer now, and why
 * (see cmd_check.c).  Commands as described in ctl.h.
 */
#ifndef GREYHOLD_CMD_CHECK_H
#define GREYHOLD_CMD_CHECK_H

#include "ctl.h"

int cmd_check(struct ctl *ctl, int argc, char **argv);

#endif
