/*
 * redis_script - the decision script (greylist.lua) as a C string.
 *
 * redis_script.c is generated from src/daemon/greylist.lua at build time
 * (Makefile.am), so the script is edited, read and tested as Lua and
 * shipped inside the binary.
 */
#ifndef GREYHOLD_REDIS_SCRIPT_H
#define GREYHOLD_REDIS_SCRIPT_H

#include <stddef.h>

extern const char redis_script_greylist[];
extern const size_t redis_script_greylist_len;

#endif
