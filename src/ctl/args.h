/*
 * args - parsers for numbers, client networks, the null sender and hex
 * digits given to commands (see args.c).
 */
#ifndef GREYHOLD_ARGS_H
#define GREYHOLD_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* The null sender may be given as "" or "<>". */
const char *sender_arg(const char *s);

/* Parse "A/P" (a stored client key) into an address and prefix. */
bool parse_net(const char *s, size_t len, struct addr *a, unsigned *prefix);

/* A decimal number within [0, max], digits only. */
bool parse_u64_arg(const char *s, uint64_t max, uint64_t *out);

/* A hex digit's value (either case), or -1. */
int hexval(char c);

#endif
