// cuda_check.h: CUDA_CHECK for host C files built with JEPA_CUDA (include it only there): a failing CUDA runtime call
// ends the process with the call, file, line and CUDA's message (exit 1, an internal error).
#pragma once
#include <cuda_runtime_api.h>

#include "common.h"

#define CUDA_CHECK(call)                                                                                      \
    do {                                                                                                      \
        const cudaError_t e_ = (call);                                                                        \
        if (e_ != cudaSuccess)                                                                                \
            die_internal("%s:%d: %s: %s (%s)", __FILE__, __LINE__, #call, cudaGetErrorString(e_),             \
                         cudaGetErrorName(e_));                                                               \
    } while (0)
