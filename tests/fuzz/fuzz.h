/* The libFuzzer entry point every tests/fuzz/fuzz-<name>.c defines. */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
