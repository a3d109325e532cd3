# jepa.c build. `make` builds build/jepa; `make test` installs what is missing, builds and runs every test;
# `make run` trains configs/tiny.yaml. CUDA sources (kernels/*.cu) are compiled when nvcc is present.
CC      ?= gcc
OPT     ?= -O2
CFLAGS  := -std=c11 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -fopenmp -D_GNU_SOURCE \
           -Ihost -Ikernels -I/usr/include/x86_64-linux-gnu -I/usr/include/hdf5/serial $(EXTRA_CFLAGS)
LDLIBS  := -lopenblas -lyaml -ljson-c -lxxhash -lhdf5_serial -lchipmunk -lturbojpeg -lz -lm -lpthread -fopenmp

# CUDA: kernels/*.cu are compiled when nvcc is found (on PATH, else /usr/local/cuda/bin); `make NVCC=` builds CPU-only.
# The CUDA backend (JEPA_CUDA) is switched on once every op family of kernels/cuda_ops.h has its .cu file. cuDNN and
# NCCL are looked for under CUDA_HOME and the system paths (override CUDNN_INC/CUDNN_LIB, NCCL_INC/NCCL_LIB; set one
# empty to leave it out); without them the build goes on and the device banner says "not built in".
NVCC    ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc))
CU_SRC  := $(wildcard kernels/*.cu)
CU_FAMILIES := matmul attention layernorm elementwise loss optim
CU_MISSING  := $(filter-out $(CU_SRC),$(patsubst %,kernels/%.cu,$(CU_FAMILIES)))
ifneq ($(NVCC),)
ifneq ($(CU_SRC),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_LIB  ?= $(firstword $(wildcard $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib))
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
SYS_INC   := $(CUDA_HOME)/include /usr/include /usr/include/$(MULTIARCH) /usr/local/include
SYS_LIB   := $(CUDA_LIB) /usr/lib/$(MULTIARCH) /usr/lib64 /usr/local/lib
find_dir   = $(patsubst %/$(1),%,$(firstword $(wildcard $(addsuffix /$(1),$(2)))))
CUDNN_INC ?= $(call find_dir,cudnn.h,$(SYS_INC))
CUDNN_LIB ?= $(call find_dir,libcudnn.so,$(SYS_LIB))
NCCL_INC  ?= $(call find_dir,nccl.h,$(SYS_INC))
NCCL_LIB  ?= $(call find_dir,libnccl.so,$(SYS_LIB))
# nvJPEG (the GPU decode of JPEG clip stores, host/nvjpeg_decode.c) ships with the toolkit on GPU machines only.
NVJPEG_INC ?= $(call find_dir,nvjpeg.h,$(SYS_INC))
NVJPEG_LIB ?= $(call find_dir,libnvjpeg.so,$(SYS_LIB))
# sm_80 (A100; also runs on sm_86/89) and sm_90 (H100) code, plus compute_90 PTX for newer GPUs to JIT.
NVCCFLAGS := -O3 -lineinfo -std=c++17 -Ihost -Ikernels -gencode=arch=compute_80,code=sm_80 \
             -gencode=arch=compute_90,code=[sm_90,compute_90] $(EXTRA_NVCCFLAGS)
CFLAGS  += -I$(CUDA_HOME)/include
LDLIBS  += -L$(CUDA_LIB) -Wl,-rpath,$(CUDA_LIB) -lcublasLt -lcublas -lcudart -lstdc++
CU_OBJ  := $(patsubst %.cu,build/%.o,$(CU_SRC))
ifeq ($(CU_MISSING),)
CUDA_BACKEND := 1
CFLAGS  += -DJEPA_CUDA
ifneq ($(and $(CUDNN_INC),$(CUDNN_LIB)),)
CFLAGS  += -DJEPA_HAVE_CUDNN $(addprefix -I,$(filter-out $(CUDA_HOME)/include /usr/include,$(CUDNN_INC)))
LDLIBS  += $(foreach d,$(filter-out $(CUDA_LIB),$(CUDNN_LIB)),-L$(d) -Wl,-rpath,$(d)) -lcudnn
else
$(info note: cuDNN not found (CUDNN_INC='$(CUDNN_INC)' CUDNN_LIB='$(CUDNN_LIB)'): building without it)
endif
ifneq ($(and $(NCCL_INC),$(NCCL_LIB)),)
CFLAGS  += -DJEPA_HAVE_NCCL $(addprefix -I,$(filter-out $(CUDA_HOME)/include /usr/include,$(NCCL_INC)))
LDLIBS  += $(foreach d,$(filter-out $(CUDA_LIB),$(NCCL_LIB)),-L$(d) -Wl,-rpath,$(d)) -lnccl
else
$(info note: NCCL not found (NCCL_INC='$(NCCL_INC)' NCCL_LIB='$(NCCL_LIB)'): building without it)
endif
# CUPTI (activity records for `jepa bench step`'s time per kernel family, host/kernel_profile.c).
CUPTI_INC ?= $(call find_dir,cupti.h,$(SYS_INC) $(CUDA_HOME)/extras/CUPTI/include)
CUPTI_LIB ?= $(call find_dir,libcupti.so,$(SYS_LIB) $(CUDA_HOME)/extras/CUPTI/lib64)
ifneq ($(and $(CUPTI_INC),$(CUPTI_LIB)),)
CFLAGS  += -DJEPA_HAVE_CUPTI $(addprefix -I,$(filter-out $(CUDA_HOME)/include /usr/include,$(CUPTI_INC)))
LDLIBS  += $(foreach d,$(filter-out $(CUDA_LIB),$(CUPTI_LIB)),-L$(d) -Wl,-rpath,$(d)) -lcupti
else
$(info note: CUPTI not found (CUPTI_INC='$(CUPTI_INC)' CUPTI_LIB='$(CUPTI_LIB)'): bench step prints no kernel families)
endif
ifneq ($(and $(NVJPEG_INC),$(NVJPEG_LIB)),)
CFLAGS  += -DJEPA_HAVE_NVJPEG $(addprefix -I,$(filter-out $(CUDA_HOME)/include /usr/include,$(NVJPEG_INC)))
LDLIBS  += $(foreach d,$(filter-out $(CUDA_LIB),$(NVJPEG_LIB)),-L$(d) -Wl,-rpath,$(d)) -lnvjpeg
else
$(info note: nvJPEG not found (NVJPEG_INC='$(NVJPEG_INC)' NVJPEG_LIB='$(NVJPEG_LIB)'): JPEG stores decode on the CPU only)
endif
else
$(info note: the CUDA backend is off until these exist: $(CU_MISSING))
endif
endif
endif

# MPI (Open MPI's mpicc tells its flags): the transport of multi-rank CPU runs and of NCCL's unique id (host/dist.c,
# docs/distributed.md). Only dist.c includes mpi.h, so only it gets the flags; `make MPICC=` builds without MPI.
MPICC    ?= $(firstword $(shell command -v mpicc 2>/dev/null))
MPI_CFLAGS := $(if $(MPICC),$(shell $(MPICC) --showme:compile 2>/dev/null) -DJEPA_HAVE_MPI,)
MPI_LIBS   := $(if $(MPICC),$(shell $(MPICC) --showme:link 2>/dev/null),)
LDLIBS     += $(MPI_LIBS)
build/host/dist.o build-asan/host/dist.o: CFLAGS += $(MPI_CFLAGS)

HOST_SRC := $(filter-out host/main.c,$(wildcard host/*.c))
KERN_SRC := $(wildcard kernels/*_cpu.c)
LIB_OBJ  := $(patsubst %.c,build/%.o,$(HOST_SRC) $(KERN_SRC)) $(CU_OBJ)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst tests/%.c,build/tests/%,$(TEST_SRC))
HEADERS  := $(wildcard host/*.h kernels/*.h tests/*.h)
CU_HEADERS := $(wildcard kernels/*.h kernels/*.cuh)
GPU_TEST_BIN := $(filter build/tests/test_cuda_%,$(TEST_BIN))

.PHONY: all deps test test-gpu test-long test-asan fuzz asan-bins fuzz-bins run clean FORCE
all: build/jepa

deps:
	@bash scripts/deps.sh

build/gen/version.h: FORCE
	@bash scripts/gen_version.sh $@ "$(CC) $(OPT) $(EXTRA_CFLAGS)$(if $(CUDA_BACKEND), +cuda,)"
FORCE:

build/host/provenance.o: build/gen/version.h
build/host/provenance.o: CFLAGS += -Ibuild/gen

# The flags each object was compiled with, rewritten only when they change (a new .cu family switching JEPA_CUDA on,
# `make NVCC=`, OPT=...), so that a change rebuilds what it affects and nothing else.
# (Expanded here, before any target-specific CFLAGS, which make would pass on to a prerequisite.)
CFLAGS_USED    := $(CC) $(CFLAGS)
NVCCFLAGS_USED := $(NVCC) $(NVCCFLAGS)
build/gen/cflags: FORCE
	@mkdir -p $(dir $@); [ "$$(cat $@ 2>/dev/null)" = '$(CFLAGS_USED)' ] || echo '$(CFLAGS_USED)' > $@
build/gen/nvccflags: FORCE
	@mkdir -p $(dir $@); [ "$$(cat $@ 2>/dev/null)" = '$(NVCCFLAGS_USED)' ] || echo '$(NVCCFLAGS_USED)' > $@

build/%.o: %.c $(HEADERS) build/gen/cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

build/%.o: %.cu $(CU_HEADERS) build/gen/nvccflags
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# The Hopper attention forward (wgmma, setmaxnreg: sm_90a only; opt-in at run time, see the file's header). Only this
# object is built for sm_90a; its device code compiles out for other targets, so no other arch is needed to link.
NVCCFLAGS_SM90A := -O3 -lineinfo -std=c++17 -Ihost -Ikernels -gencode=arch=compute_90a,code=sm_90a $(EXTRA_NVCCFLAGS)
build/kernels/attention_sm90.o: kernels/attention_sm90.cu $(CU_HEADERS) build/gen/nvccflags
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS_SM90A) -c $< -o $@

build/jepa: build/host/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

build/tests/%: tests/%.c $(LIB_OBJ) $(HEADERS) build/gen/cflags
	@mkdir -p build/tests
	$(CC) $(CFLAGS) -Itests $< $(LIB_OBJ) -o $@ $(LDLIBS)

test: deps
	@$(MAKE) --no-print-directory build/jepa $(TEST_BIN)
	@bash tests/run.sh

# Only the GPU tests (tests/test_cuda_*.c, tests/test_gpu_*.sh); `make test` runs them too (SKIP without a GPU).
# No `deps` here: GPU machines are often set up apart from apt (no network, libraries unpacked by hand).
test-gpu:
	@$(MAKE) --no-print-directory build/jepa $(GPU_TEST_BIN)
	@bash tests/run.sh test_cuda_ test_gpu_

run: deps
	@$(MAKE) --no-print-directory build/jepa
	build/jepa train configs/tiny.yaml

# Sanitizers: the host code and the CPU unit tests built with ASan + UBSan into build-asan/ (CPU only) and run.
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ASAN_OBJ  := $(patsubst %.c,build-asan/%.o,$(HOST_SRC) $(KERN_SRC))
ASAN_BIN  := $(patsubst tests/%.c,build-asan/tests/%,$(filter-out tests/test_cuda_%,$(TEST_SRC)))
.SECONDARY: $(ASAN_OBJ)  # built only through the pattern rules: kept, not removed as intermediates
build-asan/gen/version.h: FORCE
	@bash scripts/gen_version.sh $@ "$(CC) $(OPT) $(SAN_FLAGS)"
build-asan/gen/cflags: FORCE
	@mkdir -p $(dir $@); [ "$$(cat $@ 2>/dev/null)" = '$(CFLAGS_USED) $(SAN_FLAGS)' ] || echo '$(CFLAGS_USED) $(SAN_FLAGS)' > $@
build-asan/host/provenance.o: build-asan/gen/version.h
build-asan/host/provenance.o: CFLAGS += -Ibuild-asan/gen
build-asan/%.o: %.c $(HEADERS) build-asan/gen/cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -c $< -o $@
build-asan/tests/%: tests/%.c $(ASAN_OBJ) $(HEADERS) build-asan/gen/cflags
	@mkdir -p build-asan/tests
	$(CC) $(CFLAGS) $(SAN_FLAGS) -Itests $< $(ASAN_OBJ) -o $@ $(LDLIBS)
asan-bins: $(ASAN_BIN)
test-asan:
	@bash tests/test_asan.sh

# libFuzzer harnesses (tests/fuzz/fuzz_*.c, clang) for the config and safetensors readers, each run FUZZ_SECONDS
# from the seed corpus tests/fuzz/corpus/<name>/; any crash or sanitizer report fails.
FUZZ_CC    ?= $(firstword $(shell command -v clang clang-14 2>/dev/null))
FUZZ_FLAGS := -std=c11 -O1 -g -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -Ihost -I/usr/include/hdf5/serial \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_SECONDS ?= 60
build-fuzz/fuzz_config: tests/fuzz/fuzz_config.c host/config.c host/common.c $(HEADERS)
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(filter %.c,$^) -o $@ -lyaml -lm
build-fuzz/fuzz_safetensors: tests/fuzz/fuzz_safetensors.c host/safetensors.c host/fileio.c host/common.c $(HEADERS)
	@mkdir -p build-fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(filter %.c,$^) -o $@ -ljson-c -lxxhash
fuzz-bins: build-fuzz/fuzz_config build-fuzz/fuzz_safetensors
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/test_fuzz.sh

clean:
	rm -rf build build-asan build-fuzz
