/*
 * cmd_report - report: what greyhold's (or postgrey's) decision log says
 * (see cmd_report.c).  Command as described in ctl.h.
 */
#ifndef GREYHOLD_CMD_REPORT_H
#define GREYHOLD_CMD_REPORT_H

#include "ctl.h"

int cmd_report(struct ctl *ctl, int argc, char **argv);

#endif
