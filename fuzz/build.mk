# fuzz/: AFL++ targets (fuzz/README.md).  The normal build links every target
# as a replay driver into $(B)/fuzz/ (built by `make check`, which replays
# the seeds and regressions through harness/t/t0800-fuzz-replay.sh);
# `make fuzz` builds the same sources again with afl-clang-fast, in
# persistent mode, as the variant build/afl/, and runs afl-fuzz on each
# target for FUZZ_SECONDS.
#
#   make fuzz [FUZZ_SECONDS=60] [FUZZ_JOBS=1] [FUZZ_TARGETS="dlog sess"]
#             [FUZZ_SANITIZE=address,undefined]   (empty: no sanitizer)
#   make fuzz-seeds       rewrite fuzz/seeds/ with fuzz/gen-seeds.c
FUZZ_TARGETS ?= dlog sess region size ctl iocb
FUZZ_BINS := $(addprefix $(B)/fuzz/,$(FUZZ_TARGETS))
FUZZ_GEN := $(B)/fuzz/gen-seeds
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 1
FUZZ_SANITIZE ?= address,undefined
AFL_CC ?= afl-clang-fast
AFL_B := build/afl

$(FUZZ_BINS) $(FUZZ_GEN): $(B)/fuzz/%: $(B)/fuzz/%.o $(LIB_A)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB_A) $(LIB_LIBS)

CHECK_BINS += $(FUZZ_BINS) $(FUZZ_GEN)

.PHONY: fuzz-build

fuzz-build: $(FUZZ_BINS)

fuzz-seeds: $(FUZZ_GEN)
	$(Q)$(FUZZ_GEN) fuzz/seeds

fuzz: deps
	$(Q)if ! command -v $(AFL_CC) >/dev/null 2>&1 || ! command -v afl-fuzz >/dev/null 2>&1; then \
		echo "make fuzz: $(AFL_CC) or afl-fuzz not found: install AFL++ (Debian package afl++; make deps installs it)" >&2; \
		exit 1; \
	fi
	$(Q)$(MAKE) --no-print-directory VARIANT=afl CC=$(AFL_CC) SANITIZE=$(FUZZ_SANITIZE) \
		FUZZ_TARGETS="$(FUZZ_TARGETS)" fuzz-build
	$(Q)FUZZ_JOBS=$(FUZZ_JOBS) fuzz/run-afl.sh $(AFL_B) $(FUZZ_SECONDS) $(FUZZ_TARGETS)
