# thinkfast — build. Targets:
#   make              build the library, every program (bin/) and every test binary
#   make test         build, then run unit + integration tests (tests/run.sh); last line "N passed, N failed"
#   make check        the same with -Werror (what CI runs through .ci/run)
#   make bench        queue/store benchmarks (+ CPU engine ones) -> bench/results/*.json
#   make bench-gpu    GPU engine benchmarks (needs a device) -> bench/results/*.json
#   make demo         jobctl local examples/demo.json (replay backend over the built-in synth data)
#   make demo-stories the native engine on the pretrained stories260K (converted from ../shared/data)
# Options: GPU=0|1 (default: 1 if nvcc is found), SANITIZE=address|undefined, DEBUG=1, WERROR=1.
#
# Layout rules (so that adding a module never needs a Makefile edit):
#   - every *.c under the source folders below is library code, except *_main.c;
#   - FOLDER/NAME_main.c is the program bin/NAME;
#   - tests/unit/test_NAME.c is the test binary build/tests/test_NAME (CPU; always built);
#   - tests/gpu/test_NAME.c|.cu are GPU tests, built only when GPU=1; they skip without a device;
#   - kernels/cuda/*.cu (and *.c there) are compiled only when GPU=1.

SRC_DIRS := common store jobs broker workers workers/model workers/sample workers/score \
            workers/aggregate kernels kernels/cpu tools

CC      ?= cc
PYTHON  := /usr/bin/python3

# ---- dependencies: Debian packages, installed by ops/install-deps when a header is missing ----
DEP_HEADERS := /usr/include/zmq.h /usr/include/msgpack.h /usr/include/lmdb.h \
               /usr/include/jansson.h /usr/include/pcre2.h /usr/include/x86_64-linux-gnu/cblas.h
MISSING_DEPS := $(strip $(foreach h,$(DEP_HEADERS),$(if $(wildcard $(h)),,$(h))))
ifneq ($(MISSING_DEPS),)
  $(info thinkfast: missing $(MISSING_DEPS); running ops/install-deps)
  DEPS_RC := $(shell ops/install-deps >&2; echo $$?)
  ifneq ($(DEPS_RC),0)
    $(error ops/install-deps failed; install the packages it names and retry)
  endif
endif

# ---- GPU autodetection: nvcc on PATH or in /usr/local/cuda ----
# The toolkit's folders come from nvcc itself (its --dryrun INCLUDES/LIBRARIES lines), so a
# symlinked or wrapped nvcc (/usr/local/bin/nvcc -> /opt/...) still finds the right libraries.
# When cudart/cuBLAS cannot be found, the CUDA sources are still compiled (CI checks they build)
# but not linked, and the binaries are CPU-only (CUDA_LINK=0, said at make time).
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(origin GPU),undefined)
  GPU := $(if $(NVCC),1,0)
endif
ifeq ($(GPU),1)
  ifeq ($(NVCC),)
    $(error GPU=1 but nvcc was not found)
  endif
  NVCC_EXE    := $(or $(realpath $(NVCC)),$(NVCC))
  NVCC_DRY    := $(shell $(NVCC_EXE) --dryrun -x cu -c /dev/null -o /dev/null 2>&1)
  CUDA_REAL   := $(patsubst %/bin/nvcc,%,$(realpath $(NVCC)))
  CUDA_INCDIRS := $(patsubst -I%,%,$(filter -I%,$(subst ",,$(NVCC_DRY)))) $(CUDA_REAL)/include /usr/local/cuda/include
  CUDA_LIBDIRS := $(filter-out %/stubs,$(patsubst -L%,%,$(filter -L%,$(subst ",,$(NVCC_DRY))))) \
                  $(CUDA_REAL)/lib64 $(CUDA_REAL)/targets/x86_64-linux/lib /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu
  CUDA_INCDIR := $(firstword $(foreach d,$(CUDA_INCDIRS),$(if $(wildcard $(d)/cuda_runtime.h),$(realpath $(d)))))
  CUDA_LIBDIR := $(firstword $(foreach d,$(CUDA_LIBDIRS),$(if $(and $(wildcard $(d)/libcudart.so),$(wildcard $(d)/libcublas.so),$(wildcard $(d)/libcublasLt.so)),$(realpath $(d)))))
  CUDA_LINK   := $(if $(and $(CUDA_INCDIR),$(CUDA_LIBDIR)),1,0)
  ifeq ($(CUDA_LINK),1)
    $(info thinkfast: GPU=1 (nvcc $(NVCC_EXE), libraries $(CUDA_LIBDIR)); CUDA objects are built, devices are detected at run time)
  else
    $(info thinkfast: GPU=1 but cudart/cuBLAS were not found (looked in $(CUDA_LIBDIRS)); CUDA sources are compiled, not linked: binaries are CPU-only)
  endif
else
  CUDA_LINK := 0
  $(info thinkfast: GPU=0; CPU backend only)
endif

# ---- flags ----
# -std=c11 plus _GNU_SOURCE (POSIX + GNU APIs: mkstemp, clock_gettime, pipe2 ...); -Wstrict-prototypes per CONVENTIONS.
# -Wno-unused-parameter: op-table callbacks share one signature and often ignore the context.
WARN    := -Wall -Wextra -Wstrict-prototypes -Wno-unused-parameter -Wshadow=local
OPT     := $(if $(DEBUG),-O0,-O2)
# -march=x86-64-v2 keeps binaries portable across CI and GPU hosts while allowing SSE4.2.
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(WARN) -fno-strict-aliasing -I. -MMD -MP
ifneq ($(or $(WERROR),$(CI)),)
  CFLAGS += -Werror
endif
LDLIBS  := -lzmq -lmsgpackc -llmdb -ljansson -lpcre2-8 -lopenblas -lpthread -lm
ifeq ($(SANITIZE),address)
  CFLAGS  += -fsanitize=address -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=address
endif
ifeq ($(SANITIZE),undefined)
  CFLAGS  += -fsanitize=undefined -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=undefined
endif

NVCCFLAGS := -O3 -g -std=c++17 -I. -gencode=arch=compute_90,code=sm_90 -Xcompiler -Wall,-Wno-unused-parameter \
             --expt-relaxed-constexpr -lineinfo
ifeq ($(CUDA_LINK),1)
  CFLAGS += -DTHINKFAST_CUDA=1 -I$(CUDA_INCDIR)
  LDLIBS += -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublasLt -lcublas -lcudart -lstdc++
endif

BUILD := build
ALL_C     := $(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c))
MAIN_C    := $(filter %_main.c,$(ALL_C))
LIB_C     := $(filter-out %_main.c,$(ALL_C))
LIB_OBJ   := $(LIB_C:%.c=$(BUILD)/%.o)
PROGS     := $(patsubst %_main.c,bin/%,$(notdir $(MAIN_C)))
CUDA_CU   := $(if $(filter 1,$(GPU)),$(wildcard kernels/cuda/*.cu))
CUDA_C    := $(if $(filter 1,$(GPU)),$(wildcard kernels/cuda/*.c))
CUDA_OBJ  := $(CUDA_CU:%.cu=$(BUILD)/%.cu.o) $(CUDA_C:%.c=$(BUILD)/%.o)
UNIT_C    := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_C:tests/unit/%.c=$(BUILD)/tests/%)
GPU_TSRC  := $(if $(filter 1,$(CUDA_LINK)),$(wildcard tests/gpu/test_*.c tests/gpu/test_*.cu))
LINK_CUDA_OBJ := $(if $(filter 1,$(CUDA_LINK)),$(CUDA_OBJ))
GPU_TBIN  := $(patsubst tests/gpu/%,$(BUILD)/tests/gpu/%,$(basename $(GPU_TSRC)))
LIB       := $(BUILD)/libthinkfast.a

.SECONDARY:
.PHONY: all test check bench bench-gpu demo demo-stories clean deps
all: $(PROGS) $(UNIT_BIN) $(GPU_TBIN) $(CUDA_OBJ)

deps:
	ops/install-deps

$(LIB): $(LIB_OBJ) $(LINK_CUDA_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(@D)
	$(NVCC_EXE) $(NVCCFLAGS) -MMD -MP -c $< -o $@

# Programs: bin/NAME from any FOLDER/NAME_main.c.
define PROG_RULE
bin/$(patsubst %_main.c,%,$(notdir $(1))): $(BUILD)/$(1:.c=.o) $(LIB)
	@mkdir -p bin
	$$(CC) $$(LDFLAGS) $$^ $$(LDLIBS) -o $$@
endef
$(foreach m,$(MAIN_C),$(eval $(call PROG_RULE,$(m))))

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/gpu/%: tests/gpu/%.cu $(LIB)
	@mkdir -p $(@D)
	$(NVCC_EXE) $(NVCCFLAGS) $< $(LIB) $(filter-out -lstdc++,$(LDLIBS)) -o $@

$(BUILD)/tests/gpu/%: $(BUILD)/tests/gpu/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

test: all
	@tests/run.sh

check:
	$(MAKE) WERROR=1 all
	@tests/run.sh

bench: all
	@tools/bench/run.sh

bench-gpu: all
	@tools/bench/run-gpu.sh

demo: all
	bin/jobctl local examples/demo.json

# The engine producing real text: converts the pretrained llama2.c stories260K (from the
# workspace's shared data; users bring their own checkpoints) and samples with the native backend.
STORIES ?= ../shared/data/models/stories260K
demo-stories: all
	bin/convert llama2c $(STORIES)/stories260K.bin $(STORIES)/tok512.bin build/models/stories260K
	bin/generate --model build/models/stories260K --temperature 0 --max-tokens 200
	rm -rf build/demo-stories-db
	bin/jobctl local examples/stories.json --db build/demo-stories-db
	bin/jobctl export stories-native --db build/demo-stories-db --format jsonl | head -3

clean:
	rm -rf $(BUILD) bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
