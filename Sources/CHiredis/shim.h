#ifndef LLMGW_CHIREDIS_SHIM_H
#define LLMGW_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
