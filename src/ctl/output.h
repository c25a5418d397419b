/*
 * output - JSON strings, times, ages, sizes and key parts as greyholdctl
 * prints them (see output.c).
 */
#ifndef GREYHOLD_OUTPUT_H
#define GREYHOLD_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "triplet.h"

/* Shown text of one key part: each byte may become four. */
#define SHOWN_MAX (4 * TRIPLET_MAX_ADDR + 8)

/* JSON string of len bytes: escapes quotes, backslashes, control bytes. */
void json_mem(FILE *out, const char *s, size_t len);
void json_string(FILE *out, const char *s);

/* "2026-11-28T10:00:00Z" (UTC), or "never" for 0. */
void format_time(char *out, size_t outsz, int64_t t);
/* "3d 4h", "12m 5s", "40s" */
void format_age(char *out, size_t outsz, int64_t secs);
/* "512 B", "1.5 MiB" */
void format_bytes(char *out, size_t outsz, uint64_t n);

/*
 * A key part for a terminal (out: SHOWN_MAX bytes): untrusted text
 * escaped, the null sender as "<>", a keyed hash as "h:" and hex.
 */
const char *shown(char *out, size_t outsz, const char *s, size_t len,
		  bool hashed);
/* A key part as a JSON string: the text, or "h:" and the hash in hex. */
void json_part(FILE *out, const char *s, size_t len, bool hashed);

#endif
