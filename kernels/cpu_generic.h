// cpu_generic.h: compiles one op body for float and for double (DESIGN: CPU ops also run in double, for
// finite-difference gradient tests), so the two precisions can never drift apart.
//
// A file that wants both instantiations is laid out as
//     #ifndef CPU_GENERIC_BODY
//     ... includes and type-free helpers ...
//     #define CPU_GENERIC_SELF "this_file.c"
//     #include "cpu_generic.h"
//     #else
//     ... the body, written with real, FN(name), R_SQRT ..., CBLAS_GEMM ...
//     #endif
// and its body is included twice: real = float with names suffixed _f32, then real = double with _f64.
// No include guard on purpose: every generic file includes this once for itself.
#ifndef CPU_GENERIC_SELF
#error "define CPU_GENERIC_SELF (the including file's name) before including cpu_generic.h"
#endif
#define CPU_GENERIC_BODY 1

#define real float
#define FN(name) name##_f32
#define R_SQRT sqrtf
#define R_EXP expf
#define R_LOG logf
#define R_ERF erff
#define R_FABS fabsf
#define CBLAS_GEMM cblas_sgemm
#include CPU_GENERIC_SELF
#undef real
#undef FN
#undef R_SQRT
#undef R_EXP
#undef R_LOG
#undef R_ERF
#undef R_FABS
#undef CBLAS_GEMM

#define real double
#define FN(name) name##_f64
#define R_SQRT sqrt
#define R_EXP exp
#define R_LOG log
#define R_ERF erf
#define R_FABS fabs
#define CBLAS_GEMM cblas_dgemm
#include CPU_GENERIC_SELF
#undef real
#undef FN
#undef R_SQRT
#undef R_EXP
#undef R_LOG
#undef R_ERF
#undef R_FABS
#undef CBLAS_GEMM

#undef CPU_GENERIC_BODY
#undef CPU_GENERIC_SELF
