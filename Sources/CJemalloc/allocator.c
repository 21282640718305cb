// jemalloc serves every allocation of an llm-gateway process: the executable links it ahead of the C library, so
// its `malloc` and `free` interpose glibc's for Swift, NIO, librdkafka and hiredis alike. On the benchmark's box it
// cut the ingress's CPU per accepted job and the worker's per completed job by 5-10 % against glibc's allocator
// (benchmarks/results/experiments/README.md, "Memory allocator").
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <jemalloc/jemalloc.h>

#include "CJemalloc.h"

// Read by jemalloc when it initialises (before `main`); the MALLOC_CONF environment variable overrides it.
// Two arenas instead of jemalloc's four per CPU keep a process's resident memory within a few MB of glibc's.
const char *malloc_conf = "narenas:2";

void llmgw_allocator_describe(char *buffer, size_t size) {
    if (size == 0) return;
    Dl_info info;
    memset(&info, 0, sizeof(info));
    void *serving = dlsym(RTLD_DEFAULT, "malloc");
    const char *library = (serving != NULL && dladdr(serving, &info) != 0 && info.dli_fname != NULL) ? info.dli_fname : "unknown";
    if (strstr(library, "jemalloc") == NULL) {
        snprintf(buffer, size, "%s", library);
        return;
    }
    const char *version = "unknown";
    size_t length = sizeof(version);
    mallctl("version", &version, &length, NULL, 0);
    unsigned arenas = 0;
    length = sizeof(arenas);
    mallctl("opt.narenas", &arenas, &length, NULL, 0);
    snprintf(buffer, size, "jemalloc %s, %u arenas", version, arenas);
}
