// cuda_test.h: the GPU tests' check of a CUDA runtime call. A failing call ends the test with a FAIL line naming
// the call (later checks could not be trusted). Include after <cuda_runtime_api.h> and test.h.
#pragma once
#include <stdio.h>
#include <stdlib.h>

#define CU(call)                                                                                            \
    do {                                                                                                    \
        cudaError_t cu_err_ = (call);                                                                       \
        if (cu_err_ != cudaSuccess) {                                                                       \
            printf("FAIL cuda runtime: %s returned %s: %s  (%s:%d)\n", #call, cudaGetErrorName(cu_err_),    \
                   cudaGetErrorString(cu_err_), __FILE__, __LINE__);                                        \
            exit(1);                                                                                        \
        }                                                                                                   \
    } while (0)
