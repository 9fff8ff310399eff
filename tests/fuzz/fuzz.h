/*
 * What every fuzz target defines: libFuzzer's entry point, called with
 * one input at a time (by libFuzzer, or by standalone_main.c replaying a
 * corpus). A crash, a sanitizer report or an abort() is a finding.
 */
#ifndef PS_FUZZ_H
#define PS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
