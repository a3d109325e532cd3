# jepa.c build. `make` builds build/jepa; `make test` installs what is missing, builds and runs every test;
# `make run` trains configs/tiny.yaml. CUDA sources (kernels/*.cu) are compiled when nvcc is present.
CC      ?= gcc
OPT     ?= -O2
CFLAGS  := -std=c11 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -fopenmp -D_GNU_SOURCE \
           -Ihost -Ikernels -I/usr/include/x86_64-linux-gnu $(EXTRA_CFLAGS)
LDLIBS  := -lopenblas -lyaml -ljson-c -lm -lpthread -fopenmp

NVCC    := $(shell command -v nvcc 2>/dev/null)
CU_SRC  := $(wildcard kernels/*.cu)
ifneq ($(NVCC),)
ifneq ($(CU_SRC),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVCCFLAGS := -O3 -std=c++17 -Ihost -Ikernels -gencode=arch=compute_90,code=sm_90 -gencode=arch=compute_80,code=sm_80
CFLAGS  += -DJEPA_CUDA -I$(CUDA_HOME)/include
LDLIBS  += -L$(CUDA_HOME)/lib64 -lcudart -lcublasLt -lcublas
CU_OBJ  := $(patsubst %.cu,build/%.o,$(CU_SRC))
endif
endif

HOST_SRC := $(filter-out host/main.c,$(wildcard host/*.c))
KERN_SRC := $(wildcard kernels/*_cpu.c)
LIB_OBJ  := $(patsubst %.c,build/%.o,$(HOST_SRC) $(KERN_SRC)) $(CU_OBJ)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(patsubst tests/%.c,build/tests/%,$(TEST_SRC))
HEADERS  := $(wildcard host/*.h kernels/*.h tests/*.h)

.PHONY: all deps test test-long run clean FORCE
all: build/jepa

deps:
	@bash scripts/deps.sh

build/gen/version.h: FORCE
	@bash scripts/gen_version.sh $@ "$(CC) $(OPT) $(EXTRA_CFLAGS)$(if $(CU_OBJ), +cuda,)"
FORCE:

build/host/provenance.o: build/gen/version.h
build/host/provenance.o: CFLAGS += -Ibuild/gen

build/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

build/%.o: %.cu $(HEADERS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

build/jepa: build/host/main.o $(LIB_OBJ)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

build/tests/%: tests/%.c $(LIB_OBJ) $(HEADERS)
	@mkdir -p build/tests
	$(CC) $(CFLAGS) -Itests $< $(LIB_OBJ) -o $@ $(LDLIBS)

test: deps
	@$(MAKE) --no-print-directory build/jepa $(TEST_BIN)
	@bash tests/run.sh

run: deps
	@$(MAKE) --no-print-directory build/jepa
	build/jepa train configs/tiny.yaml

clean:
	rm -rf build
