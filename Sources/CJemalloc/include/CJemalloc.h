#ifndef LLMGW_CJEMALLOC_H
#define LLMGW_CJEMALLOC_H

#include <stddef.h>

/// Describes the allocator that serves this process's `malloc`: "jemalloc <version>, <n> arenas" when jemalloc
/// does, otherwise the path of the library that does. Writes a NUL-terminated text of at most `size` bytes.
void llmgw_allocator_describe(char *buffer, size_t size);

#endif
