// The kernel-family classifier of `jepa bench step`'s CUPTI profile (host/kernel_profile.c), on real kernel names
// (ours as nvcc mangles them, cuBLASLt's and cuDNN's as Nsight shows them on an H100); and, without a GPU, that the
// profile says why it is not there instead of printing zeros. The profile itself is exercised by `jepa bench step`
// on the device (bench/RESULTS.md).
#include <string.h>

#include "kernel_profile.h"
#include "test.h"

int main(void) {
    const struct {
        const char *name;
        KernelFamily want;
    } cases[] = {
        {"nvjet_tst_192x192_64x3_2x1_v_bz_coopA_TNT", KF_GEMM},
        {"sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_warpgroupsize2x1x1", KF_GEMM},
        {"_ZL19sum_partials_kernelPfPKfii", KF_GEMM},
        {"_Z18column_sums_kernelPfPK13__nv_bfloat16iiii", KF_GEMM},  // matmul.cu's dbias, not the loss's column std
        {"_Z19attn_fwd_mma_kernelILi64ELb0EEvP13__nv_bfloat16PfPKS0_iiii", KF_ATTENTION},
        {"cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x128x64_4x1x1", KF_ATTENTION},
        {"_Z24layernorm_bwd_vec_kernelILi32ELi4EEvP13__nv_bfloat16PfPKS0_S4_S4_PKfS6_ii", KF_LAYERNORM},
        {"_ZL15gelu_fwd_kernelP13__nv_bfloat16PKS_m", KF_ELEMENTWISE},
        {"_ZL17f32_to_bf16_kernelP13__nv_bfloat16PKfm", KF_ELEMENTWISE},
        {"_ZL25scatter_add_tokens_kernelP13__nv_bfloat16PKS_PKiiiii", KF_TOKENS},
        {"_ZL23sum_rows_partial_kernelPfPK13__nv_bfloat16ii", KF_TOKENS},
        {"_ZL15patchify_kernelP13__nv_bfloat16PKS_iiiiii", KF_TOKENS},
        {"_ZL18sum_squares_kernelPdPKfmmm", KF_LOSS},
        {"_ZL21column_partial_kernelPfPK13__nv_bfloat16iii", KF_LOSS},
        {"_Z12adamw_kernelILb1EEvPfP13__nv_bfloat16PKfS0_S0_mmm10AdamConstsS4_", KF_OPTIMIZER},
        {"_Z10ema_kernelILb1EEvPfP13__nv_bfloat16PKfmmmffS4_", KF_OPTIMIZER},
        {"_ZL21nonfinite_flag_kernelPfPKfi", KF_OPTIMIZER},
        {"some_library_kernel", KF_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[200];
        snprintf(what, sizeof what, "kernel family of %.60s: %s", cases[i].name, kernel_family_name(cases[i].want));
        const KernelFamily got = kernel_family_of(cases[i].name);
        TEST_CHECK(what, got == cases[i].want, "got %s", kernel_family_name(got));
    }
    char why[256] = "";
    const int available = kernel_profile_available(why, sizeof why);
    if (available) TEST_SKIP("kernel profile: no GPU says why", "a GPU is present (bench step profiles it)");
    else TEST_CHECK("kernel profile: without a GPU (or CUPTI) it says why", why[0] != 0, "empty reason");
    TEST_EXIT();
}
