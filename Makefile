# normsharp — plain Makefile.
#   make                    release build (float32 network math): ./normsharp, build/libnormsharp.a
#   make PRECISION=double   network math in double (used by the derivative tests)
#   make SAN=1              AddressSanitizer + UndefinedBehaviorSanitizer
#   make MPI=1              sweeps across MPI ranks (needs OpenMPI's mpicc)
#   make test               install missing deps, run the suite: float, double, double+sanitizers,
#                           and the MPI sweep test when OpenMPI is installed (scripts/install-deps --mpi)
#   make test-mpi           the MPI sweep test alone: sweeps over mpirun ranks against a plain sweep
#   make demo               install missing deps, run the headline experiment and its report
PRECISION ?= float
SAN ?= 0
MPI ?= 0

PKGS := openblas lapacke zlib cmocka
CC := cc
ifeq ($(MPI),1)
  CC := mpicc
endif
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lglpk -ldsdp -lm -lpthread

VARIANT := $(PRECISION)
ifeq ($(PRECISION),double)
  CFLAGS += -DNS_DOUBLE=1
endif
ifeq ($(SAN),1)
  # float-cast-overflow is not part of GCC's "undefined": a double read from a file cast to
  # an integer out of its range (or NaN) must stop the suite too.
  CFLAGS += -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined,float-cast-overflow
  LDFLAGS += -fsanitize=address,undefined,float-cast-overflow
  VARIANT := $(VARIANT)-san
endif
ifeq ($(MPI),1)
  CFLAGS += -DNS_MPI=1
  VARIANT := $(VARIANT)-mpi
endif

# TAG lets several builds of one variant coexist (e.g. make TAG=-mine)
TAG ?=
B := build/$(VARIANT)$(TAG)
LIB_SRC := $(sort $(wildcard src/core/*.c src/data/*.c src/model/*.c src/curvature/*.c \
             src/train/*.c src/sweep/*.c src/report/*.c src/dln/*.c))
CLI_SRC := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%)
LIB := $(B)/libnormsharp.a
BIN := $(B)/normsharp

.PHONY: all lib tests test test-one test-mpi test-fuzz fuzz deps demo reproduce bench clean
all: $(BIN)
ifeq ($(VARIANT)$(TAG),float)
	@ln -sf $(BIN) normsharp
	@ln -sf $(LIB) build/libnormsharp.a
endif

lib: $(LIB)
$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	ar rcs $@ $^
$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)
# The layers' elementwise loops (activations, pooling, patches) vectorize only at -O3: GCC's
# -O2 does not version a loop for pointers that may alias. No reassociation is enabled, so
# the results are the same bits as at -O2 (BENCHMARKS.md §3).
$(B)/src/model/%.o: CFLAGS += -O3
$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<
$(B)/tests/%: tests/%.c $(wildcard tests/*.h) $(LIB) $(BIN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(B)/tests $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)
# One header that includes every public header, so test_headers proves they compile together.
PUB_HDR := $(sort $(wildcard include/normsharp/*.h))
$(B)/tests/all_headers.h: $(PUB_HDR)
	@mkdir -p $(dir $@)
	@printf '#include "normsharp/%s"\n' $(notdir $(PUB_HDR)) > $@
$(B)/tests/test_headers: $(B)/tests/all_headers.h
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

tests: $(TEST_BIN)
# One variant's suite (used by `make test`).
test-one: $(TEST_BIN)
	@tests/run.sh $(B)

deps:
	@scripts/install-deps

# The MPI build's sweeps over `mpirun -np 3` against the plain build's (tests/test_mpi.sh).
test-mpi:
	@$(MAKE) --no-print-directory all PRECISION=float SAN=0 MPI=0
	@$(MAKE) --no-print-directory all PRECISION=float SAN=0 MPI=1
	@tests/test_mpi.sh build/float-mpi$(TAG) build/float$(TAG)/normsharp

# ---- fuzzing (tests/fuzz/, docs/FUZZING.md): libFuzzer harnesses built with clang, ASan and
# UBSan (float-cast-overflow included) over the library in float precision.
#   make fuzz        each harness for FUZZ_SECONDS (default 60), new inputs kept in build/fuzz/corpus/
#   make test-fuzz   each harness briefly (FUZZ_SHORT seconds, default 12) on the committed corpus
FUZZ_SECONDS ?= 60
FUZZ_SHORT ?= 12
FZ := build/fuzz
FUZZ_CC := clang
FUZZ_FLAGS := -O1 -g -std=c11 -D_GNU_SOURCE -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null) \
              -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(FZ)/%)
FUZZ_OBJ := $(LIB_SRC:%.c=$(FZ)/%.o)
$(FZ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<
$(FZ)/libfuzz.a: $(FUZZ_OBJ)
	ar rcs $@ $^
$(FZ)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FZ)/libfuzz.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FZ)/libfuzz.a $(LDLIBS)
-include $(FUZZ_OBJ:.o=.d)
fuzz: $(FUZZ_BIN)
	@tests/fuzz/run.sh $(FZ) $(FUZZ_SECONDS) keep
test-fuzz: $(FUZZ_BIN)
	@tests/fuzz/run.sh $(FZ) $(FUZZ_SHORT)

HAVE_MPI := $(shell command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1 && echo 1)
test: deps
	@$(MAKE) --no-print-directory test-one PRECISION=float
	@$(MAKE) --no-print-directory test-one PRECISION=double
	@$(MAKE) --no-print-directory test-one PRECISION=double SAN=1
	@$(MAKE) --no-print-directory test-fuzz
ifeq ($(HAVE_MPI),1)
	@$(MAKE) --no-print-directory test-mpi
	@tests/summarize.sh build/float build/double build/double-san $(FZ) build/float-mpi
else
	@echo "test-mpi: skipped (no mpicc/mpirun; scripts/install-deps --mpi installs OpenMPI)"
	@tests/summarize.sh build/float build/double build/double-san $(FZ)
endif

demo: deps all
	@scripts/demo

reproduce: deps all
	@scripts/reproduce

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh

clean:
	rm -rf build normsharp
