/*
 * fuzz - the entry point every harness in tests/fuzz defines.
 *
 * Each fuzz_*.c is linked twice: with clang's libFuzzer (make fuzz, see
 * run-fuzzers.sh), which supplies main() and generates inputs, and with
 * replay.c (make check), which feeds it every file of its seed corpus.
 * A harness checks its invariants with abort(), so a broken one is a
 * crash under both.
 */
#ifndef GREYHOLD_FUZZ_H
#define GREYHOLD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Run one input; always returns 0 (libFuzzer's convention). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
