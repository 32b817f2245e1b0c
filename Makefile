# normsharp — plain Makefile.
#   make                    release build (float32 network math): ./normsharp, build/libnormsharp.a
#   make PRECISION=double   network math in double (used by the derivative tests)
#   make SAN=1              AddressSanitizer + UndefinedBehaviorSanitizer
#   make MPI=1              sweeps across MPI ranks (installs OpenMPI when mpicc is missing)
#   make install            the program, libnormsharp.a/.so, headers, normsharp.pc and the man
#                           page under PREFIX (default /usr/local; DESTDIR honored); make uninstall
#   make test               install missing deps, run the suite: float, double, double+sanitizers,
#                           make install + pkg-config, the Python module, and the MPI sweep test
#                           when OpenMPI is installed (scripts/install-deps --mpi)
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
# -fPIC: the same objects make the static and the shared library.
CFLAGS += -std=c11 -D_GNU_SOURCE -fPIC -Wall -Wextra -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIB_LDLIBS := $(shell pkg-config --libs openblas lapacke zlib 2>/dev/null) -lglpk -ldsdp -lm -lpthread
LDLIBS += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lglpk -ldsdp -lm -lpthread

NS_VERSION := $(shell sed -n 's/^\#define NS_VERSION "\(.*\)"/\1/p' include/normsharp/common.h)
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
# The command line's tests: tests/cli/<command>.c beside src/cli/cmd_<command>.c.
CLI_TEST_SRC := $(sort $(wildcard tests/cli/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%) $(CLI_TEST_SRC:tests/%.c=$(B)/tests/%)
LIB := $(B)/libnormsharp.a
# The shared library: soname libnormsharp.so.<major>, file libnormsharp.so.<version>.
SO_MAJOR := $(firstword $(subst ., ,$(NS_VERSION)))
SONAME := libnormsharp.so.$(SO_MAJOR)
SO := $(B)/libnormsharp.so.$(NS_VERSION)
BIN := $(B)/normsharp

.PHONY: all lib tests test test-one test-mpi test-install test-python test-fuzz fuzz deps mpi-deps demo \
        reproduce bench clean install uninstall
all: $(BIN)
ifeq ($(VARIANT)$(TAG),float)
	@ln -sf $(BIN) normsharp
	@ln -sfn float/libnormsharp.a build/libnormsharp.a
endif

lib: $(LIB) $(SO)
$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	ar rcs $@ $^
$(SO): $(LIB_OBJ)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LIB_LDLIBS)
$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)
# The layers' elementwise loops (activations, pooling, patches) vectorize only at -O3: GCC's
# -O2 does not version a loop for pointers that may alias. No reassociation is enabled, so
# the results are the same bits as at -O2 (BENCHMARKS.md §3).
$(B)/src/model/%.o: CFLAGS += -O3
$(B)/%.o: %.c | $(if $(filter 1,$(MPI)),mpi-deps)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<
$(B)/tests/%: tests/%.c $(wildcard tests/*.h tests/cli/*.h) $(LIB) $(BIN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -I$(B)/tests $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)
# One header that includes every public header, so test_headers proves they compile together.
PUB_HDR := $(sort $(wildcard include/normsharp/*.h))
$(B)/tests/all_headers.h: $(PUB_HDR)
	@mkdir -p $(dir $@)
	@printf '#include "normsharp/%s"\n' $(notdir $(PUB_HDR)) > $@
$(B)/tests/test_headers: $(B)/tests/all_headers.h
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)

tests: $(TEST_BIN)
# One variant's suite (used by `make test`).
test-one: $(BIN) $(TEST_BIN)
	@tests/run.sh $(B)

deps:
	@scripts/install-deps

# make MPI=1 compiles with mpicc: install OpenMPI first when it is missing.
mpi-deps:
	@command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1 || scripts/install-deps --mpi

# The MPI build's sweeps over `mpirun -np 3` against the plain build's (tests/test_mpi.sh).
test-mpi:
	@$(MAKE) --no-print-directory all PRECISION=float SAN=0 MPI=0
	@$(MAKE) --no-print-directory all PRECISION=float SAN=0 MPI=1
	@tests/test_mpi.sh build/float-mpi$(TAG) build/float$(TAG)/normsharp

# ---- fuzzing (tests/fuzz/, docs/FUZZING.md): libFuzzer harnesses built with clang, ASan and
# UBSan (float-cast-overflow included) over the library in float precision.
#   make fuzz        each harness for FUZZ_SECONDS (default 60), new inputs kept in build/fuzz/corpus/
#   make fuzz FUZZ_RUNS=1000000 [FUZZ_ONLY="fuzz_idx fuzz_npy"]
#                    each harness (or those named) for that many executions instead
#   make test-fuzz   each harness briefly (FUZZ_SHORT seconds, default 12) on the committed corpus
FUZZ_SECONDS ?= 60
FUZZ_SHORT ?= 12
FUZZ_RUNS ?=
FUZZ_ONLY ?=
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
	@tests/fuzz/run.sh $(FZ) $(if $(FUZZ_RUNS),runs=$(FUZZ_RUNS),$(FUZZ_SECONDS)) keep $(FUZZ_ONLY)
test-fuzz: $(FUZZ_BIN)
	@tests/fuzz/run.sh $(FZ) $(FUZZ_SHORT)

HAVE_MPI := $(shell command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1 && echo 1)
test: deps
	@$(MAKE) --no-print-directory test-one PRECISION=float
	@$(MAKE) --no-print-directory test-one PRECISION=double
	@$(MAKE) --no-print-directory test-one PRECISION=double SAN=1
	@$(MAKE) --no-print-directory test-install PRECISION=float
	@$(MAKE) --no-print-directory test-python PRECISION=float
	@$(MAKE) --no-print-directory test-fuzz
ifeq ($(HAVE_MPI),1)
	@$(MAKE) --no-print-directory test-mpi
	@tests/summarize.sh build/float build/double build/double-san build/install build/python $(FZ) build/float-mpi
else
	@echo "test-mpi: skipped (no mpicc/mpirun; scripts/install-deps --mpi installs OpenMPI)"
	@tests/summarize.sh build/float build/double build/double-san build/install build/python $(FZ)
endif

demo: deps all
	@scripts/demo

reproduce: deps all
	@scripts/reproduce

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh

# ---- install ------------------------------------------------------------------------------
# The variant built by PRECISION (and MPI) goes under $(DESTDIR)$(PREFIX): one precision per
# prefix (common.h: a program of the other precision fails to link against it).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PC_REQUIRES := openblas lapacke zlib
ifeq ($(MPI),1)
  PC_REQUIRES += ompi-c
endif
PC_CFLAGS := $(if $(filter double,$(PRECISION)), -DNS_DOUBLE=1,)
PC_SUBST := -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
    -e 's|@VERSION@|$(NS_VERSION)|' -e 's|@REAL@|$(if $(filter double,$(PRECISION)),float64,float32)|' \
    -e 's|@CFLAGS_PREC@|$(PC_CFLAGS)|' -e 's|@REQUIRES@|$(PC_REQUIRES)|'
# normsharp(1), from the program's own --help texts (scripts/make-man).
$(B)/normsharp.1: $(BIN) scripts/make-man
	scripts/make-man $(BIN) > $@.tmp && mv $@.tmp $@

install: $(BIN) $(LIB) $(SO) $(B)/normsharp.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/normsharp \
	    $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/normsharp
	install -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/libnormsharp.a
	install -m 755 $(SO) $(DESTDIR)$(LIBDIR)/libnormsharp.so.$(NS_VERSION)
	ln -sf libnormsharp.so.$(NS_VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libnormsharp.so
	install -m 644 include/normsharp/*.h $(DESTDIR)$(INCLUDEDIR)/normsharp/
	sed $(PC_SUBST) scripts/normsharp.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/normsharp.pc
	install -m 644 $(B)/normsharp.1 $(DESTDIR)$(MANDIR)/man1/normsharp.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/normsharp $(DESTDIR)$(LIBDIR)/libnormsharp.a \
	    $(DESTDIR)$(LIBDIR)/libnormsharp.so $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(LIBDIR)/libnormsharp.so.$(NS_VERSION) $(DESTDIR)$(LIBDIR)/pkgconfig/normsharp.pc \
	    $(DESTDIR)$(MANDIR)/man1/normsharp.1 $(patsubst include/%,$(DESTDIR)$(INCLUDEDIR)/%,$(wildcard include/normsharp/*.h))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/normsharp 2>/dev/null

# Install into a temporary prefix, build tests/install/sharpness.c with pkg-config alone,
# compare its sharpness with the CLI's, and check that a double program does not link.
test-install: $(BIN)
	@tests/test_install.sh

# The Python module's tests (python/normsharp; NumPy always, PyTorch when installed), with
# Debian's python3, where python3-numpy and python3-torch install.
PYTHON ?= /usr/bin/python3
test-python: $(BIN)
	@NS_BIN=$(CURDIR)/$(BIN) $(PYTHON) python/run_tests.py

clean:
	rm -rf build normsharp
