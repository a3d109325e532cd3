// cuda_test.h: the GPU tests' check of a CUDA runtime call. A failing call ends the test with a FAIL line naming
// the call (later checks could not be trusted). Include after <cuda_runtime_api.h> and test.h.
#pragma once
#include <stdio.h>
#include <stdlib.h>

// 1 when there is no CUDA device to test on, with the reason in why (the tests then print SKIP lines).
static inline int cuda_test_no_device(char *why, size_t n) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err == cudaSuccess && count > 0) return 0;
    snprintf(why, n, "no CUDA device (%s)",
             err != cudaSuccess ? cudaGetErrorString(err) : "cudaGetDeviceCount found 0 devices");
    return 1;
}

#define CU(call)                                                                                            \
    do {                                                                                                    \
        cudaError_t cu_err_ = (call);                                                                       \
        if (cu_err_ != cudaSuccess) {                                                                       \
            printf("FAIL cuda runtime: %s returned %s: %s  (%s:%d)\n", #call, cudaGetErrorName(cu_err_),    \
                   cudaGetErrorString(cu_err_), __FILE__, __LINE__);                                        \
            exit(1);                                                                                        \
        }                                                                                                   \
    } while (0)
