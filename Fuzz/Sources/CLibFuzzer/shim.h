// libFuzzer's driver, from the runtime that `-sanitize=fuzzer` links (compiler-rt's
// FuzzerInterface.h declares it; the toolchain ships the library but not that header).
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));
