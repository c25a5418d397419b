/*
 * cmd_import_postgrey - import-postgrey: postgrey's database, re-keyed
 * (see cmd_import_postgrey.c).  Commands as described in ctl.h.
 */
#ifndef GREYHOLD_CMD_IMPORT_POSTGREY_H
#define GREYHOLD_CMD_IMPORT_POSTGREY_H

#include "ctl.h"

int cmd_import_postgrey(struct ctl *ctl, int argc, char **argv);

#endif
